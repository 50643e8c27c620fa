// Package qwen3 is the Qwen3 architecture (model_type "qwen3"), after
// mlx_lm's models/qwen3.py: Llama with per-head RMSNorm of queries and
// keys (q_norm, k_norm) before RoPE, an explicit head_dim, and tied
// embeddings in the small models.
package qwen3

import (
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("qwen3", New)
	model.RegisterSanitize("qwen3", Sanitize)
}

// Config mirrors the config.json keys Qwen3 uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int     `json:"head_dim"`
	AttentionBias         bool    `json:"attention_bias"`
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	TieWordEmbeddings     *bool   `json:"tie_word_embeddings"` // nil: true, as mlx_lm
	RopeTraditional       bool    `json:"rope_traditional"`
	HiddenAct             string  `json:"hidden_act"`
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps", "head_dim"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.MaxPositionEmbeddings == 0 {
		c.MaxPositionEmbeddings = 32768
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: qwen3 supports silu", c.HiddenAct)
	}
	return nil
}

func (c *Config) tied() bool { return c.TieWordEmbeddings == nil || *c.TieWordEmbeddings }

// Model is Qwen3ForCausalLM.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil with tied embeddings
	cfg    Config
}

// Backbone is Qwen3Model.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm
}

// Layer is one decoder block.
type Layer struct {
	SelfAttn               Attention  // self_attn
	MLP                    MLP        // mlp
	InputLayernorm         nn.RMSNorm // input_layernorm
	PostAttentionLayernorm nn.RMSNorm // post_attention_layernorm
}

// Attention is grouped-query attention with per-head query/key norms.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer   // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	QNorm, KNorm               nn.RMSNorm // q_norm, k_norm [Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is the SwiGLU feed-forward block.
type MLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// New builds a Qwen3 model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	D, H, Hk, I := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.IntermediateSize
	Dh := c.HeadDim
	rc, err := cfg.Rope("", 1000000)
	if err != nil {
		return nil, err
	}
	r, err := rc.Resolve(Dh, c.RopeTraditional, c.MaxPositionEmbeddings)
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
		w.Linear(&l.MLP.GateProj, p+"mlp.gate_proj", D, I, false)
		w.Linear(&l.MLP.UpProj, p+"mlp.up_proj", D, I, false)
		w.Linear(&l.MLP.DownProj, p+"mlp.down_proj", I, D, false)
		w.RMSNorm(&l.InputLayernorm, p+"input_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
	}
	w.RMSNorm(&m.Model.Norm, "model.norm", D, c.RMSNormEps)
	if !c.tied() {
		w.Linear(&m.LMHead, "lm_head", D, c.VocabSize, false)
	}
	m.Params = w.Params()
	return m, w.Err()
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = model.Blocks(m, "qwen3", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
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
	return engine.Add(h, l.MLP.forward(l.PostAttentionLayernorm.Forward(h)))
}

func (a *Attention) forward(x *engine.Array, c model.Cache) *engine.Array {
	q := a.QNorm.Forward(nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim))   // [B, H, L, Dh]
	k := a.KNorm.Forward(nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim)) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim)                  // [B, Hk, L, Dh]
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, 0))    // [B, L, D]
}

func (m *MLP) forward(x *engine.Array) *engine.Array {
	return m.DownProj.Forward(nn.SwiGLU(m.GateProj.Forward(x), m.UpProj.Forward(x)))
}

// NewCaches makes one cache per layer.
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), nil, o)
}

// ModelType is "qwen3".
func (m *Model) ModelType() string { return "qwen3" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize drops rotary inv_freq buffers and a tied lm_head.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, ok := cfg["tie_word_embeddings"].(bool)
	tied = tied || !ok
	return model.Drop(tensors, func(name string) bool {
		return strings.Contains(name, "self_attn.rotary_emb.inv_freq") || (tied && strings.HasPrefix(name, "lm_head."))
	}), nil
}
