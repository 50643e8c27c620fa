// Package smollm3 is the SmolLM3 architecture (model_type "smollm3"),
// after mlx_lm's models/smollm3.py and transformers' modeling_smollm3.py:
// Llama whose layers may skip rotary positions (NoPE). no_rope_layers[i]
// is 1 where layer i uses RoPE and 0 where it does not; without it every
// no_rope_layer_interval-th layer (1-based) is NoPE.
package smollm3

import (
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("smollm3", New)
	model.RegisterSanitize("smollm3", Sanitize)
}

// Config mirrors the config.json keys SmolLM3 uses.
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
	TieWordEmbeddings     *bool    `json:"tie_word_embeddings"` // nil: true (SmolLM3Config's default)
	HiddenAct             string   `json:"hidden_act"`
	NoRopeLayers          []int    `json:"no_rope_layers"`         // 1: RoPE, 0: NoPE
	NoRopeLayerInterval   int      `json:"no_rope_layer_interval"` // 0: 4
	UseSlidingWindow      bool     `json:"use_sliding_window"`
	SlidingWindow         int      `json:"sliding_window"`
	LayerTypes            []string `json:"layer_types"` // "full_attention" / "sliding_attention"
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.NoRopeLayerInterval == 0 {
		c.NoRopeLayerInterval = 4
	}
	if c.NoRopeLayers == nil && c.NumHiddenLayers > 0 && c.NoRopeLayerInterval > 0 {
		c.NoRopeLayers = make([]int, c.NumHiddenLayers)
		for i := range c.NoRopeLayers {
			if (i+1)%c.NoRopeLayerInterval != 0 {
				c.NoRopeLayers[i] = 1
			}
		}
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: smollm3 supports silu", c.HiddenAct)
	case c.NoRopeLayerInterval < 0:
		return cfg.Errorf("no_rope_layer_interval %d must be positive", c.NoRopeLayerInterval)
	case len(c.NoRopeLayers) != c.NumHiddenLayers:
		return cfg.Errorf("no_rope_layers has %d entries for %d layers", len(c.NoRopeLayers), c.NumHiddenLayers)
	case c.LayerTypes != nil && len(c.LayerTypes) != c.NumHiddenLayers:
		return cfg.Errorf("layer_types has %d entries for %d layers", len(c.LayerTypes), c.NumHiddenLayers)
	}
	return nil
}

func (c *Config) tied() bool { return c.TieWordEmbeddings == nil || *c.TieWordEmbeddings }

// Model is SmolLM3ForCausalLM.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil with tied embeddings
	cfg    Config
	window []int // per layer: sliding window, 0 for full attention
}

// Backbone is SmolLM3Model.
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

// Attention is grouped-query attention; rope is nil on NoPE layers.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer // q [H·Dh, D], k/v [Hk·Dh, D], o [D, H·Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is the SwiGLU feed-forward block.
type MLP struct {
	GateProj, UpProj, DownProj nn.Layer // gate/up [I, D], down [D, I]
}

// New builds a SmolLM3 model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	rc, err := cfg.Rope("", 2000000)
	if err != nil {
		return nil, err
	}
	r, err := rc.Resolve(c.HeadDim, false, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	D, H, Hk, Dh, I := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize
	m := &Model{cfg: c, window: make([]int, c.NumHiddenLayers)}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.heads, a.kvHeads, a.headDim, a.scale = H, Hk, Dh, nn.DefaultScale(Dh)
		if c.NoRopeLayers[i] != 0 {
			a.rope = rope
		}
		w.Linear(&a.QProj, p+"self_attn.q_proj", D, H*Dh, c.AttentionBias)
		w.Linear(&a.KProj, p+"self_attn.k_proj", D, Hk*Dh, c.AttentionBias)
		w.Linear(&a.VProj, p+"self_attn.v_proj", D, Hk*Dh, c.AttentionBias)
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, c.AttentionBias)
		w.Linear(&l.MLP.GateProj, p+"mlp.gate_proj", D, I, c.MLPBias)
		w.Linear(&l.MLP.UpProj, p+"mlp.up_proj", D, I, c.MLPBias)
		w.Linear(&l.MLP.DownProj, p+"mlp.down_proj", I, D, c.MLPBias)
		w.RMSNorm(&l.InputLayernorm, p+"input_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
		// transformers: a window only where use_sliding_window is set and
		// the layer is typed sliding.
		if c.UseSlidingWindow && c.SlidingWindow > 0 && c.LayerTypes != nil && c.LayerTypes[i] == "sliding_attention" {
			m.window[i] = c.SlidingWindow
		}
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
				return engine.Errorf("smollm3: layer %d: %v", i, err)
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
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, window)) // [B, L, D]; a.rope is nil on NoPE layers
}

func (m *MLP) forward(x *engine.Array) *engine.Array {
	return m.DownProj.Forward(nn.SwiGLU(m.GateProj.Forward(x), m.UpProj.Forward(x)))
}

// NewCaches makes one cache per layer (sliding layers get rotating caches).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), m.window, o)
}

// ModelType is "smollm3".
func (m *Model) ModelType() string { return "smollm3" }

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
