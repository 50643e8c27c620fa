// Package convert turns a Hugging Face checkpoint into an MLX model folder
// the way mlx_lm's convert does (mlx-compat.md §12-§14): sanitize (the
// per-architecture full plans registered by the model packages, so the
// output is in mlx_lm's layout: experts stacked or split, fused
// projections split, tensors transposed, norms shifted), an optional
// dtype cast, optional MLX affine quantization (bit-exact with MLX's CPU
// encoder) or float-mode quantization (mxfp4, nvfp4, mxfp8: MLX's Metal
// encoder, quant.QuantizeFP; uint8 scales, no biases) or dequantization, then mlx_lm's output layout: sharded
// model*.safetensors with the index, config.json with sorted keys and the
// quantization entries, the tokenizer and side files, and a model card,
// written through pkg/mlxdir (shared with fuse).
//
// It streams: every source tensor is read from the memory-mapped files,
// processed in bounded row chunks on all cores (a plan with steps through
// model.ApplyPlan, one slab of the leading axis at a time where
// model.Axis0Slabs allows), written, and its pages released, so memory
// stays bounded by the largest output tensor rather than the model. The output is built in a hidden temporary folder beside
// the destination and renamed into place only when complete.
package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all" // every architecture's sanitize plan
	"github.com/mlxgo/mlxgo/pkg/pyjson"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// Dtypes are the --dtype values mlx_lm accepts (MODEL_CONVERSION_DTYPES).
var Dtypes = []string{"float16", "bfloat16", "float32"}

// Options are mlx_lm convert's arguments plus where output goes.
type Options struct {
	HFPath   string // local folder or hub repo id
	MLXPath  string // "" means "mlx_model"
	Revision string // hub revision of HFPath ("" = main)

	Quantize       bool
	GroupSize      int    // 0: the mode's default (quant.ModeDefaults)
	Bits           int    // 0: the mode's default
	Mode           string // "" (affine), "affine", "mxfp4", "nvfp4" or "mxfp8"
	QuantPredicate string // "" or a mixed recipe (quant.Recipes; affine only)
	Dtype          string // "", float16, bfloat16 or float32
	Dequantize     bool
	UploadRepo     string

	// Out receives mlx_lm's "[INFO] ..." lines; nil discards them.
	Out io.Writer
	// Progress receives a byte progress bar over the source tensors (and
	// the hub download); nil draws none. See hub.TerminalOrNil.
	Progress io.Writer
	// Hub resolves hub ids and uploads; nil means hub.NewClient().
	Hub *hub.Client
	// Version names mlxgo in the uploaded model card.
	Version string

	shardSize int64 // tests: shard cap instead of mlx_lm's 5 GiB
}

// Result describes a finished conversion.
type Result struct {
	Path            string
	Shards          []string
	Files           []string // every file of the output folder, sorted
	TotalSize       int64    // tensor bytes, as the index's total_size
	TotalParameters int64    // as the index's total_parameters
	BitsPerWeight   float64  // printed when quantizing; computed always
	SourceBytes     int64    // bytes of every source tensor
	Quantized       int      // layers quantized by this run
	Dequantized     int      // layers dequantized by this run
}

// Convert runs a conversion.
func Convert(ctx context.Context, o Options) (*Result, error) {
	if o.Quantize && o.Dequantize {
		return nil, errors.New("convert: choose either quantize or dequantize, not both")
	}
	if _, _, err := quant.ModeDefaults(o.Mode); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	if o.QuantPredicate != "" && quant.IsFloatMode(o.Mode) {
		return nil, fmt.Errorf("convert: quant predicates only support affine quantization, not %s", o.Mode)
	}
	if o.QuantPredicate != "" && !o.Quantize {
		return nil, errors.New("convert: a quant predicate needs quantize")
	}
	if o.Dtype != "" && !contains(Dtypes, o.Dtype) {
		return nil, fmt.Errorf("convert: dtype %q: expected one of %s", o.Dtype, strings.Join(Dtypes, ", "))
	}
	if o.MLXPath == "" {
		o.MLXPath = "mlx_model"
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if _, err := os.Lstat(o.MLXPath); err == nil {
		return nil, fmt.Errorf("cannot save to the path %s as it already exists; delete the file/directory or specify a new path to save to", o.MLXPath)
	}

	fmt.Fprintln(out, "[INFO] Loading")
	src, repoID, err := resolve(ctx, o)
	if err != nil {
		return nil, err
	}
	cfg, err := mlxdir.ReadConfig(src)
	if err != nil {
		return nil, err
	}
	if err := checkConfig(cfg, src); err != nil {
		return nil, err
	}
	m, err := st.OpenModel(src)
	if err != nil {
		return nil, err
	}
	defer m.Close()

	dtype := o.Dtype
	if dtype == "" {
		dtype = sourceDtype(cfg)
	}
	if !contains(Dtypes, dtype) {
		dtype = ""
	}
	p, err := plan(m, cfg, dtype, o)
	if err != nil {
		return nil, err
	}
	if err := p.checkLoadable(cfg, o); err != nil {
		return nil, err
	}
	if dtype != "" {
		fmt.Fprintln(out, "[INFO] Using dtype:", dtype)
	}
	if o.Quantize {
		fmt.Fprintln(out, "[INFO] Quantizing")
		// A group size that divides no layer is a mistake (mlx_lm would
		// silently write a float model). Re-saving an already quantized
		// model, or a predicate skipping every layer, is not.
		if p.quantized == 0 && len(p.dims) > 0 && p.divisible == 0 {
			return nil, fmt.Errorf("convert: no layer can be quantized with group size %d: no quantizable weight's last dimension (%s) is a multiple of it", p.settings.GroupSize, p.lastDims())
		}
	}
	if o.Dequantize {
		fmt.Fprintln(out, "[INFO] Dequantizing")
	}

	res, err := p.write(ctx, o, src, repoID, cfg, out)
	if err != nil {
		return nil, err
	}
	if o.UploadRepo != "" {
		if err := mlxdir.Upload(ctx, o.Hub, o.Progress, res.Path, o.UploadRepo, o.Version); err != nil {
			return res, fmt.Errorf("convert: %w", err)
		}
		fmt.Fprintf(out, "Upload successful, go to https://huggingface.co/%s for details.\n", o.UploadRepo)
	}
	return res, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// resolve finds the source folder: a local path as is, else a hub snapshot
// with mlx_lm's allow patterns. repoID is "" for a local source.
func resolve(ctx context.Context, o Options) (dir, repoID string, err error) {
	if isLocal(o.HFPath) {
		return o.HFPath, "", nil
	}
	dir, err = hub.ResolveModel(ctx, o.HFPath, hub.ResolveOptions{Revision: o.Revision, Client: o.Hub, Progress: o.Progress})
	if err != nil {
		return "", "", fmt.Errorf("convert: %w", err)
	}
	return dir, o.HFPath, nil
}

// checkConfig refuses what mlx_lm would run Python code for, or transform
// at load time in ways mlxgo does not yet.
func checkConfig(c *mlxdir.Config, dir string) error {
	if err := c.CheckModelType(dir); err != nil {
		return err
	}
	if _, ok := c.Plain["quantization"]; !ok {
		qc, _ := c.Plain["quantization_config"].(map[string]any)
		if qc == nil {
			if tc, ok := c.Plain["text_config"].(map[string]any); ok {
				qc, _ = tc["quantization_config"].(map[string]any)
			}
		}
		if qc != nil {
			return fmt.Errorf("%s: checkpoints quantized by Hugging Face tooling (quantization_config.quant_method %v) are not supported by mlxgo convert yet; start from the unquantized checkpoint", dir, qc["quant_method"])
		}
	}
	return nil
}

type jobKind int

const (
	jobCopy jobKind = iota // copy, casting when the dtype changes
	jobQuantize
	jobDequantize
)

// job makes the output tensors of one plan entry (a quantized layer: its
// weight, scales and biases).
type job struct {
	kind           jobKind
	in             *input
	scales, biases *input // dequantize
	to             st.DType
	set            quant.Settings
	specs          []st.TensorSpec
}

func (j *job) sources() []st.Tensor {
	s := append([]st.Tensor(nil), j.in.srcs...)
	if j.scales != nil {
		s = append(s, j.scales.srcs...)
	}
	if j.biases != nil {
		s = append(s, j.biases.srcs...)
	}
	return s
}

type planned struct {
	jobs      []*job
	specs     []st.TensorSpec
	qobj      *pyjson.Object // the "quantization" object to write, nil to drop it
	dropQuant bool
	settings  quant.Settings
	quantized int
	dequant   int
	dims      map[int]bool // last dims of quantizable layers seen
	divisible int          // of those, how many the group size divides
	all       []st.Entry
}

func (p *planned) lastDims() string {
	var ds []int
	for d := range p.dims {
		ds = append(ds, d)
	}
	sort.Ints(ds)
	s := fmt.Sprint(ds)
	return strings.Trim(s, "[]")
}

// plan decides every output tensor: the sanitize plan of the model type,
// then cast, quantize or dequantize per layer.
func plan(m *st.Model, cfg *mlxdir.Config, dtype string, o Options) (*planned, error) {
	entries := m.Entries()
	metas := make(map[string]model.TensorMeta, len(entries))
	for _, e := range entries {
		metas[e.Name] = model.TensorMeta{DType: string(e.DType), Shape: e.Shape}
	}
	modelType := cfg.Str("model_type")
	tplans, err := model.FullSanitizePlan(modelType, cfg.Plain, metas)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	inputs := make(map[string]*input, len(tplans))
	var names []string
	for _, tp := range tplans {
		if _, dup := inputs[tp.Name]; dup {
			return nil, fmt.Errorf("convert: sanitize plan of %s makes %s twice", modelType, tp.Name)
		}
		srcs := make([]st.Tensor, len(tp.Sources))
		for i, s := range tp.Sources {
			t, err := m.Tensor(s)
			if err != nil {
				return nil, fmt.Errorf("convert: sanitize plan of %s: %w", modelType, err)
			}
			srcs[i] = t
		}
		in, err := newInput(tp, srcs)
		if err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		in.mapped = true // safetensors.Open maps every file
		inputs[tp.Name] = in
		names = append(names, tp.Name)
	}
	mlxdir.SortNames(names)

	var target st.DType
	switch dtype {
	case "float16":
		target = st.F16
	case "bfloat16":
		target = st.BF16
	case "float32":
		target = st.F32
	}
	castOK := castPredicate(model.CanonicalType(modelType))
	// A plan step may widen half sources (qwen3_next's norm + 1 is F32):
	// such a tensor goes to the target dtype, or back to its sources'
	// dtype without one, as mlx_lm's half-precision add leaves it.
	outDtype := func(in *input) st.DType {
		switch {
		case target != "" && floating(in.dtype) && castOK(in.name):
			return target
		case in.dtype != in.srcDtype && floating(in.dtype) && floating(in.srcDtype):
			return in.srcDtype
		}
		return in.dtype
	}

	p := &planned{dims: map[int]bool{}, all: entries}
	srcQuant, srcQuantObj, err := sourceQuantization(cfg)
	if err != nil {
		return nil, err
	}

	// Layers already quantized in the source (MLX checkpoints): the
	// loader rule, a per-layer entry or <path>.scales present.
	isQuantized := func(path string) bool {
		if srcQuant == nil {
			return false
		}
		if l, ok := srcQuant.Layers[path]; ok {
			return l != nil
		}
		_, ok := inputs[path+".scales"]
		return ok
	}

	// floatMode: a quantized layer of the source in mxfp4, nvfp4 or mxfp8.
	floatMode := func(path string) bool {
		spec, _ := srcQuant.For(path, true)
		return quant.IsFloatMode(spec.Mode)
	}

	var qplan *quant.Plan
	if o.Quantize {
		var pred quant.Predicate
		if o.QuantPredicate != "" {
			pred, err = recipe(o.QuantPredicate, names, o.GroupSize)
			if err != nil {
				return nil, err
			}
		} else {
			pred = quant.ModelPredicate(model.CanonicalType(modelType), cfg.Plain)
		}
		var existing map[string]any
		if srcQuant != nil {
			existing = map[string]any{}
		}
		qplan, err = quant.NewPlan(o.GroupSize, o.Bits, o.Mode, pred, existing)
		if err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		p.settings = qplan.Global
		if srcQuantObj != nil {
			p.qobj = copyObject(srcQuantObj)
		} else {
			p.qobj = pyjson.NewObject()
			p.qobj.Set("group_size", qplan.Global.GroupSize)
			p.qobj.Set("bits", qplan.Global.Bits)
			p.qobj.Set("mode", qplan.Global.Mode)
		}
	}
	if o.Dequantize {
		p.dropQuant = true
	}

	consumed := map[string]bool{}
	for _, name := range names {
		if consumed[name] {
			continue
		}
		in := inputs[name]
		path, param := mlxdir.SplitParam(name)
		j := &job{kind: jobCopy, in: in, to: outDtype(in)}

		switch {
		case o.Dequantize && param == "weight" && isQuantized(path) && floatMode(path):
			// mx.dequantize of a float mode: bfloat16 (its default type).
			spec, _ := srcQuant.For(path, true)
			s := inputs[path+".scales"]
			if s == nil || in.dtype != st.U32 || s.dtype != st.U8 || inputs[path+".biases"] != nil {
				sd := st.DType("none")
				if s != nil {
					sd = s.dtype
				}
				return nil, fmt.Errorf("convert: layer %s (mode %q) needs a U32 weight, U8 scales and no biases; has weight %s, scales %s, biases %v", path, spec.Mode, in.dtype, sd, inputs[path+".biases"] != nil)
			}
			if err := quant.ValidateMode(spec.Mode, spec.Bits, spec.GroupSize); err != nil {
				return nil, fmt.Errorf("convert: layer %s: %w", path, err)
			}
			cols := in.rowLen * 32 / spec.Bits
			if s.rowLen*spec.GroupSize != cols || s.rows != in.rows {
				return nil, fmt.Errorf("convert: layer %s: weight %v and scales %v do not fit %s", path, in.shape, s.shape, spec.Mode)
			}
			j.kind, j.scales, j.to = jobDequantize, s, st.BF16
			j.set = quant.Settings{GroupSize: spec.GroupSize, Bits: spec.Bits, Mode: spec.Mode}
			consumed[path+".scales"] = true
			shape := append(append([]int(nil), in.shape[:len(in.shape)-1]...), cols)
			j.specs = []st.TensorSpec{{Name: name, DType: j.to, Shape: shape}}
			p.dequant++

		case o.Dequantize && param == "weight" && isQuantized(path):
			s, b := inputs[path+".scales"], inputs[path+".biases"]
			if s == nil || b == nil || in.dtype != st.U32 {
				return nil, fmt.Errorf("convert: quantized layer %s needs a U32 weight with scales and biases (affine), has weight %s, scales %v, biases %v", path, in.dtype, s != nil, b != nil)
			}
			spec, _ := srcQuant.For(path, true)
			if spec.Mode != "affine" {
				return nil, fmt.Errorf("convert: cannot dequantize layer %s: mode %q is not supported yet (only affine)", path, spec.Mode)
			}
			if err := quant.Validate(spec.Bits, spec.GroupSize); err != nil {
				return nil, fmt.Errorf("convert: layer %s: %w", path, err)
			}
			if !floating(s.dtype) || s.dtype == st.F64 || b.dtype != s.dtype {
				return nil, fmt.Errorf("convert: layer %s: scales %s and biases %s must share one of F32, F16, BF16", path, s.dtype, b.dtype)
			}
			cols := in.rowLen * 32 / spec.Bits
			if in.rowLen*32%spec.Bits != 0 || s.rowLen*spec.GroupSize != cols || s.rows != in.rows || b.rows != in.rows || b.rowLen != s.rowLen {
				return nil, fmt.Errorf("convert: layer %s: weight %v, scales %v and biases %v do not fit %d bits, group size %d", path, in.shape, s.shape, b.shape, spec.Bits, spec.GroupSize)
			}
			j.kind, j.scales, j.biases = jobDequantize, s, b
			j.to = outDtype(s)
			j.set = quant.Settings{GroupSize: spec.GroupSize, Bits: spec.Bits, Mode: spec.Mode}
			consumed[path+".scales"], consumed[path+".biases"] = true, true
			shape := append(append([]int(nil), in.shape[:len(in.shape)-1]...), cols)
			j.specs = []st.TensorSpec{{Name: name, DType: j.to, Shape: shape}}
			p.dequant++

		case o.Quantize && param == "weight" && !isQuantized(path):
			layer := quant.ModelLayer(model.CanonicalType(modelType), name, in.shape)
			if layer.Kind != quant.NotQuantizable {
				p.dims[in.rowLen] = true
				if in.rowLen%qplan.Global.GroupSize == 0 {
					p.divisible++
				}
			}
			d, err := qplan.Decide(layer)
			if err != nil {
				return nil, fmt.Errorf("convert: %w", err)
			}
			if !d.Quantize {
				j.specs = []st.TensorSpec{{Name: name, DType: j.to, Shape: in.shape}}
				break
			}
			if j.to != st.F32 && j.to != st.F16 && j.to != st.BF16 {
				return nil, fmt.Errorf("convert: cannot quantize %s: dtype %s (quantization needs float32, float16 or bfloat16; pass --dtype)", name, j.to)
			}
			if e, ok := qplan.Config()[path]; ok {
				if em, ok := e.(map[string]any); ok {
					p.qobj.Set(path, orderedEntry(em))
				}
			}
			j.kind, j.set = jobQuantize, d.Settings
			lead := in.shape[:len(in.shape)-1]
			pc := quant.PackedCols(in.rowLen, d.Bits)
			wShape := append(append([]int(nil), lead...), pc)
			sShape := append(append([]int(nil), lead...), in.rowLen/d.GroupSize)
			j.specs = []st.TensorSpec{
				{Name: path + ".weight", DType: st.U32, Shape: wShape, Params: quant.PackedParams(wShape, d.Bits)},
				{Name: path + ".scales", DType: j.to, Shape: sShape, Params: st.NoParams},
				{Name: path + ".biases", DType: j.to, Shape: sShape, Params: st.NoParams},
			}
			if quant.IsFloatMode(d.Mode) { // uint8 scales, no biases
				j.specs[1].DType = st.U8
				j.specs = j.specs[:2]
			}
			p.quantized++

		default:
			var params int64
			if srcQuant != nil && !o.Dequantize && (param == "scales" || param == "biases") && isQuantized(path) {
				params = st.NoParams
			}
			if srcQuant != nil && !o.Dequantize && param == "weight" && isQuantized(path) && in.dtype == st.U32 {
				spec, _ := srcQuant.For(path, true)
				params = quant.PackedParams(in.shape, spec.Bits)
			}
			j.specs = []st.TensorSpec{{Name: name, DType: j.to, Shape: in.shape, Params: params}}
		}
		p.jobs = append(p.jobs, j)
		p.specs = append(p.specs, j.specs...)
	}
	leafParams(p.specs)
	return p, nil
}

// leafParams makes total_parameters count what mlx_lm's
// get_total_parameters counts: the parameters of leaf modules only. A
// parameter held by a module that also has child modules (gpt_oss's
// attention sinks, a gated delta net's A_log and dt_bias) is left out.
// Module structure is read from the names: a module is not a leaf when
// another tensor's module path extends its own.
func leafParams(specs []st.TensorSpec) {
	parents := map[string]bool{}
	for _, s := range specs {
		m, _ := mlxdir.SplitParam(s.Name)
		for i := strings.LastIndexByte(m, '.'); i > 0; i = strings.LastIndexByte(m[:i], '.') {
			parents[m[:i]] = true
		}
		if m != "" {
			parents[""] = true
		}
	}
	for i := range specs {
		if m, _ := mlxdir.SplitParam(specs[i].Name); parents[m] {
			specs[i].Params = st.NoParams
		}
	}
}

// checkLoadable runs the architecture's sanitize on the output's tensor
// list and config, so a layout the model package rejects is refused
// before anything is written.
func (p *planned) checkLoadable(cfg *mlxdir.Config, o Options) error {
	metas := make(map[string]model.TensorMeta, len(p.specs))
	for _, s := range p.specs {
		metas[s.Name] = model.TensorMeta{DType: string(s.DType), Shape: s.Shape}
	}
	out := make(map[string]any, len(cfg.Plain)+1)
	for k, v := range cfg.Plain {
		out[k] = v
	}
	switch {
	case p.dropQuant:
		delete(out, "quantization")
		delete(out, "quantization_config")
	case p.qobj != nil:
		q := map[string]any{}
		for _, k := range p.qobj.Keys {
			q[k] = p.qobj.Values[k]
		}
		out["quantization"], out["quantization_config"] = q, q
	}
	modelType := cfg.Str("model_type")
	if _, err := model.FullSanitizePlan(modelType, out, metas); err != nil {
		return fmt.Errorf("convert: the converted %s model would not load: %w", modelType, err)
	}
	return nil
}

// sourceQuantization reads the source config's "quantization" entry.
func sourceQuantization(cfg *mlxdir.Config) (*model.Quantization, *pyjson.Object, error) {
	v, ok := cfg.Obj.Get("quantization")
	if !ok || v == nil {
		return nil, nil, nil
	}
	obj, ok := v.(*pyjson.Object)
	if !ok {
		return nil, nil, errors.New("convert: config.json quantization is not an object")
	}
	raw, err := json.Marshal(cfg.Plain["quantization"])
	if err != nil {
		return nil, nil, err
	}
	q, err := model.ParseQuantization(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("convert: config.json quantization: %w", err)
	}
	return q, obj, nil
}

func copyObject(o *pyjson.Object) *pyjson.Object {
	c := pyjson.NewObject()
	for _, k := range o.Keys {
		c.Set(k, o.Values[k])
	}
	return c
}

// orderedEntry writes a per-layer config entry with mlx_lm's key order
// (group_size, bits, mode, then anything else).
func orderedEntry(m map[string]any) *pyjson.Object {
	o := pyjson.NewObject()
	for _, k := range []string{"group_size", "bits", "mode"} {
		if v, ok := m[k]; ok {
			o.Set(k, v)
		}
	}
	var rest []string
	for k := range m {
		if k != "group_size" && k != "bits" && k != "mode" {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		o.Set(k, m[k])
	}
	return o
}

// recipe builds a mixed recipe predicate: the number of layers and where
// the layer number sits come from the module paths, as mlx_lm finds them
// from the first module whose path holds "down_proj" and len(model.layers).
func recipe(name string, names []string, groupSize int) (quant.Predicate, error) {
	var down string
	for _, n := range names {
		if strings.Contains(n, "down_proj") {
			down, _ = mlxdir.SplitParam(n)
			break
		}
	}
	if down == "" {
		return nil, errors.New("convert: model does not have expected keys for mixed quant (no down_proj layer)")
	}
	loc := quant.LayerLocation(down)
	parts := strings.Split(down, ".")
	prefix := strings.Join(parts[:loc], ".") + "."
	layers := 0
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(rest, "%d.", &i); err == nil && i+1 > layers {
			layers = i + 1
		}
	}
	pred, err := quant.MixedRecipe(name, layers, loc, groupSize)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return pred, nil
}

// castPredicate is the cast_predicate of mlx_lm's model classes: the
// parameters a --dtype cast leaves in their stored dtype (MoE routing
// biases and SSM decay parameters, kept in float32).
func castPredicate(modelType string) func(string) bool {
	var keep []string
	var suffixes []string
	switch modelType {
	case "deepseek_v3", "deepseek_v32", "exaone_moe", "glm4_moe", "glm4_moe_lite", "kimi_k25", "kimi_vl",
		"longcat_flash", "longcat_flash_ngram", "mimo_v2_flash", "minimax":
		keep = []string{"e_score_correction_bias"}
	case "Klear", "afmoe", "bailing_moe", "bailing_moe_linear", "lfm2_moe":
		keep = []string{"expert_bias"}
	case "kimi_linear":
		keep = []string{"e_score_correction_bias"}
		suffixes = []string{"A_log", "dt_bias"}
	case "nemotron_h":
		keep = []string{"e_score_correction_bias", "A_log"}
	case "qwen3_5", "qwen3_5_moe":
		suffixes = []string{"A_log"}
	case "step3p5":
		keep = []string{"router_bias"}
	}
	return func(name string) bool {
		for _, k := range keep {
			if strings.Contains(name, k) {
				return false
			}
		}
		for _, s := range suffixes {
			if strings.HasSuffix(name, s) {
				return false
			}
		}
		return true
	}
}

// sourceDtype is the dtype mlx_lm's convert casts to when --dtype is not
// given: config torch_dtype, else text_config.dtype; "" when neither names
// one of float16, bfloat16, float32.
func sourceDtype(c *mlxdir.Config) string {
	d, _ := c.Plain["torch_dtype"].(string)
	if _, present := c.Plain["torch_dtype"]; !present || c.Plain["torch_dtype"] == nil {
		if tc, ok := c.Plain["text_config"].(map[string]any); ok && len(tc) > 0 {
			d, _ = tc["dtype"].(string)
		}
	}
	return d
}

// isLocal reports whether path names an existing file or folder (mlx_lm's
// Path(path).exists()); anything else is a hub repo id.
func isLocal(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
