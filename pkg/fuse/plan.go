package fuse

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/pyjson"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

type jobKind int

const (
	jobCopy    jobKind = iota // written as stored
	jobMerge                  // a LoRA/DoRA module fused into its weight
	jobReplace                // a full fine-tune tensor replacing the base's
	jobDequant                // a quantized layer written in float (--dequantize)
	jobRequant                // a quantized layer re-encoded at another width
)

// job makes the output tensors of one plan entry: for a quantized layer
// its weight, scales and biases together.
type job struct {
	kind   jobKind
	name   string // output tensor (the weight for a layer)
	path   string // module path
	w      *source
	scales *source // quantized layers
	biases *source
	layer  quant.LayerKind
	// dtype is the float dtype of the layer's values: the weight's, or for
	// a quantized layer its scales' (what mx.dequantize returns).
	dtype     st.DType
	quantized bool           // stored quantized
	src       quant.Settings // stored width (quantized)
	dst       quant.Settings // written width; Bits 0: written in float
	shape     []int          // the weight's unquantized shape
	a, b, m   *lora.Tensor   // lora_a, lora_b, DoRA magnitude
	full      *lora.Tensor   // full fine-tune replacement
	specs     []st.TensorSpec
}

func (j *job) sources() []*source {
	out := []*source{j.w}
	if j.scales != nil {
		out = append(out, j.scales)
	}
	if j.biases != nil { // none in the float modes
		out = append(out, j.biases)
	}
	return out
}

type planned struct {
	jobs  []*job
	specs []st.TensorSpec
	// qobj replaces the config's "quantization" when not nil; dropQuant
	// removes it (and quantization_config).
	qobj      *pyjson.Object
	dropQuant bool
	quantized bool // the source has quantized layers
	merged    int  // adapter modules or full tensors applied
	dequant   int
	requant   int
}

// plan decides every output tensor: the model type's sanitize plan (the
// output is in MLX layout whatever the source), the adapter modules fused
// into their weights, and what happens to quantized layers.
func plan(m *st.Model, cfg *mlxdir.Config, ad *lora.Adapter, o *Options) (*planned, error) {
	entries := m.Entries()
	metas := make(map[string]model.TensorMeta, len(entries))
	for _, e := range entries {
		metas[e.Name] = model.TensorMeta{DType: string(e.DType), Shape: e.Shape}
	}
	modelType := cfg.Str("model_type")
	tplans, err := model.FullSanitizePlan(modelType, cfg.Plain, metas)
	if err != nil {
		return nil, err
	}
	srcs := make(map[string]*source, len(tplans))
	var names []string
	for _, tp := range tplans {
		if _, dup := srcs[tp.Name]; dup {
			return nil, fmt.Errorf("sanitize plan of %s makes %s twice", modelType, tp.Name)
		}
		ts := make([]st.Tensor, len(tp.Sources))
		for i, s := range tp.Sources {
			if ts[i], err = m.Tensor(s); err != nil {
				return nil, fmt.Errorf("sanitize plan of %s: %w", modelType, err)
			}
		}
		s, err := newSource(tp, ts)
		if err != nil {
			return nil, err
		}
		srcs[tp.Name] = s
		names = append(names, tp.Name)
	}
	mlxdir.SortNames(names)

	q, err := quantization(cfg)
	if err != nil {
		return nil, err
	}
	p := &planned{quantized: q != nil}
	isQuantized := func(path string) bool {
		w := srcs[path+".weight"]
		if q == nil || w == nil || w.dtype != st.U32 {
			return false
		}
		_, ok := q.For(path, srcs[path+".scales"] != nil)
		return ok
	}
	requantWidth := o.QBits != 0 || o.QGroupSize != 0
	if requantWidth && q == nil {
		return nil, errors.New("--q-bits/--q-group-size re-quantize a quantized base model, and this one is not quantized; fuse it, then quantize the fused model with `mlxgo convert -q`")
	}

	// What the adapter touches: module path -> its tensors (lora/dora),
	// or tensor name -> replacement (full).
	modules := map[string]bool{}
	full := map[string]*lora.Tensor{}
	if ad.FineTuneType == "full" {
		for n := range ad.Tensors {
			t := ad.Tensors[n]
			full[n] = &t
			if srcs[n] == nil {
				path, param := mlxdir.SplitParam(n)
				if (param == "scales" || param == "biases") && isQuantized(path) {
					return nil, fmt.Errorf("adapter tensor %s: a full fine-tune cannot replace the quantization %s of %s", n, param, path)
				}
				return nil, fmt.Errorf("adapter tensor %s: the model has no tensor %s (is this adapter for another model?)", n, n)
			}
		}
	} else {
		for _, path := range ad.Modules() {
			if srcs[path+".weight"] == nil {
				return nil, fmt.Errorf("adapter module %s (%s.lora_a): the model has no weight %s.weight (is this adapter for another model?)", path, path, path)
			}
			modules[path] = true
		}
	}

	consumed := map[string]bool{}
	written := map[string]quant.Settings{} // quantized layers' written widths
	var writtenOrder []string
	for _, name := range names {
		if consumed[name] {
			continue
		}
		s := srcs[name]
		path, param := mlxdir.SplitParam(name)
		j := &job{kind: jobCopy, name: name, path: path, w: s, dtype: s.dtype, shape: s.shape}
		adapted := param == "weight" && modules[path]
		replaced := full[name] != nil
		if param == "weight" && isQuantized(path) {
			spec, _ := q.For(path, true)
			sc, bi := srcs[path+".scales"], srcs[path+".biases"]
			if err := checkQuantized(path, s, sc, bi, spec); err != nil {
				if adapted || replaced || o.Dequantize || requantWidth {
					return nil, err
				}
				// copied as stored: nothing to decode
			} else {
				j.quantized, j.scales, j.biases = true, sc, bi
				j.dtype = sc.dtype
				j.src = quant.Settings{GroupSize: spec.GroupSize, Bits: spec.Bits, Mode: spec.Mode}
				if isFPMode(spec.Mode) {
					// mx.dequantize's default output type for the float modes
					j.dtype = st.BF16
					if requantWidth {
						return nil, fmt.Errorf("layer %s is quantized in %s, whose group size and bits are fixed; --q-bits/--q-group-size re-quantize affine layers only", path, spec.Mode)
					}
				}
				cols := s.shape[len(s.shape)-1] * 32 / spec.Bits
				j.shape = append(append([]int(nil), s.shape[:len(s.shape)-1]...), cols)
				if !o.Dequantize {
					j.dst = j.src
					if o.QBits != 0 {
						j.dst.Bits = o.QBits
					}
					if o.QGroupSize != 0 {
						j.dst.GroupSize = o.QGroupSize
					}
					if cols%j.dst.GroupSize != 0 {
						return nil, fmt.Errorf("layer %s: its input dimension %d is not a multiple of group size %d; choose another --q-group-size", path, cols, j.dst.GroupSize)
					}
				}
			}
		}
		switch {
		case adapted:
			j.kind = jobMerge
			if err := j.bindAdapter(ad); err != nil {
				return nil, err
			}
			p.merged++
		case replaced:
			j.kind, j.full = jobReplace, full[name]
			if !slices.Equal(j.full.Shape, j.shape) {
				return nil, fmt.Errorf("adapter tensor %s has shape %v, the model's is %v (is this adapter for another model?)", name, j.full.Shape, j.shape)
			}
			if !isFloat(j.dtype) {
				return nil, fmt.Errorf("adapter tensor %s: the model's %s is %s, not a float tensor a fine-tune can replace", name, name, j.dtype)
			}
			p.merged++
		case j.quantized && o.Dequantize:
			j.kind = jobDequant
			p.dequant++
		case j.quantized && j.dst != j.src:
			j.kind = jobRequant
			p.requant++
		}
		if j.quantized && j.kind != jobCopy {
			consumed[path+".scales"], consumed[path+".biases"] = true, true
		} else if j.quantized {
			j.scales, j.biases = nil, nil // copied as their own entries
		}
		if j.quantized && !o.Dequantize {
			written[path] = j.dst
			if j.kind == jobCopy {
				written[path] = j.src
			}
			writtenOrder = append(writtenOrder, path)
		}
		j.specs = j.outSpecs(q != nil && !o.Dequantize, isQuantized)
		p.jobs = append(p.jobs, j)
		p.specs = append(p.specs, j.specs...)
	}
	if o.Dequantize {
		p.dropQuant = true
	} else if requantWidth {
		p.qobj = requantConfig(cfg, o, q, written, writtenOrder)
	}
	return p, nil
}

// checkQuantized validates a stored quantized layer before it is decoded.
func checkQuantized(path string, w, s, b *source, spec model.QuantSpec) error {
	if isFPMode(spec.Mode) {
		return checkFPQuantized(path, w, s, b, spec)
	}
	if spec.Mode != "affine" {
		return fmt.Errorf("layer %s: unknown quantization mode %q (expected affine, mxfp4, nvfp4 or mxfp8)", path, spec.Mode)
	}
	if err := quant.Validate(spec.Bits, spec.GroupSize); err != nil {
		return fmt.Errorf("layer %s: %w", path, err)
	}
	if s == nil || b == nil {
		return fmt.Errorf("quantized layer %s needs %s.scales and %s.biases (affine)", path, path, path)
	}
	if !isFloat(s.dtype) || b.dtype != s.dtype {
		return fmt.Errorf("layer %s: scales %s and biases %s must share one of F32, F16, BF16", path, s.dtype, b.dtype)
	}
	last := w.shape[len(w.shape)-1]
	cols := last * 32 / spec.Bits
	lead := w.shape[:len(w.shape)-1]
	want := append(append([]int(nil), lead...), cols/spec.GroupSize)
	if last*32%spec.Bits != 0 || cols%spec.GroupSize != 0 || !slices.Equal(s.shape, want) || !slices.Equal(b.shape, want) {
		return fmt.Errorf("layer %s: weight %v, scales %v and biases %v do not fit %d bits, group size %d", path, w.shape, s.shape, b.shape, spec.Bits, spec.GroupSize)
	}
	return nil
}

// checkFPQuantized validates a float-mode layer: uint8 scales
// [..., rows, cols/group], no biases, the mode's group size and bits.
func checkFPQuantized(path string, w, s, b *source, spec model.QuantSpec) error {
	fp := quant.FPModes[spec.Mode]
	if spec.GroupSize != fp[0] || spec.Bits != fp[1] {
		return fmt.Errorf("layer %s: quantization mode %s needs group size %d and %d bits, config.json says %d and %d", path, spec.Mode, fp[0], fp[1], spec.GroupSize, spec.Bits)
	}
	if s == nil {
		return fmt.Errorf("quantized layer %s needs %s.scales (%s)", path, path, spec.Mode)
	}
	if b != nil {
		return fmt.Errorf("layer %s: quantization mode %s has no biases, but %s.biases exists", path, spec.Mode, path)
	}
	if s.dtype != st.U8 {
		return fmt.Errorf("layer %s: %s scales must be U8, found %s", path, spec.Mode, s.dtype)
	}
	last := w.shape[len(w.shape)-1]
	cols := last * 32 / spec.Bits
	want := append(append([]int(nil), w.shape[:len(w.shape)-1]...), cols/spec.GroupSize)
	if !slices.Equal(s.shape, want) {
		return fmt.Errorf("layer %s: weight %v and scales %v do not fit %s (%d bits, group size %d)", path, w.shape, s.shape, spec.Mode, spec.Bits, spec.GroupSize)
	}
	return nil
}

// bindAdapter finds the module's adapter tensors and checks their shapes
// against the weight: Linear lora_a [in, r], lora_b [r, out]; Embedding
// lora_a [V, r], lora_b [r, D]; SwitchLinear lora_a [E, r, in], lora_b
// [E, out, r]; DoRA m [out].
func (j *job) bindAdapter(ad *lora.Adapter) error {
	a, b := ad.Tensors[j.path+".lora_a"], ad.Tensors[j.path+".lora_b"]
	j.a, j.b = &a, &b
	if mt, ok := ad.Tensors[j.path+".m"]; ok && ad.FineTuneType == "dora" {
		j.m = &mt
	}
	if !isFloat(j.dtype) {
		return fmt.Errorf("adapter module %s: the model's %s is %s, not a float or quantized weight", j.path, j.name, j.dtype)
	}
	mismatch := func(want string) error {
		return fmt.Errorf("adapter tensors %s.lora_a %v and %s.lora_b %v do not fit the model's %s %v (expected %s): is this adapter for another model?",
			j.path, a.Shape, j.path, b.Shape, j.name, j.shape, want)
	}
	switch len(j.shape) {
	case 2:
		rows, cols := j.shape[0], j.shape[1]
		j.layer = quant.GuessLayer(j.name, j.shape).Kind
		if j.layer == quant.Embedding {
			if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != rows || b.Shape[1] != cols || a.Shape[1] != b.Shape[0] {
				return mismatch(fmt.Sprintf("lora_a [%d, r], lora_b [r, %d]", rows, cols))
			}
		} else {
			j.layer = quant.Linear
			if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != cols || b.Shape[1] != rows || a.Shape[1] != b.Shape[0] {
				return mismatch(fmt.Sprintf("lora_a [%d, r], lora_b [r, %d]", cols, rows))
			}
		}
		if j.m != nil && (len(j.m.Shape) != 1 || j.m.Shape[0] != rows) {
			return fmt.Errorf("adapter tensor %s.m has shape %v, the model's %s %v needs [%d] (is this adapter for another model?)", j.path, j.m.Shape, j.name, j.shape, rows)
		}
	case 3:
		e, out, in := j.shape[0], j.shape[1], j.shape[2]
		j.layer = quant.SwitchLinear
		if len(a.Shape) != 3 || len(b.Shape) != 3 || a.Shape[0] != e || b.Shape[0] != e || a.Shape[2] != in || b.Shape[1] != out || a.Shape[1] != b.Shape[2] {
			return mismatch(fmt.Sprintf("lora_a [%d, r, %d], lora_b [%d, %d, r]", e, in, e, out))
		}
		if j.m != nil {
			return fmt.Errorf("adapter module %s: DoRA on MoE expert stacks is not supported (mlx_lm has no DoRA switch layer)", j.path)
		}
	default:
		return fmt.Errorf("adapter module %s: the model's %s has shape %v; only 2-D (Linear, Embedding) and 3-D (MoE experts) weights can be fused", j.path, j.name, j.shape)
	}
	return nil
}

// outSpecs plans the tensors a job writes.
func (j *job) outSpecs(keepQuant bool, isQuantized func(string) bool) []st.TensorSpec {
	if j.kind == jobCopy {
		var params int64
		path, param := mlxdir.SplitParam(j.name)
		if keepQuant && (param == "scales" || param == "biases") && isQuantized(path) {
			params = st.NoParams
		}
		if j.quantized {
			params = quant.PackedParams(j.w.shape, j.src.Bits)
		}
		return []st.TensorSpec{{Name: j.name, DType: j.w.dtype, Shape: j.w.shape, Params: params}}
	}
	if j.quantized && j.dst.Bits != 0 {
		lead := j.shape[:len(j.shape)-1]
		cols := j.shape[len(j.shape)-1]
		ws := append(append([]int(nil), lead...), quant.PackedCols(cols, j.dst.Bits))
		ss := append(append([]int(nil), lead...), cols/j.dst.GroupSize)
		if isFPMode(j.dst.Mode) {
			return []st.TensorSpec{
				{Name: j.path + ".weight", DType: st.U32, Shape: ws, Params: quant.PackedParams(ws, j.dst.Bits)},
				{Name: j.path + ".scales", DType: st.U8, Shape: ss, Params: st.NoParams},
			}
		}
		return []st.TensorSpec{
			{Name: j.path + ".weight", DType: st.U32, Shape: ws, Params: quant.PackedParams(ws, j.dst.Bits)},
			{Name: j.path + ".scales", DType: j.dtype, Shape: ss, Params: st.NoParams},
			{Name: j.path + ".biases", DType: j.dtype, Shape: ss, Params: st.NoParams},
		}
	}
	return []st.TensorSpec{{Name: j.name, DType: j.dtype, Shape: j.shape}}
}

// requantConfig is the "quantization" entry after --q-bits/--q-group-size:
// the new global width (the old one where a flag was not given), a
// per-layer entry for each quantized layer written at another width (a
// layer that had its own bits keeps them under --q-group-size alone), and
// the old entries that keep a layer in float (false).
func requantConfig(cfg *mlxdir.Config, o *Options, q *model.Quantization, layers map[string]quant.Settings, order []string) *pyjson.Object {
	set := q.Default
	if o.QBits != 0 {
		set.Bits = o.QBits
	}
	if o.QGroupSize != 0 {
		set.GroupSize = o.QGroupSize
	}
	obj := pyjson.NewObject()
	obj.Set("group_size", set.GroupSize)
	obj.Set("bits", set.Bits)
	obj.Set("mode", set.Mode)
	old, _ := cfg.Obj.Get("quantization")
	if oldObj, ok := old.(*pyjson.Object); ok {
		for _, k := range oldObj.Keys {
			if v := oldObj.Values[k]; v == false {
				obj.Set(k, false)
			}
		}
	}
	for _, path := range order {
		l := layers[path]
		if l.Bits != set.Bits || l.GroupSize != set.GroupSize || l.Mode != set.Mode {
			e := pyjson.NewObject()
			e.Set("group_size", l.GroupSize)
			e.Set("bits", l.Bits)
			e.Set("mode", l.Mode)
			obj.Set(path, e)
		}
	}
	return obj
}

// quantization reads the config's "quantization" entry (nil when the model
// is not quantized). Checkpoints quantized by other tools (only
// quantization_config) are refused.
func quantization(c *mlxdir.Config) (*model.Quantization, error) {
	v, ok := c.Plain["quantization"]
	if !ok || v == nil {
		qc, _ := c.Plain["quantization_config"].(map[string]any)
		if qc == nil {
			if tc, ok := c.Plain["text_config"].(map[string]any); ok {
				qc, _ = tc["quantization_config"].(map[string]any)
			}
		}
		if qc != nil {
			return nil, fmt.Errorf("config.json: checkpoints quantized by Hugging Face tooling (quantization_config.quant_method %v) cannot be fused; start from an MLX or unquantized model", qc["quant_method"])
		}
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	q, err := model.ParseQuantization(raw)
	if err != nil {
		return nil, fmt.Errorf("config.json %w", err)
	}
	return q, nil
}
