// Package glm4_moe is the GLM-4.5 / GLM-4.6 mixture-of-experts
// architecture (model_type "glm4_moe"), after mlx_lm's models/glm4_moe.py
// and transformers' modeling_glm4_moe.py: grouped-query attention with
// biased q/k/v projections, optional per-head q/k RMSNorm (use_qk_norm)
// and rotary embeddings on the first partial_rotary_factor of each head;
// the first first_k_dense_replace layers are dense, the others route each
// token as DeepSeek-V3 does (sigmoid scores plus e_score_correction_bias,
// n_group/topk_group, norm_topk_prob, routed_scaling_factor) and add
// shared experts. Experts are stored stacked (mlp.switch_mlp.*_proj
// [E, out, in]); Sanitize stacks the hub's per-expert tensors.
package glm4_moe

import (
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("glm4_moe", New)
	model.RegisterSanitize("glm4_moe", Sanitize)
}

// Config mirrors the config.json keys GLM-4-MoE uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"`
	MoeIntermediateSize   int     `json:"moe_intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int     `json:"head_dim"`            // 0: hidden/heads
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	PartialRotaryFactor   float64 `json:"partial_rotary_factor"` // also inside rope_parameters; 0: 0.5
	NSharedExperts        int     `json:"n_shared_experts"`
	NRoutedExperts        int     `json:"n_routed_experts"`
	RoutedScalingFactor   float64 `json:"routed_scaling_factor"`
	TopkMethod            string  `json:"topk_method"`
	ScoringFunc           string  `json:"scoring_func"`
	NormTopkProb          *bool   `json:"norm_topk_prob"` // nil: true
	NGroup                int     `json:"n_group"`
	TopkGroup             int     `json:"topk_group"`
	NumExpertsPerTok      int     `json:"num_experts_per_tok"`
	FirstKDenseReplace    int     `json:"first_k_dense_replace"`
	AttentionBias         bool    `json:"attention_bias"`
	UseQKNorm             bool    `json:"use_qk_norm"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
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
	if c.NGroup == 0 {
		c.NGroup = 1
	}
	if c.TopkGroup == 0 {
		c.TopkGroup = 1
	}
	if c.RoutedScalingFactor == 0 {
		c.RoutedScalingFactor = 1
	}
	switch {
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.IntermediateSize <= 0 || c.VocabSize <= 0:
		return cfg.Errorf("hidden_size, num_hidden_layers, intermediate_size and vocab_size must be positive")
	case c.NumAttentionHeads <= 0 || c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return cfg.Errorf("num_attention_heads %d must be a positive multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim <= 0:
		return cfg.Errorf("head_dim %d must be positive", c.HeadDim)
	case c.TopkMethod != "" && c.TopkMethod != "noaux_tc":
		return cfg.Errorf("topk_method %q: glm4_moe supports noaux_tc", c.TopkMethod)
	case c.ScoringFunc != "" && c.ScoringFunc != "sigmoid":
		return cfg.Errorf("scoring_func %q: glm4_moe supports sigmoid", c.ScoringFunc)
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: glm4_moe supports silu", c.HiddenAct)
	}
	if E := c.NRoutedExperts; E > 0 {
		switch {
		case c.MoeIntermediateSize <= 0:
			return cfg.Errorf("moe_intermediate_size must be positive with n_routed_experts %d", E)
		case c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > E:
			return cfg.Errorf("num_experts_per_tok %d must be in 1..n_routed_experts (%d)", c.NumExpertsPerTok, E)
		case E%c.NGroup != 0 || (c.NGroup > 1 && E/c.NGroup < 2):
			return cfg.Errorf("n_routed_experts %d must split into n_group %d groups of at least 2", E, c.NGroup)
		case c.TopkGroup > c.NGroup:
			return cfg.Errorf("topk_group %d exceeds n_group %d", c.TopkGroup, c.NGroup)
		case c.NSharedExperts < 0:
			return cfg.Errorf("n_shared_experts %d must not be negative", c.NSharedExperts)
		}
	}
	return nil
}

// sparse reports whether layer i has the expert block.
func (c *Config) sparse(i int) bool { return c.NRoutedExperts > 0 && i >= c.FirstKDenseReplace }

// Model is Glm4MoeForCausalLM: the struct tree is the weight-name tree.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head [V, D]; nil with tied embeddings
	cfg    Config
}

// Backbone is Glm4MoeModel.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm [D]
}

// Layer is one decoder block; MLP is a *MoE or a *MLP.
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

// Attention is grouped-query attention with partial rotary embeddings.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer    // q [H·Dh, D], k/v [Hk·Dh, D] (+bias), o [D, H·Dh]
	QNorm, KNorm               *nn.RMSNorm // q_norm, k_norm [Dh] with use_qk_norm, else nil
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// MLP is the dense SwiGLU block (also the shared experts).
type MLP = model.SwiGLUMLP

// MoE is the routed expert block with shared experts.
type MoE = model.SigmoidMoE

// New builds a GLM-4-MoE model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	D, H, Hk, Dh := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	rc, err := cfg.Rope("", 10000)
	if err != nil {
		return nil, err
	}
	prf := c.PartialRotaryFactor
	if v, ok := rc.Scaling["partial_rotary_factor"].(float64); ok {
		prf = v
	}
	if prf == 0 {
		prf = 0.5
	}
	dims := int(float64(Dh) * prf)
	if dims < 2 || dims > Dh || dims%2 != 0 {
		return nil, cfg.Errorf("partial_rotary_factor %g gives %d rotary dims of head_dim %d: expected an even number in 2..%d", prf, dims, Dh, Dh)
	}
	r, err := rc.Resolve(dims, false, c.MaxPositionEmbeddings)
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
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dh, D, false)
		if c.UseQKNorm {
			a.QNorm, a.KNorm = &nn.RMSNorm{}, &nn.RMSNorm{}
			w.RMSNorm(a.QNorm, p+"self_attn.q_norm", Dh, c.RMSNormEps)
			w.RMSNorm(a.KNorm, p+"self_attn.k_norm", Dh, c.RMSNormEps)
		}
		if c.sparse(i) {
			l.MLP = model.LoadSigmoidMoE(w, p, D, model.SigmoidMoEConfig{
				Experts: c.NRoutedExperts, Intermediate: c.MoeIntermediateSize, TopK: c.NumExpertsPerTok,
				Groups: c.NGroup, TopkGroup: c.TopkGroup, Scaling: c.RoutedScalingFactor,
				Norm: c.NormTopkProb == nil || *c.NormTopkProb, Shared: c.NSharedExperts,
			})
		} else {
			l.MLP = model.LoadSwiGLUMLP(w, p+"mlp.", D, c.IntermediateSize)
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
	h = model.Blocks(m, "glm4_moe", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
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
	q := nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim)   // [B, H, L, Dh]
	k := nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	if a.QNorm != nil {
		q, k = a.QNorm.Forward(q), a.KNorm.Forward(k)
	}
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, 0)) // [B, L, D]; rope rotates the first Dr of Dh
}

// NewCaches makes one cache per layer.
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), nil, o)
}

// ModelType is "glm4_moe".
func (m *Model) ModelType() string { return "glm4_moe" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize stacks mlp.experts.{e}.{gate,up,down}_proj.{weight,scales,
// biases} into mlp.switch_mlp.*_proj.* [E, out, in] and drops the
// multi-token-prediction layers (model.layers.N for N ≥
// num_hidden_layers), rotary inv_freq buffers and a tied lm_head. A
// checkpoint already in the stacked layout is copied through.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	E, _ := cfg["n_routed_experts"].(float64)
	layers, _ := cfg["num_hidden_layers"].(float64)
	mtp := func(name string) bool {
		rest, ok := strings.CutPrefix(name, "model.layers.")
		if !ok || layers <= 0 {
			return false
		}
		i, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '.'), 0)])
		return err == nil && i >= int(layers)
	}
	kept := map[string]model.TensorMeta{}
	for n, t := range tensors {
		if !mtp(n) {
			kept[n] = t
		}
	}
	names := [][2]string{{"gate_proj", "gate_proj"}, {"up_proj", "up_proj"}, {"down_proj", "down_proj"}}
	plan, err := model.StackExperts(kept, int(E), ".mlp.experts.", ".mlp.switch_mlp.", names)
	if err != nil {
		return nil, err
	}
	out := plan[:0]
	for _, p := range plan {
		if strings.Contains(p.Name, "rotary_emb.inv_freq") || (tied && strings.HasPrefix(p.Name, "lm_head.")) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
