// Package qwen3_moe is the Qwen3 mixture-of-experts architecture
// (model_type "qwen3_moe"), after mlx_lm's models/qwen3_moe.py and
// transformers' modeling_qwen3_moe.py: Qwen3 attention (per-head q/k
// RMSNorm) with a softmax router over E experts, the top k kept and, with
// norm_topk_prob, renormalised. Layers listed in mlp_only_layers, or off
// the decoder_sparse_step grid, keep a dense MLP. Experts are stored
// stacked (mlp.switch_mlp.{gate,up,down}_proj [E, out, in]); Sanitize
// stacks the hub's per-expert tensors into that layout.
package qwen3_moe

import (
	"slices"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("qwen3_moe", New)
	model.RegisterSanitize("qwen3_moe", Sanitize)
}

// Config mirrors the config.json keys Qwen3-MoE uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"` // dense layers
	MoeIntermediateSize   int     `json:"moe_intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int     `json:"head_dim"`            // 0: hidden/heads
	AttentionBias         bool    `json:"attention_bias"`
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	// NumExperts is "num_experts" (hub checkpoints, mlx_lm) or
	// "num_local_experts" (what transformers 5 writes).
	NumExperts        int    `json:"num_experts"`
	NumLocalExperts   int    `json:"num_local_experts"`
	NumExpertsPerTok  int    `json:"num_experts_per_tok"`
	DecoderSparseStep int    `json:"decoder_sparse_step"` // 0: 1
	MlpOnlyLayers     []int  `json:"mlp_only_layers"`
	NormTopkProb      bool   `json:"norm_topk_prob"`
	TieWordEmbeddings bool   `json:"tie_word_embeddings"`
	HiddenAct         string `json:"hidden_act"`
}

var required = []string{"hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "rms_norm_eps", "num_experts_per_tok", "moe_intermediate_size"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.NumExperts == 0 {
		c.NumExperts = c.NumLocalExperts
	}
	if c.DecoderSparseStep == 0 {
		c.DecoderSparseStep = 1
	}
	switch {
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.MoeIntermediateSize <= 0 || c.VocabSize <= 0:
		return cfg.Errorf("hidden_size, num_hidden_layers, moe_intermediate_size and vocab_size must be positive")
	case c.NumAttentionHeads <= 0 || c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return cfg.Errorf("num_attention_heads %d must be a positive multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return cfg.Errorf("head_dim %d must be positive and even", c.HeadDim)
	case c.NumExperts < 0 || (c.NumExperts > 0 && (c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumExperts)):
		return cfg.Errorf("num_experts_per_tok %d must be in 1..num_experts (%d)", c.NumExpertsPerTok, c.NumExperts)
	case c.DecoderSparseStep < 0:
		return cfg.Errorf("decoder_sparse_step %d must be positive", c.DecoderSparseStep)
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: qwen3_moe supports silu", c.HiddenAct)
	}
	for i := range c.NumHiddenLayers {
		if !c.sparse(i) && c.IntermediateSize <= 0 {
			return cfg.Errorf("layer %d has a dense MLP but intermediate_size is %d", i, c.IntermediateSize)
		}
	}
	return nil
}

// sparse reports whether layer i has the expert block (transformers' and
// mlx_lm's rule).
func (c *Config) sparse(i int) bool {
	return !slices.Contains(c.MlpOnlyLayers, i) && c.NumExperts > 0 && (i+1)%c.DecoderSparseStep == 0
}

// Model is Qwen3MoeForCausalLM: the struct tree is the weight-name tree.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head [V, D]; nil with tied embeddings
	cfg    Config
}

// Backbone is Qwen3MoeModel.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm [D]
}

// Layer is one decoder block; MLP is a *SparseMoe or a *MLP.
type Layer struct {
	SelfAttn               Attention  // self_attn
	MLP                    FFN        // mlp
	InputLayernorm         nn.RMSNorm // input_layernorm [D]
	PostAttentionLayernorm nn.RMSNorm // post_attention_layernorm [D]
}

// FFN is a layer's feed-forward block.
type FFN interface {
	Forward(x *engine.Array) *engine.Array
}

// Attention is grouped-query attention with per-head query/key norms.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer   // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	QNorm, KNorm               nn.RMSNorm // q_norm, k_norm [Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is the dense SwiGLU block of mlp_only_layers.
type MLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// SparseMoe is the routed expert block.
type SparseMoe struct {
	Gate      nn.Layer     // gate [E, D]: router logits
	SwitchMLP nn.SwitchGLU // switch_mlp.{gate,up}_proj [E, Im, D], down_proj [E, D, Im]
	k         int
	normTopK  bool
}

// New builds a Qwen3-MoE model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	D, H, Hk, Dh, E := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.NumExperts
	rc, err := cfg.Rope("", 1e6)
	if err != nil {
		return nil, err
	}
	r, err := rc.Resolve(Dh, false, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	m := &Model{cfg: c}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.rope, a.heads, a.kvHeads, a.headDim, a.scale = rope, H, Hk, Dh, nn.DefaultScale(Dh)
		w.Linear(&a.QProj, p+"self_attn.q_proj", D, H*Dh, c.AttentionBias)
		w.Linear(&a.KProj, p+"self_attn.k_proj", D, Hk*Dh, c.AttentionBias)
		w.Linear(&a.VProj, p+"self_attn.v_proj", D, Hk*Dh, c.AttentionBias)
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, c.AttentionBias)
		w.RMSNorm(&a.QNorm, p+"self_attn.q_norm", Dh, c.RMSNormEps)
		w.RMSNorm(&a.KNorm, p+"self_attn.k_norm", Dh, c.RMSNormEps)
		if c.sparse(i) {
			Im := c.MoeIntermediateSize
			s := &SparseMoe{k: c.NumExpertsPerTok, normTopK: c.NormTopkProb}
			w.Linear(&s.Gate, p+"mlp.gate", D, E, false)
			w.SwitchLinear(&s.SwitchMLP.GateProj, p+"mlp.switch_mlp.gate_proj", E, D, Im, false)
			w.SwitchLinear(&s.SwitchMLP.UpProj, p+"mlp.switch_mlp.up_proj", E, D, Im, false)
			w.SwitchLinear(&s.SwitchMLP.DownProj, p+"mlp.switch_mlp.down_proj", E, Im, D, false)
			l.MLP = s
		} else {
			I := c.IntermediateSize
			d := &MLP{}
			w.Linear(&d.GateProj, p+"mlp.gate_proj", D, I, false)
			w.Linear(&d.UpProj, p+"mlp.up_proj", D, I, false)
			w.Linear(&d.DownProj, p+"mlp.down_proj", I, D, false)
			l.MLP = d
		}
		w.RMSNorm(&l.InputLayernorm, p+"input_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
	}
	w.RMSNorm(&m.Model.Norm, "model.norm", D, c.RMSNormEps)
	if !c.TieWordEmbeddings {
		w.Linear(&m.LMHead, "lm_head", D, c.VocabSize, false)
	}
	m.Params = w.Params()
	return m, w.Err()
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = model.Blocks(m, "qwen3_moe", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
		return m.Model.Layers[i].forward(h, c)
	})
	h = m.Model.Norm.Forward(h)
	if m.LMHead != nil {
		return m.LMHead.Forward(h) // [B, L, V]
	}
	return m.Model.EmbedTokens.AsLinear(h)
}

func (l *Layer) forward(x *engine.Array, c model.Cache) *engine.Array {
	h := engine.Add(x, l.SelfAttn.forward(l.InputLayernorm.Forward(x), c))
	return engine.Add(h, l.MLP.Forward(l.PostAttentionLayernorm.Forward(h)))
}

func (a *Attention) forward(x *engine.Array, c model.Cache) *engine.Array {
	q := a.QNorm.Forward(nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim))   // [B, H, L, Dh]
	k := a.KNorm.Forward(nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim)) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim)                  // [B, Hk, L, Dh]
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, 0))    // [B, L, D]
}

// Forward maps x [B, L, D] to [B, L, D].
func (m *MLP) Forward(x *engine.Array) *engine.Array {
	return m.DownProj.Forward(nn.SwiGLU(m.GateProj.Forward(x), m.UpProj.Forward(x)))
}

// Forward routes x [B, L, D] as transformers does: softmax over all E
// router logits (float32), top k, renormalised when norm_topk_prob.
func (s *SparseMoe) Forward(x *engine.Array) *engine.Array {
	inds, scores := nn.SoftmaxTopK(s.Gate.Forward(x), s.k, s.normTopK) // [B, L, K] each
	return nn.WeightedExpertSum(s.SwitchMLP.Forward(x, inds), scores)  // [B, L, D]
}

// NewCaches makes one cache per layer.
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), nil, o)
}

// ModelType is "qwen3_moe".
func (m *Model) ModelType() string { return "qwen3_moe" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize stacks mlp.experts.{e}.{gate,up,down}_proj.{weight,scales,
// biases} into mlp.switch_mlp.*_proj.* [E, out, in], drops rotary inv_freq
// buffers and a tied lm_head. A checkpoint already in the stacked layout
// is copied through.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	E, ok := cfg["num_experts"].(float64)
	if !ok {
		E, _ = cfg["num_local_experts"].(float64)
	}
	names := [][2]string{{"gate_proj", "gate_proj"}, {"up_proj", "up_proj"}, {"down_proj", "down_proj"}}
	plan, err := model.StackExperts(tensors, int(E), ".mlp.experts.", ".mlp.switch_mlp.", names)
	if err != nil {
		return nil, err
	}
	out := plan[:0]
	for _, p := range plan {
		if strings.Contains(p.Name, "self_attn.rotary_emb.inv_freq") || (tied && strings.HasPrefix(p.Name, "lm_head.")) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
