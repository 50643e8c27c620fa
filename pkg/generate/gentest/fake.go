// Package gentest provides a small deterministic model.Model for testing
// generation without a checkpoint: every position's logits depend on its own
// token and on the sine of the running sum of all earlier tokens' embeddings
// (so any token left out or repeated changes what follows), kept in a
// real KV cache, so prefill chunking, cache trimming and speculative
// decoding are all observable.
package gentest

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
)

// Model is the fake. Build it with New.
type Model struct {
	V, D int
	emb  *engine.Array // [V, D]
	out  *engine.Array // [D, V]

	mu sync.Mutex
	// Calls records L of every Forward call, in order.
	Calls []int
	// OnForward, when set, runs at the start of every Forward call with the
	// number of calls so far (1 for the first).
	OnForward func(call int)
}

// New returns a fake with vocabulary v, width d and weights drawn from seed.
func New(v, d int, seed uint64) *Model {
	r := rand.New(rand.NewPCG(seed, 7))
	e := make([]float32, v*d)
	for i := range e {
		e[i] = float32(r.NormFloat64())
	}
	o := make([]float32, d*v)
	for i := range o {
		o[i] = float32(r.NormFloat64())
	}
	return &Model{V: v, D: d, emb: engine.FromFloat32s(e, v, d), out: engine.FromFloat32s(o, d, v)}
}

// Perturbed returns a copy of m whose weights differ by noise of the given
// scale (a draft model that mostly agrees with m).
func (m *Model) Perturbed(scale float64, seed uint64) *Model {
	r := rand.New(rand.NewPCG(seed, 11))
	add := func(a *engine.Array) *engine.Array {
		x, err := a.Float32s()
		if err != nil {
			panic(err)
		}
		y := make([]float32, len(x))
		for i := range x {
			y[i] = x[i] + float32(scale*r.NormFloat64())
		}
		return engine.FromFloat32s(y, a.Shape()...)
	}
	return &Model{V: m.V, D: m.D, emb: add(m.emb), out: add(m.out)}
}

// ModelType implements model.Model.
func (m *Model) ModelType() string { return "gentest" }

// VocabSize implements model.Model.
func (m *Model) VocabSize() int { return m.V }

// NewCaches implements model.Model: one plain cache.
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return []model.Cache{&Cache{}}
}

// Forward implements model.Model: tokens [B, L] -> logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	if tokens.NDim() != 2 {
		return engine.Errorf("gentest: tokens must be [B, L], got %v", tokens.Shape())
	}
	b, l := tokens.Dim(0), tokens.Dim(1)
	m.mu.Lock()
	m.Calls = append(m.Calls, l)
	call, hook := len(m.Calls), m.OnForward
	m.mu.Unlock()
	if hook != nil {
		hook(call)
	}
	x := engine.Take(m.emb, tokens, 0)   // [B, L, D]
	k := engine.Reshape(x, b, 1, l, m.D) // [B, 1, L, D]
	keys := k                            // [B, 1, T, D]
	if caches != nil {
		if len(caches) != 1 {
			return engine.Errorf("gentest: want 1 cache, got %d", len(caches))
		}
		keys, _ = caches[0].Update(k, k)
	}
	t := keys.Dim(2)
	cs := engine.SliceAxis(engine.CumSum(keys, 2, false, true), 2, t-l, t) // [B, 1, L, D]
	// sin of the running sum: every earlier token moves every later logit.
	h := engine.Add(x, engine.Multiply(engine.Sin(engine.Reshape(cs, b, l, m.D)), engine.Scalar(2))) // [B, L, D]
	return engine.Matmul(h, m.out)                                                                   // [B, L, V]
}

// Cache is a trimmable cache that concatenates keys and values [B, 1, T, D].
type Cache struct {
	k, v *engine.Array
}

// Offset implements model.Cache.
func (c *Cache) Offset() int {
	if c.k == nil {
		return 0
	}
	return c.k.Dim(2)
}

// Update implements model.Cache.
func (c *Cache) Update(k, v *engine.Array) (*engine.Array, *engine.Array) {
	if c.k == nil {
		c.k, c.v = k, v
	} else {
		c.k = engine.Concatenate([]*engine.Array{c.k, k}, 2)
		c.v = engine.Concatenate([]*engine.Array{c.v, v}, 2)
	}
	return c.k, c.v
}

// Trimmable implements model.Cache.
func (c *Cache) Trimmable() bool { return true }

// Trim implements model.Cache.
func (c *Cache) Trim(n int) int {
	off := c.Offset()
	n = min(n, off)
	if n <= 0 {
		return 0
	}
	c.k = engine.SliceAxis(c.k, 2, 0, off-n)
	c.v = engine.SliceAxis(c.v, 2, 0, off-n)
	return n
}

// State implements model.Cache.
func (c *Cache) State() []*engine.Array {
	if c.k == nil {
		return nil
	}
	return []*engine.Array{c.k, c.v}
}

// Meta implements model.Cache.
func (c *Cache) Meta() []string { return []string{""} }

// String describes the cache for test failures.
func (c *Cache) String() string { return fmt.Sprintf("gentest.Cache(offset=%d)", c.Offset()) }
