package model

import (
	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// SwiGLUMLP is the dense gate/up/down block: down(silu(gate(x)) · up(x)),
// weights at "<p>gate_proj", "<p>up_proj", "<p>down_proj".
type SwiGLUMLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// LoadSwiGLUMLP reads a SwiGLUMLP of model dim D and intermediate dim I.
func LoadSwiGLUMLP(w *Weights, p string, D, I int) *SwiGLUMLP {
	m := &SwiGLUMLP{}
	w.Linear(&m.GateProj, p+"gate_proj", D, I, false)
	w.Linear(&m.UpProj, p+"up_proj", D, I, false)
	w.Linear(&m.DownProj, p+"down_proj", I, D, false)
	return m
}

// Forward maps x [B, L, D] to [B, L, D].
func (m *SwiGLUMLP) Forward(x *engine.Array) *engine.Array {
	return m.DownProj.Forward(nn.SwiGLU(m.GateProj.Forward(x), m.UpProj.Forward(x)))
}

// SigmoidMoE is DeepSeek-V3's routed expert block (also GLM-4-MoE's): a
// sigmoid grouped top-k router with score-correction bias, SwiGLU experts
// stacked in switch_mlp, and optional always-on shared experts.
type SigmoidMoE struct {
	Gate          nn.SigmoidGroupedTopK // gate
	SwitchMLP     nn.SwitchGLU          // switch_mlp.{gate,up}_proj [E, Im, D], down_proj [E, D, Im]
	SharedExperts *SwiGLUMLP            // shared_experts: intermediate Im·n_shared; nil if none
}

// SigmoidMoEConfig are the config.json values a SigmoidMoE needs.
type SigmoidMoEConfig struct {
	Experts      int     // n_routed_experts (E)
	Intermediate int     // moe_intermediate_size (Im)
	TopK         int     // num_experts_per_tok
	Groups       int     // n_group
	TopkGroup    int     // topk_group
	Scaling      float64 // routed_scaling_factor
	Norm         bool    // norm_topk_prob
	Shared       int     // n_shared_experts
}

// LoadSigmoidMoE reads a SigmoidMoE at "<p>mlp." of model dim D. A
// quantized router weight is dequantized once here (mlx_lm's MoEGate is
// never quantized; converted folders that did quantize it still load).
func LoadSigmoidMoE(w *Weights, p string, D int, c SigmoidMoEConfig) *SigmoidMoE {
	E, Im := c.Experts, c.Intermediate
	s := &SigmoidMoE{}
	g := &s.Gate
	g.K, g.Groups, g.TopkGroup, g.Scaling, g.Norm = c.TopK, c.Groups, c.TopkGroup, c.Scaling, c.Norm
	g.Weight = routerWeight(w, p+"mlp.gate", E, D)
	w.Tensor(&g.EScoreCorrectionBias, p+"mlp.gate.e_score_correction_bias", E)
	w.SwitchLinear(&s.SwitchMLP.GateProj, p+"mlp.switch_mlp.gate_proj", E, D, Im, false)
	w.SwitchLinear(&s.SwitchMLP.UpProj, p+"mlp.switch_mlp.up_proj", E, D, Im, false)
	w.SwitchLinear(&s.SwitchMLP.DownProj, p+"mlp.switch_mlp.down_proj", E, Im, D, false)
	if c.Shared > 0 {
		s.SharedExperts = LoadSwiGLUMLP(w, p+"mlp.shared_experts.", D, Im*c.Shared)
	}
	return s
}

// Forward maps x [B, L, D] to [B, L, D]: the routed experts' weighted sum
// plus the shared experts.
func (s *SigmoidMoE) Forward(x *engine.Array) *engine.Array {
	inds, weights := s.Gate.Route(x)                                                           // [B, L, K] each
	y := engine.AsType(nn.WeightedExpertSum(s.SwitchMLP.Forward(x, inds), weights), x.DType()) // [B, L, D]
	if s.SharedExperts != nil {
		y = engine.Add(y, s.SharedExperts.Forward(x))
	}
	return y
}

// routerWeight reads a router weight [E, D], dequantizing it once if the
// checkpoint quantized it.
func routerWeight(w *Weights, path string, E, D int) *engine.Array {
	var wt *engine.Array
	spec, ok := w.Quantized(path)
	if !ok || !w.Has(path+".scales") {
		w.Tensor(&wt, path+".weight", E, D)
		return wt
	}
	ws, ss, err := nn.QuantizedShapes(E, D, spec.GroupSize, spec.Bits)
	if err != nil {
		w.Tensor(&wt, path+".weight", E, D) // records the shape error
		return nil
	}
	var q, sc, b *engine.Array
	w.Tensor(&q, path+".weight", ws...)
	w.Tensor(&sc, path+".scales", ss...)
	w.Tensor(&b, path+".biases", ss...)
	if q == nil || sc == nil || b == nil {
		return nil
	}
	wt = engine.Dequantize(q, sc, b, spec.GroupSize, spec.Bits)
	if err := engine.Eval(wt); err != nil { // once, not on every forward
		return engine.Errorf("%s: %v", path, err)
	}
	return wt
}
