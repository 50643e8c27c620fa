// Package qwen3_next is the Qwen3-Next architecture (model_type
// "qwen3_next"), after mlx_lm's models/qwen3_next.py and transformers'
// modeling_qwen3_next.py: a hybrid of gated DeltaNet linear-attention
// layers (gated_delta.go) and gated full-attention layers (every
// full_attention_interval-th layer, or as layer_types says), each followed
// by a sparse MoE block with a sigmoid-gated shared expert (or a dense MLP
// on mlp_only_layers / off decoder_sparse_step). Full attention: q_proj
// yields queries and a per-head output gate [H, 2·Dh]; per-head q/k norms;
// partial rotary (partial_rotary_factor); output · sigmoid(gate).
//
// Norms: hub checkpoints store the decoder, final and q/k RMSNorm weights
// as w − 1 (Qwen3NextRMSNorm computes x̂·(1 + w)) and conv1d.weight as
// [C, 1, K]; the model holds mlx_lm's layout (norm weights w, conv1d [C,
// K, 1]), which the sanitize plan writes from the hub's, as mlx_lm's
// sanitize does.
package qwen3_next

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("qwen3_next", New)
	model.RegisterSanitize("qwen3_next", Sanitize)
}

// Config mirrors the config.json keys Qwen3-Next uses.
type Config struct {
	HiddenSize                   int      `json:"hidden_size"`
	NumHiddenLayers              int      `json:"num_hidden_layers"`
	IntermediateSize             int      `json:"intermediate_size"`
	NumAttentionHeads            int      `json:"num_attention_heads"`
	NumKeyValueHeads             int      `json:"num_key_value_heads"` // 0: = heads
	HeadDim                      int      `json:"head_dim"`            // 0: hidden/heads
	VocabSize                    int      `json:"vocab_size"`
	RMSNormEps                   float64  `json:"rms_norm_eps"`
	MaxPositionEmbeddings        int      `json:"max_position_embeddings"`
	PartialRotaryFactor          float64  `json:"partial_rotary_factor"` // also inside rope_parameters; 0: 0.25
	AttentionBias                bool     `json:"attention_bias"`
	TieWordEmbeddings            bool     `json:"tie_word_embeddings"`
	HiddenAct                    string   `json:"hidden_act"`
	LayerTypes                   []string `json:"layer_types"`             // "linear_attention" / "full_attention"
	FullAttentionInterval        int      `json:"full_attention_interval"` // 0: 4
	LinearNumValueHeads          int      `json:"linear_num_value_heads"`
	LinearNumKeyHeads            int      `json:"linear_num_key_heads"`
	LinearKeyHeadDim             int      `json:"linear_key_head_dim"`
	LinearValueHeadDim           int      `json:"linear_value_head_dim"`
	LinearConvKernelDim          int      `json:"linear_conv_kernel_dim"`
	NumExperts                   int      `json:"num_experts"`
	NumExpertsPerTok             int      `json:"num_experts_per_tok"`
	DecoderSparseStep            int      `json:"decoder_sparse_step"` // 0: 1
	MoeIntermediateSize          int      `json:"moe_intermediate_size"`
	SharedExpertIntermediateSize int      `json:"shared_expert_intermediate_size"`
	MLPOnlyLayers                []int    `json:"mlp_only_layers"`
	NormTopkProb                 bool     `json:"norm_topk_prob"`
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps",
	"linear_num_value_heads", "linear_num_key_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.FullAttentionInterval == 0 {
		c.FullAttentionInterval = 4
	}
	if c.DecoderSparseStep == 0 {
		c.DecoderSparseStep = 1
	}
	if c.LayerTypes == nil && c.NumHiddenLayers > 0 && c.FullAttentionInterval > 0 {
		c.LayerTypes = make([]string, c.NumHiddenLayers)
		for i := range c.LayerTypes {
			c.LayerTypes[i] = "linear_attention"
			if (i+1)%c.FullAttentionInterval == 0 {
				c.LayerTypes[i] = "full_attention"
			}
		}
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: qwen3_next supports silu", c.HiddenAct)
	case c.LinearNumKeyHeads <= 0 || c.LinearNumValueHeads <= 0 || c.LinearNumValueHeads%c.LinearNumKeyHeads != 0:
		return cfg.Errorf("linear_num_value_heads %d must be a positive multiple of linear_num_key_heads %d", c.LinearNumValueHeads, c.LinearNumKeyHeads)
	case c.LinearKeyHeadDim <= 0 || c.LinearValueHeadDim <= 0 || c.LinearConvKernelDim < 1:
		return cfg.Errorf("linear_key_head_dim, linear_value_head_dim and linear_conv_kernel_dim must be positive")
	case c.NumExperts > 0 && (c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumExperts || c.MoeIntermediateSize <= 0):
		return cfg.Errorf("num_experts_per_tok %d must be in 1..num_experts %d, with a positive moe_intermediate_size", c.NumExpertsPerTok, c.NumExperts)
	case c.DecoderSparseStep < 0 || c.FullAttentionInterval < 0:
		return cfg.Errorf("decoder_sparse_step and full_attention_interval must be positive")
	case len(c.LayerTypes) != c.NumHiddenLayers:
		return cfg.Errorf("layer_types has %d entries for %d layers", len(c.LayerTypes), c.NumHiddenLayers)
	}
	for i, t := range c.LayerTypes {
		if t != "linear_attention" && t != "full_attention" {
			return cfg.Errorf("layer_types[%d] = %q: expected \"linear_attention\" or \"full_attention\"", i, t)
		}
	}
	return nil
}

func (c *Config) sparse(i int) bool {
	for _, j := range c.MLPOnlyLayers {
		if j == i {
			return false
		}
	}
	return c.NumExperts > 0 && (i+1)%c.DecoderSparseStep == 0
}

// Model is Qwen3NextForCausalLM.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil with tied embeddings
	cfg    Config
}

// Backbone is Qwen3NextModel.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm
}

// Layer is one decoder block: LinearAttn or SelfAttn, then MLP (one of
// its two forms).
type Layer struct {
	LinearAttn             *GatedDeltaNet // linear_attn (linear layers)
	SelfAttn               *Attention     // self_attn (full-attention layers)
	MLP                    MLP            // mlp
	InputLayernorm         nn.RMSNorm     // input_layernorm
	PostAttentionLayernorm nn.RMSNorm     // post_attention_layernorm
}

// Attention is gated grouped-query attention.
type Attention struct {
	QProj        nn.Layer   // q_proj [H·2Dh, D]: per head, Dh query rows then Dh gate rows
	KProj, VProj nn.Layer   // k/v [Hk·Dh, D]
	OProj        nn.Layer   // o_proj [D, H·Dh]
	QNorm, KNorm nn.RMSNorm // q_norm, k_norm [Dh]
	rope         *nn.RoPE
	heads        int
	kvHeads      int
	headDim      int
	scale        float64
}

// MLP is the sparse MoE block (Gate, SwitchMLP, SharedExpert,
// SharedExpertGate) or, on dense layers, a SwiGLU MLP (GateProj, UpProj,
// DownProj).
type MLP struct {
	Gate             nn.Layer      // gate [E, D] (router)
	SwitchMLP        *nn.SwitchGLU // switch_mlp.{gate,up,down}_proj [E, ·, ·]
	SharedExpert     *DenseMLP     // shared_expert
	SharedExpertGate nn.Layer      // shared_expert_gate [1, D]
	*DenseMLP                      // gate_proj/up_proj/down_proj on dense layers
	k                int
	normTopk         bool
}

// DenseMLP is down(silu(gate(x)) ⊙ up(x)).
type DenseMLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// New builds a Qwen3-Next model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	rc, err := cfg.Rope("", 10000)
	if err != nil {
		return nil, err
	}
	prf := c.PartialRotaryFactor
	if v, ok := rc.Scaling["partial_rotary_factor"].(float64); ok {
		prf = v
	}
	if prf == 0 {
		prf = 0.25
	}
	D, H, Hk, Dh := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	dims := int(float64(Dh) * prf)
	if prf < 0 || prf > 1 || dims <= 0 || dims%2 != 0 {
		return nil, cfg.Errorf("partial_rotary_factor %g gives %d rotary dims of head_dim %d: expected an even number in 2..%d", prf, dims, Dh, Dh)
	}
	r, err := rc.Resolve(dims, false, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	// mlx_lm's layout: norm weights w, not the hub's w − 1 (the sanitize
	// plan adds the 1).
	norm := func(dst *nn.RMSNorm, path string, dim int) {
		w.RMSNorm(dst, path, dim, c.RMSNormEps)
	}
	m := &Model{cfg: c}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		if c.LayerTypes[i] == "linear_attention" {
			l.LinearAttn = newGatedDeltaNet(w, p+"linear_attn", &c)
		} else {
			a := &Attention{rope: rope, heads: H, kvHeads: Hk, headDim: Dh, scale: nn.DefaultScale(Dh)}
			w.Linear(&a.QProj, p+"self_attn.q_proj", D, 2*H*Dh, c.AttentionBias)
			w.Linear(&a.KProj, p+"self_attn.k_proj", D, Hk*Dh, c.AttentionBias)
			w.Linear(&a.VProj, p+"self_attn.v_proj", D, Hk*Dh, c.AttentionBias)
			w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, c.AttentionBias)
			norm(&a.QNorm, p+"self_attn.q_norm", Dh)
			norm(&a.KNorm, p+"self_attn.k_norm", Dh)
			l.SelfAttn = a
		}
		mp := &l.MLP
		if c.sparse(i) {
			E, I := c.NumExperts, c.MoeIntermediateSize
			mp.k, mp.normTopk = c.NumExpertsPerTok, c.NormTopkProb
			w.Linear(&mp.Gate, p+"mlp.gate", D, E, false)
			mp.SwitchMLP = &nn.SwitchGLU{}
			w.SwitchLinear(&mp.SwitchMLP.GateProj, p+"mlp.switch_mlp.gate_proj", E, D, I, false)
			w.SwitchLinear(&mp.SwitchMLP.UpProj, p+"mlp.switch_mlp.up_proj", E, D, I, false)
			w.SwitchLinear(&mp.SwitchMLP.DownProj, p+"mlp.switch_mlp.down_proj", E, I, D, false)
			mp.SharedExpert = newDense(w, p+"mlp.shared_expert.", D, c.SharedExpertIntermediateSize)
			w.Linear(&mp.SharedExpertGate, p+"mlp.shared_expert_gate", D, 1, false)
		} else {
			mp.DenseMLP = newDense(w, p+"mlp.", D, c.IntermediateSize)
		}
		norm(&l.InputLayernorm, p+"input_layernorm", D)
		norm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D)
	}
	norm(&m.Model.Norm, "model.norm", D)
	if !c.TieWordEmbeddings {
		w.Linear(&m.LMHead, "lm_head", D, c.VocabSize, false)
	}
	m.Params = w.Params()
	return m, w.Err()
}

func newDense(w *model.Weights, p string, D, I int) *DenseMLP {
	d := &DenseMLP{}
	w.Linear(&d.GateProj, p+"gate_proj", D, I, false)
	w.Linear(&d.UpProj, p+"up_proj", D, I, false)
	w.Linear(&d.DownProj, p+"down_proj", I, D, false)
	return d
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	for i := range m.Model.Layers {
		if h.Err() != nil {
			return h // layers read dims: stop at the first error
		}
		var c model.Cache
		if caches != nil {
			c = caches[i]
			// Caches write in place (evaluating their inputs): keep the
			// residual stream evaluated so it is not recomputed.
			if err := engine.Eval(h); err != nil {
				return engine.Errorf("qwen3_next: layer %d: %v", i, err)
			}
		}
		h = model.Block(m, i, h, func(h *engine.Array) *engine.Array { return m.Model.Layers[i].forward(h, c) })
	}
	h = m.Model.Norm.Forward(h)
	if m.LMHead != nil {
		return m.LMHead.Forward(h) // [B, L, V]
	}
	return m.Model.EmbedTokens.AsLinear(h)
}

func (l *Layer) forward(x *engine.Array, c model.Cache) *engine.Array {
	var r *engine.Array
	if l.LinearAttn != nil {
		lc, _ := c.(*LinearCache)
		if c != nil && lc == nil {
			return engine.Errorf("qwen3_next: a linear-attention layer needs a *LinearCache, got %T", c)
		}
		r = l.LinearAttn.forward(l.InputLayernorm.Forward(x), lc)
	} else {
		r = l.SelfAttn.forward(l.InputLayernorm.Forward(x), c)
	}
	h := engine.Add(x, r)
	return engine.Add(h, l.MLP.forward(l.PostAttentionLayernorm.Forward(h)))
}

func (a *Attention) forward(x *engine.Array, c model.Cache) *engine.Array {
	B, L := x.Dim(0), x.Dim(1)
	qg := engine.Split(engine.Reshape(a.QProj.Forward(x), B, L, a.heads, 2*a.headDim), 2, -1) // [B, L, H, Dh] ×2
	if len(qg) != 2 {
		return qg[0] // an error
	}
	gate := engine.Reshape(qg[1], B, L, a.heads*a.headDim)                        // [B, L, H·Dh]
	q := engine.Transpose(a.QNorm.Forward(qg[0]), 0, 2, 1, 3)                     // [B, H, L, Dh]
	k := a.KNorm.Forward(nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim)) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim)                  // [B, Hk, L, Dh]
	offset := 0
	if c != nil {
		offset = c.Offset()
	}
	q, k = a.rope.Forward(q, offset), a.rope.Forward(k, offset)
	if c != nil {
		k, v = c.Update(k, v) // [B, Hk, T, Dh]
	}
	o := nn.MergeHeads(nn.Attend(q, k, v, a.scale, model.MaskFor(c, L, 0))) // [B, L, H·Dh]
	return a.OProj.Forward(engine.Multiply(o, engine.Sigmoid(gate)))        // [B, L, D]
}

func (d *DenseMLP) forward(x *engine.Array) *engine.Array {
	return d.DownProj.Forward(nn.SwiGLU(d.GateProj.Forward(x), d.UpProj.Forward(x)))
}

// forward: softmax over the E router logits (float32), the top k of them
// (renormalised with norm_topk_prob) weight the experts; the shared expert
// is added times sigmoid(shared_expert_gate(x)).
func (m *MLP) forward(x *engine.Array) *engine.Array {
	if m.DenseMLP != nil {
		return m.DenseMLP.forward(x)
	}
	inds, scores := nn.SoftmaxTopK(engine.AsType(m.Gate.Forward(x), engine.Float32), m.k, m.normTopk) // [B, L, K] each
	y := nn.WeightedExpertSum(m.SwitchMLP.Forward(x, inds), engine.AsType(scores, x.DType()))         // [B, L, D]
	shared := engine.Multiply(engine.Sigmoid(m.SharedExpertGate.Forward(x)), m.SharedExpert.forward(x))
	return engine.Add(y, shared)
}

// NewCaches makes a LinearCache for each linear-attention layer and a KV
// cache (per o) for each full-attention layer.
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	out := model.NewCaches(len(m.Model.Layers), nil, o)
	for i, l := range m.Model.Layers {
		if l.LinearAttn != nil {
			out[i] = &LinearCache{}
		}
	}
	return out
}

// ModelType is "qwen3_next".
func (m *Model) ModelType() string { return "qwen3_next" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize is mlx_lm's qwen3_next sanitize as a plan: it drops the
// multi-token-prediction head (mtp.*), rotary inv_freq buffers and a tied
// lm_head, stacks mlp.experts.{e}.{gate,up,down}_proj.* into
// mlp.switch_mlp.*_proj.* [E, out, in], and rewrites the hub's layout into
// mlx_lm's: decoder, final and q/k norm weights + 1, conv1d.weight [C, 1,
// K] → [C, K, 1]. The hub's layout is recognized by per-expert tensors (as
// mlx_lm does) or a conv1d whose last axis is not 1; an MLX checkpoint is
// copied through. A quantized checkpoint in the hub's layout is refused:
// mlx_lm would read its norms as already shifted.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	quantized := cfg["quantization"] != nil || cfg["quantization_config"] != nil
	hub := false
	for name, t := range tensors {
		if strings.Contains(name, ".mlp.experts.") && !strings.HasPrefix(name, "mtp.") {
			hub = true
		}
		if !strings.HasSuffix(name, "linear_attn.conv1d.weight") || len(t.Shape) != 3 || t.Shape[2] == 1 {
			continue
		}
		if quantized {
			return nil, fmt.Errorf("tensor %q has the hub's conv1d layout %v in a quantized checkpoint: it was converted without mlx_lm's qwen3_next sanitize (norm weights + 1, conv1d [C, K, 1]); convert it from the hub checkpoint again", name, t.Shape)
		}
		hub = true
	}
	kept := map[string]model.TensorMeta{}
	for n, t := range tensors {
		if !strings.HasPrefix(n, "mtp.") && !strings.Contains(n, "rotary_emb.inv_freq") && !(tied && strings.HasPrefix(n, "lm_head.")) {
			kept[n] = t
		}
	}
	E, _ := cfg["num_experts"].(float64)
	names := [][2]string{{"gate_proj", "gate_proj"}, {"up_proj", "up_proj"}, {"down_proj", "down_proj"}}
	plan, err := model.StackExperts(kept, int(E), ".mlp.experts.", ".mlp.switch_mlp.", names)
	if err != nil || !hub {
		return plan, err
	}
	for i, p := range plan {
		shape := kept[p.Name].Shape
		switch {
		case p.Op != model.OpCopy:
		case strings.HasSuffix(p.Name, "conv1d.weight") && len(shape) == 3 && shape[2] != 1:
			// [C, 1, K] → [C, K, 1] (mlx_lm's moveaxis(2, 1) with a unit axis).
			plan[i].Steps = []model.Step{{Op: model.OpReshape, Shape: []int{shape[0], shape[2], shape[1]}}}
		case len(shape) == 1 && isShiftedNorm(p.Name):
			plan[i].Steps = []model.Step{{Op: model.OpAddScalar, Value: 1}}
		}
	}
	return plan, nil
}

// isShiftedNorm reports the norms the hub stores as w − 1 (not the linear
// attention's gated norm).
func isShiftedNorm(name string) bool {
	for _, sfx := range []string{".input_layernorm.weight", ".post_attention_layernorm.weight", "model.norm.weight", ".q_norm.weight", ".k_norm.weight"} {
		if strings.HasSuffix(name, sfx) {
			return true
		}
	}
	return false
}
