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
