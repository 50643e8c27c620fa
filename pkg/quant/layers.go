package quant

import (
	"fmt"
	"strconv"
	"strings"
)

// LayerKind is the kind of module a weight belongs to. Only modules with
// a to_quantized method in MLX are quantizable: Linear, Embedding and the
// MoE SwitchLinear expert stacks.
type LayerKind int

const (
	NotQuantizable LayerKind = iota // norms, biases, convolutions, SSM parameters, …
	Linear                          // nn.Linear: attention, MLP, lm_head, MoE routers
	Embedding                       // nn.Embedding (becomes QuantizedEmbedding)
	SwitchLinear                    // MoE expert stack [E, out, in]
)

func (k LayerKind) String() string {
	switch k {
	case Linear:
		return "Linear"
	case Embedding:
		return "Embedding"
	case SwitchLinear:
		return "SwitchLinear"
	}
	return "not quantizable"
}

// Layer is one module that may be quantized.
type Layer struct {
	Path  string // module path: the weight's name without ".weight"
	Kind  LayerKind
	Shape []int // the weight's shape; the last axis is the one grouped
}

// GuessLayer infers the module kind of a weight from its name and shape,
// for callers without a model definition: a ".weight" of rank 2 is a
// Linear (an Embedding when its path says embed/wte/wpe), of rank 3 under
// switch_mlp/experts a SwitchLinear, and anything under a norm or conv, or
// of another rank, is not quantizable. Model code that knows its modules
// should build Layers itself.
func GuessLayer(name string, shape []int) Layer {
	path, ok := strings.CutSuffix(name, ".weight")
	l := Layer{Path: path, Shape: shape}
	if !ok {
		return l
	}
	last := path[strings.LastIndexByte(path, '.')+1:]
	low := strings.ToLower(last)
	switch {
	case strings.Contains(low, "norm"), strings.Contains(low, "conv"):
	case len(shape) == 2 && (strings.Contains(low, "embed") || low == "wte" || low == "wpe"):
		l.Kind = Embedding
	case len(shape) == 2:
		l.Kind = Linear
	case len(shape) == 3 && (strings.Contains(path, "switch_mlp") || strings.Contains(path, "experts")):
		l.Kind = SwitchLinear
	}
	return l
}

// plainGates lists, per model type (after mlx_lm's remapping), the module
// path suffixes whose 2-D weight looks like a Linear's but belongs to a
// module without to_quantized in mlx_lm, so nn.quantize never touches it:
// the MoEGate routers of DeepSeek-V3 and GLM-4-MoE (mlp.gate.weight, next
// to e_score_correction_bias).
var plainGates = map[string][]string{
	"deepseek_v3": {"mlp.gate"},
	"glm4_moe":    {"mlp.gate"},
}

func plainGate(modelType, path string) bool {
	for _, sfx := range plainGates[modelType] {
		if strings.HasSuffix(path, sfx) {
			return true
		}
	}
	return false
}

// ModelLayer is GuessLayer for a weight of a model of modelType (after
// mlx_lm's remapping): modules that are plain parameters in mlx_lm's model
// (DeepSeek-V3's and GLM-4-MoE's MoEGate router) are not quantizable.
func ModelLayer(modelType, name string, shape []int) Layer {
	l := GuessLayer(name, shape)
	if plainGate(modelType, l.Path) {
		l.Kind = NotQuantizable
	}
	return l
}

// Choice is a predicate's answer for one layer, like the False, True or
// dict a Python quant_predicate returns.
type Choice struct {
	Skip bool // leave the layer in float (False)
	// Params, when not nil, are explicit to_quantized arguments written as
	// the layer's config entry: keys "group_size", "bits", "mode" with int,
	// string or nil (JSON null) values; a missing or nil key takes the
	// mode's default. nil Params means the global settings (True).
	Params map[string]any
}

// Predicate chooses how to quantize a layer.
type Predicate func(l Layer) (Choice, error)

// Settings are resolved quantization parameters.
type Settings struct {
	GroupSize int
	Bits      int
	Mode      string
}

// Options returns the encoder options for s.
func (s Settings) Options() Options { return Options{Bits: s.Bits, GroupSize: s.GroupSize} }

// Decision is what to do with one layer.
type Decision struct {
	Quantize bool
	Settings
}

// Plan decides layer by layer as mlx_lm's quantize_model does and collects
// the config.json "quantization" entry.
type Plan struct {
	Global      Settings
	predicate   Predicate
	config      map[string]any
	fineGrained bool
}

// NewPlan starts a plan. groupSize and bits 0 mean the mode defaults
// (ModeDefaults: affine 64/4, mxfp4 32/4, nvfp4 16/4, mxfp8 32/8); mode ""
// means "affine". A float mode takes only its own group size and bits, as
// mx.quantize. pred is a recipe (MixedRecipe) or the model's own predicate
// (ModelPredicate), or nil; a predicate's explicit params without a "mode"
// key are affine whatever the global mode (to_quantized's default), as the
// 8-bit routers of mlx_lm's MoE models in an mxfp4 conversion.
// existing is the source config's "quantization" object when re-converting
// a partly quantized model: it is kept (its global values too, as mlx_lm
// does) and every layer quantized now gets an explicit entry.
func NewPlan(groupSize, bits int, mode string, pred Predicate, existing map[string]any) (*Plan, error) {
	if mode == "" {
		mode = "affine"
	}
	dg, db, err := ModeDefaults(mode)
	if err != nil {
		return nil, err
	}
	if groupSize == 0 {
		groupSize = dg
	}
	if bits == 0 {
		bits = db
	}
	if err := ValidateMode(mode, bits, groupSize); err != nil {
		return nil, err
	}
	p := &Plan{Global: Settings{GroupSize: groupSize, Bits: bits, Mode: mode}, predicate: pred}
	if existing != nil {
		p.fineGrained = true
		p.config = make(map[string]any, len(existing))
		for k, v := range existing {
			p.config[k] = v
		}
	} else {
		p.config = map[string]any{"group_size": groupSize, "bits": bits, "mode": mode}
	}
	return p, nil
}

// Decide says whether and how to quantize l, recording its config entry.
// A module is quantized iff it is quantizable, its last dimension is a
// multiple of the global group size and the predicate does not skip it.
func (p *Plan) Decide(l Layer) (Decision, error) {
	if l.Kind == NotQuantizable || len(l.Shape) == 0 || l.Shape[len(l.Shape)-1]%p.Global.GroupSize != 0 {
		return Decision{}, nil
	}
	var c Choice
	if p.predicate != nil {
		var err error
		if c, err = p.predicate(l); err != nil {
			return Decision{}, err
		}
	}
	if c.Skip {
		return Decision{}, nil
	}
	if c.Params == nil {
		if p.fineGrained {
			p.config[l.Path] = map[string]any{"group_size": p.Global.GroupSize, "bits": p.Global.Bits, "mode": p.Global.Mode}
		}
		return Decision{Quantize: true, Settings: p.Global}, nil
	}
	s, err := resolveParams(c.Params)
	if err != nil {
		return Decision{}, fmt.Errorf("quant: layer %s: %w", l.Path, err)
	}
	if in := l.Shape[len(l.Shape)-1]; in%s.GroupSize != 0 {
		return Decision{}, fmt.Errorf("quant: layer %s: last dimension %d is not a multiple of its group size %d", l.Path, in, s.GroupSize)
	}
	entry := make(map[string]any, len(c.Params))
	for k, v := range c.Params {
		entry[k] = v
	}
	p.config[l.Path] = entry
	return Decision{Quantize: true, Settings: s}, nil
}

// resolveParams applies MLX's defaults for the mode to explicit params.
func resolveParams(m map[string]any) (Settings, error) {
	s := Settings{Mode: "affine"}
	if v, ok := m["mode"]; ok && v != nil {
		str, ok := v.(string)
		if !ok {
			return s, fmt.Errorf("mode %v is not a string", v)
		}
		s.Mode = str
	}
	var err error
	if s.GroupSize, s.Bits, err = ModeDefaults(s.Mode); err != nil {
		return s, err
	}
	for key, dst := range map[string]*int{"group_size": &s.GroupSize, "bits": &s.Bits} {
		v, ok := m[key]
		if !ok || v == nil {
			continue
		}
		n, ok := v.(int)
		if !ok {
			return s, fmt.Errorf("%s %v is not an integer", key, v)
		}
		*dst = n
	}
	return s, ValidateMode(s.Mode, s.Bits, s.GroupSize)
}

// Config is the "quantization" object for config.json; mlx_lm writes the
// same object again as "quantization_config".
func (p *Plan) Config() map[string]any { return p.config }

// LayerLocation is the position of the layer number in a module path, as
// mlx_lm finds it from the first module whose path holds "down_proj": the
// index of the first all-digit component, or the last index if none is.
func LayerLocation(downProjPath string) int {
	parts := strings.Split(downProjPath, ".")
	for i, p := range parts {
		if p != "" && strings.Trim(p, "0123456789") == "" {
			return i
		}
	}
	return len(parts) - 1
}

// Recipes are the --quant-predicate names mlx_lm accepts.
var Recipes = []string{"mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"}

// MixedRecipe is mlx_lm's mixed_quant_predicate_builder (after llama.cpp's
// Q4_K_M): with L = numLayers and i the layer number of a path (0 when the
// path has no component at layerLocation), layer i "uses more bits" if
// i < L/8, i ≥ 7L/8 or (i − L/8) mod 3 = 2 (integer division). There
// v_proj, v_a_proj, v_b_proj and down_proj get the high width; lm_head
// always does; every other layer the low width. Every layer gets an
// explicit entry {"group_size": groupSize, "bits": b, "mode": "affine"},
// with group_size null when groupSize is 0 (--q-group-size not given).
func MixedRecipe(recipe string, numLayers, layerLocation, groupSize int) (Predicate, error) {
	low, high := 0, 6
	switch recipe {
	case "mixed_2_6":
		low = 2
	case "mixed_3_4":
		low, high = 3, 4
	case "mixed_3_6":
		low = 3
	case "mixed_4_6":
		low = 4
	default:
		return nil, fmt.Errorf("quant: invalid quant recipe %q (want one of %s)", recipe, strings.Join(Recipes, ", "))
	}
	if numLayers <= 0 {
		return nil, fmt.Errorf("quant: recipe %s needs the number of layers, got %d", recipe, numLayers)
	}
	var gs any
	if groupSize != 0 {
		gs = groupSize
	}
	params := func(bits int) Choice {
		return Choice{Params: map[string]any{"group_size": gs, "bits": bits, "mode": "affine"}}
	}
	L := numLayers
	return func(l Layer) (Choice, error) {
		parts := strings.Split(l.Path, ".")
		index := 0
		if len(parts) > layerLocation {
			n, err := strconv.Atoi(parts[layerLocation])
			if err != nil {
				return Choice{}, fmt.Errorf("quant: recipe %s: path %s has %q where the layer number should be", recipe, l.Path, parts[layerLocation])
			}
			index = n
		}
		more := index < L/8 || index >= 7*L/8 || floorMod(index-L/8, 3) == 2
		p := l.Path
		switch {
		case (strings.Contains(p, "v_proj") || strings.Contains(p, "v_a_proj") || strings.Contains(p, "v_b_proj")) && more:
			return params(high), nil
		case strings.Contains(p, "down_proj") && more:
			return params(high), nil
		case strings.Contains(p, "lm_head"):
			return params(high), nil
		}
		return params(low), nil
	}, nil
}

// floorMod is Python's % for a positive modulus.
func floorMod(a, m int) int { return ((a % m) + m) % m }

// router8 is the override mlx_lm's MoE models give their routers.
func router8() Choice { return Choice{Params: map[string]any{"group_size": 64, "bits": 8}} }

// ModelPredicate is the quant_predicate of an mlx_lm model (config.json
// model_type, after mlx_lm's remapping), or nil when it has none: MoE
// routers and gates stay at 8 bits, group 64. cfg is the parsed config.json,
// consulted where the predicate depends on it. For deepseek_v3 and
// glm4_moe, which have no quant_predicate, it skips the MoEGate router
// (mlx_lm cannot quantize that module; see ModelLayer), so a caller that
// guesses layers by name alone still leaves it in float.
func ModelPredicate(modelType string, cfg map[string]any) Predicate {
	if _, ok := plainGates[modelType]; ok {
		return func(l Layer) (Choice, error) {
			return Choice{Skip: plainGate(modelType, l.Path)}, nil
		}
	}
	suffix := func(ends ...string) Predicate {
		return func(l Layer) (Choice, error) {
			for _, e := range ends {
				if strings.HasSuffix(l.Path, e) {
					return router8(), nil
				}
			}
			return Choice{}, nil
		}
	}
	contains := func(sub string) Predicate {
		return func(l Layer) (Choice, error) {
			if strings.Contains(l.Path, sub) {
				return router8(), nil
			}
			return Choice{}, nil
		}
	}
	switch modelType {
	case "Klear", "kimi_linear", "mellum", "qwen3_moe", "qwen3_vl_moe":
		return suffix("mlp.gate")
	case "afmoe":
		return contains("router.gate")
	case "bailing_moe", "bailing_moe_linear":
		return suffix("mlp.gate.gate_proj")
	case "gemma4", "gemma4_text", "gemma4_unified":
		return suffix("router.proj")
	case "gpt_oss", "jamba":
		return suffix("router")
	case "granitemoe":
		return suffix("block_sparse_moe.router.layer")
	case "granitemoehybrid":
		if truthy(cfg["num_local_experts"]) {
			return suffix("router.layer")
		}
		return nil
	case "lfm2_moe":
		return suffix("feed_forward.gate")
	case "longcat_flash", "longcat_flash_ngram":
		return suffix("classifier")
	case "minimax", "minimax_m2":
		return suffix("block_sparse_moe.gate")
	case "qwen3_next":
		return suffix("mlp.gate", "shared_expert_gate")
	case "qwen3_5", "qwen3_5_moe":
		text := cfg
		if tc, ok := cfg["text_config"].(map[string]any); ok {
			text = tc
		}
		if n, ok := number(text["num_experts"]); ok && n > 0 {
			return suffix("mlp.gate", "shared_expert_gate")
		}
		return nil
	case "rwkv7":
		return func(l Layer) (Choice, error) {
			if strings.Contains(l.Path, "lora.2") || strings.Contains(l.Path, "embeddings") {
				return Choice{Params: map[string]any{"bits": 8}}, nil
			}
			return Choice{}, nil
		}
	case "step3p5":
		return contains("mlp.gate.gate")
	}
	return nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// truthy is Python's bool() for a JSON value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	n, ok := number(v)
	return !ok || n != 0
}

// PackedParams is what a packed uint32 weight of shape packed counts in
// mlx_lm's total_parameters: its elements unpacked, numel·32/bits.
func PackedParams(packed []int, bits int) int64 {
	n := int64(1)
	for _, d := range packed {
		n *= int64(d)
	}
	return n * 32 / int64(bits)
}
