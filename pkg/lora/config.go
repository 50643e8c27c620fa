package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/mlxgo/mlxgo/pkg/optim"
	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// Parameters are the lora_parameters entry.
type Parameters struct {
	Rank    int      `json:"rank"`
	Dropout float64  `json:"dropout"`
	Scale   float64  `json:"scale"`
	Keys    []string `json:"keys,omitempty"`
}

// Config is the merged training configuration: mlx_lm's argument namespace,
// keyed exactly as its YAML files and adapter_config.json.
type Config struct {
	Model                 string                    `json:"model"`
	Train                 bool                      `json:"train"`
	Test                  bool                      `json:"test"`
	Data                  string                    `json:"data"`
	FineTuneType          string                    `json:"fine_tune_type"`
	Optimizer             string                    `json:"optimizer"`
	OptimizerConfig       map[string]map[string]any `json:"optimizer_config"`
	Seed                  int                       `json:"seed"`
	NumLayers             int                       `json:"num_layers"`
	BatchSize             int                       `json:"batch_size"`
	Iters                 int                       `json:"iters"`
	ValBatches            int                       `json:"val_batches"`
	LearningRate          float64                   `json:"learning_rate"`
	StepsPerReport        int                       `json:"steps_per_report"`
	StepsPerEval          int                       `json:"steps_per_eval"`
	ResumeAdapterFile     *string                   `json:"resume_adapter_file"`
	AdapterPath           string                    `json:"adapter_path"`
	SaveEvery             int                       `json:"save_every"`
	TestBatches           int                       `json:"test_batches"`
	MaxSeqLength          int                       `json:"max_seq_length"`
	GradCheckpoint        bool                      `json:"grad_checkpoint"`
	GradAccumulationSteps int                       `json:"grad_accumulation_steps"`
	ClearCacheThreshold   int64                     `json:"clear_cache_threshold"`
	LRSchedule            *optim.ScheduleConfig     `json:"lr_schedule"`
	LoRAParameters        *Parameters               `json:"lora_parameters"`
	MaskPrompt            bool                      `json:"mask_prompt"`
	ReportTo              *string                   `json:"report_to"`
	ProjectName           *string                   `json:"project_name"`
	TrustRemoteCode       bool                      `json:"trust_remote_code"`
	ConfigFile            *string                   `json:"config"`
	TextFeature           string                    `json:"text_feature"`
	PromptFeature         string                    `json:"prompt_feature"`
	CompletionFeature     string                    `json:"completion_feature"`
	ChatFeature           string                    `json:"chat_feature"`

	// All holds every key (YAML extras included) in mlx_lm's order, for
	// adapter_config.json.
	All *pyjson.Object `json:"-"`
	// Notes are messages for the user about how the configuration was read.
	Notes []string `json:"-"`
}

// Defaults returns mlx_lm's CONFIG_DEFAULTS in its order.
func Defaults() *pyjson.Object {
	d := pyjson.NewObject()
	opt := pyjson.NewObject()
	for _, name := range []string{"adam", "adamw", "muon", "sgd", "adafactor"} {
		opt.Set(name, pyjson.NewObject())
	}
	lp := pyjson.NewObject()
	lp.Set("rank", pyjson.Int("8"))
	lp.Set("dropout", 0.0)
	lp.Set("scale", 20.0)
	for _, kv := range []struct {
		k string
		v any
	}{
		{"model", "Qwen/Qwen3-0.6b"}, {"train", false}, {"fine_tune_type", "lora"},
		{"optimizer", "adam"}, {"optimizer_config", opt}, {"data", "mlx-community/WikiSQL"},
		{"seed", pyjson.Int("0")}, {"num_layers", pyjson.Int("16")}, {"batch_size", pyjson.Int("4")},
		{"iters", pyjson.Int("1000")}, {"val_batches", pyjson.Int("25")}, {"learning_rate", 1e-5},
		{"steps_per_report", pyjson.Int("10")}, {"steps_per_eval", pyjson.Int("200")},
		{"resume_adapter_file", nil}, {"adapter_path", "adapters"}, {"save_every", pyjson.Int("100")},
		{"test", false}, {"test_batches", pyjson.Int("500")}, {"max_seq_length", pyjson.Int("2048")},
		{"config", nil}, {"grad_checkpoint", false}, {"grad_accumulation_steps", pyjson.Int("1")},
		{"clear_cache_threshold", pyjson.Int("0")}, {"lr_schedule", nil}, {"lora_parameters", lp},
		{"mask_prompt", false}, {"report_to", nil}, {"project_name", nil}, {"trust_remote_code", false},
	} {
		d.Set(kv.k, kv.v)
	}
	return d
}

// MergeConfig applies mlx_lm's precedence: command-line values (cli, only
// the flags the user set, keyed by config name) over the YAML file at
// yamlPath (if any) over the defaults. A key counts as unset when null.
func MergeConfig(cli *pyjson.Object, yamlPath string) (*Config, error) {
	all := pyjson.NewObject()
	if cli != nil {
		for _, k := range cli.Keys {
			all.Set(k, cli.Values[k])
		}
	}
	if yamlPath != "" {
		y, err := readYAML(yamlPath)
		if err != nil {
			return nil, err
		}
		for _, k := range y.Keys {
			if v, ok := all.Get(k); !ok || v == nil {
				all.Set(k, y.Values[k])
			}
		}
		all.Set("config", yamlPath)
	}
	def := Defaults()
	for _, k := range def.Keys {
		if v, ok := all.Get(k); !ok || v == nil {
			all.Set(k, def.Values[k])
		}
	}
	c := &Config{All: all}
	if err := c.fillLoRAParameters(); err != nil {
		return nil, err
	}
	raw, err := pyjson.Marshal(all, pyjson.Options{})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return c, c.validate()
}

// fillLoRAParameters completes lora_parameters with the defaults and turns
// a PEFT-style alpha into mlx_lm's scale (scale = alpha / rank), with a note.
func (c *Config) fillLoRAParameters() error {
	v, _ := c.All.Get("lora_parameters")
	lp, ok := v.(*pyjson.Object)
	if !ok {
		return fmt.Errorf("configuration: lora_parameters must be a mapping with rank, scale, dropout")
	}
	def := Defaults().Values["lora_parameters"].(*pyjson.Object)
	alpha, hasAlpha := lp.Get("alpha")
	_, hasScale := lp.Get("scale")
	for _, k := range def.Keys {
		if _, ok := lp.Get(k); !ok {
			lp.Set(k, def.Values[k])
		}
	}
	if hasAlpha {
		a, err := number(alpha)
		if err != nil {
			return fmt.Errorf("configuration: lora_parameters.alpha: %w", err)
		}
		r, _ := number(lp.Values["rank"])
		lp.Delete("alpha")
		if hasScale {
			c.Notes = append(c.Notes, fmt.Sprintf("Note: lora_parameters has both alpha (%g) and scale; using scale %g and ignoring alpha, as mlx_lm does.", a, mustNumber(lp.Values["scale"])))
		} else {
			if r == 0 {
				return fmt.Errorf("configuration: lora_parameters.rank must be positive to convert alpha to scale")
			}
			lp.Set("scale", a/r)
			c.Notes = append(c.Notes, fmt.Sprintf("Note: converted lora_parameters.alpha %g to scale %g (alpha / rank %g): mlx_lm multiplies the LoRA term by scale only.", a, a/r, r))
		}
	}
	return nil
}

func mustNumber(v any) float64 { f, _ := number(v); return f }

func number(v any) (float64, error) {
	switch t := v.(type) {
	case float64:
		return t, nil
	case pyjson.Int:
		return strconv.ParseFloat(string(t), 64)
	}
	return 0, fmt.Errorf("expected a number, got %v", v)
}

func (c *Config) validate() error {
	switch c.FineTuneType {
	case "lora", "dora", "full":
	default:
		return fmt.Errorf("fine_tune_type %q: expected lora, dora or full", c.FineTuneType)
	}
	switch c.Optimizer {
	case "adam", "adamw", "muon", "sgd", "adafactor":
	default:
		return fmt.Errorf("optimizer %q: expected adam, adamw, muon, sgd or adafactor", c.Optimizer)
	}
	pos := []struct {
		name string
		v    int
	}{{"batch_size", c.BatchSize}, {"iters", c.Iters}, {"steps_per_report", c.StepsPerReport},
		{"steps_per_eval", c.StepsPerEval}, {"save_every", c.SaveEvery}, {"max_seq_length", c.MaxSeqLength},
		{"grad_accumulation_steps", c.GradAccumulationSteps}}
	for _, p := range pos {
		if p.v < 1 {
			return fmt.Errorf("%s must be at least 1, got %d", p.name, p.v)
		}
	}
	if c.NumLayers < -1 || c.NumLayers == 0 {
		return fmt.Errorf("num_layers must be positive or -1 (all), got %d", c.NumLayers)
	}
	if lp := c.LoRAParameters; c.FineTuneType != "full" && (lp.Rank < 1 || lp.Dropout < 0 || lp.Dropout >= 1 || math.IsNaN(lp.Scale)) {
		return fmt.Errorf("lora_parameters: rank must be >= 1 and dropout in [0, 1), got rank %d, dropout %g", lp.Rank, lp.Dropout)
	}
	if !c.Train && !c.Test {
		return fmt.Errorf("must provide at least one of --train or --test")
	}
	if c.LRSchedule != nil {
		if _, err := c.LRSchedule.Build(); err != nil {
			return err
		}
	}
	return nil
}

// readYAML loads a YAML mapping keeping key order.
func readYAML(path string) (*pyjson.Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-c/--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return pyjson.NewObject(), nil
	}
	v, err := yamlValue(doc.Content[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, fmt.Errorf("%s: expected a mapping of option names to values", path)
	}
	return o, nil
}

func yamlValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		o := pyjson.NewObject()
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := yamlValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			o.Set(n.Content[i].Value, v)
		}
		return o, nil
	case yaml.SequenceNode:
		arr := []any{}
		for _, c := range n.Content {
			v, err := yamlValue(c)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		return arr, nil
	case yaml.AliasNode:
		return yamlValue(n.Alias)
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			err := n.Decode(&b)
			return b, err
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				return nil, fmt.Errorf("line %d: %w", n.Line, err)
			}
			return pyjson.Int(strconv.FormatInt(i, 10)), nil
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, fmt.Errorf("line %d: %w", n.Line, err)
			}
			return f, nil
		default:
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// WriteAdapterConfig writes adapter_config.json into dir as mlx_lm's
// save_config does (top-level keys sorted, 4-space indent), atomically.
func WriteAdapterConfig(dir string, c *Config) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := pyjson.Marshal(sortedTop(c.All), pyjson.Options{Indent: 4})
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "adapter_config.json"), data)
}

func sortedTop(o *pyjson.Object) *pyjson.Object {
	keys := append([]string(nil), o.Keys...)
	slices.Sort(keys)
	out := pyjson.NewObject()
	for _, k := range keys {
		out.Set(k, o.Values[k])
	}
	return out
}

// writeAtomic writes data to a temp file beside path and renames it.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil { // os.CreateTemp makes 0600 files
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
