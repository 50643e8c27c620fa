package nn

import "github.com/mlxgo/mlxgo/pkg/engine"

// SwitchLayer is a bank of E linear layers applied per token to the
// experts chosen for it (mlx_lm's SwitchLinear / QuantizedSwitchLinear).
type SwitchLayer interface {
	// Forward maps x [..., 1 or K, 1, in] with expert indices [..., K]
	// (int32) to [..., K, 1, out].
	Forward(x, indices *engine.Array) *engine.Array
}

// SwitchLinear holds E stacked weights.
type SwitchLinear struct {
	Weight *engine.Array // [E, out, in]
	Bias   *engine.Array // [E, out] or nil
}

// Forward computes x·W[e]ᵀ (+ b[e]) for each selected expert e.
func (s *SwitchLinear) Forward(x, indices *engine.Array) *engine.Array {
	y := engine.GatherMM(x, engine.SwapAxes(s.Weight, -1, -2), nil, indices)
	return addExpertBias(y, s.Bias, indices)
}

// QuantizedSwitchLinear is a SwitchLinear with MLX-quantized weights (any
// mode; see QuantizedLinear): Weight [E, out, in·Bits/32], Scales [E, out,
// in/GroupSize], Biases likewise (nil in the float modes).
type QuantizedSwitchLinear struct {
	Weight    *engine.Array
	Scales    *engine.Array
	Biases    *engine.Array
	Bias      *engine.Array // [E, out] or nil
	GroupSize int
	Bits      int
	Mode      string // as QuantizedLinear.Mode
	Exact     bool   // dequantize, then GatherMM (QuantizedLinear.Exact)
}

// Forward computes the quantized expert matmuls with engine.GatherQMMMode.
func (s *QuantizedSwitchLinear) Forward(x, indices *engine.Array) *engine.Array {
	mode := ModeName(s.Mode)
	if s.Exact {
		w := exactWeight(engine.DequantizeMode(s.Weight, s.Scales, s.Biases, s.GroupSize, s.Bits, mode), mode, x) // [E, out, in]
		return addExpertBias(engine.GatherMM(x, engine.SwapAxes(w, -1, -2), nil, indices), s.Bias, indices)
	}
	y := engine.GatherQMMMode(x, s.Weight, s.Scales, s.Biases, nil, indices, true, s.GroupSize, s.Bits, mode)
	return addExpertBias(y, s.Bias, indices)
}

// addExpertBias adds bias[indices] [..., K, 1, out] to y.
func addExpertBias(y, bias, indices *engine.Array) *engine.Array {
	if bias == nil {
		return y
	}
	return engine.Add(y, engine.ExpandDims(engine.Take(bias, indices, 0), -2))
}

// SwitchGLU is the gated MLP of MoE layers: for each token and each of its
// K experts, down(act(gate(x)) ⊙ up(x)) (mlx_lm's SwitchGLU).
type SwitchGLU struct {
	GateProj SwitchLayer
	UpProj   SwitchLayer
	DownProj SwitchLayer
	// Activation of the gate; nil is SiLU.
	Activation func(gate, up *engine.Array) *engine.Array
}

// Forward maps x [..., D] and expert indices [..., K] to [..., K, D]; the
// caller weights and sums over K.
func (g *SwitchGLU) Forward(x, indices *engine.Array) *engine.Array {
	x = engine.ExpandDims(x, -2, -3) // [..., 1, 1, D]
	up := g.UpProj.Forward(x, indices)
	gate := g.GateProj.Forward(x, indices) // [..., K, 1, I]
	act := g.Activation
	if act == nil {
		act = SwiGLU
	}
	y := g.DownProj.Forward(act(gate, up), indices) // [..., K, 1, D]
	return engine.Squeeze(y, -2)
}
