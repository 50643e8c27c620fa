package lora

import (
	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
)

// MaskMode picks which next-token targets the loss counts.
type MaskMode int

const (
	// MaskStrict counts targets in [Offset, Length): mlxgo's default, which
	// leaves out the padding target after each sequence (mlx-lm PR #1697).
	MaskStrict MaskMode = iota
	// MaskMLX reproduces mlx_lm's default_loss exactly ([Offset, Length]),
	// which also trains every row to predict the pad id 0 after its end.
	MaskMLX
)

// LossMaskMode returns the [B, T-1] target mask for mode.
func (b Batch) LossMaskMode(mode MaskMode) []bool {
	if mode == MaskStrict {
		return b.LossMask()
	}
	m := make([]bool, b.B*(b.T-1))
	for r := 0; r < b.B; r++ {
		for k := 0; k < b.T-1; k++ {
			step := k + 1
			m[r*(b.T-1)+k] = step >= b.Offsets[r] && step <= b.Lengths[r]
		}
	}
	return m
}

// Loss builds mlx_lm's default_loss for a batch (nothing is evaluated):
// logits of tokens[:, :-1] with the causal mask only, next-token
// cross-entropy in float32 against tokens[:, 1:], summed over the masked
// targets and divided by their count ntoks. A batch with no target gives NaN,
// as mlx_lm.
func Loss(m model.Model, b Batch, mode MaskMode) (loss *engine.Array, ntoks int) {
	T := b.T - 1
	in := make([]int32, b.B*T)
	tg := make([]int32, b.B*T)
	mask := b.LossMaskMode(mode)
	mf := make([]float32, len(mask))
	for r := 0; r < b.B; r++ {
		copy(in[r*T:(r+1)*T], b.Tokens[r*b.T:r*b.T+T])
		copy(tg[r*T:(r+1)*T], b.Tokens[r*b.T+1:(r+1)*b.T])
	}
	for i, v := range mask {
		if v {
			mf[i] = 1
			ntoks++
		}
	}
	logits := m.Forward(engine.FromInt32s(in, b.B, T), nil)          // [B, T, V]
	ce := engine.CrossEntropy(logits, engine.FromInt32s(tg, b.B, T)) // [B, T] float32
	sum := engine.Sum(engine.Multiply(ce, engine.FromFloat32s(mf, b.B, T)), false)
	return engine.Divide(sum, engine.ScalarOf(float64(ntoks), engine.Float32)), ntoks
}
