package nn

import "github.com/mlxgo/mlxgo/pkg/engine"

// RMSNorm is x / √(mean(x²) + ε) · w (mlx.nn.RMSNorm), or · (1 + w) with
// OnePlus (Gemma's variant, whose checkpoints store w − 1). 1 + w is
// formed in float32, as transformers does (mlx_lm rounds it to a bf16
// weight's dtype first).
type RMSNorm struct {
	Weight  *engine.Array // [D]
	Eps     float32
	OnePlus bool
}

// Forward normalises x [..., D] over its last axis.
func (n *RMSNorm) Forward(x *engine.Array) *engine.Array {
	w := n.Weight
	if n.OnePlus {
		w = engine.Add(engine.Scalar(1), engine.AsType(w, engine.Float32))
	}
	return engine.RMSNorm(x, w, n.Eps)
}

// LayerNorm is (x − mean) / √(var + ε) · w + b (mlx.nn.LayerNorm); Weight and
// Bias may be nil (no affine part).
type LayerNorm struct {
	Weight *engine.Array // [D] or nil
	Bias   *engine.Array // [D] or nil
	Eps    float32
}

// Forward normalises x [..., D] over its last axis.
func (n *LayerNorm) Forward(x *engine.Array) *engine.Array {
	return engine.LayerNorm(x, n.Weight, n.Bias, n.Eps)
}
