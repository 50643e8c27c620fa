package nn

import "github.com/mlxgo/mlxgo/pkg/engine"

// RoPE applies rotary position embeddings (mx.fast.rope) to the first Dims
// features of [..., L, Dh]. pkg/model resolves a config's rope settings
// (default, linear, dynamic, llama3, yarn, longrope) into one of these.
type RoPE struct {
	Dims        int
	Traditional bool // rotate adjacent pairs instead of halves
	Base        float64
	Scale       float64       // position scale (1/factor for linear scaling)
	Freqs       *engine.Array // [Dims/2] periods (pos/Freqs[i]); overrides Base
	InputScale  float64       // multiplies the rotated features (yarn/longrope mscale); 0 or 1: none
	// BaseFor, when set, gives the base for a sequence reaching seqLen
	// positions (dynamic NTK scaling).
	BaseFor func(seqLen int) float64
}

// Forward rotates x [..., L, Dh] whose first row sits at position offset.
func (r *RoPE) Forward(x *engine.Array, offset int) *engine.Array {
	if r.InputScale != 0 && r.InputScale != 1 {
		x = r.scaleRotated(x)
	}
	base := r.Base
	if r.BaseFor != nil {
		base = r.BaseFor(offset + x.Dim(-2))
	}
	scale := r.Scale
	if scale == 0 {
		scale = 1
	}
	return engine.RoPE(x, engine.RoPEOptions{
		Dims: r.Dims, Traditional: r.Traditional, Base: float32(base),
		Scale: float32(scale), Offset: offset, Freqs: r.Freqs,
	})
}

// scaleRotated multiplies x[..., :Dims] by InputScale.
func (r *RoPE) scaleRotated(x *engine.Array) *engine.Array {
	s := engine.ScalarOf(r.InputScale, x.DType())
	d := x.Dim(-1)
	if r.Dims == d {
		return engine.Multiply(x, s)
	}
	parts := engine.SplitAt(x, []int{r.Dims}, -1)
	return engine.Concatenate([]*engine.Array{engine.Multiply(parts[0], s), parts[1]}, -1)
}
