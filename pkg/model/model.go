package model

import "github.com/mlxgo/mlxgo/pkg/engine"

// Model is a loaded language model: what generation, benchmarking and
// training need from any architecture.
type Model interface {
	// Forward maps tokens [B, L] (int32) to logits [B, L, V], continuing
	// from the caches' offset and extending them (one cache per layer, as
	// NewCaches returns; caches == nil runs without a cache, from position 0).
	Forward(tokens *engine.Array, caches []Cache) *engine.Array
	// NewCaches returns fresh caches for every layer, honouring the
	// architecture's layer kinds (sliding-window layers get rotating caches).
	NewCaches(o CacheOptions) []Cache
	// ModelType is the config's model_type.
	ModelType() string
	// VocabSize is V, the logits' last dim.
	VocabSize() int
}

// CacheOptions are the generate flags that shape KV caches.
type CacheOptions struct {
	MaxKVSize        int // > 0: rotating cache of this many tokens (keeping the first 4)
	KVBits           int // > 0: quantize keys/values once the offset reaches QuantizedKVStart
	KVGroupSize      int
	QuantizedKVStart int
}

// Cache is one layer's key/value store across Forward calls.
type Cache interface {
	// Offset is the number of tokens the cache has seen.
	Offset() int
	// Update appends keys and values [B, Hk, L, Dh] and returns the keys and
	// values the layer attends to.
	Update(keys, values *engine.Array) (k, v *engine.Array)
	// Trimmable reports whether Trim works (not for rotating caches that wrapped).
	Trimmable() bool
	// Trim drops the last n tokens and returns how many it dropped.
	Trim(n int) int
	// State returns the arrays that save the cache (prompt-cache files),
	// and Meta its string metadata, as mlx_lm's cache.state / meta_state.
	State() []*engine.Array
	Meta() []string
}

// Settled is implemented by caches that evaluate their writes as they
// happen (the standard, rotating and quantized KV caches): nothing in
// their State waits for an Eval. A generation loop evaluates the State of
// the other caches with each step's logits (a recurrent state otherwise
// grows a graph); for these it must not: State returns fresh views, and an
// evaluated view left for the collector pins the buffer, so the next write
// copies the whole cache.
type Settled interface{ Settled() }
