package nn

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// SplitHeads reshapes a projection [B, L, n·Dh] to [B, n, L, Dh].
func SplitHeads(x *engine.Array, n, dh int) *engine.Array {
	if x.Err() != nil || x.NDim() != 3 {
		return engine.Reshape(x, -1, n, dh) // passes the error on
	}
	b, l := x.Dim(0), x.Dim(1)
	return engine.Transpose(engine.Reshape(x, b, l, n, dh), 0, 2, 1, 3)
}

// MergeHeads reshapes attention output [B, H, L, Dh] to [B, L, H·Dh].
func MergeHeads(x *engine.Array) *engine.Array {
	if x.Err() != nil || x.NDim() != 4 {
		return engine.Reshape(x, -1) // passes the error on
	}
	b, h, l, dh := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	return engine.Reshape(engine.Transpose(x, 0, 2, 1, 3), b, l, h*dh)
}

// Attend is scaled dot-product attention of q [B, H, Lq, Dh] over k, v
// [B, Hk, Lk, Dh] (grouped-query: H a multiple of Hk, no key repetition),
// returning [B, H, Lq, Dh]. mask carries the causal/sliding-window/
// soft-cap settings (see pkg/model's MaskFor); its Scale is ignored and
// scale used instead.
func Attend(q, k, v *engine.Array, scale float64, mask engine.AttentionOptions) *engine.Array {
	mask.Scale = float32(scale)
	return engine.ScaledDotProductAttention(q, k, v, mask)
}

// DefaultScale is 1/√Dh.
func DefaultScale(dh int) float64 { return 1 / math.Sqrt(float64(dh)) }

// CausalMask returns a boolean mask [Lq, offset+Lq] (true = attend) for Lq
// queries at positions offset.. over keys 0..offset+Lq−1, hiding keys more
// than window−1 positions back when window > 0 (mlx_lm's
// create_causal_mask). ScaledDotProductAttention's Causal/Window options do
// the same without materialising it; this is for combining with padding.
func CausalMask(lq, offset, window int) *engine.Array {
	lk := offset + lq
	m := make([]bool, lq*lk)
	for i := range lq {
		for j := range lk {
			q := offset + i
			m[i*lk+j] = j <= q && (window <= 0 || j > q-window)
		}
	}
	return engine.FromBools(m, lq, lk)
}

// SoftCap is cap·tanh(x/cap) (Gemma 2's final-logit soft-capping).
func SoftCap(x *engine.Array, limit float64) *engine.Array {
	c := engine.ScalarOf(limit, x.DType())
	return engine.Multiply(engine.Tanh(engine.Divide(x, c)), c)
}

// SwiGLU is silu(gate) ⊙ up.
func SwiGLU(gate, up *engine.Array) *engine.Array {
	return engine.Multiply(engine.SiLU(gate), up)
}
