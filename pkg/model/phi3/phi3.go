// Package phi3 is Microsoft's Phi-3 architecture (model_type "phi3"),
// after mlx_lm's models/phi3.py and transformers' modeling_phi3.py: Llama
// with fused projections — qkv_proj [(H+2Hk)·Dh, D] split into queries,
// keys and values, gate_up_proj [2I, D] split into gate and up — partial
// rotary embeddings (partial_rotary_factor) and LongRoPE ("longrope"/"su")
// scaling.
//
// Where mlx_lm and transformers differ this follows transformers (the
// fixtures come from it): LongRoPE uses short_factor while the sequence
// (cache offset + new tokens) fits in original_max_position_embeddings and
// long_factor beyond (mlx_lm always uses long_factor), and a non-null
// sliding_window restricts every layer's attention (mlx_lm ignores it).
package phi3

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("phi3", New)
	model.RegisterSanitize("phi3", Sanitize)
}

// Config mirrors the config.json keys Phi-3 uses.
type Config struct {
	HiddenSize                    int     `json:"hidden_size"`
	NumHiddenLayers               int     `json:"num_hidden_layers"`
	IntermediateSize              int     `json:"intermediate_size"`
	NumAttentionHeads             int     `json:"num_attention_heads"`
	NumKeyValueHeads              int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim                       int     `json:"head_dim"`            // 0: hidden/heads
	VocabSize                     int     `json:"vocab_size"`
	RMSNormEps                    float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings         int     `json:"max_position_embeddings"`          // 0: 131072
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"` // 0: 4096
	PartialRotaryFactor           float64 `json:"partial_rotary_factor"`            // also inside rope_parameters; 0: 1
	TieWordEmbeddings             bool    `json:"tie_word_embeddings"`
	RopeTraditional               bool    `json:"rope_traditional"`
	HiddenAct                     string  `json:"hidden_act"`
	SlidingWindow                 int     `json:"sliding_window"` // 0/null: full attention
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps"}

func (c *Config) validate(cfg *model.Config) error {
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if c.MaxPositionEmbeddings == 0 {
		c.MaxPositionEmbeddings = 131072
	}
	if c.OriginalMaxPositionEmbeddings == 0 {
		c.OriginalMaxPositionEmbeddings = 4096
	}
	if err := cfg.CheckDims(c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, c.VocabSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim); err != nil {
		return err
	}
	switch {
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: phi3 supports silu", c.HiddenAct)
	case c.SlidingWindow < 0:
		return cfg.Errorf("sliding_window %d must not be negative", c.SlidingWindow)
	}
	return nil
}

// Model is Phi3ForCausalLM.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head; nil with tied embeddings
	cfg    Config
	window []int // per layer: sliding window, 0 for full attention
}

// Backbone is Phi3Model.
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

// Attention is grouped-query attention with a fused qkv projection.
type Attention struct {
	QKVProj nn.Layer // qkv_proj [(H+2Hk)·Dh, D]
	OProj   nn.Layer // o_proj [D, H·Dh]
	rope    *ropes
	heads   int
	kvHeads int
	headDim int
	scale   float64
}

// MLP is SwiGLU with a fused gate_up projection.
type MLP struct {
	GateUpProj nn.Layer // gate_up_proj [2I, D]: gate rows first, then up
	DownProj   nn.Layer // down_proj [D, I]
}

// ropes is the rotary embedding: short, or long once a sequence reaches
// past switchAt positions (LongRoPE; long is nil otherwise).
type ropes struct {
	short, long *nn.RoPE
	switchAt    int
}

func (r *ropes) forward(x *engine.Array, offset int) *engine.Array {
	if r.long != nil && offset+x.Dim(-2) > r.switchAt {
		return r.long.Forward(x, offset)
	}
	return r.short.Forward(x, offset)
}

// newRopes resolves the rope settings for dims rotated features.
func newRopes(cfg *model.Config, c *Config, dims int, rc model.RopeConfig) (*ropes, error) {
	if rc.Type != "longrope" && rc.Type != "su" {
		r, err := rc.Resolve(dims, c.RopeTraditional, c.MaxPositionEmbeddings)
		if err != nil {
			return nil, cfg.Errorf("%v", err)
		}
		return &ropes{short: r.NN()}, nil
	}
	num := func(key string, def float64) float64 {
		if v, ok := rc.Scaling[key].(float64); ok {
			return v
		}
		return def
	}
	orig := num("original_max_position_embeddings", float64(c.OriginalMaxPositionEmbeddings))
	factor := num("factor", float64(c.MaxPositionEmbeddings)/orig)
	mscale := 1.0
	if factor > 1 {
		mscale = math.Sqrt(1 + math.Log(factor)/math.Log(orig))
	}
	mscale = num("attention_factor", mscale)
	make1 := func(key string) (*nn.RoPE, error) {
		list, ok := rc.Scaling[key].([]any)
		if !ok || len(list) != dims/2 {
			return nil, cfg.Errorf("rope scaling %q needs %s with %d numbers", rc.Type, key, dims/2)
		}
		periods := make([]float32, dims/2)
		for i, v := range list {
			f, ok := v.(float64)
			if !ok {
				return nil, cfg.Errorf("rope scaling %s[%d]: expected a number", key, i)
			}
			periods[i] = float32(f * math.Pow(rc.Theta, float64(2*i)/float64(dims)))
		}
		return &nn.RoPE{Dims: dims, Traditional: c.RopeTraditional, Base: rc.Theta, Scale: 1,
			Freqs: engine.FromFloat32s(periods, len(periods)), InputScale: mscale}, nil
	}
	short, err := make1("short_factor")
	if err != nil {
		return nil, err
	}
	long, err := make1("long_factor")
	if err != nil {
		return nil, err
	}
	return &ropes{short: short, long: long, switchAt: int(orig)}, nil
}

// New builds a Phi-3 model.
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
		prf = 1
	}
	D, H, Hk, Dh, I := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize
	dims := int(float64(Dh) * prf)
	if prf < 0 || prf > 1 || dims <= 0 || dims%2 != 0 {
		return nil, cfg.Errorf("partial_rotary_factor %g gives %d rotary dims of head_dim %d: expected an even number in 2..%d", prf, dims, Dh, Dh)
	}
	rope, err := newRopes(cfg, &c, dims, rc)
	if err != nil {
		return nil, err
	}
	m := &Model{cfg: c, window: make([]int, c.NumHiddenLayers)}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.rope, a.heads, a.kvHeads, a.headDim, a.scale = rope, H, Hk, Dh, nn.DefaultScale(Dh)
		w.Linear(&a.QKVProj, p+"self_attn.qkv_proj", D, (H+2*Hk)*Dh, false)
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, false)
		w.Linear(&l.MLP.GateUpProj, p+"mlp.gate_up_proj", D, 2*I, false)
		w.Linear(&l.MLP.DownProj, p+"mlp.down_proj", I, D, false)
		w.RMSNorm(&l.InputLayernorm, p+"input_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
		m.window[i] = c.SlidingWindow
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
				return engine.Errorf("phi3: layer %d: %v", i, err)
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
	L := x.Dim(1)
	qDim, kvDim := a.heads*a.headDim, a.kvHeads*a.headDim
	qkv := engine.SplitAt(a.QKVProj.Forward(x), []int{qDim, qDim + kvDim}, -1) // [B, L, H·Dh], [B, L, Hk·Dh] ×2
	if len(qkv) != 3 {
		return qkv[0] // an error
	}
	q := nn.SplitHeads(qkv[0], a.heads, a.headDim)   // [B, H, L, Dh]
	k := nn.SplitHeads(qkv[1], a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	v := nn.SplitHeads(qkv[2], a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	offset := 0
	if c != nil {
		offset = c.Offset()
	}
	q, k = a.rope.forward(q, offset), a.rope.forward(k, offset)
	if c != nil {
		k, v = c.Update(k, v) // [B, Hk, T, Dh]
	}
	o := nn.Attend(q, k, v, a.scale, model.MaskFor(c, L, window)) // [B, H, L, Dh]
	return a.OProj.Forward(nn.MergeHeads(o))                      // [B, L, D]
}

func (m *MLP) forward(x *engine.Array) *engine.Array {
	gu := engine.Split(m.GateUpProj.Forward(x), 2, -1) // [B, L, I] ×2
	if len(gu) != 2 {
		return gu[0] // an error
	}
	return m.DownProj.Forward(nn.SwiGLU(gu[0], gu[1]))
}

// NewCaches makes one cache per layer (rotating caches of the window when
// sliding_window is set).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), m.window, o)
}

// ModelType is "phi3".
func (m *Model) ModelType() string { return "phi3" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize drops rotary inv_freq buffers and a tied lm_head. The fused
// qkv_proj and gate_up_proj stay fused (as mlx_lm keeps them), so
// converted MLX checkpoints keep the hub's names.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	for name := range tensors {
		if strings.HasSuffix(name, "self_attn.q_proj.weight") {
			return nil, fmt.Errorf("tensor %q: phi3 expects the fused self_attn.qkv_proj, not separate q/k/v projections", name)
		}
	}
	return model.Drop(tensors, func(name string) bool {
		return strings.Contains(name, "rotary_emb.inv_freq") || (tied && strings.HasPrefix(name, "lm_head."))
	}), nil
}
