// Package mixtral is the Mixtral sparse mixture-of-experts architecture
// (model_type "mixtral"), after mlx_lm's models/mixtral.py and
// transformers' modeling_mixtral.py: Llama attention with a top-k routed
// SwiGLU expert bank in place of the MLP. The experts are stored stacked
// (block_sparse_moe.switch_mlp.{gate,up,down}_proj [E, out, in]); Sanitize
// stacks the hub's per-expert w1/w2/w3 tensors into that layout.
package mixtral

import (
	"fmt"
	"sort"
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
	switch {
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.IntermediateSize <= 0 || c.VocabSize <= 0:
		return cfg.Errorf("hidden_size, num_hidden_layers, intermediate_size and vocab_size must be positive")
	case c.NumAttentionHeads <= 0 || c.NumKeyValueHeads <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return cfg.Errorf("num_attention_heads %d must be a positive multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return cfg.Errorf("head_dim %d must be positive and even", c.HeadDim)
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
	for i := range m.Model.Layers {
		var c model.Cache
		if caches != nil {
			c = caches[i]
			// Caches write in place (evaluating their inputs): keep the
			// residual stream evaluated so it is not recomputed.
			if err := engine.Eval(h); err != nil {
				return engine.Errorf("mixtral: layer %d: %v", i, err)
			}
		}
		h = m.Model.Layers[i].forward(h, c, m.window[i])
	}
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
	L := x.Dim(1)
	q := nn.SplitHeads(a.QProj.Forward(x), a.heads, a.headDim)   // [B, H, L, Dh]
	k := nn.SplitHeads(a.KProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	v := nn.SplitHeads(a.VProj.Forward(x), a.kvHeads, a.headDim) // [B, Hk, L, Dh]
	offset := 0
	if c != nil {
		offset = c.Offset()
	}
	q, k = a.rope.Forward(q, offset), a.rope.Forward(k, offset)
	if c != nil {
		k, v = c.Update(k, v) // [B, Hk, T, Dh]
	}
	o := nn.Attend(q, k, v, a.scale, model.MaskFor(c, L, window)) // [B, H, L, Dh]
	return a.OProj.Forward(nn.MergeHeads(o))                      // [B, L, D]
}

// forward routes x [B, L, D]: transformers takes softmax over all E
// router logits, keeps the top k and renormalises them, which equals a
// softmax over the top-k logits (mlx_lm's form, used here).
func (s *SparseMoe) forward(x *engine.Array) *engine.Array {
	gates := s.Gate.Forward(x) // [B, L, E]
	E := gates.Dim(-1)
	inds := engine.SliceAxis(engine.ArgPartition(gates, E-s.k, -1), -1, E-s.k, E)   // [B, L, K]
	scores := engine.Softmax(engine.TakeAlongAxis(gates, inds, -1), -1)             // [B, L, K]
	y := s.SwitchMLP.Forward(x, inds)                                               // [B, L, K, D]
	return engine.Sum(engine.Multiply(y, engine.ExpandDims(scores, -1)), false, -2) // [B, L, D]
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
	plan, err := stackExperts(tensors, int(E), ".block_sparse_moe.experts.", ".block_sparse_moe.switch_mlp.", expertNames)
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

// stackExperts returns a plan that copies every tensor except per-expert
// ones, "<prefix>N<from>E.<src>.<suffix>" (e.g. "model.layers.0" +
// ".block_sparse_moe.experts." + "3" + ".w1.weight"), which it stacks over
// e = 0..E−1 into "<prefix>N<to><dst>.<suffix>" for each {src, dst} in
// names. Every expert of a stacked tensor must be present with one shape.
func stackExperts(tensors map[string]model.TensorMeta, E int, from, to string, names [][2]string) ([]model.TensorPlan, error) {
	type key struct{ prefix, src, suffix string }
	groups := map[key]bool{}
	var plan []model.TensorPlan
	for _, p := range model.IdentityPlan(tensors) {
		i := strings.Index(p.Name, from)
		if i < 0 {
			plan = append(plan, p)
			continue
		}
		rest := p.Name[i+len(from):] // "3.w1.weight"
		parts := strings.SplitN(rest, ".", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("tensor %q: expected %s<expert>.<name>.<weight|scales|biases>", p.Name, from)
		}
		if _, err := strconv.Atoi(parts[0]); err != nil {
			return nil, fmt.Errorf("tensor %q: expert index %q is not a number", p.Name, parts[0])
		}
		groups[key{p.Name[:i], parts[1], parts[2]}] = true
	}
	if len(groups) > 0 && E <= 0 {
		return nil, fmt.Errorf("the checkpoint has per-expert tensors but config.json gives no positive expert count")
	}
	dst := map[string]string{}
	for _, n := range names {
		dst[n[0]] = n[1]
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		return keys[a].prefix+keys[a].src+keys[a].suffix < keys[b].prefix+keys[b].src+keys[b].suffix
	})
	for _, k := range keys {
		d, ok := dst[k.src]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unknown expert projection %q", k.prefix+from+"0."+k.src+"."+k.suffix, k.src)
		}
		srcs := make([]string, E)
		var shape []int
		for e := range E {
			n := k.prefix + from + strconv.Itoa(e) + "." + k.src + "." + k.suffix
			meta, ok := tensors[n]
			if !ok {
				return nil, fmt.Errorf("missing tensor %q (config.json has %d experts)", n, E)
			}
			if shape == nil {
				shape = meta.Shape
			} else if fmt.Sprint(shape) != fmt.Sprint(meta.Shape) {
				return nil, fmt.Errorf("tensor %q: shape %v differs from expert 0's %v", n, meta.Shape, shape)
			}
			srcs[e] = n
		}
		// Extra experts beyond E would be silently dropped: refuse them.
		if extra := k.prefix + from + strconv.Itoa(E) + "." + k.src + "." + k.suffix; tensors[extra].Shape != nil {
			return nil, fmt.Errorf("tensor %q: expert index beyond config.json's %d experts", extra, E)
		}
		plan = append(plan, model.TensorPlan{Name: k.prefix + to + d + "." + k.suffix, Op: model.OpStack, Sources: srcs})
	}
	return plan, nil
}
