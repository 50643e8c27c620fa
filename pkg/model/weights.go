package model

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// Weights hands an architecture's constructor its tensors by dotted
// checkpoint name, checking shapes, and decides per layer whether it is
// quantized (Quantization.For: a per-layer config entry, else the presence
// of "<path>.scales"). Every method takes the address of the field it
// fills, so the loader knows each parameter's and each linear layer's slot
// (Params). Errors are collected; the constructor returns Err() at the end.
type Weights struct {
	tensors map[string]*engine.Array
	source  map[string]string // tensor -> file, for messages
	quant   *Quantization
	cast    *engine.DType
	exact   bool
	random  *randomGen // RandomModel: tensors are made on request
	used    map[string]bool
	params  Params
	errs    []error
}

// Param is one named parameter slot: the checkpoint name and the field
// holding the array, so a trainer can read it and swap it.
type Param struct {
	Name string
	Ptr  **engine.Array
}

// LinearSlot is a linear layer's module path and field (LoRA wraps it by
// assigning *Layer).
type LinearSlot struct {
	Path  string
	Layer *nn.Layer
}

// Params records a model's parameter and linear-layer slots in load
// order. Architectures embed it; its methods are the model's training
// surface.
type Params struct {
	params  []Param
	linears []LinearSlot
	keep    []any // the memory-mapped files the weights point into
}

// Parameters returns every parameter by checkpoint name, in load order.
// For a quantized layer these are the packed weight, scales and biases.
func (p *Params) Parameters() []Param { return p.params }

// Linears returns every linear layer (dense or quantized) by module path.
func (p *Params) Linears() []LinearSlot { return p.linears }

// Trainable is what pkg/lora needs from a model; every architecture
// loaded by Load implements it (through an embedded Params).
type Trainable interface {
	Parameters() []Param
	Linears() []LinearSlot
}

// NewWeights makes a Weights over named arrays (tests build models in
// memory this way; Load uses it over a checkpoint). q may be nil.
func NewWeights(tensors map[string]*engine.Array, q *Quantization) *Weights {
	return &Weights{tensors: tensors, quant: q, used: map[string]bool{}, source: map[string]string{}}
}

// SetComputeDType makes embeddings cast their output to dt.
func (w *Weights) SetComputeDType(dt *engine.DType) { w.cast = dt }

// SetExactQuantized makes quantized layers multiply by their dequantized
// weights (LoadOptions.ExactQuantized).
func (w *Weights) SetExactQuantized(on bool) { w.exact = on }

// Has reports whether the checkpoint has name.
func (w *Weights) Has(name string) bool { _, ok := w.tensors[name]; return ok }

// Quantized reports how the module at path is stored.
func (w *Weights) Quantized(path string) (QuantSpec, bool) {
	return w.quant.For(path, w.random != nil || w.Has(path+".scales"))
}

func (w *Weights) fail(err error) { w.errs = append(w.errs, err) }

func (w *Weights) where(name string) string {
	if f := w.source[name]; f != "" {
		return f + ": "
	}
	return ""
}

// Tensor fills *dst with the tensor name, which must have shape.
func (w *Weights) Tensor(dst **engine.Array, name string, shape ...int) {
	a, ok := w.tensors[name]
	if !ok && w.random != nil {
		a, ok = w.random.make(name, shape), true
		w.tensors[name] = a
	}
	if !ok {
		w.fail(fmt.Errorf("missing tensor %q (expected shape %v)", name, shape))
		return
	}
	w.used[name] = true
	if !slices.Equal(a.Shape(), shape) {
		w.fail(fmt.Errorf("%stensor %q: expected shape %v, found %v", w.where(name), name, shape, a.Shape()))
		return
	}
	*dst = a
	w.params.params = append(w.params.params, Param{Name: name, Ptr: dst})
}

// OptionalTensor is Tensor for a tensor that may be absent (left nil).
func (w *Weights) OptionalTensor(dst **engine.Array, name string, shape ...int) {
	if w.Has(name) {
		w.Tensor(dst, name, shape...)
	}
}

// Linear fills *dst with the layer at path mapping in to out features: a
// *nn.QuantizedLinear when the checkpoint/config says it is quantized,
// else a *nn.Linear. bias says whether "<path>.bias" is expected.
func (w *Weights) Linear(dst *nn.Layer, path string, in, out int, bias bool) {
	if spec, ok := w.Quantized(path); ok {
		q := &nn.QuantizedLinear{GroupSize: spec.GroupSize, Bits: spec.Bits, Mode: spec.Mode, Exact: w.exact}
		if !w.quantized(path, spec, out, in, &q.Weight, &q.Scales, &q.Biases) {
			return
		}
		if bias {
			w.Tensor(&q.Bias, path+".bias", out)
		}
		*dst = q
	} else {
		l := &nn.Linear{}
		w.float(&l.Weight, path+".weight", out, in)
		if bias {
			w.Tensor(&l.Bias, path+".bias", out)
		}
		*dst = l
	}
	w.params.linears = append(w.params.linears, LinearSlot{Path: path, Layer: dst})
}

// Embedding fills *dst with the [vocab, dim] table at path (quantized or not).
func (w *Weights) Embedding(dst *nn.Embedder, path string, vocab, dim int) {
	if spec, ok := w.Quantized(path); ok {
		e := &nn.QuantizedEmbedding{GroupSize: spec.GroupSize, Bits: spec.Bits, Mode: spec.Mode, Cast: w.cast, Exact: w.exact}
		if w.quantized(path, spec, vocab, dim, &e.Weight, &e.Scales, &e.Biases) {
			*dst = e
		}
		return
	}
	e := &nn.Embedding{Cast: w.cast}
	w.float(&e.Weight, path+".weight", vocab, dim)
	*dst = e
}

// SwitchLinear fills *dst with E stacked experts mapping in to out.
func (w *Weights) SwitchLinear(dst *nn.SwitchLayer, path string, experts, in, out int, bias bool) {
	if spec, ok := w.Quantized(path); ok {
		q := &nn.QuantizedSwitchLinear{GroupSize: spec.GroupSize, Bits: spec.Bits, Mode: spec.Mode, Exact: w.exact}
		if !w.quantizedN(path, spec, []int{experts}, out, in, &q.Weight, &q.Scales, &q.Biases) {
			return
		}
		if bias {
			w.Tensor(&q.Bias, path+".bias", experts, out)
		}
		*dst = q
		return
	}
	s := &nn.SwitchLinear{}
	w.float(&s.Weight, path+".weight", experts, out, in)
	if bias {
		w.Tensor(&s.Bias, path+".bias", experts, out)
	}
	*dst = s
}

// RMSNorm fills *dst with the norm at path over dim features.
func (w *Weights) RMSNorm(dst *nn.RMSNorm, path string, dim int, eps float64) {
	dst.Eps = float32(eps)
	w.Tensor(&dst.Weight, path+".weight", dim)
}

// LayerNorm fills *dst; bias says whether "<path>.bias" is expected.
func (w *Weights) LayerNorm(dst *nn.LayerNorm, path string, dim int, eps float64, bias bool) {
	dst.Eps = float32(eps)
	w.Tensor(&dst.Weight, path+".weight", dim)
	if bias {
		w.Tensor(&dst.Bias, path+".bias", dim)
	}
}

// float fills a float weight, refusing packed data without scales.
func (w *Weights) float(dst **engine.Array, name string, shape ...int) {
	if a, ok := w.tensors[name]; ok && !a.DType().IsFloat() {
		mod := strings.TrimSuffix(name, ".weight")
		w.used[name] = true
		w.fail(fmt.Errorf("%stensor %q is %v (packed) but %q is missing and config.json's quantization does not cover %q: a quantized layer needs its scales (and biases, in the affine mode)", w.where(name), name, a.DType(), mod+".scales", mod))
		return
	}
	w.Tensor(dst, name, shape...)
}

// quantized fills the packed weight, scales and biases of a [rows, cols] matrix.
func (w *Weights) quantized(path string, spec QuantSpec, rows, cols int, wt, sc, bi **engine.Array) bool {
	return w.quantizedN(path, spec, nil, rows, cols, wt, sc, bi)
}

// quantizedN fills the packed weight, scales and biases of a [lead...,
// rows, cols] stack of matrices (lead is [E] for SwitchLinear experts).
// The float modes (mxfp4, nvfp4, mxfp8) have uint8 scales and no biases
// (*bi stays nil).
func (w *Weights) quantizedN(path string, spec QuantSpec, lead []int, rows, cols int, wt, sc, bi **engine.Array) bool {
	mode := nn.ModeName(spec.Mode)
	fp, isFP := modeDefaults[mode]
	switch {
	case mode == "affine":
	case isFP:
		if spec.GroupSize != fp[0] || spec.Bits != fp[1] {
			w.fail(fmt.Errorf("%s: quantization mode %s needs group_size %d and bits %d, config.json says %d and %d", path, mode, fp[0], fp[1], spec.GroupSize, spec.Bits))
			return false
		}
	default:
		w.fail(fmt.Errorf("%s: unknown quantization mode %q (expected affine, mxfp4, nvfp4 or mxfp8)", path, spec.Mode))
		return false
	}
	if !w.Has(path+".scales") && w.random == nil {
		w.fail(fmt.Errorf("%s: config.json quantizes it (%s, %d bits, group %d) but the checkpoint has no %q", path, mode, spec.Bits, spec.GroupSize, path+".scales"))
		return false
	}
	ws, ss, err := nn.QuantizedShapes(rows, cols, spec.GroupSize, spec.Bits)
	if err != nil {
		w.fail(fmt.Errorf("%s: %w", path, err))
		return false
	}
	ws = append(append([]int(nil), lead...), ws...)
	ss = append(append([]int(nil), lead...), ss...)
	if w.random != nil {
		w.random.quantized(path, spec, ws, ss)
	}
	if a, ok := w.tensors[path+".weight"]; ok && a.DType() != engine.Uint32 {
		w.fail(fmt.Errorf("%stensor %q: a quantized weight must be U32, found %v", w.where(path+".weight"), path+".weight", a.DType()))
		return false
	}
	if nn.IsFloatMode(mode) {
		if a, ok := w.tensors[path+".scales"]; ok && a.DType() != engine.Uint8 {
			w.used[path+".scales"] = true
			w.fail(fmt.Errorf("%stensor %q: %s scales must be U8 (%s), found %v", w.where(path+".scales"), path+".scales", mode, fpScaleFormat(mode), a.DType()))
			return false
		}
		if w.Has(path + ".biases") {
			w.used[path+".biases"] = true
			w.fail(fmt.Errorf("%stensor %q: quantization mode %s has no biases (is the layer affine? config.json says %s)", w.where(path+".biases"), path+".biases", mode, mode))
			return false
		}
	} else if a, ok := w.tensors[path+".scales"]; ok && !a.DType().IsFloat() {
		w.used[path+".scales"] = true
		w.fail(fmt.Errorf("%stensor %q: affine scales must be float, found %v (a float-mode layer? config.json's quantization has no mode for %q)", w.where(path+".scales"), path+".scales", a.DType(), path))
		return false
	}
	n := len(w.errs)
	w.Tensor(wt, path+".weight", ws...)
	w.Tensor(sc, path+".scales", ss...)
	if !nn.IsFloatMode(mode) {
		w.Tensor(bi, path+".biases", ss...)
	}
	return len(w.errs) == n
}

// fpScaleFormat names a float mode's scale encoding.
func fpScaleFormat(mode string) string {
	if mode == "nvfp4" {
		return "E4M3"
	}
	return "E8M0"
}

// Err returns the collected errors (nil if none), at most 10 listed.
func (w *Weights) Err() error {
	if len(w.errs) == 0 {
		return nil
	}
	errs := w.errs
	if len(errs) > 10 {
		errs = append(errs[:10:10], fmt.Errorf("... and %d more errors", len(w.errs)-10))
	}
	return errors.Join(errs...)
}

// Unused lists checkpoint tensors no layer took, sorted.
func (w *Weights) Unused() []string {
	var out []string
	for n := range w.tensors {
		if !w.used[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Params returns the recorded slots, for the model to embed.
func (w *Weights) Params() Params { return w.params }
