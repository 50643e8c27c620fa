package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// Tensor is a small float32 tensor of an adapter.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Adapter is a trained adapter in mlx_lm's terms: for lora/dora, tensors
// named "<module path>.lora_a" [in, r], ".lora_b" [r, out] and (DoRA)
// ".m" [out]; for full fine-tuning, plain parameter names.
type Adapter struct {
	FineTuneType string // lora, dora or full
	NumLayers    int
	Parameters   Parameters
	Tensors      map[string]Tensor
	// Source says where it came from ("mlx" or "peft").
	Source string
}

// Modules returns the module paths the adapter wraps (lora/dora), sorted.
func (a *Adapter) Modules() []string {
	seen := map[string]bool{}
	for name := range a.Tensors {
		for _, suf := range []string{".lora_a", ".lora_b", ".m"} {
			if p, ok := strings.CutSuffix(name, suf); ok {
				seen[p] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// AdapterFile is the file mlx_lm loads and writes in an adapter folder.
const AdapterFile = "adapters.safetensors"

// CheckpointName is mlx_lm's periodic checkpoint file name.
func CheckpointName(iteration int) string { return fmt.Sprintf("%07d_adapters.safetensors", iteration) }

// LoadAdapter reads an adapter folder: mlx_lm's adapter_config.json +
// adapters.safetensors, or a Hugging Face PEFT folder (adapter_config.json
// with "peft_type" + adapter_model.safetensors), which it converts
// (lora_a = Aᵀ, lora_b = Bᵀ, scale = lora_alpha/r, or alpha/√r for rsLoRA).
func LoadAdapter(dir string) (*Adapter, error) {
	cfgPath := filepath.Join(dir, "adapter_config.json")
	raw, err := os.ReadFile(cfgPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("adapter %s: no adapter_config.json (expected an mlx_lm or PEFT adapter folder)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", cfgPath, err)
	}
	if _, ok := probe["peft_type"]; ok {
		return loadPEFT(dir, raw)
	}
	var cfg struct {
		FineTuneType string      `json:"fine_tune_type"`
		NumLayers    *int        `json:"num_layers"`
		LoraLayers   *int        `json:"lora_layers"` // before mlx-examples PR #903
		Params       *Parameters `json:"lora_parameters"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	a := &Adapter{FineTuneType: cfg.FineTuneType, Source: "mlx"}
	if a.FineTuneType == "" {
		a.FineTuneType = "lora"
	}
	switch {
	case cfg.NumLayers != nil:
		a.NumLayers = *cfg.NumLayers
	case cfg.LoraLayers != nil:
		a.NumLayers = *cfg.LoraLayers
	default:
		return nil, fmt.Errorf("%s: missing num_layers", cfgPath)
	}
	if a.FineTuneType != "full" {
		if cfg.Params == nil {
			return nil, fmt.Errorf("%s: missing lora_parameters", cfgPath)
		}
		a.Parameters = *cfg.Params
	}
	switch a.FineTuneType {
	case "lora", "dora", "full":
	default:
		return nil, fmt.Errorf("%s: fine_tune_type %q: expected lora, dora or full", cfgPath, a.FineTuneType)
	}
	a.Tensors, err = readTensors(filepath.Join(dir, AdapterFile))
	if err != nil {
		return nil, err
	}
	if a.FineTuneType != "full" {
		for name := range a.Tensors {
			if !strings.HasSuffix(name, ".lora_a") && !strings.HasSuffix(name, ".lora_b") && !strings.HasSuffix(name, ".m") {
				return nil, fmt.Errorf("%s: tensor %q is not an adapter weight (expected names ending in .lora_a, .lora_b or .m)", filepath.Join(dir, AdapterFile), name)
			}
		}
	}
	return a, a.checkPairs(filepath.Join(dir, AdapterFile))
}

// checkPairs makes sure every wrapped module has both matrices of matching rank.
func (a *Adapter) checkPairs(file string) error {
	if a.FineTuneType == "full" {
		return nil
	}
	for _, p := range a.Modules() {
		la, okA := a.Tensors[p+".lora_a"]
		lb, okB := a.Tensors[p+".lora_b"]
		if !okA || !okB {
			return fmt.Errorf("%s: module %s has only one of lora_a and lora_b", file, p)
		}
		if len(la.Shape) < 2 || len(lb.Shape) < 2 {
			return fmt.Errorf("%s: module %s: lora_a %v and lora_b %v must be matrices", file, p, la.Shape, lb.Shape)
		}
		// Linear: a [in, r], b [r, out]; switch (MoE): a [E, r, in], b [E, out, r].
		ra := la.Shape[len(la.Shape)-1]
		rb := lb.Shape[len(lb.Shape)-2]
		if len(la.Shape) == 3 {
			ra, rb = la.Shape[1], lb.Shape[2]
		}
		if ra != rb {
			return fmt.Errorf("%s: module %s: lora_a %v and lora_b %v disagree on the rank", file, p, la.Shape, lb.Shape)
		}
		if m, ok := a.Tensors[p+".m"]; ok && a.FineTuneType == "dora" {
			out := lb.Shape[len(lb.Shape)-1]
			if len(m.Shape) != 1 || m.Shape[0] != out {
				return fmt.Errorf("%s: module %s: m %v, expected [%d]", file, p, m.Shape, out)
			}
		}
	}
	return nil
}

func readTensors(path string) (map[string]Tensor, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("adapter weights %s not found", path)
		}
		return nil, err
	}
	defer f.Close()
	out := map[string]Tensor{}
	for _, name := range f.Names() {
		t, err := f.Tensor(name)
		if err != nil {
			return nil, err
		}
		info, _ := f.Info(name)
		data, err := toFloat32(t, info)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %s: %w", path, name, err)
		}
		out[name] = Tensor{Shape: append([]int(nil), info.Shape...), Data: data}
	}
	return out, nil
}

func toFloat32(t safetensors.Tensor, info safetensors.TensorInfo) ([]float32, error) {
	switch info.DType {
	case safetensors.F32:
		v, err := t.Float32s()
		return append([]float32(nil), v...), err
	case safetensors.BF16, safetensors.F16:
		h, err := t.Uint16s()
		if err != nil {
			return nil, err
		}
		kind := kernels.BF16
		if info.DType == safetensors.F16 {
			kind = kernels.F16
		}
		out := make([]float32, len(h))
		kernels.HalfToF32Slice(out, h, kind)
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s: expected F32, BF16 or F16", info.DType)
}

var peftKey = regexp.MustCompile(`^(?:base_model\.model\.)?(.+)\.(lora_A|lora_B)(?:\.default)?\.weight$|^(?:base_model\.model\.)?(.+)\.lora_magnitude_vector(?:\.default)?(?:\.weight)?$`)

var layerIndex = regexp.MustCompile(`\.layers\.(\d+)\.`)

func loadPEFT(dir string, raw []byte) (*Adapter, error) {
	cfgPath := filepath.Join(dir, "adapter_config.json")
	var cfg struct {
		PeftType      string             `json:"peft_type"`
		R             int                `json:"r"`
		Alpha         float64            `json:"lora_alpha"`
		Dropout       float64            `json:"lora_dropout"`
		UseRSLoRA     bool               `json:"use_rslora"`
		UseDoRA       bool               `json:"use_dora"`
		FanInFanOut   bool               `json:"fan_in_fan_out"`
		Bias          string             `json:"bias"`
		ModulesToSave []string           `json:"modules_to_save"`
		RankPattern   map[string]float64 `json:"rank_pattern"`
		AlphaPattern  map[string]float64 `json:"alpha_pattern"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	unsupported := func(what string) error {
		return fmt.Errorf("%s: PEFT %s is not supported (mlx adapters have one rank and scale for every module)", cfgPath, what)
	}
	switch {
	case cfg.PeftType != "LORA":
		return nil, fmt.Errorf("%s: peft_type %q: only LORA adapters can be imported", cfgPath, cfg.PeftType)
	case cfg.R < 1:
		return nil, fmt.Errorf("%s: r must be a positive rank, got %d", cfgPath, cfg.R)
	case cfg.FanInFanOut:
		return nil, unsupported("fan_in_fan_out")
	case cfg.Bias != "" && cfg.Bias != "none":
		return nil, unsupported(fmt.Sprintf("bias %q", cfg.Bias))
	case len(cfg.ModulesToSave) > 0:
		return nil, unsupported("modules_to_save")
	case len(cfg.RankPattern) > 0 || len(cfg.AlphaPattern) > 0:
		return nil, unsupported("rank_pattern/alpha_pattern")
	}
	scale := cfg.Alpha / float64(cfg.R)
	if cfg.UseRSLoRA {
		scale = cfg.Alpha / math.Sqrt(float64(cfg.R))
	}
	file := filepath.Join(dir, "adapter_model.safetensors")
	src, err := readTensors(file)
	if err != nil {
		return nil, err
	}
	a := &Adapter{FineTuneType: "lora", Parameters: Parameters{Rank: cfg.R, Scale: scale, Dropout: cfg.Dropout}, Tensors: map[string]Tensor{}, Source: "peft"}
	if cfg.UseDoRA {
		a.FineTuneType = "dora"
	}
	minLayer, maxLayer := math.MaxInt, -1
	for name, t := range src {
		m := peftKey.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("%s: tensor %q is not a LoRA weight of a supported PEFT adapter", file, name)
		}
		var out string
		switch {
		case m[2] == "lora_A":
			out, t = m[1]+".lora_a", transpose2(t)
		case m[2] == "lora_B":
			out, t = m[1]+".lora_b", transpose2(t)
		default:
			out = m[3] + ".m"
		}
		if len(t.Shape) == 0 {
			return nil, fmt.Errorf("%s: tensor %q has shape %v, expected a matrix", file, name, t.Shape)
		}
		a.Tensors[out] = t
		if li := layerIndex.FindStringSubmatch(out); li != nil {
			n, _ := strconv.Atoi(li[1])
			minLayer, maxLayer = min(minLayer, n), max(maxLayer, n)
		}
	}
	if maxLayer >= 0 {
		a.NumLayers = maxLayer - minLayer + 1
	}
	return a, a.checkPairs(file)
}

func transpose2(t Tensor) Tensor {
	if len(t.Shape) != 2 {
		return Tensor{}
	}
	r, c := t.Shape[0], t.Shape[1]
	out := Tensor{Shape: []int{c, r}, Data: make([]float32, len(t.Data))}
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			out.Data[j*r+i] = t.Data[i*c+j]
		}
	}
	return out
}

// SaveTensors writes named float32 tensors to path as mlx_lm writes adapter
// files (metadata {"format": "mlx"}), atomically, names sorted.
func SaveTensors(path string, tensors map[string]Tensor) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	data := make([]safetensors.Data, len(names))
	for i, n := range names {
		t := tensors[n]
		data[i] = safetensors.Data{
			TensorSpec: safetensors.TensorSpec{Name: n, DType: safetensors.F32, Shape: t.Shape},
			Bytes:      safetensors.AsBytes(t.Data),
		}
	}
	return safetensors.Save(path, data, map[string]string{"format": "mlx"})
}

// ReadTensors reads every tensor of a safetensors file as float32 (an
// adapters.safetensors or a checkpoint, for --resume-adapter-file).
func ReadTensors(path string) (map[string]Tensor, error) { return readTensors(path) }
