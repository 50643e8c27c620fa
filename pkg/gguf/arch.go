package gguf

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// archSpec is what differs between the supported families, following the
// model classes of llama.cpp's convert_hf_to_gguf.py.
type archSpec struct {
	gguf string // general.architecture
	// permuteQK reorders q/k rows from HF's rotate-half layout to the
	// interleaved layout of llama.cpp's LLAMA rope (LlamaModel.permute);
	// qwen2, qwen3 and gemma use NEOX rope in llama.cpp and are not permuted.
	permuteQK bool
	// normPlusOne adds 1 to every *norm.weight: Gemma's RMSNorm scales by
	// (1 + w); llama.cpp's scales by w (GemmaModel.modify_tensors).
	normPlusOne bool
	// sandwichNorms: gemma2/gemma3 name post_attention_layernorm
	// post_attention_norm and pre_feedforward_layernorm ffn_norm.
	sandwichNorms bool
	// tiedOutput: lm_head is skipped (gemma ties it to the embedding).
	tiedOutput bool
}

var archs = map[string]archSpec{
	"llama":       {gguf: "llama", permuteQK: true},
	"mistral":     {gguf: "llama", permuteQK: true},
	"mixtral":     {gguf: "llama", permuteQK: true},
	"qwen2":       {gguf: "qwen2"},
	"qwen3":       {gguf: "qwen3"},
	"qwen3_moe":   {gguf: "qwen3moe"},
	"gemma":       {gguf: "gemma", normPlusOne: true, tiedOutput: true},
	"gemma2":      {gguf: "gemma2", normPlusOne: true, sandwichNorms: true, tiedOutput: true},
	"gemma3":      {gguf: "gemma3", normPlusOne: true, sandwichNorms: true, tiedOutput: true},
	"gemma3_text": {gguf: "gemma3", normPlusOne: true, sandwichNorms: true, tiedOutput: true},
}

// SupportedModelTypes lists the config.json model_type values Export accepts.
func SupportedModelTypes() []string {
	out := make([]string, 0, len(archs))
	for k := range archs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hfConfig holds the config.json keys the export reads; json tags are the
// exact keys.
type hfConfig struct {
	ModelType             string          `json:"model_type"`
	HiddenSize            int             `json:"hidden_size"`
	IntermediateSize      int             `json:"intermediate_size"`
	NumHiddenLayers       int             `json:"num_hidden_layers"`
	NumAttentionHeads     int             `json:"num_attention_heads"`
	NumKeyValueHeads      int             `json:"num_key_value_heads"`
	HeadDim               int             `json:"head_dim"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           map[string]any  `json:"rope_scaling"`
	VocabSize             int             `json:"vocab_size"`
	NumLocalExperts       int             `json:"num_local_experts"`
	NumExperts            int             `json:"num_experts"`
	NumExpertsPerTok      int             `json:"num_experts_per_tok"`
	MoeIntermediateSize   int             `json:"moe_intermediate_size"`
	SlidingWindow         *int            `json:"sliding_window"`
	SlidingWindowPattern  *int            `json:"sliding_window_pattern"`
	AttnLogitSoftcapping  *float64        `json:"attn_logit_softcapping"`
	FinalLogitSoftcapping *float64        `json:"final_logit_softcapping"`
	BosTokenID            json.RawMessage `json:"bos_token_id"`
	EosTokenID            json.RawMessage `json:"eos_token_id"`
	PadTokenID            json.RawMessage `json:"pad_token_id"`
	Quantization          json.RawMessage `json:"quantization"`
	QuantizationConfig    json.RawMessage `json:"quantization_config"`
	TextConfig            *hfConfig       `json:"text_config"`
}

func parseConfig(data []byte) (*hfConfig, archSpec, error) {
	var c hfConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, archSpec{}, fmt.Errorf("gguf: config.json: %w", err)
	}
	spec, ok := archs[c.ModelType]
	if !ok {
		if c.ModelType == "" {
			return nil, spec, fmt.Errorf("gguf: config.json has no model_type")
		}
		return nil, spec, fmt.Errorf("gguf: model_type %q is not supported for GGUF export (supported: %s)",
			c.ModelType, strings.Join(SupportedModelTypes(), ", "))
	}
	if len(c.Quantization) > 0 && string(c.Quantization) != "null" || len(c.QuantizationConfig) > 0 && string(c.QuantizationConfig) != "null" {
		return nil, spec, fmt.Errorf("gguf: config.json describes a quantized model (\"quantization\"): GGUF export needs float weights; dequantize first (mlxgo fuse --dequantize)")
	}
	if c.ModelType == "gemma3" && c.TextConfig != nil {
		// multimodal gemma3: the language model's settings live in text_config
		tc := *c.TextConfig
		tc.ModelType = c.ModelType
		tc.BosTokenID, tc.EosTokenID, tc.PadTokenID = c.BosTokenID, c.EosTokenID, c.PadTokenID
		c = tc
	}
	if c.ModelType == "gemma3" || c.ModelType == "gemma3_text" {
		// Gemma3TextConfig defaults (llama.cpp's Gemma3Model uses the same)
		setDefault(&c.MaxPositionEmbeddings, 131072)
		setDefault(&c.NumAttentionHeads, 8)
		setDefault(&c.NumKeyValueHeads, 4)
		setDefault(&c.HeadDim, 256)
		if c.RMSNormEps == nil {
			c.RMSNormEps = ptr(1e-6)
		}
		if c.RopeTheta == nil {
			c.RopeTheta = ptr(1e6)
		}
	}
	setDefault(&c.NumKeyValueHeads, c.NumAttentionHeads)
	for _, f := range []struct {
		key string
		v   int
	}{{"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads}, {"intermediate_size", c.IntermediateSize}} {
		if f.v <= 0 {
			return nil, spec, fmt.Errorf("gguf: config.json: %s must be a positive integer, got %d", f.key, f.v)
		}
	}
	if c.HeadDim == 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		return nil, spec, fmt.Errorf("gguf: config.json: hidden_size %d is not a multiple of num_attention_heads %d and head_dim is not set", c.HiddenSize, c.NumAttentionHeads)
	}
	return &c, spec, nil
}

func setDefault(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func ptr[T any](v T) *T { return &v }

// headDim is head_dim, or hidden_size / num_attention_heads.
func (c *hfConfig) headDim() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	return c.HiddenSize / c.NumAttentionHeads
}

func (c *hfConfig) experts() int {
	if c.NumLocalExperts > 0 {
		return c.NumLocalExperts
	}
	return c.NumExperts
}

// modelKVs gives the architecture metadata, as convert_hf_to_gguf.py's
// set_gguf_parameters writes it for each family.
func modelKVs(c *hfConfig, spec archSpec, nVocab int) []KV {
	a := spec.gguf
	u := func(k string, v int) KV { return KV{a + "." + k, uint32(v)} }
	f := func(k string, v float64) KV { return KV{a + "." + k, float32(v)} }
	var kvs []KV
	if c.MaxPositionEmbeddings > 0 {
		kvs = append(kvs, u("context_length", c.MaxPositionEmbeddings))
	}
	kvs = append(kvs,
		u("embedding_length", c.HiddenSize),
		u("block_count", c.NumHiddenLayers),
		u("feed_forward_length", c.IntermediateSize),
		u("attention.head_count", c.NumAttentionHeads),
		u("attention.head_count_kv", c.NumKeyValueHeads))
	// llama.cpp's converter leaves it out for gemma and gemma2 (whose
	// checkpoints use llama.cpp's default, 10000); writing it keeps a
	// checkpoint with another rope_theta right.
	if c.RopeTheta != nil {
		kvs = append(kvs, f("rope.freq_base", *c.RopeTheta))
	}
	if c.RMSNormEps != nil {
		kvs = append(kvs, f("attention.layer_norm_rms_epsilon", *c.RMSNormEps))
	}
	if n := c.experts(); n > 0 {
		kvs = append(kvs, u("expert_count", n))
	}
	if c.NumExpertsPerTok > 0 && c.experts() > 0 {
		kvs = append(kvs, u("expert_used_count", c.NumExpertsPerTok))
	}
	if a == "qwen3moe" && c.MoeIntermediateSize > 0 {
		kvs = append(kvs, u("expert_feed_forward_length", c.MoeIntermediateSize))
	}
	if c.HeadDim > 0 {
		kvs = append(kvs, u("attention.key_length", c.HeadDim), u("attention.value_length", c.HeadDim))
	}
	if a == "llama" {
		// the embedding's row count: llama.cpp sizes token_embd and output by it
		kvs = append(kvs, u("vocab_size", nVocab))
		kvs = append(kvs, u("rope.dimension_count", c.headDim()))
	}
	if typ, _ := ropeType(c.RopeScaling); typ == "linear" {
		if factor, ok := c.RopeScaling["factor"].(float64); ok {
			kvs = append(kvs, KV{a + ".rope.scaling.type", "linear"}, f("rope.scaling.factor", factor))
		}
	}
	if a == "gemma2" {
		if c.AttnLogitSoftcapping != nil {
			kvs = append(kvs, f("attn_logit_softcapping", *c.AttnLogitSoftcapping))
		}
		if c.FinalLogitSoftcapping != nil {
			kvs = append(kvs, f("final_logit_softcapping", *c.FinalLogitSoftcapping))
		}
		if c.SlidingWindow != nil {
			kvs = append(kvs, u("attention.sliding_window", *c.SlidingWindow))
		}
	}
	if a == "gemma3" {
		if c.FinalLogitSoftcapping != nil && *c.FinalLogitSoftcapping != 0 {
			kvs = append(kvs, f("final_logit_softcapping", *c.FinalLogitSoftcapping))
		}
		if c.SlidingWindow != nil && (c.SlidingWindowPattern == nil || *c.SlidingWindowPattern != 1) {
			kvs = append(kvs, u("attention.sliding_window", *c.SlidingWindow))
		}
	}
	return kvs
}

func ropeType(rs map[string]any) (string, bool) {
	if rs == nil {
		return "", false
	}
	if t, ok := rs["rope_type"].(string); ok {
		return strings.ToLower(t), true
	}
	if t, ok := rs["type"].(string); ok {
		return strings.ToLower(t), true
	}
	return "", false
}

// llama3RopeFactors is the rope_freqs tensor llama.cpp's LlamaModel
// generates for rope_type "llama3": one factor per frequency, [Dh/2].
func llama3RopeFactors(c *hfConfig) []float32 {
	base := 10000.0
	if c.RopeTheta != nil {
		base = *c.RopeTheta
	}
	get := func(k string, d float64) float64 {
		if v, ok := c.RopeScaling[k].(float64); ok {
			return v
		}
		return d
	}
	dim := c.headDim()
	factor := get("factor", 8)
	lowFreq := get("low_freq_factor", 1)
	highFreq := get("high_freq_factor", 4)
	oldCtx := get("original_max_position_embeddings", 8192)
	lowWavelen := oldCtx / lowFreq
	highWavelen := oldCtx / highFreq
	out := make([]float32, 0, dim/2)
	for i := 0; i < dim; i += 2 {
		// torch computes the frequencies in float32
		freq := float64(float32(1 / math.Pow(base, float64(float32(i)/float32(dim)))))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < highWavelen:
			out = append(out, 1)
		case wavelen > lowWavelen:
			out = append(out, float32(factor))
		default:
			smooth := (oldCtx/wavelen - lowFreq) / (highFreq - lowFreq)
			out = append(out, float32(1/((1-smooth)/factor+smooth)))
		}
	}
	return out
}

var layerRe = regexp.MustCompile(`^model\.layers\.(\d+)\.(.+)$`)
var expertRe = regexp.MustCompile(`^(block_sparse_moe|mlp)\.experts\.(\d+)\.(w1|w2|w3|gate_proj|up_proj|down_proj)\.weight$`)

// mapped is where one checkpoint tensor goes.
type mapped struct {
	name   string // llama.cpp tensor name
	block  int    // layer index, -1 for global tensors
	expert int    // expert index of an HF per-expert tensor, else -1
	skip   bool   // tensor llama.cpp does not use
}

var layerNames = map[string]string{
	"self_attn.q_proj":         "attn_q",
	"self_attn.k_proj":         "attn_k",
	"self_attn.v_proj":         "attn_v",
	"self_attn.o_proj":         "attn_output",
	"self_attn.q_norm":         "attn_q_norm",
	"self_attn.k_norm":         "attn_k_norm",
	"input_layernorm":          "attn_norm",
	"post_attention_layernorm": "ffn_norm",
	"mlp.gate_proj":            "ffn_gate",
	"mlp.up_proj":              "ffn_up",
	"mlp.down_proj":            "ffn_down",
	// MoE router and MLX's stacked experts ([E, out, in])
	"block_sparse_moe.gate":                 "ffn_gate_inp",
	"mlp.gate":                              "ffn_gate_inp",
	"block_sparse_moe.switch_mlp.gate_proj": "ffn_gate_exps",
	"block_sparse_moe.switch_mlp.up_proj":   "ffn_up_exps",
	"block_sparse_moe.switch_mlp.down_proj": "ffn_down_exps",
	"mlp.switch_mlp.gate_proj":              "ffn_gate_exps",
	"mlp.switch_mlp.up_proj":                "ffn_up_exps",
	"mlp.switch_mlp.down_proj":              "ffn_down_exps",
}

var sandwichNames = map[string]string{
	"post_attention_layernorm":   "post_attention_norm",
	"pre_feedforward_layernorm":  "ffn_norm",
	"post_feedforward_layernorm": "post_ffw_norm",
}

// expertNames maps HF per-expert projections (Mixtral's w1/w2/w3, Qwen MoE's
// gate/up/down_proj) to the stacked llama.cpp tensor.
var expertNames = map[string]string{
	"w1": "ffn_gate_exps", "gate_proj": "ffn_gate_exps",
	"w3": "ffn_up_exps", "up_proj": "ffn_up_exps",
	"w2": "ffn_down_exps", "down_proj": "ffn_down_exps",
}

// mapName maps an HF/MLX checkpoint key to its llama.cpp name.
func mapName(spec archSpec, name string) (mapped, error) {
	m := mapped{block: -1, expert: -1}
	// multimodal checkpoints (gemma3): keep the language model only
	if strings.HasPrefix(name, "vision_tower.") || strings.HasPrefix(name, "multi_modal_projector.") {
		m.skip = true
		return m, nil
	}
	name = strings.TrimPrefix(name, "language_model.")
	switch name {
	case "model.embed_tokens.weight":
		m.name = "token_embd.weight"
		return m, nil
	case "model.norm.weight":
		m.name = "output_norm.weight"
		return m, nil
	case "lm_head.weight":
		if spec.tiedOutput {
			m.skip = true
		} else {
			m.name = "output.weight"
		}
		return m, nil
	}
	sub := layerRe.FindStringSubmatch(name)
	if sub == nil {
		return m, fmt.Errorf("gguf: tensor %s has no llama.cpp name for %s", name, spec.gguf)
	}
	m.block, _ = strconv.Atoi(sub[1])
	rest := sub[2]
	if strings.HasSuffix(rest, "rotary_emb.inv_freq") {
		m.skip = true
		return m, nil
	}
	if e := expertRe.FindStringSubmatch(rest); e != nil {
		m.expert, _ = strconv.Atoi(e[2])
		m.name = fmt.Sprintf("blk.%d.%s.weight", m.block, expertNames[e[3]])
		return m, nil
	}
	base, suffix, ok := cutLast(rest)
	if !ok || (suffix != "weight" && suffix != "bias") {
		return m, fmt.Errorf("gguf: tensor %s has no llama.cpp name for %s", name, spec.gguf)
	}
	g, ok := "", false
	if spec.sandwichNorms {
		g, ok = sandwichNames[base]
	}
	if !ok {
		g, ok = layerNames[base]
	}
	if !ok {
		return m, fmt.Errorf("gguf: tensor %s has no llama.cpp name for %s", name, spec.gguf)
	}
	m.name = fmt.Sprintf("blk.%d.%s.%s", m.block, g, suffix)
	return m, nil
}

func cutLast(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// permuteRows reorders the rows of a q or k projection ([nHead*Dh, cols],
// or a bias with cols = 1) from HF's rotate-half layout to the interleaved
// pairs of llama.cpp's LLAMA rope: per head, view the Dh rows as [2, Dh/2]
// and transpose to [Dh/2, 2] (convert_hf_to_gguf.py's LlamaModel.permute).
func permuteRows(w []float32, nHead, rows, cols int) []float32 {
	out := make([]float32, len(w))
	dh := rows / nHead
	half := dh / 2
	for h := 0; h < nHead; h++ {
		for i := 0; i < 2; i++ {
			for j := 0; j < half; j++ {
				src := (h*dh + i*half + j) * cols
				dst := (h*dh + j*2 + i) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}
