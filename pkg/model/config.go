package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// Config is a model folder's config.json as the loader read it: the raw
// keys (each architecture decodes its own typed Config from them), the
// resolved model type, quantization and EOS ids.
type Config struct {
	Dir       string
	Path      string // config.json's path, for error messages
	ModelType string // as written in config.json (before aliases)
	// Raw holds every top-level key of config.json.
	Raw map[string]json.RawMessage
	// Quantization is the "quantization" entry (or quantization_config:
	// mlx_lm's older key, and OpenAI's quant_method "mxfp4"); nil for float
	// checkpoints.
	Quantization *Quantization
	// EOSTokenIDs: generation_config.json's eos_token_id when present
	// (replacing config.json's, as mlx_lm does), else config.json's.
	EOSTokenIDs []int
	// ComputeDType, when not nil, is the activation dtype (LoadOptions).
	ComputeDType *engine.DType

	exactQuantized bool
}

// ReadConfig reads dir/config.json and dir/generation_config.json.
func ReadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model config: %w", err)
	}
	c, err := parseConfig(dir, path, data)
	if err != nil {
		return nil, err
	}
	gpath := filepath.Join(dir, "generation_config.json")
	if gdata, err := os.ReadFile(gpath); err == nil {
		var g map[string]json.RawMessage
		// mlx_lm ignores an unreadable generation_config.json; so do we.
		if json.Unmarshal(gdata, &g) == nil {
			if ids, ok, err := eosIDs(g["eos_token_id"]); err == nil && ok {
				c.EOSTokenIDs = ids
			}
		}
	}
	return c, nil
}

// NewConfig makes a Config from config.json keys held in memory (tests
// and benchmarks that build models without files).
func NewConfig(keys map[string]any) (*Config, error) {
	data, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parseConfig("", "config.json", data)
}

func parseConfig(dir, path string, data []byte) (*Config, error) {
	c := &Config{Dir: dir, Path: path}
	var err error
	if err := json.Unmarshal(data, &c.Raw); err != nil {
		return nil, fmt.Errorf("%s: expected a JSON object: %w", path, err)
	}
	if _, ok := c.Raw["model_file"]; ok {
		return nil, fmt.Errorf("%s: \"model_file\" asks for custom Python model code, which mlxgo cannot run; use a checkpoint of a supported model_type", path)
	}
	if err := c.Get("model_type", &c.ModelType); err != nil {
		return nil, err
	}
	if c.ModelType == "" {
		return nil, fmt.Errorf("%s: missing key \"model_type\"", path)
	}
	if raw, ok := c.Raw["quantization"]; ok && string(raw) != "null" {
		if c.Quantization, err = ParseQuantization(raw); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else if raw, ok := c.Raw["quantization_config"]; ok && string(raw) != "null" {
		var qc map[string]any
		_ = json.Unmarshal(raw, &qc)
		m, isHF := qc["quant_method"].(string)
		switch {
		case isHF && m == "mxfp4":
			// OpenAI's MXFP4 checkpoints (gpt-oss), as mlx_lm loads them:
			// mxfp4 for every layer with scales, the rest in float.
			c.Quantization = &Quantization{Default: QuantSpec{GroupSize: 32, Bits: 4, Mode: "mxfp4"}, Layers: map[string]*QuantSpec{}}
		case isHF:
			return nil, fmt.Errorf("%s: quantization_config.quant_method %q is not supported (convert the model with `mlxgo convert` first)", path, m)
		default:
			if c.Quantization, err = ParseQuantization(raw); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	if ids, ok, err := eosIDs(c.Raw["eos_token_id"]); err != nil {
		return nil, fmt.Errorf("%s: eos_token_id: %w", path, err)
	} else if ok {
		c.EOSTokenIDs = ids
	}
	return c, nil
}

func eosIDs(raw json.RawMessage) ([]int, bool, error) {
	if raw == nil || string(raw) == "null" {
		return nil, false, nil
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}, true, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, false, fmt.Errorf("expected an integer or a list of integers")
	}
	return many, true, nil
}

// Has reports whether config.json has key with a non-null value.
func (c *Config) Has(key string) bool {
	raw, ok := c.Raw[key]
	return ok && string(raw) != "null"
}

// Get decodes key into v; a missing or null key leaves v unchanged.
func (c *Config) Get(key string, v any) error {
	if !c.Has(key) {
		return nil
	}
	if err := json.Unmarshal(c.Raw[key], v); err != nil {
		return fmt.Errorf("%s: key %q: %w", c.Path, key, err)
	}
	return nil
}

// Decode fills an architecture's Config (json tags = config.json keys)
// and checks that every key in required is present.
func (c *Config) Decode(v any, required ...string) error {
	var missing []string
	for _, k := range required {
		if !c.Has(k) {
			missing = append(missing, fmt.Sprintf("%q", k))
		}
	}
	if len(missing) == 1 {
		return fmt.Errorf("%s: missing key %s", c.Path, missing[0])
	}
	if len(missing) > 1 {
		return fmt.Errorf("%s: missing keys %s", c.Path, strings.Join(missing, ", "))
	}
	data, err := json.Marshal(c.Raw)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", c.Path, err)
	}
	return nil
}

// ContextLength is the model's position limit, max_position_embeddings
// (0 when config.json does not say): generate refuses longer prompts.
func (c *Config) ContextLength() int {
	var n int
	if c.Get("max_position_embeddings", &n) != nil {
		return 0
	}
	return n
}

// Rope parses the rope settings (either spelling) for a layer type
// ("" for models with one kind of layer).
func (c *Config) Rope(layerType string, defaultTheta float64) (RopeConfig, error) {
	rc, err := ParseRope(c.Raw, layerType, defaultTheta)
	if err != nil {
		return rc, fmt.Errorf("%s: %w", c.Path, err)
	}
	return rc, nil
}

// Errorf makes an error naming config.json.
func (c *Config) Errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s", c.Path, fmt.Sprintf(format, args...))
}

// CheckDims validates the sizes every decoder transformer config has, with
// one set of messages for all architectures: positive hidden size, layer
// count, intermediate size and vocabulary; query heads a positive multiple
// of the key/value heads; an even, positive head dim (RoPE rotates pairs).
func (c *Config) CheckDims(hidden, layers, intermediate, vocab, heads, kvHeads, headDim int) error {
	switch {
	case hidden <= 0 || layers <= 0 || intermediate <= 0 || vocab <= 0:
		return c.Errorf("hidden_size, num_hidden_layers, intermediate_size and vocab_size must be positive")
	case heads <= 0 || kvHeads <= 0 || heads%kvHeads != 0:
		return c.Errorf("num_attention_heads %d must be a positive multiple of num_key_value_heads %d", heads, kvHeads)
	case headDim <= 0 || headDim%2 != 0:
		return c.Errorf("head_dim %d must be positive and even", headDim)
	}
	return nil
}
