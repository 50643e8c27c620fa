// Package mixtral is the Mixtral sparse mixture-of-experts architecture
// (model_type "mixtral"), after mlx_lm's models/mixtral.py and
// transformers' modeling_mixtral.py: Llama attention with a top-k routed
// SwiGLU expert bank in place of the MLP. The experts are stored stacked
// (block_sparse_moe.switch_mlp.{gate,up,down}_proj [E, out, in]); Sanitize
// stacks the hub's per-expert w1/w2/w3 tensors into that layout.
package mixtral

import (
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func init() {
	model.Register("mixtral", New)
	model.RegisterSanitize("mixtral", Sanitize)
}

// Config mirrors the config.json keys Mixtral uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"` // per expert
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"` // 0: = heads
	HeadDim               int     `json:"head_dim"`            // 0: hidden/heads
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	NumLocalExperts       int     `json:"num_local_experts"`
	NumExpertsPerTok      int     `json:"num_experts_per_tok"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	RopeTraditional       bool    `json:"rope_traditional"`
	HiddenAct             string  `json:"hidden_act"`
	SlidingWindow         int     `json:"sliding_window"` // null in released checkpoints
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps", "num_local_experts", "num_experts_per_tok"}

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
	case c.NumLocalExperts <= 0 || c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumLocalExperts:
		return cfg.Errorf("num_experts_per_tok %d must be in 1..num_local_experts (%d)", c.NumExpertsPerTok, c.NumLocalExperts)
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: mixtral supports silu", c.HiddenAct)
	}
	return nil
}

// Model is MixtralForCausalLM: the struct tree is the weight-name tree.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head [V, D]; nil with tied embeddings
	cfg    Config
	window []int
}

// Backbone is MixtralModel.
type Backbone struct {
	EmbedTokens nn.Embedder // model.embed_tokens [V, D]
	Layers      []Layer     // model.layers.N
	Norm        nn.RMSNorm  // model.norm [D]
}

// Layer is one decoder block.
type Layer struct {
	SelfAttn               Attention  // self_attn
	BlockSparseMoe         SparseMoe  // block_sparse_moe
	InputLayernorm         nn.RMSNorm // input_layernorm [D]
	PostAttentionLayernorm nn.RMSNorm // post_attention_layernorm [D]
}

// Attention is grouped-query self-attention with rotary positions.
type Attention struct {
	QProj, KProj, VProj, OProj nn.Layer // q_proj [H·Dh, D], k_proj/v_proj [Hk·Dh, D], o_proj [D, H·Dh]
	rope                       *nn.RoPE
	heads, kvHeads, headDim    int
	scale                      float64
}

// SparseMoe routes each token to its top-k experts.
type SparseMoe struct {
	Gate      nn.Layer     // gate [E, D]: router logits
	SwitchMLP nn.SwitchGLU // switch_mlp.{gate,up}_proj [E, I, D], down_proj [E, D, I]
	k         int
}

// New builds a Mixtral model from its config and weights.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	rc, err := cfg.Rope("", 1e6)
	if err != nil {
		return nil, err
	}
	r, err := rc.Resolve(c.HeadDim, c.RopeTraditional, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	D, H, Hk, Dh, I, E := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.IntermediateSize, c.NumLocalExperts
	m := &Model{cfg: c, window: make([]int, c.NumHiddenLayers)}
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
		moe := &l.BlockSparseMoe
		moe.k = c.NumExpertsPerTok
		w.Linear(&moe.Gate, p+"block_sparse_moe.gate", D, E, false)
		w.SwitchLinear(&moe.SwitchMLP.GateProj, p+"block_sparse_moe.switch_mlp.gate_proj", E, D, I, false)
		w.SwitchLinear(&moe.SwitchMLP.UpProj, p+"block_sparse_moe.switch_mlp.up_proj", E, D, I, false)
		w.SwitchLinear(&moe.SwitchMLP.DownProj, p+"block_sparse_moe.switch_mlp.down_proj", E, I, D, false)
		w.RMSNorm(&l.InputLayernorm, p+"input_layernorm", D, c.RMSNormEps)
		w.RMSNorm(&l.PostAttentionLayernorm, p+"post_attention_layernorm", D, c.RMSNormEps)
		m.window[i] = max(c.SlidingWindow, 0)
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
	h = model.Blocks(m, "mixtral", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
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
	return engine.Add(h, l.BlockSparseMoe.forward(l.PostAttentionLayernorm.Forward(h)))
}

func (a *Attention) forward(x *engine.Array, c model.Cache, window int) *engine.Array {
	q := nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim)                      // [B, H, L, Dh]
	k := nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim)                    // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim)                    // [B, Hk, L, Dh]
	return a.OProj.Forward(model.AttendCached(q, k, v, a.rope, c, a.scale, window)) // [B, L, D]
}

// forward routes x [B, L, D]: transformers takes softmax over all E
// router logits, keeps the top k and renormalises them, which equals a
// softmax over the top-k logits (mlx_lm's form, used here).
func (s *SparseMoe) forward(x *engine.Array) *engine.Array {
	inds, scores := nn.TopKSoftmax(s.Gate.Forward(x), s.k)            // [B, L, K] each
	return nn.WeightedExpertSum(s.SwitchMLP.Forward(x, inds), scores) // [B, L, D]
}

// NewCaches makes one cache per layer (all sliding when sliding_window is set).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), m.window, o)
}

// ModelType is "mixtral".
func (m *Model) ModelType() string { return "mixtral" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// expertNames maps the hub's per-expert tensor names to mlx_lm's stacked ones.
var expertNames = [][2]string{{"w1", "gate_proj"}, {"w2", "down_proj"}, {"w3", "up_proj"}}

// Sanitize stacks block_sparse_moe.experts.{e}.w1/w2/w3.{weight,scales,
// biases} into block_sparse_moe.switch_mlp.{gate,down,up}_proj.* [E, out,
// in], drops rotary inv_freq buffers and a tied lm_head. A checkpoint
// already in the stacked layout is copied through.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	tied, _ := cfg["tie_word_embeddings"].(bool)
	E, _ := cfg["num_local_experts"].(float64)
	plan, err := model.StackExperts(tensors, int(E), ".block_sparse_moe.experts.", ".block_sparse_moe.switch_mlp.", expertNames)
	if err != nil {
		return nil, err
	}
	out := plan[:0]
	for _, p := range plan {
		if strings.Contains(p.Name, "self_attn.rotary_emb.inv_freq") || (tied && strings.HasPrefix(p.Name, "lm_head.")) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
