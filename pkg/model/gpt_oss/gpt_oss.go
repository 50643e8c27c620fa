// Package gpt_oss is OpenAI's gpt-oss architecture (model_type "gpt_oss"),
// after mlx_lm's models/gpt_oss.py and transformers' modeling_gpt_oss.py:
// grouped-query attention with biases everywhere, a learned attention
// sink logit per head, sliding-window layers per layer_types, YaRN rotary
// embeddings; every layer is a mixture of experts whose router has a bias,
// keeps the top k logits and softmaxes them, and whose experts compute
// (clamp(up, ±limit) + 1) · g·σ(1.702·g) with g = min(gate, limit).
//
// Experts are held as mlx_lm's mlp.experts.{gate,up,down}_proj ([E, out,
// in] weights, [E, out] biases). Checkpoints saved by transformers keep
// the fused mlp.experts.gate_up_proj [E, D, 2I] (gate and up columns
// interleaved) and down_proj [E, I, D] with _bias tensors; the sanitize
// plan splits and transposes those (so convert writes mlx_lm's layout),
// and New still splits them itself when given the fused layout.
package gpt_oss

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("gpt_oss", New)
	model.RegisterSanitize("gpt_oss", Sanitize)
}

// Config mirrors the config.json keys gpt-oss uses.
type Config struct {
	HiddenSize            int      `json:"hidden_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	IntermediateSize      int      `json:"intermediate_size"` // per expert
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int      `json:"head_dim"`            // 0: hidden/heads
	VocabSize             int      `json:"vocab_size"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	NumLocalExperts       int      `json:"num_local_experts"`
	NumExpertsPerTok      int      `json:"num_experts_per_tok"`
	SlidingWindow         int      `json:"sliding_window"`
	LayerTypes            []string `json:"layer_types"`  // nil: sliding, full, sliding, ...
	SwigluLimit           float64  `json:"swiglu_limit"` // 0: 7
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps", "num_local_experts", "num_experts_per_tok"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.SwigluLimit == 0 {
		c.SwigluLimit = 7
	}
	if c.LayerTypes == nil {
		for i := range c.NumHiddenLayers {
			c.LayerTypes = append(c.LayerTypes, [2]string{"sliding_attention", "full_attention"}[i%2])
		}
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case c.NumLocalExperts <= 0 || c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumLocalExperts:
		return cfg.Errorf("num_experts_per_tok %d must be in 1..num_local_experts (%d)", c.NumExpertsPerTok, c.NumLocalExperts)
	case len(c.LayerTypes) != c.NumHiddenLayers:
		return cfg.Errorf("layer_types has %d entries for %d layers", len(c.LayerTypes), c.NumHiddenLayers)
	case c.SwigluLimit < 0:
		return cfg.Errorf("swiglu_limit %g must be positive", c.SwigluLimit)
	}
	for i, t := range c.LayerTypes {
		switch t {
		case "full_attention":
		case "sliding_attention":
			if c.SlidingWindow <= 0 {
				return cfg.Errorf("layer %d is sliding_attention but sliding_window is %d", i, c.SlidingWindow)
			}
		default:
			return cfg.Errorf("layer_types[%d] %q: expected full_attention or sliding_attention", i, t)
		}
	}
	return nil
}

// Model is GptOssForCausalLM: the struct tree is the weight-name tree.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head [V, D]; nil with tied embeddings
	cfg    Config
	window []int // per layer: sliding window, 0 for full attention
}

// Backbone is GptOssModel.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm [D]
}

// Layer is one decoder block.
type Layer struct {
	SelfAttn               Attention  // self_attn
	MLP                    MLP        // mlp
	InputLayernorm         nn.RMSNorm // input_layernorm [D]
	PostAttentionLayernorm nn.RMSNorm // post_attention_layernorm [D]
}

// Attention is grouped-query attention with per-head sink logits.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer      // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh], all with bias
	Sinks                      *engine.Array // sinks [H]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is the routed expert block.
type MLP struct {
	Router  nn.Layer     // router [E, D] + bias [E]
	Experts nn.SwitchGLU // experts.{gate,up}_proj [E, I, D] + [E, I], down_proj [E, D, I] + [E, D]
	k       int
}

// New builds a gpt-oss model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	D, H, Hk, Dh, I, E := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize, c.NumLocalExperts
	rope, err := resolveRope(cfg, Dh, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, err
	}
	limit := c.SwigluLimit
	act := func(gate, up *engine.Array) *engine.Array { return swiglu(gate, up, limit) }
	m := &Model{cfg: c, window: make([]int, c.NumHiddenLayers)}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.rope, a.heads, a.kvHeads, a.headDim, a.scale = rope, H, Hk, Dh, nn.DefaultScale(Dh)
		w.Linear(&a.QProj, p+"self_attn.q_proj", D, H*Dh, true)
		w.Linear(&a.KProj, p+"self_attn.k_proj", D, Hk*Dh, true)
		w.Linear(&a.VProj, p+"self_attn.v_proj", D, Hk*Dh, true)
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, true)
		w.Tensor(&a.Sinks, p+"self_attn.sinks", H)
		mlp := &l.MLP
		mlp.k = c.NumExpertsPerTok
		mlp.Experts.Activation = act
		w.Linear(&mlp.Router, p+"mlp.router", D, E, true)
		if err := loadExperts(w, &mlp.Experts, p+"mlp.experts.", E, D, I); err != nil {
			return nil, err
		}
		w.RMSNorm(&l.InputLayernorm, p+"input_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
		if c.LayerTypes[i] == "sliding_attention" {
			m.window[i] = c.SlidingWindow
		}
	}
	w.RMSNorm(&m.Model.Norm, "model.norm", D, c.RMSNormEps)
	if !c.TieWordEmbeddings {
		w.Linear(&m.LMHead, "lm_head", D, c.VocabSize, false)
	}
	m.Params = w.Params()
	return m, w.Err()
}

// resolveRope builds the rotary embedding (yarn with "truncate": false,
// gpt-oss's setting, is honoured by pkg/model's resolver).
func resolveRope(cfg *model.Config, dims, maxPos int) (*nn.RoPE, error) {
	rc, err := cfg.Rope("", 150000)
	if err != nil {
		return nil, err
	}
	r, err := rc.Resolve(dims, false, maxPos)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	return r.NN(), nil
}

// loadExperts fills the expert bank from mlx_lm's layout
// (experts.{gate,up,down}_proj.{weight,bias}, possibly quantized) or from
// transformers' fused one (experts.gate_up_proj [E, D, 2I] with gate in
// the even and up in the odd columns, gate_up_proj_bias [E, 2I],
// down_proj [E, I, D], down_proj_bias [E, D]), split and transposed here.
func loadExperts(w *model.Weights, g *nn.SwitchGLU, p string, E, D, I int) error {
	if !w.Has(p + "gate_up_proj") {
		w.SwitchLinear(&g.GateProj, p+"gate_proj", E, D, I, true)
		w.SwitchLinear(&g.UpProj, p+"up_proj", E, D, I, true)
		w.SwitchLinear(&g.DownProj, p+"down_proj", E, I, D, true)
		return nil
	}
	var gu, gub, dn, dnb *engine.Array
	w.Tensor(&gu, p+"gate_up_proj", E, D, 2*I)
	w.Tensor(&gub, p+"gate_up_proj_bias", E, 2*I)
	w.Tensor(&dn, p+"down_proj", E, I, D)
	w.Tensor(&dnb, p+"down_proj_bias", E, D)
	if gu == nil || gub == nil || dn == nil || dnb == nil {
		return nil // the errors are in w
	}
	cols := func(a *engine.Array, start int) *engine.Array { // a[..., start::2]
		n := a.NDim()
		starts, stops, steps := make([]int, n), append([]int(nil), a.Shape()...), make([]int, n)
		for i := range steps {
			steps[i] = 1
		}
		starts[n-1], steps[n-1] = start, 2
		return engine.Slice(a, starts, stops, steps)
	}
	gate := &nn.SwitchLinear{Weight: engine.Copy(engine.SwapAxes(cols(gu, 0), -1, -2)), Bias: engine.Copy(cols(gub, 0))} // [E, I, D], [E, I]
	up := &nn.SwitchLinear{Weight: engine.Copy(engine.SwapAxes(cols(gu, 1), -1, -2)), Bias: engine.Copy(cols(gub, 1))}   // [E, I, D], [E, I]
	down := &nn.SwitchLinear{Weight: engine.Copy(engine.SwapAxes(dn, -1, -2)), Bias: dnb}                                // [E, D, I], [E, D]
	if err := engine.Eval(gate.Weight, gate.Bias, up.Weight, up.Bias, down.Weight); err != nil {
		return fmt.Errorf("%sgate_up_proj: %w", p, err)
	}
	g.GateProj, g.UpProj, g.DownProj = gate, up, down
	return nil
}

// swiglu is gpt-oss's clamped gated activation (transformers'
// GptOssExperts, mlx_lm's swiglu): g = min(gate, limit), u = clip(up,
// −limit, limit), out = g·σ(1.702·g)·(u + 1).
func swiglu(gate, up *engine.Array, limit float64) *engine.Array {
	dt := gate.DType()
	lim := engine.ScalarOf(limit, dt)
	g := engine.Clip(gate, nil, lim)
	u := engine.Clip(up, engine.ScalarOf(-limit, dt), lim)
	glu := engine.Multiply(g, engine.Sigmoid(engine.Multiply(g, engine.ScalarOf(1.702, dt))))
	return engine.Multiply(glu, engine.Add(u, engine.ScalarOf(1, dt)))
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = model.Blocks(m, "gpt_oss", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
		return m.Model.Layers[i].forward(h, c, m.window[i])
	})
	h = m.Model.Norm.Forward(h)
	if m.LMHead != nil {
		return m.LMHead.Forward(h) // [B, L, V]
	}
	return m.Model.EmbedTokens.AsLinear(h)
}

func (l *Layer) forward(x *engine.Array, c model.Cache, window int) *engine.Array {
	h := engine.Add(x, l.SelfAttn.forward(l.InputLayernorm.Forward(x), c, window))
	return engine.Add(h, l.MLP.forward(l.PostAttentionLayernorm.Forward(h)))
}

func (a *Attention) forward(x *engine.Array, c model.Cache, window int) *engine.Array {
	q := nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim)   // [B, H, L, Dh]
	k := nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	sinks := func(o *engine.AttentionOptions) { o.Sinks = a.Sinks }
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, window, sinks)) // [B, L, D]
}

// forward routes x [B, L, D]: the top k router logits (with bias),
// softmaxed (transformers' GptOssTopKRouter and mlx_lm agree).
func (s *MLP) forward(x *engine.Array) *engine.Array {
	inds, scores := nn.TopKSoftmax(s.Router.Forward(x), s.k)        // [B, L, K] each
	return nn.WeightedExpertSum(s.Experts.Forward(x, inds), scores) // [B, L, D]
}

// NewCaches makes one cache per layer (sliding layers get rotating caches).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), m.window, o)
}

// ModelType is "gpt_oss".
func (m *Model) ModelType() string { return "gpt_oss" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize drops rotary inv_freq buffers and a tied lm_head and rewrites
// transformers' fused experts into mlx_lm's layout: gate_up_proj [E, D,
// 2I] → gate_proj and up_proj .weight [E, I, D] (even and odd columns,
// transposed), gate_up_proj_bias [E, 2I] → gate_proj/up_proj .bias [E, I],
// down_proj [E, I, D] → down_proj.weight [E, D, I], down_proj_bias →
// down_proj.bias (a reshape to its own shape, so that SanitizePlan keeps
// the whole fused group as the checkpoint has it; New loads that layout
// too). OpenAI's original MXFP4 experts (quant_method "mxfp4") become
// mlx_lm's mxfp4 layers as its sanitize makes them: gate_up_proj_blocks
// uint8 [E, 2I, D/32, 16] → gate_proj/up_proj .weight uint32 [E, I, D/8]
// (the bytes viewed as words; even and odd rows), gate_up_proj_scales
// [E, 2I, D/32] → .scales (even and odd rows), down_proj_blocks → down_proj
// .weight [E, D, I/8], down_proj_scales → down_proj.scales. A checkpoint
// already in mlx_lm's layout is copied through.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	var plan []model.TensorPlan
	for _, p := range model.Drop(tensors, func(name string) bool {
		return strings.Contains(name, "rotary_emb.inv_freq") || (tied && strings.HasPrefix(name, "lm_head."))
	}) {
		prefix, fused, ok := strings.Cut(p.Name, ".mlp.experts.")
		if !ok {
			plan = append(plan, p)
			continue
		}
		pre := prefix + ".mlp.experts."
		shape := tensors[p.Name].Shape
		step := func(name string, steps ...model.Step) model.TensorPlan {
			return model.TensorPlan{Name: pre + name, Op: model.OpCopy, Sources: p.Sources, Steps: steps}
		}
		even, odd, tr := model.Step{Op: model.OpEvenCols}, model.Step{Op: model.OpOddCols}, model.Step{Op: model.OpTranspose}
		switch fused {
		case "gate_up_proj":
			plan = append(plan, step("gate_proj.weight", even, tr), step("up_proj.weight", odd, tr))
		case "gate_up_proj_bias":
			plan = append(plan, step("gate_proj.bias", even), step("up_proj.bias", odd))
		case "down_proj":
			plan = append(plan, step("down_proj.weight", tr))
		case "down_proj_bias":
			plan = append(plan, step("down_proj.bias", model.Step{Op: model.OpReshape, Shape: shape}))
		case "gate_up_proj_blocks", "down_proj_blocks":
			if len(shape) != 4 || tensors[p.Name].DType != "U8" {
				return nil, fmt.Errorf("tensor %q: expected MXFP4 blocks uint8 [E, rows, cols/32, 16], got %s %v", p.Name, tensors[p.Name].DType, shape)
			}
			view := model.Step{Op: model.OpReshape, Shape: []int{shape[0], shape[1], shape[2] * 4}, DType: "U32"}
			if fused == "down_proj_blocks" {
				plan = append(plan, step("down_proj.weight", view))
			} else {
				plan = append(plan, step("gate_proj.weight", view, model.Step{Op: model.OpEvenRows}), step("up_proj.weight", view, model.Step{Op: model.OpOddRows}))
			}
		case "gate_up_proj_scales":
			plan = append(plan, step("gate_proj.scales", model.Step{Op: model.OpEvenRows}), step("up_proj.scales", model.Step{Op: model.OpOddRows}))
		case "down_proj_scales":
			plan = append(plan, step("down_proj.scales"))
		default:
			plan = append(plan, p)
		}
	}
	return plan, nil
}
