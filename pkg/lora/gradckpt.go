package lora

import (
	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
)

// CheckpointBlocks turns on gradient checkpointing for m (mlx_lm's
// --grad-checkpoint): until restore is called, m's Forward runs each
// transformer block through engine.Checkpoint, so a value-and-gradient
// Eval keeps only the blocks' inputs and outputs from the forward pass and
// recomputes each block's intermediates when the backward reaches it. The
// adapter's dropout (t may be nil) draws the same masks when a block is
// recomputed, so the loss and gradients are those of the plain step.
func CheckpointBlocks(m model.Model, t *Tuned) (restore func()) {
	var d *Dropout
	if t != nil {
		d = t.Dropout
	}
	return model.SetBlockHook(m, func(_ int, x *engine.Array, block func(*engine.Array) *engine.Array) *engine.Array {
		var saved Dropout
		if d != nil {
			saved = *d
		}
		first := true
		f := func(xs []*engine.Array) []*engine.Array {
			if d != nil && !first {
				// replay the dropout state of the first run; leave the
				// counter where the rest of the forward left it
				now := *d
				d.Training, d.n = saved.Training, saved.n
				defer func() { d.Training, d.n = now.Training, now.n }()
			}
			first = false
			return []*engine.Array{block(xs[0])}
		}
		return engine.Checkpoint(f)([]*engine.Array{x})[0]
	})
}
