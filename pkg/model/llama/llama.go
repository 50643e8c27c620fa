// Package llama is the Llama architecture (model_type "llama", and
// "mistral" through pkg/model's alias table), after mlx_lm's
// models/llama.py. It is the template the other architectures follow:
// a Config mirroring config.json, a struct tree mirroring the weight
// names, a Sanitize plan, and Forward with shapes spelled out.
package llama

import (
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("llama", New)
	model.RegisterSanitize("llama", Sanitize)
}

// Config mirrors the config.json keys Llama uses.
type Config struct {
	HiddenSize            int      `json:"hidden_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int      `json:"head_dim"`            // 0: hidden/heads
	VocabSize             int      `json:"vocab_size"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	AttentionBias         bool     `json:"attention_bias"`
	MLPBias               bool     `json:"mlp_bias"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	RopeTraditional       bool     `json:"rope_traditional"`
	HiddenAct             string   `json:"hidden_act"`
	SlidingWindow         int      `json:"sliding_window"` // with layer_types
	LayerTypes            []string `json:"layer_types"`    // "full_attention" / "sliding_attention"
}

// required are the keys without a default.
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
		return cfg.Errorf("hidden_act %q: llama supports silu", c.HiddenAct)
	case c.LayerTypes != nil && len(c.LayerTypes) != c.NumHiddenLayers:
		return cfg.Errorf("layer_types has %d entries for %d layers", len(c.LayerTypes), c.NumHiddenLayers)
	}
	return nil
}

// Model is LlamaForCausalLM: the struct tree is the weight-name tree.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil with tied embeddings
	cfg    Config
	typ    string
	window []int // per layer: sliding window, 0 for full attention
}

// Backbone is LlamaModel.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens
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

// Attention is grouped-query self-attention with rotary positions.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer // q_proj [H·Dh, D], k_proj/v_proj [Hk·Dh, D], o_proj [D, H·Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is the SwiGLU feed-forward block.
type MLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// New builds a Llama model from its config and weights.
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
	m := &Model{cfg: c, typ: cfg.ModelType, window: make([]int, c.NumHiddenLayers)}
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
		w.Linear(&l.MLP.GateProj, p+"mlp.gate_proj", D, I, c.MLPBias)
		w.Linear(&l.MLP.UpProj, p+"mlp.up_proj", D, I, c.MLPBias)
		w.Linear(&l.MLP.DownProj, p+"mlp.down_proj", I, D, c.MLPBias)
		w.RMSNorm(&l.InputLayernorm, p+"input_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
		if c.LayerTypes != nil && c.LayerTypes[i] == "sliding_attention" && c.SlidingWindow > 0 {
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

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = model.Blocks(m, "llama", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
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
	q := nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim)                      // [B, H, L, Dh]
	k := nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim)                    // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim)                    // [B, Hk, L, Dh]
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, window)) // [B, L, D]
}

func (m *MLP) forward(x *engine.Array) *engine.Array {
	return m.DownProj.Forward(nn.SwiGLU(m.GateProj.Forward(x), m.UpProj.Forward(x)))
}

// NewCaches makes one cache per layer (sliding layers get rotating caches).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), m.window, o)
}

// ModelType is config.json's model_type.
func (m *Model) ModelType() string { return m.typ }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize drops rotary inv_freq buffers, and lm_head when the embeddings
// are tied (mlx_lm's llama sanitize).
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	return model.Drop(tensors, func(name string) bool {
		return strings.Contains(name, "self_attn.rotary_emb.inv_freq") || (tied && strings.HasPrefix(name, "lm_head."))
	}), nil
}
