// Package deepseek_v3 is the DeepSeek-V3 architecture (model_type
// "deepseek_v3", and kimi_k2 / joyai_llm_flash through pkg/model's alias
// table), after mlx_lm's models/deepseek_v3.py and transformers'
// modeling_deepseek_v3.py.
//
// Attention is multi-head latent attention (MLA): queries go through a
// low-rank q_a_proj → q_a_layernorm → q_b_proj; keys and values are one
// shared latent of kv_lora_rank features per token (kv_a_proj_with_mqa →
// kv_a_layernorm) plus one shared rotary key of qk_rope_head_dim. As in
// mlx_lm the cache holds only the latent and the rotary key, and the
// per-head key/value up-projection kv_b_proj is applied in its split form:
// embed_q [H, R, Dn] (keys, or absorbed into the queries when decoding one
// token) and unembed_out [H, Dv, R] (values). Checkpoints with the hub's
// kv_b_proj [H·(Dn+Dv), R] are split by the sanitize plan (float) or
// when the model is built (quantized, or a plan that kept it).
//
// Feed-forward: the first first_k_dense_replace layers are dense; the
// others route each token to num_experts_per_tok of n_routed_experts by
// sigmoid scores plus e_score_correction_bias, restricted to the best
// topk_group of n_group expert groups, and add n_shared_experts always-on
// experts. Letters: R = kv_lora_rank, Rq = q_lora_rank, Dn/Dr/Dv =
// qk_nope/qk_rope/v head dims, T = cached positions.
package deepseek_v3

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
	model.Register("deepseek_v3", New)
	model.RegisterSanitize("deepseek_v3", Sanitize)
}

// Config mirrors the config.json keys DeepSeek-V3 uses.
type Config struct {
	HiddenSize            int     `json:"hidden_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	IntermediateSize      int     `json:"intermediate_size"`
	MoeIntermediateSize   int     `json:"moe_intermediate_size"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	VocabSize             int     `json:"vocab_size"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	NSharedExperts        int     `json:"n_shared_experts"`
	NRoutedExperts        int     `json:"n_routed_experts"`
	RoutedScalingFactor   float64 `json:"routed_scaling_factor"`
	KVLoraRank            int     `json:"kv_lora_rank"`
	QLoraRank             int     `json:"q_lora_rank"` // 0/null: plain q_proj
	QKRopeHeadDim         int     `json:"qk_rope_head_dim"`
	QKNopeHeadDim         int     `json:"qk_nope_head_dim"`
	VHeadDim              int     `json:"v_head_dim"`
	TopkMethod            string  `json:"topk_method"`
	ScoringFunc           string  `json:"scoring_func"`
	NormTopkProb          *bool   `json:"norm_topk_prob"` // nil: true
	NGroup                int     `json:"n_group"`
	TopkGroup             int     `json:"topk_group"`
	NumExpertsPerTok      int     `json:"num_experts_per_tok"`
	MoeLayerFreq          int     `json:"moe_layer_freq"` // 0: 1
	FirstKDenseReplace    int     `json:"first_k_dense_replace"`
	AttentionBias         bool    `json:"attention_bias"`
	RopeInterleave        *bool   `json:"rope_interleave"` // nil: true
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	HiddenAct             string  `json:"hidden_act"`
}

var required = []string{"hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads", "vocab_size", "rms_norm_eps", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"}

func (c *Config) validate(cfg *model.Config) error {
	if c.MoeLayerFreq == 0 {
		c.MoeLayerFreq = 1
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
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.VocabSize <= 0 || c.NumAttentionHeads <= 0:
		return cfg.Errorf("hidden_size, num_hidden_layers, num_attention_heads and vocab_size must be positive")
	case c.KVLoraRank <= 0 || c.QKNopeHeadDim <= 0 || c.VHeadDim <= 0 || c.QLoraRank < 0:
		return cfg.Errorf("kv_lora_rank, qk_nope_head_dim and v_head_dim must be positive (q_lora_rank ≥ 0)")
	case c.QKRopeHeadDim <= 0 || c.QKRopeHeadDim%2 != 0:
		return cfg.Errorf("qk_rope_head_dim %d must be positive and even", c.QKRopeHeadDim)
	case c.TopkMethod != "" && c.TopkMethod != "noaux_tc":
		return cfg.Errorf("topk_method %q: deepseek_v3 supports noaux_tc", c.TopkMethod)
	case c.ScoringFunc != "" && c.ScoringFunc != "sigmoid":
		return cfg.Errorf("scoring_func %q: deepseek_v3 supports sigmoid", c.ScoringFunc)
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return cfg.Errorf("hidden_act %q: deepseek_v3 supports silu", c.HiddenAct)
	case c.MoeLayerFreq < 0:
		return cfg.Errorf("moe_layer_freq %d must be positive", c.MoeLayerFreq)
	}
	if c.NRoutedExperts > 0 {
		E := c.NRoutedExperts
		switch {
		case c.MoeIntermediateSize <= 0:
			return cfg.Errorf("moe_intermediate_size must be positive with n_routed_experts %d", E)
		case c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > E:
			return cfg.Errorf("num_experts_per_tok %d must be in 1..n_routed_experts (%d)", c.NumExpertsPerTok, E)
		case E%c.NGroup != 0 || E/c.NGroup < 2:
			return cfg.Errorf("n_routed_experts %d must split into n_group %d groups of at least 2", E, c.NGroup)
		case c.TopkGroup > c.NGroup:
			return cfg.Errorf("topk_group %d exceeds n_group %d", c.TopkGroup, c.NGroup)
		case c.NSharedExperts < 0:
			return cfg.Errorf("n_shared_experts %d must not be negative", c.NSharedExperts)
		}
	}
	if c.IntermediateSize <= 0 {
		return cfg.Errorf("intermediate_size must be positive")
	}
	return nil
}

// sparse reports whether layer i has the expert block.
func (c *Config) sparse(i int) bool {
	return c.NRoutedExperts > 0 && i >= c.FirstKDenseReplace && i%c.MoeLayerFreq == 0
}

// Model is DeepseekV3ForCausalLM: the struct tree is the weight-name tree.
type Model struct {
	model.Params
	Model  Backbone // model.*
	LMHead nn.Layer // lm_head [V, D]; nil with tied embeddings
	cfg    Config
}

// Backbone is DeepseekV3Model.
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

// Attention is multi-head latent attention.
type Attention struct {
	QProj           nn.Layer      // q_proj [H·(Dn+Dr), D] when q_lora_rank is 0
	QAProj          nn.Layer      // q_a_proj [Rq, D]
	QALayernorm     nn.RMSNorm    // q_a_layernorm [Rq]
	QBProj          nn.Layer      // q_b_proj [H·(Dn+Dr), Rq]
	KVAProjWithMqa  nn.Layer      // kv_a_proj_with_mqa [R+Dr, D]
	KVALayernorm    nn.RMSNorm    // kv_a_layernorm [R]
	EmbedQ          *engine.Array // embed_q [H, R, Dn] (from kv_b_proj's key rows)
	UnembedOut      *engine.Array // unembed_out [H, Dv, R] (from kv_b_proj's value rows)
	OProj           nn.Layer      // o_proj [D, H·Dv]
	rope            *nn.RoPE
	heads           int
	nope, rdim, rnk int
	scale           float64
}

// MLP is the dense SwiGLU block (also the shared experts).
type MLP = model.SwiGLUMLP

// MoE is the routed expert block with shared experts.
type MoE = model.SigmoidMoE

// New builds a DeepSeek-V3 model.
func New(cfg *model.Config, w *model.Weights) (model.Model, error) {
	var c Config
	if err := cfg.Decode(&c, required...); err != nil {
		return nil, err
	}
	if err := c.validate(cfg); err != nil {
		return nil, err
	}
	D, H := c.HiddenSize, c.NumAttentionHeads
	R, Rq, Dn, Dr, Dv := c.KVLoraRank, c.QLoraRank, c.QKNopeHeadDim, c.QKRopeHeadDim, c.VHeadDim
	rc, err := cfg.Rope("", 10000)
	if err != nil {
		return nil, err
	}
	traditional := c.RopeInterleave == nil || *c.RopeInterleave
	r, err := rc.Resolve(Dr, traditional, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, cfg.Errorf("%v", err)
	}
	rope := r.NN()
	// Both references scale the softmax by mscale(factor, mscale_all_dim)²
	// on top of 1/√(Dn+Dr) for yarn checkpoints.
	scale := 1 / math.Sqrt(float64(Dn+Dr))
	if rc.Type != "default" && rc.Scaling != nil {
		factor, _ := rc.Scaling["factor"].(float64)
		if all, _ := rc.Scaling["mscale_all_dim"].(float64); all != 0 && factor > 1 {
			s := 0.1*all*math.Log(factor) + 1
			scale *= s * s
		}
	}
	m := &Model{cfg: c}
	w.Embedding(&m.Model.EmbedTokens, "model.embed_tokens", c.VocabSize, D)
	m.Model.Layers = make([]Layer, c.NumHiddenLayers)
	for i := range m.Model.Layers {
		l, p := &m.Model.Layers[i], "model.layers."+strconv.Itoa(i)+"."
		a := &l.SelfAttn
		a.rope, a.heads, a.nope, a.rdim, a.rnk, a.scale = rope, H, Dn, Dr, R, scale
		if Rq == 0 {
			w.Linear(&a.QProj, p+"self_attn.q_proj", D, H*(Dn+Dr), false)
		} else {
			w.Linear(&a.QAProj, p+"self_attn.q_a_proj", D, Rq, c.AttentionBias)
			w.RMSNorm(&a.QALayernorm, p+"self_attn.q_a_layernorm", Rq, 1e-6)
			w.Linear(&a.QBProj, p+"self_attn.q_b_proj", Rq, H*(Dn+Dr), false)
		}
		w.Linear(&a.KVAProjWithMqa, p+"self_attn.kv_a_proj_with_mqa", D, R+Dr, c.AttentionBias)
		w.RMSNorm(&a.KVALayernorm, p+"self_attn.kv_a_layernorm", R, 1e-6)
		if err := a.loadKVB(w, p+"self_attn.", H, R, Dn, Dv); err != nil {
			return nil, err
		}
		w.Linear(&a.OProj, p+"self_attn.o_proj", H*Dv, D, c.AttentionBias)
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

// loadKVB fills EmbedQ and UnembedOut from the MLX layout (embed_q,
// unembed_out; quantized ones are dequantized once here) or from the
// hub's kv_b_proj [H·(Dn+Dv), R], whose rows are per head Dn key rows then
// Dv value rows.
func (a *Attention) loadKVB(w *model.Weights, p string, H, R, Dn, Dv int) error {
	if !w.Has(p+"kv_b_proj.weight") || w.Has(p+"embed_q.weight") {
		a.EmbedQ = multiLinear(w, p+"embed_q", H, R, Dn)
		a.UnembedOut = multiLinear(w, p+"unembed_out", H, Dv, R)
		// Dequantized weights are computed once, not on every forward.
		for _, x := range []*engine.Array{a.EmbedQ, a.UnembedOut} {
			if x != nil && !x.Evaluated() {
				if err := engine.Eval(x); err != nil {
					return fmt.Errorf("%sembed_q/unembed_out: %w", p, err)
				}
			}
		}
		return nil
	}
	kvb := multiLinear(w, p+"kv_b_proj", 1, H*(Dn+Dv), R) // [1, H·(Dn+Dv), R]
	if kvb == nil {
		return nil // the error is in w
	}
	kvb = engine.Reshape(kvb, H, Dn+Dv, R)
	parts := engine.SplitAt(kvb, []int{Dn}, 1)
	a.EmbedQ = engine.Copy(engine.SwapAxes(parts[0], -1, -2)) // [H, R, Dn]
	a.UnembedOut = engine.Copy(parts[1])                      // [H, Dv, R]
	if err := engine.Eval(a.EmbedQ, a.UnembedOut); err != nil {
		return fmt.Errorf("%skv_b_proj: %w", p, err)
	}
	return nil
}

// multiLinear returns the float weight [n, out, in] at path (a leading
// n of 1 is dropped for a 2-D tensor), dequantizing a quantized one.
func multiLinear(w *model.Weights, path string, n, out, in int) *engine.Array {
	shape := []int{n, out, in}
	if n == 1 {
		shape = shape[1:]
	}
	var wt *engine.Array
	if spec, ok := w.Quantized(path); ok {
		ws, ss, err := nn.QuantizedShapes(out, in, spec.GroupSize, spec.Bits)
		if err != nil {
			w.Tensor(&wt, path+".weight", shape...) // records a shape error
			return nil
		}
		if n > 1 {
			ws, ss = append([]int{n}, ws...), append([]int{n}, ss...)
		}
		var q, s, b *engine.Array
		w.Tensor(&q, path+".weight", ws...)
		w.Tensor(&s, path+".scales", ss...)
		w.Tensor(&b, path+".biases", ss...)
		if q == nil || s == nil || b == nil {
			return nil
		}
		wt = engine.Dequantize(q, s, b, spec.GroupSize, spec.Bits)
	} else {
		w.Tensor(&wt, path+".weight", shape...)
		if wt == nil {
			return nil
		}
	}
	if n == 1 {
		wt = engine.ExpandDims(wt, 0)
	}
	return wt
}

// Forward maps tokens [B, L] to logits [B, L, V].
func (m *Model) Forward(tokens *engine.Array, caches []model.Cache) *engine.Array {
	h := m.Model.EmbedTokens.Forward(tokens) // [B, L, D]
	h = model.Blocks(m, "deepseek_v3", h, caches, len(m.Model.Layers), func(i int, h *engine.Array, c model.Cache) *engine.Array {
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
	if x.Err() != nil {
		return x
	}
	B, L := x.Dim(0), x.Dim(1)
	var q *engine.Array
	if a.QProj != nil {
		q = a.QProj.Forward(x)
	} else {
		q = a.QBProj.Forward(a.QALayernorm.Forward(a.QAProj.Forward(x))) // [B, L, H·(Dn+Dr)]
	}
	q = nn.SplitHeads(q, a.heads, a.nope+a.rdim)    // [B, H, L, Dn+Dr]
	qs := engine.SplitAt(q, []int{a.nope}, -1)      // [B, H, L, Dn], [B, H, L, Dr]
	kv := a.KVAProjWithMqa.Forward(x)               // [B, L, R+Dr]
	kvs := engine.SplitAt(kv, []int{a.rnk}, -1)     // [B, L, R], [B, L, Dr]
	latent := a.KVALayernorm.Forward(kvs[0])        // [B, L, R]
	latent = engine.Reshape(latent, B, 1, L, a.rnk) // [B, 1, L, R]
	kPE := engine.Reshape(kvs[1], B, 1, L, a.rdim)  // [B, 1, L, Dr]
	offset := 0
	if c != nil {
		offset = c.Offset()
	}
	qPE, kPE := a.rope.Forward(qs[1], offset), a.rope.Forward(kPE, offset)
	if c != nil {
		latent, kPE = c.Update(latent, kPE) // [B, 1, T, R], [B, 1, T, Dr]
	}
	// The rotary part of the scores enters as an additive mask.
	scaled := engine.Multiply(qPE, engine.ScalarOf(a.scale, qPE.DType()))
	opts := model.MaskFor(c, L, 0)
	opts.Mask = engine.Matmul(scaled, engine.SwapAxes(kPE, -1, -2)) // [B, H, L, T]
	var o *engine.Array
	if L == 1 {
		// Absorb the key projection into the query; attend the latent.
		qL := engine.Matmul(qs[0], engine.SwapAxes(engine.AsType(a.EmbedQ, qs[0].DType()), -1, -2)) // [B, H, 1, R]
		o = nn.Attend(qL, latent, latent, a.scale, opts)                                            // [B, H, 1, R]
		o = engine.Matmul(o, engine.SwapAxes(engine.AsType(a.UnembedOut, o.DType()), -1, -2))       // [B, H, 1, Dv]
	} else {
		k := engine.Matmul(latent, engine.AsType(a.EmbedQ, latent.DType()))                              // [B, H, T, Dn]
		v := engine.Matmul(latent, engine.SwapAxes(engine.AsType(a.UnembedOut, latent.DType()), -1, -2)) // [B, H, T, Dv]
		o = nn.Attend(qs[0], k, v, a.scale, opts)                                                        // [B, H, L, Dv]
	}
	return a.OProj.Forward(nn.MergeHeads(o)) // [B, L, D]
}

// NewCaches makes one cache per layer; each holds the latent [B, 1, T, R]
// as keys and the rotary key [B, 1, T, Dr] as values (mlx_lm's layout).
func (m *Model) NewCaches(o model.CacheOptions) []model.Cache {
	return model.NewCaches(len(m.Model.Layers), nil, o)
}

// ModelType is "deepseek_v3".
func (m *Model) ModelType() string { return "deepseek_v3" }

// VocabSize is V.
func (m *Model) VocabSize() int { return m.cfg.VocabSize }

// Sanitize stacks mlp.experts.{e}.{gate,up,down}_proj.{weight,scales,
// biases} into mlp.switch_mlp.*_proj.* [E, out, in], drops the
// multi-token-prediction layers (model.layers.N for N ≥
// num_hidden_layers), rotary inv_freq buffers and a tied lm_head. FP8
// (weight_scale_inv) and compressed-tensors int4 checkpoints are refused
// with a message: their dequantization is not a plan operation.
// A float kv_b_proj [H·(Dn+Dv), R] is split as mlx_lm's sanitize does,
// into embed_q [H, R, Dn] and unembed_out [H, Dv, R]; a quantized one
// (which mlx_lm dequantizes and re-quantizes) is left for New to split.
func Sanitize(cfg map[string]any, tensors map[string]model.TensorMeta) ([]model.TensorPlan, error) {
	for n := range tensors {
		if strings.HasSuffix(n, "weight_scale_inv") || strings.HasSuffix(n, "weight_packed") {
			return nil, fmt.Errorf("tensor %q: FP8 / compressed-tensors checkpoints are not supported yet; use a bf16 or MLX-converted checkpoint", n)
		}
	}
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
	H, _ := cfg["num_attention_heads"].(float64)
	Dn, _ := cfg["qk_nope_head_dim"].(float64)
	Dv, _ := cfg["v_head_dim"].(float64)
	var out []model.TensorPlan
	for _, p := range plan {
		if strings.Contains(p.Name, "rotary_emb.inv_freq") || (tied && strings.HasPrefix(p.Name, "lm_head.")) {
			continue
		}
		attn, ok := strings.CutSuffix(p.Name, ".kv_b_proj.weight")
		if !ok || H <= 0 || Dn <= 0 || Dv <= 0 || kept[attn+".kv_b_proj.scales"].Shape != nil {
			// A quantized kv_b_proj stays: mlx_lm re-quantizes its split
			// halves, which a plan cannot; New splits it.
			out = append(out, p)
			continue
		}
		// [H·(Dn+Dv), R] → per head [Dn+Dv, R]: embed_q = key rows
		// transposed [H, R, Dn], unembed_out = value rows [H, Dv, R].
		shape := kept[p.Name].Shape
		h, dn, dv := int(H), int(Dn), int(Dv)
		if len(shape) != 2 || shape[0] != h*(dn+dv) {
			return nil, fmt.Errorf("tensor %q: shape %v, expected [num_attention_heads·(qk_nope_head_dim+v_head_dim) = %d, kv_lora_rank]", p.Name, shape, h*(dn+dv))
		}
		split := model.Step{Op: model.OpReshape, Shape: []int{h, dn + dv, shape[1]}}
		out = append(out,
			model.TensorPlan{Name: attn + ".embed_q.weight", Op: model.OpCopy, Sources: p.Sources, Steps: []model.Step{
				split, {Op: model.OpSlice, Axis: 1, Start: 0, Stop: dn}, {Op: model.OpTranspose}}},
			model.TensorPlan{Name: attn + ".unembed_out.weight", Op: model.OpCopy, Sources: p.Sources, Steps: []model.Step{
				split, {Op: model.OpSlice, Axis: 1, Start: dn, Stop: dn + dv}}})
	}
	return out, nil
}
