// Package gemma is the Gemma architecture (model_type "gemma"), after
// mlx_lm's models/gemma.py: RMSNorm scaling by (1 + w), embeddings scaled
// by √D, a GeGLU (tanh-approximated GELU) MLP and tied embeddings.
package gemma

import (
	"math"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("gemma", New)
	model.RegisterSanitize("gemma", Sanitize)
}

// Config mirrors the config.json keys Gemma uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int     `json:"head_dim"`
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	RopeTraditional       bool    `json:"rope_traditional"`
	HiddenAct             string  `json:"hidden_act"`
	HiddenActivation      string  `json:"hidden_activation"`
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
	case act != "" && act != "gelu_pytorch_tanh" && act != "gelu":
		// mlx_lm runs every Gemma with the tanh approximation.
		return cfg.Errorf("hidden_activation %q: gemma supports gelu_pytorch_tanh", act)
	}
	return nil
}

// Model is GemmaForCausalLM (always tied: logits = h·embed_tokensᵀ).
type Model struct {
	model.Params
	Model Backbone // model.*
	cfg   Config
}

// Backbone is GemmaModel.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm (1 + w)
}

// Layer is one decoder block.
type Layer struct {
	SelfAttn               Attention  // self_attn
	MLP                    MLP        // mlp
	InputLayernorm         nn.RMSNorm // input_layernorm (1 + w)
	PostAttentionLayernorm nn.RMSNorm // post_attention_layernorm (1 + w)
}

// Attention is grouped-query attention with rotary positions.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
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
	m := &Model{cfg: c}
	norm := func(dst *nn.RMSNorm, path string) {
		w.RMSNorm(dst, path, D, c.RMSNormEps)
		dst.OnePlus = true
	}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.rope, a.heads, a.kvHeads, a.headDim, a.scale = rope, H, Hk, Dh, nn.DefaultScale(Dh)
		w.Linear(&a.QProj, p+"self_attn.q_proj", D, H*Dh, false)
		w.Linear(&a.KProj, p+"self_attn.k_proj", D, Hk*Dh, false)
		w.Linear(&a.VProj, p+"self_attn.v_proj", D, Hk*Dh, false)
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, false)
		w.Linear(&l.MLP.GateProj, p+"mlp.gate_proj", D, I, false)
		w.Linear(&l.MLP.UpProj, p+"mlp.up_proj", D, I, false)
		w.Linear(&l.MLP.DownProj, p+"mlp.down_proj", I, D, false)
		norm(&l.InputLayernorm, p+"input_layernorm")
		norm(&l.PostAttentionLayernorm, p+"post_attention_layernorm")
	}
	norm(&m.Model.Norm, "model.norm")
	m.Params = w.Params()
	return m, w.Err()
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = engine.Multiply(h, engine.ScalarOf(math.Sqrt(float64(m.cfg.HiddenSize)), h.DType()))
	h = model.Blocks(m, "gemma", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
		return m.Model.Layers[i].forward(h, c)
	})
	return m.Model.EmbedTokens.AsLinear(m.Model.Norm.Forward(h)) // [B, L, V]
}

func (l *Layer) forward(x *engine.Array, c model.Cache) *engine.Array {
	h := engine.Add(x, l.SelfAttn.forward(l.InputLayernorm.Forward(x), c))
	return engine.Add(h, l.MLP.forward(l.PostAttentionLayernorm.Forward(h)))
}

func (a *Attention) forward(x *engine.Array, c model.Cache) *engine.Array {
	q := nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim)                 // [B, H, L, Dh]
	k := nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim)               // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim)               // [B, Hk, L, Dh]
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, 0)) // [B, L, D]
}

func (m *MLP) forward(x *engine.Array) *engine.Array {
	return m.DownProj.Forward(engine.Multiply(engine.GELUApprox(m.GateProj.Forward(x)), m.UpProj.Forward(x)))
}

// NewCaches makes one cache per layer.
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), nil, o)
}

// ModelType is "gemma".
func (m *Model) ModelType() string { return "gemma" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize drops rotary inv_freq buffers and any lm_head (always tied).
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	return model.Drop(tensors, func(name string) bool {
		return strings.Contains(name, "self_attn.rotary_emb.inv_freq") || strings.HasPrefix(name, "lm_head.")
	}), nil
}
