// Package olmo2 is AI2's OLMo 2 architecture (model_type "olmo2"), after
// mlx_lm's models/olmo2.py and transformers' modeling_olmo2.py: Llama
// without pre-norms; instead each branch's output is normalised before it
// joins the residual stream (post_attention_layernorm,
// post_feedforward_layernorm), and queries and keys are RMS-normalised over
// the whole projection (all heads together, weights [H·Dh] and [Hk·Dh])
// before RoPE.
package olmo2

import (
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("olmo2", New)
	model.RegisterSanitize("olmo2", Sanitize)
}

// Config mirrors the config.json keys OLMo 2 uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int     `json:"head_dim"`            // 0: hidden/heads
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	AttentionBias         bool    `json:"attention_bias"`
	MLPBias               bool    `json:"mlp_bias"`
	TieWordEmbeddings     *bool   `json:"tie_word_embeddings"` // nil: tied when the checkpoint has no lm_head
	RopeTraditional       bool    `json:"rope_traditional"`
	HiddenAct             string  `json:"hidden_act"`
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: olmo2 supports silu", c.HiddenAct)
	}
	return nil
}

// Model is Olmo2ForCausalLM.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil with tied embeddings
	cfg    Config
}

// Backbone is Olmo2Model.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm
}

// Layer is one decoder block with post-norms only.
type Layer struct {
	SelfAttn                 Attention  // self_attn
	MLP                      MLP        // mlp
	PostAttentionLayernorm   nn.RMSNorm // post_attention_layernorm
	PostFeedforwardLayernorm nn.RMSNorm // post_feedforward_layernorm
}

// Attention is grouped-query attention with whole-projection q/k norms.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer   // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	QNorm                      nn.RMSNorm // q_norm [H·Dh]
	KNorm                      nn.RMSNorm // k_norm [Hk·Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is the SwiGLU feed-forward block.
type MLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// New builds an OLMo 2 model.
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
	r, err := rc.Resolve(c.HeadDim, c.RopeTraditional, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	D, H, Hk, Dh, I := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize
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
		w.RMSNorm(&a.QNorm, p+"self_attn.q_norm", H*Dh, c.RMSNormEps)
		w.RMSNorm(&a.KNorm, p+"self_attn.k_norm", Hk*Dh, c.RMSNormEps)
		w.Linear(&l.MLP.GateProj, p+"mlp.gate_proj", D, I, c.MLPBias)
		w.Linear(&l.MLP.UpProj, p+"mlp.up_proj", D, I, c.MLPBias)
		w.Linear(&l.MLP.DownProj, p+"mlp.down_proj", I, D, c.MLPBias)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostFeedforwardLayernorm, p+"post_feedforward_layernorm", D, c.RMSNormEps)
	}
	w.RMSNorm(&m.Model.Norm, "model.norm", D, c.RMSNormEps)
	tied := !w.Has("lm_head.weight")
	if c.TieWordEmbeddings != nil {
		tied = *c.TieWordEmbeddings
	}
	if !tied {
		w.Linear(&m.LMHead, "lm_head", D, c.VocabSize, false)
	}
	m.Params = w.Params()
	return m, w.Err()
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
				return engine.Errorf("olmo2: layer %d: %v", i, err)
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
	h := engine.Add(x, l.PostAttentionLayernorm.Forward(l.SelfAttn.forward(x, c)))
	return engine.Add(h, l.PostFeedforwardLayernorm.Forward(l.MLP.forward(h)))
}

func (a *Attention) forward(x *engine.Array, c model.Cache) *engine.Array {
	q := nn.SplitHeads(a.QNorm.Forward(a.QProj.Forward(x)), a.heads, a.headDim)   // [B, H, L, Dh]
	k := nn.SplitHeads(a.KNorm.Forward(a.KProj.Forward(x)), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
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

// ModelType is "olmo2".
func (m *Model) ModelType() string { return "olmo2" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize drops rotary inv_freq buffers, and lm_head when the config says
// the embeddings are tied.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	return model.Drop(tensors, func(name string) bool {
		return strings.Contains(name, "self_attn.rotary_emb.inv_freq") || (tied && strings.HasPrefix(name, "lm_head."))
	}), nil
}
