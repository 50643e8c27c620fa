package model

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/mlxgo/mlxgo/pkg/nn"
)

// QuantSpec is how one layer is quantized.
type QuantSpec struct {
	GroupSize int    `json:"group_size"`
	Bits      int    `json:"bits"`
	Mode      string `json:"mode"`
}

// modeDefaults are MLX's per-mode defaults (group size, bits); the float
// modes allow only these.
var modeDefaults = map[string][2]int{"affine": {64, 4}, "mxfp4": {32, 4}, "nvfp4": {16, 4}, "mxfp8": {32, 8}}

// Quantization is a config.json "quantization" entry: the defaults and the
// per-layer overrides mlx_lm writes (a module path mapped to its own spec,
// or to false when the layer stays in float).
type Quantization struct {
	Default QuantSpec
	// Layers maps a module path to its spec; a nil spec means "not quantized".
	Layers map[string]*QuantSpec
}

// ParseQuantization reads a "quantization" object. A missing mode is affine.
func ParseQuantization(raw json.RawMessage) (*Quantization, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("quantization: expected an object: %w", err)
	}
	q := &Quantization{Layers: map[string]*QuantSpec{}}
	top, err := parseSpec(raw, QuantSpec{Mode: "affine"})
	if err != nil {
		return nil, fmt.Errorf("quantization: %w", err)
	}
	q.Default = top
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch k {
		case "group_size", "bits", "mode", "quant_method":
			continue
		}
		v := m[k]
		var b bool
		if json.Unmarshal(v, &b) == nil {
			if b {
				s := q.Default
				q.Layers[k] = &s
			} else {
				q.Layers[k] = nil
			}
			continue
		}
		// A per-layer dict is kwargs for to_quantized: unset keys take the
		// mode's defaults (mode itself defaults to affine), not the global entry.
		s, err := parseSpec(v, QuantSpec{Mode: "affine"})
		if err != nil {
			return nil, fmt.Errorf("quantization.%s: %w", k, err)
		}
		q.Layers[k] = &s
	}
	return q, nil
}

func parseSpec(raw json.RawMessage, def QuantSpec) (QuantSpec, error) {
	var s struct {
		GroupSize *int    `json:"group_size"`
		Bits      *int    `json:"bits"`
		Mode      *string `json:"mode"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return QuantSpec{}, fmt.Errorf("expected {\"group_size\", \"bits\", \"mode\"} or a boolean: %w", err)
	}
	out := def
	if s.Mode != nil {
		out.Mode = *s.Mode
	}
	d, ok := modeDefaults[out.Mode]
	if !ok {
		return QuantSpec{}, fmt.Errorf("unknown mode %q (expected affine, mxfp4, nvfp4 or mxfp8)", out.Mode)
	}
	out.GroupSize, out.Bits = d[0], d[1]
	if s.GroupSize != nil {
		out.GroupSize = *s.GroupSize
	}
	if s.Bits != nil {
		out.Bits = *s.Bits
	}
	if out.Mode == "affine" {
		switch out.Bits {
		case 2, 3, 4, 5, 6, 8:
		default:
			return QuantSpec{}, fmt.Errorf("bits %d: expected 2, 3, 4, 5, 6 or 8", out.Bits)
		}
		switch out.GroupSize {
		case 32, 64, 128:
		default:
			return QuantSpec{}, fmt.Errorf("group_size %d: expected 32, 64 or 128", out.GroupSize)
		}
	}
	return out, nil
}

// For tells how the module at path is quantized, with mlx_lm's loader rule:
// a per-layer entry wins; otherwise the layer is quantized iff the
// checkpoint has "<path>.scales".
func (q *Quantization) For(path string, hasScales bool) (QuantSpec, bool) {
	if q == nil {
		return QuantSpec{}, false
	}
	if s, ok := q.Layers[path]; ok {
		if s == nil {
			return QuantSpec{}, false
		}
		return *s, true
	}
	if hasScales {
		return q.Default, true
	}
	return QuantSpec{}, false
}

// IsFloatMode reports whether mode is one of MLX's float quantization
// modes (mxfp4, nvfp4, mxfp8: uint8 scales, no biases).
func IsFloatMode(mode string) bool { return nn.IsFloatMode(mode) }

// QuantizeActivations makes every quantized linear layer of m round its
// input to its own float format before the product, as mlx_lm's
// --quantize-activations does when it swaps each nn.QuantizedLinear for an
// nn.QQLinear (mx.qqmm): only nvfp4 and mxfp8 layers without a bias can;
// any other quantized linear layer is an error naming it. Embeddings and
// expert (switch) layers are left as they are, as in mlx_lm; a model
// without quantized linear layers is unchanged.
func QuantizeActivations(m Model) error {
	tr, ok := m.(Trainable)
	if !ok {
		return fmt.Errorf("model %s does not expose its linear layers", m.ModelType())
	}
	var qs []*nn.QuantizedLinear
	for _, l := range tr.Linears() {
		q, ok := (*l.Layer).(*nn.QuantizedLinear)
		if !ok {
			continue
		}
		if mode := nn.ModeName(q.Mode); mode != "nvfp4" && mode != "mxfp8" {
			return fmt.Errorf("%s: mode %s does not support activation quantization (only nvfp4 and mxfp8 do)", l.Path, mode)
		}
		if q.Bias != nil {
			return fmt.Errorf("%s: a linear layer with a bias does not support activation quantization", l.Path)
		}
		qs = append(qs, q)
	}
	for _, q := range qs {
		q.QuantizeInput = true
	}
	return nil
}
