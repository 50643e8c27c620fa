// Package gemma3text is the Gemma 3 text architecture (model_type
// "gemma3_text"), after mlx_lm's models/gemma3_text.py: Gemma 2's
// sandwich norms and query scale, plus per-head (1 + w) q_norm/k_norm,
// layer_types (or sliding_window_pattern) choosing sliding-window layers
// with their own local rope base, and the global rope's scaling only on
// full-attention layers. The folder is named after the model_type.
package gemma3text

import (
	"math"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("gemma3_text", New)
	model.RegisterSanitize("gemma3_text", Sanitize)
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
	LayerTypes            []string `json:"layer_types"`            // nil: from SlidingWindowPattern
	SlidingWindowPattern  int      `json:"sliding_window_pattern"` // every Nth layer is global
	RopeLocalBaseFreq     float64  `json:"rope_local_base_freq"`
	TieWordEmbeddings     *bool    `json:"tie_word_embeddings"` // nil: true
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps", "head_dim", "sliding_window"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.SlidingWindowPattern == 0 {
		c.SlidingWindowPattern = 6
	}
	if c.RopeLocalBaseFreq == 0 {
		c.RopeLocalBaseFreq = 10000
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
		return cfg.Errorf("hidden_activation %q: gemma3_text supports gelu_pytorch_tanh", act)
	}
	return nil
}

// Model is Gemma3ForCausalLM.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil when tied (logits = h·embed_tokensᵀ)
	cfg    Config
	window []int // per layer: sliding window, 0 for global attention
}

// Backbone is Gemma3TextModel.
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
	QProj, KProj, VProj, OProj nn.Layer   // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	QNorm, KNorm               nn.RMSNorm // q_norm, k_norm [Dh] (1 + w)
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
	ropes := map[bool]*nn.RoPE{}
	for _, sliding := range []bool{false, true} {
		var rc model.RopeConfig
		var err error
		switch {
		case cfg.Has("rope_parameters") && sliding:
			rc, err = cfg.Rope("sliding_attention", c.RopeLocalBaseFreq)
		case cfg.Has("rope_parameters"):
			rc, err = cfg.Rope("full_attention", 1000000)
		case sliding: // legacy spelling: rope_scaling is the global layers'
			rc = model.RopeConfig{Theta: c.RopeLocalBaseFreq, Type: "default"}
		default:
			rc, err = cfg.Rope("", 1000000)
		}
		if err != nil {
			return nil, err
		}
		r, err := rc.Resolve(Dh, c.RopeTraditional, c.MaxPositionEmbeddings)
		if err != nil {
			return nil, cfg.Errorf("%v", err)
		}
		ropes[sliding] = r.NN()
	}
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
		sliding := (i+1)%c.SlidingWindowPattern != 0
		if c.LayerTypes != nil {
			sliding = c.LayerTypes[i] == "sliding_attention"
		}
		if sliding {
			m.window[i] = c.SlidingWindow
		}
		a.rope, a.heads, a.kvHeads, a.headDim, a.scale, a.softCap = ropes[sliding], H, Hk, Dh, scale, c.AttnLogitSoftcapping
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
		w.RMSNorm(&a.QNorm, p+"self_attn.q_norm", Dh, c.RMSNormEps)
		w.RMSNorm(&a.KNorm, p+"self_attn.k_norm", Dh, c.RMSNormEps)
		a.QNorm.OnePlus, a.KNorm.OnePlus = true, true
	}
	norm(&m.Model.Norm, "model.norm")
	if c.TieWordEmbeddings != nil && !*c.TieWordEmbeddings {
		w.Linear(&m.LMHead, "lm_head", D, c.VocabSize, false)
	}
	m.Params = w.Params()
	return m, w.Err()
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = engine.Multiply(h, engine.ScalarOf(math.Sqrt(float64(m.cfg.HiddenSize)), h.DType()))
	h = model.Blocks(m, "gemma3_text", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
		return m.Model.Layers[i].forward(h, c, m.window[i])
	})
	h = m.Model.Norm.Forward(h)
	var logits *engine.Array // [B, L, V]
	if m.LMHead != nil {
		logits = m.LMHead.Forward(h)
	} else {
		logits = m.Model.EmbedTokens.AsLinear(h)
	}
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
	q := a.QNorm.Forward(nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim))   // [B, H, L, Dh]
	k := a.KNorm.Forward(nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim)) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim)                  // [B, Hk, L, Dh]
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

// ModelType is "gemma3_text".
func (m *Model) ModelType() string { return "gemma3_text" }

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
