// Package starcoder2 is the StarCoder2 architecture (model_type
// "starcoder2"), after mlx_lm's models/starcoder2.py and transformers'
// modeling_starcoder2.py: LayerNorms with bias, biases on every projection
// (use_bias), and a two-matrix GELU MLP (c_fc, c_proj).
//
// Where mlx_lm and transformers differ this follows transformers (the
// fixtures come from it): the MLP activation is config.json's hidden_act
// (StarCoder2 checkpoints say gelu_pytorch_tanh; mlx_lm always uses the
// erf GELU), and a non-null sliding_window restricts every layer's
// attention to that window (mlx_lm ignores it).
package starcoder2

import (
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("starcoder2", New)
	model.RegisterSanitize("starcoder2", Sanitize)
}

// Config mirrors the config.json keys StarCoder2 uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int     `json:"head_dim"`            // 0: hidden/heads
	VocabSize             int     `json:"vocab_size"`
	NormEpsilon           float64 `json:"norm_epsilon"` // 0: 1e-5
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	UseBias               *bool   `json:"use_bias"`            // nil: true
	TieWordEmbeddings     *bool   `json:"tie_word_embeddings"` // nil: true
	HiddenAct             string  `json:"hidden_act"`          // "": gelu_pytorch_tanh
	SlidingWindow         int     `json:"sliding_window"`      // 0/null: full attention
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.NormEpsilon == 0 {
		c.NormEpsilon = 1e-5
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "gelu_pytorch_tanh"
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case activation(c.HiddenAct) == nil:
		return cfg.Errorf("hidden_act %q: starcoder2 supports gelu, gelu_pytorch_tanh, gelu_new, gelu_fast", c.HiddenAct)
	case c.SlidingWindow < 0:
		return cfg.Errorf("sliding_window %d must not be negative", c.SlidingWindow)
	}
	return nil
}

// activation maps an HF hidden_act name to the function (nil: unknown).
func activation(name string) func(*engine.Array) *engine.Array {
	switch name {
	case "gelu":
		return engine.GELU
	case "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
		return engine.GELUApprox
	}
	return nil
}

func orTrue(b *bool) bool { return b == nil || *b }

// Model is Starcoder2ForCausalLM.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil with tied embeddings
	cfg    Config
	window []int // per layer: sliding window, 0 for full attention
}

// Backbone is Starcoder2Model.
type Backbone struct {
	EmbedTokens nn.Embedder  // model.embed_tokens [V, D]
	Layers      []Layer      // model.layers.N
	Norm        nn.LayerNorm // model.norm
}

// Layer is one decoder block.
type Layer struct {
	SelfAttn               Attention    // self_attn
	MLP                    MLP          // mlp
	InputLayernorm         nn.LayerNorm // input_layernorm
	PostAttentionLayernorm nn.LayerNorm // post_attention_layernorm
}

// Attention is grouped-query attention with rotary positions.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is c_proj(act(c_fc(x))).
type MLP struct {
	CFc   nn.Layer // c_fc [I, D]
	CProj nn.Layer // c_proj [D, I]
	act   func(*engine.Array) *engine.Array
}

// New builds a StarCoder2 model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	rc, err := cfg.Rope("", 100000)
	if err != nil {
		return nil, err
	}
	r, err := rc.Resolve(c.HeadDim, false, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	D, H, Hk, Dh, I := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize
	bias, eps := orTrue(c.UseBias), c.NormEpsilon
	m := &Model{cfg: c, window: make([]int, c.NumHiddenLayers)}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.rope, a.heads, a.kvHeads, a.headDim, a.scale = rope, H, Hk, Dh, nn.DefaultScale(Dh)
		w.Linear(&a.QProj, p+"self_attn.q_proj", D, H*Dh, bias)
		w.Linear(&a.KProj, p+"self_attn.k_proj", D, Hk*Dh, bias)
		w.Linear(&a.VProj, p+"self_attn.v_proj", D, Hk*Dh, bias)
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, bias)
		l.MLP.act = activation(c.HiddenAct)
		w.Linear(&l.MLP.CFc, p+"mlp.c_fc", D, I, bias)
		w.Linear(&l.MLP.CProj, p+"mlp.c_proj", I, D, bias)
		w.LayerNorm(&l.InputLayernorm, p+"input_layernorm", D, eps, true)
		w.LayerNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, eps, true)
		m.window[i] = c.SlidingWindow
	}
	w.LayerNorm(&m.Model.Norm, "model.norm", D, eps, true)
	if !orTrue(c.TieWordEmbeddings) {
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
				return engine.Errorf("starcoder2: layer %d: %v", i, err)
			}
		}
		h = model.Block(m, i, h, func(h *engine.Array) *engine.Array { return m.Model.Layers[i].forward(h, c, m.window[i]) })
	}
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
	return m.CProj.Forward(m.act(m.CFc.Forward(x))) // [B, L, D]
}

// NewCaches makes one cache per layer (rotating caches of the window when
// sliding_window is set).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), m.window, o)
}

// ModelType is "starcoder2".
func (m *Model) ModelType() string { return "starcoder2" }

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
