package model

import (
	"sync"
	"sync/atomic"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// BlockHook wraps the forward of one transformer block: block computes the
// block's output from its input x (the residual stream [B, L, D]); a hook
// returns that output, say computed through engine.Checkpoint (the LoRA
// trainer's --grad-checkpoint). layer is the block's index.
type BlockHook func(layer int, x *engine.Array, block func(x *engine.Array) *engine.Array) *engine.Array

var (
	blockHooks sync.Map // Model -> BlockHook
	nHooks     atomic.Int32
)

// SetBlockHook makes m's Forward pass each transformer block through hook
// until the returned restore function is called (nil hook: none). Every
// architecture's Forward runs its blocks through Block.
func SetBlockHook(m Model, hook BlockHook) (restore func()) {
	prev, had := blockHooks.Load(m)
	set := func(h BlockHook, had bool) {
		_, old := blockHooks.Load(m)
		if h == nil || !had {
			blockHooks.Delete(m)
			if old {
				nHooks.Add(-1)
			}
			return
		}
		blockHooks.Store(m, h)
		if !old {
			nHooks.Add(1)
		}
	}
	set(hook, hook != nil)
	return func() {
		var h BlockHook
		if had {
			h = prev.(BlockHook)
		}
		set(h, had)
	}
}

// Block runs block on x, through the hook set on m if there is one. An
// architecture's Forward calls it once per transformer block.
func Block(m Model, layer int, x *engine.Array, block func(x *engine.Array) *engine.Array) *engine.Array {
	if nHooks.Load() != 0 {
		if h, ok := blockHooks.Load(m); ok {
			return h.(BlockHook)(layer, x, block)
		}
	}
	return block(x)
}

// Blocks runs an architecture's n transformer blocks in order on the
// residual stream h [B, L, D], each through Block (so a hook set on m
// applies): block i gets caches[i] (nil when caches is nil). With caches,
// h is evaluated before each block: caches write in place (evaluating
// their inputs), and an unevaluated residual stream would be recomputed.
// name (the model type) prefixes an evaluation error.
func Blocks(m Model, name string, h *engine.Array, caches []Cache, n int, layer func(i int, h *engine.Array, c Cache) *engine.Array) *engine.Array {
	for i := range n {
		var c Cache
		if caches != nil {
			c = caches[i]
			if err := engine.Eval(h); err != nil {
				return engine.Errorf("%s: layer %d: %v", name, i, err)
			}
		}
		h = Block(m, i, h, func(h *engine.Array) *engine.Array { return layer(i, h, c) })
	}
	return h
}
