// Package gemma2 is the Gemma 2 architecture (model_type "gemma2"), after
// mlx_lm's models/gemma2.py and transformers' Gemma2: Gemma plus
// attention and final-logit soft-capping, a query scale of
// query_pre_attn_scalar^-½, norms before and after both the attention and
// the MLP, and sliding-window attention on the layers layer_types marks
// (mlx_lm ignores the window; transformers, and these references, apply it).
package gemma2

import (
	"math"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("gemma2", New)
	model.RegisterSanitize("gemma2", Sanitize)
}

// Config mirrors the config.json keys Gemma uses.
type Config struct {
	HiddenSize            int      `json:"hidden_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int      `json:"head_dim"`
	VocabSize             int      `json:"vocab_size"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RopeTraditional       bool     `json:"rope_traditional"`
	HiddenAct             string   `json:"hidden_act"`
	HiddenActivation      string   `json:"hidden_activation"`
	AttnLogitSoftcapping  float64  `json:"attn_logit_softcapping"`
	FinalLogitSoftcapping float64  `json:"final_logit_softcapping"`
	QueryPreAttnScalar    float64  `json:"query_pre_attn_scalar"` // 0: head_dim
	SlidingWindow         int      `json:"sliding_window"`
	LayerTypes            []string `json:"layer_types"` // nil: even layers slide
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps", "head_dim"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	act := c.HiddenActivation
	if act == "" {
		act = c.HiddenAct
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case c.LayerTypes != nil && len(c.LayerTypes) != c.NumHiddenLayers:
		return cfg.Errorf("layer_types has %d entries for %d layers", len(c.LayerTypes), c.NumHiddenLayers)
	case act != "" && act != "gelu_pytorch_tanh" && act != "gelu":
		// mlx_lm runs every Gemma with the tanh approximation.
		return cfg.Errorf("hidden_activation %q: gemma2 supports gelu_pytorch_tanh", act)
	}
	return nil
}

// Model is Gemma2ForCausalLM (always tied: logits = h·embed_tokensᵀ).
type Model struct {
	model.Params
	Model  Backbone // model.*
	cfg    Config
	window []int // per layer: sliding window, 0 for global attention
}

// Backbone is Gemma2Model.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm (1 + w)
}

// Layer is one decoder block.
type Layer struct {
	SelfAttn                 Attention  // self_attn
	MLP                      MLP        // mlp
	InputLayernorm           nn.RMSNorm // input_layernorm (1 + w)
	PostAttentionLayernorm   nn.RMSNorm // post_attention_layernorm (1 + w)
	PreFeedforwardLayernorm  nn.RMSNorm // pre_feedforward_layernorm (1 + w)
	PostFeedforwardLayernorm nn.RMSNorm // post_feedforward_layernorm (1 + w)
}

// Attention is grouped-query attention with rotary positions.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale, softCap             float64
}

// MLP is gelu_approx(gate(x)) ⊙ up(x), then down.
type MLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// New builds a Gemma model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	D, H, Hk, Dh, I := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize
	rc, err := cfg.Rope("", 10000)
	if err != nil {
		return nil, err
	}
	r, err := rc.Resolve(Dh, c.RopeTraditional, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	m := &Model{cfg: c, window: make([]int, c.NumHiddenLayers)}
	scale := nn.DefaultScale(Dh)
	if c.QueryPreAttnScalar > 0 {
		scale = 1 / math.Sqrt(c.QueryPreAttnScalar)
	}
	norm := func(dst *nn.RMSNorm, path string) {
		w.RMSNorm(dst, path, D, c.RMSNormEps)
		dst.OnePlus = true
	}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.rope, a.heads, a.kvHeads, a.headDim, a.scale, a.softCap = rope, H, Hk, Dh, scale, c.AttnLogitSoftcapping
		w.Linear(&a.QProj, p+"self_attn.q_proj", D, H*Dh, false)
		w.Linear(&a.KProj, p+"self_attn.k_proj", D, Hk*Dh, false)
		w.Linear(&a.VProj, p+"self_attn.v_proj", D, Hk*Dh, false)
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, false)
		w.Linear(&l.MLP.GateProj, p+"mlp.gate_proj", D, I, false)
		w.Linear(&l.MLP.UpProj, p+"mlp.up_proj", D, I, false)
		w.Linear(&l.MLP.DownProj, p+"mlp.down_proj", I, D, false)
		norm(&l.InputLayernorm, p+"input_layernorm")
		norm(&l.PostAttentionLayernorm, p+"post_attention_layernorm")
		norm(&l.PreFeedforwardLayernorm, p+"pre_feedforward_layernorm")
		norm(&l.PostFeedforwardLayernorm, p+"post_feedforward_layernorm")
		sliding := i%2 == 0
		if c.LayerTypes != nil {
			sliding = c.LayerTypes[i] == "sliding_attention"
		}
		if sliding {
			m.window[i] = c.SlidingWindow
		}
	}
	norm(&m.Model.Norm, "model.norm")
	m.Params = w.Params()
	return m, w.Err()
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = engine.Multiply(h, engine.ScalarOf(math.Sqrt(float64(m.cfg.HiddenSize)), h.DType()))
	h = model.Blocks(m, "gemma2", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
		return m.Model.Layers[i].forward(h, c, m.window[i])
	})
	logits := m.Model.EmbedTokens.AsLinear(m.Model.Norm.Forward(h)) // [B, L, V]
	if m.cfg.FinalLogitSoftcapping > 0 {
		logits = nn.SoftCap(logits, m.cfg.FinalLogitSoftcapping)
	}
	return logits
}

func (l *Layer) forward(x *engine.Array, c model.Cache, window int) *engine.Array {
	r := l.SelfAttn.forward(l.InputLayernorm.Forward(x), c, window)
	h := engine.Add(x, l.PostAttentionLayernorm.Forward(r))
	r = l.MLP.forward(l.PreFeedforwardLayernorm.Forward(h))
	return engine.Add(h, l.PostFeedforwardLayernorm.Forward(r))
}

func (a *Attention) forward(x *engine.Array, c model.Cache, window int) *engine.Array {
	q := nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim)   // [B, H, L, Dh]
	k := nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	softCap := func(o *engine.AttentionOptions) { o.SoftCap = float32(a.softCap) }
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, window, softCap)) // [B, L, D]
}

func (m *MLP) forward(x *engine.Array) *engine.Array {
	return m.DownProj.Forward(engine.Multiply(engine.GELUApprox(m.GateProj.Forward(x)), m.UpProj.Forward(x)))
}

// NewCaches makes one cache per layer (sliding layers get rotating caches).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), m.window, o)
}

// ModelType is "gemma2".
func (m *Model) ModelType() string { return "gemma2" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize drops rotary inv_freq buffers and any lm_head (always tied).
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	return model.Drop(tensors, func(name string) bool {
		return strings.Contains(name, "self_attn.rotary_emb.inv_freq") || strings.HasPrefix(name, "lm_head.")
	}), nil
}
