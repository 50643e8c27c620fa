package lora

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// Trainable is one trainable array, named as in adapters.safetensors
// (module path + ".lora_a"/".lora_b"/".m", or a checkpoint name for full
// fine-tuning), and the field holding it.
type Trainable struct {
	Name string
	Ptr  **engine.Array
}

// Tuned is a model prepared for fine-tuning or carrying a loaded adapter:
// its adapter layers are swapped into the model's struct tree, and Params
// lists every trainable array in a fixed order (the order of the
// optimizer state and of ValueAndGrad's gradients).
type Tuned struct {
	FineTuneType string
	Params       []Trainable
	// Dropout is shared by every adapter layer; set Dropout.Training while training.
	Dropout *Dropout
	// NumBlocks is the model's number of transformer blocks.
	NumBlocks int
	// TotalParams counts the base model's parameters as mlx_lm's
	// get_total_parameters (a quantized weight counts its unpacked size,
	// scales and biases not at all).
	TotalParams int64
}

// TrainableCount is the number of trainable elements.
func (t *Tuned) TrainableCount() int64 {
	var n int64
	for _, p := range t.Params {
		n += int64((*p.Ptr).Size())
	}
	return n
}

// Arrays returns the current trainable arrays in Params order.
func (t *Tuned) Arrays() []*engine.Array {
	out := make([]*engine.Array, len(t.Params))
	for i, p := range t.Params {
		out[i] = *p.Ptr
	}
	return out
}

// SetArrays stores new trainable arrays (an optimizer's output) into the model.
func (t *Tuned) SetArrays(a []*engine.Array) {
	for i, p := range t.Params {
		*p.Ptr = a[i]
	}
}

// ApplyOptions say what to fine-tune (mlx_lm's fine_tune_type, num_layers
// and lora_parameters).
type ApplyOptions struct {
	FineTuneType string // lora, dora or full
	NumLayers    int    // last N blocks; -1 all
	Parameters   Parameters
	Seed         uint64 // lora_a initialisation
}

// module is a layer slot found in a model.
type module struct {
	path   string
	linear *nn.Layer
	embed  *nn.Embedder
	swtch  *nn.SwitchLayer
}

// structure is what Apply learns about a model.
type structure struct {
	params  []model.Param
	modules []module
	blocks  int
	prefix  string // "model.layers." for most architectures
	// quantized maps a quantized module path to its bits.
	quantized map[string]int
}

var blockRe = regexp.MustCompile(`^(.*?\blayers\.)(\d+)\.`)

func inspect(m model.Model) (*structure, error) {
	tr, ok := m.(model.Trainable)
	if !ok {
		return nil, fmt.Errorf("model %s does not expose its parameters for fine-tuning", m.ModelType())
	}
	s := &structure{params: tr.Parameters(), quantized: map[string]int{}, blocks: -1}
	for _, p := range s.params {
		if g := blockRe.FindStringSubmatch(p.Name); g != nil {
			n, _ := strconv.Atoi(g[2])
			if s.prefix == "" {
				s.prefix = g[1]
			}
			if g[1] == s.prefix {
				s.blocks = max(s.blocks, n)
			}
		}
	}
	s.blocks++
	for _, l := range tr.Linears() {
		s.modules = append(s.modules, module{path: l.Path, linear: l.Layer})
		if q, ok := (*l.Layer).(*nn.QuantizedLinear); ok {
			s.quantized[l.Path] = q.Bits
		}
	}
	byPtr := map[**engine.Array]string{}
	for _, p := range s.params {
		byPtr[p.Ptr] = p.Name
	}
	embedT := reflect.TypeFor[nn.Embedder]()
	switchT := reflect.TypeFor[nn.SwitchLayer]()
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			walk(v.Elem())
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				f := v.Field(i)
				if !v.Type().Field(i).IsExported() || !f.CanAddr() {
					continue
				}
				switch f.Type() {
				case embedT:
					if !f.IsNil() {
						e := f.Addr().Interface().(*nn.Embedder)
						if path, bits := embedderPath(*e, byPtr); path != "" {
							s.modules = append(s.modules, module{path: path, embed: e})
							if bits > 0 {
								s.quantized[path] = bits
							}
						}
					}
				case switchT:
					if !f.IsNil() {
						sw := f.Addr().Interface().(*nn.SwitchLayer)
						if path, bits := switchPath(*sw, byPtr); path != "" {
							s.modules = append(s.modules, module{path: path, swtch: sw})
							if bits > 0 {
								s.quantized[path] = bits
							}
						}
					}
				default:
					walk(f)
				}
			}
		}
	}
	walk(reflect.ValueOf(m))
	sort.SliceStable(s.modules, func(i, j int) bool { return s.modules[i].path < s.modules[j].path })
	return s, nil
}

func embedderPath(e nn.Embedder, byPtr map[**engine.Array]string) (string, int) {
	switch b := e.(type) {
	case *nn.Embedding:
		return strings.TrimSuffix(byPtr[&b.Weight], ".weight"), 0
	case *nn.QuantizedEmbedding:
		return strings.TrimSuffix(byPtr[&b.Weight], ".weight"), b.Bits
	}
	return "", 0
}

func switchPath(sw nn.SwitchLayer, byPtr map[**engine.Array]string) (string, int) {
	switch b := sw.(type) {
	case *nn.SwitchLinear:
		return strings.TrimSuffix(byPtr[&b.Weight], ".weight"), 0
	case *nn.QuantizedSwitchLinear:
		return strings.TrimSuffix(byPtr[&b.Weight], ".weight"), b.Bits
	}
	return "", 0
}

// totalParams is mlx_lm's get_total_parameters over the base model.
func (s *structure) totalParams() int64 {
	var n int64
	for _, p := range s.params {
		a := *p.Ptr
		path, suffix := splitLast(p.Name)
		if bits, ok := s.quantized[path]; ok {
			switch suffix {
			case "scales", "biases":
				continue
			case "weight":
				n += int64(a.Size()) * 32 / int64(bits)
				continue
			}
		}
		n += int64(a.Size())
	}
	return n
}

func splitLast(name string) (string, string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// firstBlock returns the index of the first targeted block.
func (s *structure) firstBlock(numLayers int) (int, error) {
	if s.blocks <= 0 {
		return 0, fmt.Errorf("model has no transformer blocks named like model.layers.N to fine-tune")
	}
	if numLayers > s.blocks {
		return 0, fmt.Errorf("--num-layers %d: requested to train %d layers but the model only has %d layers", numLayers, numLayers, s.blocks)
	}
	if numLayers < 0 {
		return 0, nil
	}
	return s.blocks - numLayers, nil
}

// blockRel returns path relative to its block and the block index, or -1.
func (s *structure) blockRel(path string) (string, int) {
	g := blockRe.FindStringSubmatch(path + ".")
	if g == nil || g[1] != s.prefix {
		return "", -1
	}
	n, _ := strconv.Atoi(g[2])
	return strings.TrimSuffix(strings.TrimPrefix(path+".", g[0]), "."), n
}

// Apply prepares m for fine-tuning as mlx_lm's train_model does: lora and
// dora wrap every linear-like module (Linear, QuantizedLinear, Embedding,
// SwitchLinear, ...) of the last NumLayers blocks, or only those whose
// block-relative path is in Parameters.Keys (a key naming a top-level
// module such as lm_head wraps it too); full unfreezes every float
// parameter of those blocks.
func Apply(m model.Model, o ApplyOptions) (*Tuned, error) {
	s, err := inspect(m)
	if err != nil {
		return nil, err
	}
	first, err := s.firstBlock(o.NumLayers)
	if err != nil {
		return nil, err
	}
	t := &Tuned{FineTuneType: o.FineTuneType, NumBlocks: s.blocks, TotalParams: s.totalParams(), Dropout: newDropout(o.Parameters.Dropout, o.Seed)}
	switch o.FineTuneType {
	case "full":
		for _, p := range s.params {
			path, _ := splitLast(p.Name)
			if _, blk := s.blockRel(path); blk < first {
				continue
			}
			if _, q := s.quantized[path]; q && !strings.HasSuffix(p.Name, ".bias") {
				continue // packed weights, scales and biases stay frozen
			}
			if !(*p.Ptr).DType().IsFloat() {
				continue
			}
			t.Params = append(t.Params, Trainable{Name: p.Name, Ptr: p.Ptr})
		}
		return t, nil
	case "lora", "dora":
	default:
		return nil, fmt.Errorf("fine_tune_type %q: expected lora, dora or full", o.FineTuneType)
	}
	if o.Parameters.Rank < 1 {
		return nil, fmt.Errorf("lora_parameters.rank must be at least 1, got %d", o.Parameters.Rank)
	}
	keys := map[string]bool{}
	for _, k := range o.Parameters.Keys {
		keys[k] = true
	}
	key := engine.NewKey(o.Seed)
	n := uint64(0)
	next := func() *engine.Key {
		n++
		k := engine.NewKey(uint64(key[0])<<32 ^ uint64(key[1]) ^ n*0xbf58476d1ce4e5b9)
		return &k
	}
	matched := map[string]bool{}
	for _, mod := range s.modules {
		rel, blk := s.blockRel(mod.path)
		switch {
		case blk >= first && (len(keys) == 0 || keys[rel]):
			matched[rel] = true
		case len(keys) > 0 && keys[mod.path]:
			matched[mod.path] = true
		default:
			continue
		}
		if err := t.wrap(mod, o.FineTuneType == "dora", o.Parameters.Rank, o.Parameters.Scale, next); err != nil {
			return nil, err
		}
	}
	for _, k := range o.Parameters.Keys {
		if !matched[k] {
			return nil, fmt.Errorf("lora_parameters.keys: %q matches no linear layer of the targeted blocks (block-relative paths such as self_attn.q_proj, or top-level module paths such as lm_head)", k)
		}
	}
	if len(t.Params) == 0 {
		return nil, fmt.Errorf("no layers to adapt in the last %d blocks", o.NumLayers)
	}
	return t, engine.Eval(t.Arrays()...)
}

// wrap swaps an adapter layer into mod's slot with fresh weights.
func (t *Tuned) wrap(mod module, dora bool, rank int, scale float64, next func() *engine.Key) error {
	switch {
	case mod.linear != nil:
		out, in, err := linearDims(*mod.linear)
		if err != nil {
			return fmt.Errorf("%s: %w", mod.path, err)
		}
		a := uniformInit([]int{in, rank}, in, next())
		b := engine.Zeros([]int{rank, out}, engine.Float32)
		if dora {
			w, _ := denseWeight(*mod.linear)
			mag := rowNorm(engine.AsType(w, engine.Float32))
			l := &DoRALinear{Base: *mod.linear, A: a, B: b, M: mag, Scale: scale, Dropout: t.Dropout}
			*mod.linear = l
			t.add(mod.path, &l.A, &l.B, &l.M)
		} else {
			l := &LoRALinear{Base: *mod.linear, A: a, B: b, Scale: scale, Dropout: t.Dropout}
			*mod.linear = l
			t.add(mod.path, &l.A, &l.B, nil)
		}
	case mod.embed != nil:
		w, err := embedWeight(*mod.embed)
		if err != nil {
			return fmt.Errorf("%s: %w", mod.path, err)
		}
		V, D := w.Dim(0), w.Dim(1)
		a := uniformInit([]int{V, rank}, V, next())
		b := engine.Zeros([]int{rank, D}, engine.Float32)
		if dora {
			e := &DoRAEmbedding{Base: *mod.embed, Weight: w, A: a, B: b, M: rowNorm(engine.AsType(w, engine.Float32)), Scale: scale, Dropout: t.Dropout}
			*mod.embed = e
			t.add(mod.path, &e.A, &e.B, &e.M)
		} else {
			e := &LoRAEmbedding{Base: *mod.embed, A: a, B: b, Scale: scale, Dropout: t.Dropout}
			*mod.embed = e
			t.add(mod.path, &e.A, &e.B, nil)
		}
	case mod.swtch != nil:
		if dora {
			return fmt.Errorf("%s: DoRA does not support MoE expert layers (SwitchLinear); use --fine-tune-type lora", mod.path)
		}
		E, out, in, err := switchDims(*mod.swtch)
		if err != nil {
			return fmt.Errorf("%s: %w", mod.path, err)
		}
		l := &LoRASwitchLinear{Base: *mod.swtch, A: uniformInit([]int{E, rank, in}, in, next()),
			B: engine.Zeros([]int{E, out, rank}, engine.Float32), Scale: scale, Dropout: t.Dropout}
		*mod.swtch = l
		t.add(mod.path, &l.A, &l.B, nil)
	}
	return nil
}

func (t *Tuned) add(path string, a, b, m **engine.Array) {
	t.Params = append(t.Params, Trainable{Name: path + ".lora_a", Ptr: a}, Trainable{Name: path + ".lora_b", Ptr: b})
	if m != nil {
		t.Params = append(t.Params, Trainable{Name: path + ".m", Ptr: m})
	}
}

func linearDims(l nn.Layer) (out, in int, err error) {
	switch b := l.(type) {
	case *nn.Linear:
		return b.Weight.Dim(0), b.Weight.Dim(1), nil
	case *nn.QuantizedLinear:
		// Multiply first: packed·32/bits (mlx_lm's packed·(32//bits) is wrong for 3/5/6 bits).
		return b.Weight.Dim(0), b.Weight.Dim(1) * 32 / b.Bits, nil
	case *LoRALinear, *DoRALinear:
		return 0, 0, fmt.Errorf("already has an adapter")
	}
	return 0, 0, fmt.Errorf("cannot adapt a %T", l)
}

func switchDims(s nn.SwitchLayer) (E, out, in int, err error) {
	switch b := s.(type) {
	case *nn.SwitchLinear:
		return b.Weight.Dim(0), b.Weight.Dim(1), b.Weight.Dim(2), nil
	case *nn.QuantizedSwitchLinear:
		return b.Weight.Dim(0), b.Weight.Dim(1), b.Weight.Dim(2) * 32 / b.Bits, nil
	}
	return 0, 0, 0, fmt.Errorf("cannot adapt a %T", s)
}

// embedWeight returns the dense [V, D] table of an embedding.
func embedWeight(e nn.Embedder) (*engine.Array, error) {
	switch b := e.(type) {
	case *nn.Embedding:
		return b.Weight, nil
	case *nn.QuantizedEmbedding:
		return engine.DequantizeMode(b.Weight, b.Scales, b.Biases, b.GroupSize, b.Bits, nn.ModeName(b.Mode)), nil
	}
	return nil, fmt.Errorf("cannot adapt a %T", e)
}

// Load sets trainable arrays from named tensors (an adapters.safetensors
// or a checkpoint): each tensor must have its array's shape and is cast to
// its dtype. strict also requires every tensor to name a trainable array
// and every trainable array to be present.
func (t *Tuned) Load(tensors map[string]Tensor, source string, strict bool) error {
	have := map[string]bool{}
	var arrs []*engine.Array
	for _, p := range t.Params {
		src, ok := tensors[p.Name]
		if !ok {
			if strict {
				return fmt.Errorf("%s: missing tensor %q", source, p.Name)
			}
			continue
		}
		have[p.Name] = true
		cur := *p.Ptr
		if !slices.Equal(src.Shape, cur.Shape()) {
			return fmt.Errorf("%s: tensor %q has shape %v, expected %v", source, p.Name, src.Shape, cur.Shape())
		}
		a := engine.FromFloat32s(src.Data, src.Shape...)
		if cur.DType() != engine.Float32 {
			a = engine.AsType(a, cur.DType())
		}
		*p.Ptr = a
		arrs = append(arrs, a)
	}
	if strict {
		for name := range tensors {
			if !have[name] {
				return fmt.Errorf("%s: tensor %q is not a parameter of the adapted model", source, name)
			}
		}
	}
	return engine.Eval(arrs...)
}

// Tensors returns the trainable arrays as float32 tensors by name (what
// adapters.safetensors holds).
func (t *Tuned) Tensors() (map[string]Tensor, error) {
	arrs := t.Arrays()
	if err := engine.Eval(arrs...); err != nil {
		return nil, err
	}
	out := make(map[string]Tensor, len(arrs))
	for i, p := range t.Params {
		a := arrs[i]
		if a.DType() != engine.Float32 {
			a = engine.AsType(a, engine.Float32)
		}
		d, err := a.Float32s()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		out[p.Name] = Tensor{Shape: append([]int(nil), a.Shape()...), Data: slices.Clone(d)}
	}
	return out, nil
}

// Save writes the trainable arrays to path as mlx_lm's adapter file
// (metadata {"format": "mlx"}, names sorted), each in its own dtype
// (adapter matrices are float32; full fine-tuning keeps bf16/f16
// parameters in their dtype), atomically.
func (t *Tuned) Save(path string) error {
	arrs := t.Arrays()
	if err := engine.Eval(arrs...); err != nil {
		return err
	}
	idx := make([]int, len(arrs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return t.Params[idx[a]].Name < t.Params[idx[b]].Name })
	data := make([]safetensors.Data, 0, len(arrs))
	for _, i := range idx {
		a := arrs[i]
		var dt safetensors.DType
		switch a.DType() {
		case engine.Float32:
			dt = safetensors.F32
		case engine.BFloat16:
			dt = safetensors.BF16
		case engine.Float16:
			dt = safetensors.F16
		default:
			a, dt = engine.AsType(a, engine.Float32), safetensors.F32
		}
		raw, err := a.Bytes()
		if err != nil {
			return fmt.Errorf("%s: %w", t.Params[i].Name, err)
		}
		data = append(data, safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: t.Params[i].Name, DType: dt, Shape: a.Shape()}, Bytes: raw})
	}
	return safetensors.Save(path, data, map[string]string{"format": "mlx"})
}

// ApplyAdapter puts a loaded adapter on m for inference (or to continue
// from it): lora/dora wrap exactly the modules the adapter names with its
// rank and scale and load its weights (equivalent to mlx_lm's
// load_adapters, where wrapped modules absent from the file keep lora_b =
// 0); full replaces the named parameters.
func ApplyAdapter(m model.Model, a *Adapter) (*Tuned, error) {
	s, err := inspect(m)
	if err != nil {
		return nil, err
	}
	t := &Tuned{FineTuneType: a.FineTuneType, NumBlocks: s.blocks, TotalParams: s.totalParams(), Dropout: newDropout(0, 0)}
	if a.FineTuneType == "full" {
		byName := map[string]model.Param{}
		for _, p := range s.params {
			byName[p.Name] = p
		}
		names := make([]string, 0, len(a.Tensors))
		for n := range a.Tensors {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("adapter tensor %q is not a parameter of the %s model", n, m.ModelType())
			}
			t.Params = append(t.Params, Trainable{Name: n, Ptr: p.Ptr})
		}
		return t, t.Load(a.Tensors, "adapter", true)
	}
	byPath := map[string]module{}
	for _, mod := range s.modules {
		byPath[mod.path] = mod
	}
	key := engine.NewKey(0)
	for _, path := range a.Modules() {
		mod, ok := byPath[path]
		if !ok {
			return nil, fmt.Errorf("adapter module %q is not a linear or embedding layer of the %s model", path, m.ModelType())
		}
		la := a.Tensors[path+".lora_a"]
		rank := la.Shape[len(la.Shape)-1]
		if len(la.Shape) == 3 {
			rank = la.Shape[1]
		}
		if err := t.wrap(mod, a.FineTuneType == "dora", rank, a.Parameters.Scale, func() *engine.Key { return &key }); err != nil {
			return nil, err
		}
	}
	if a.FineTuneType == "dora" {
		// An adapter without m for a module keeps the base row norms.
		for _, p := range t.Params {
			if strings.HasSuffix(p.Name, ".m") {
				if _, ok := a.Tensors[p.Name]; !ok {
					return nil, fmt.Errorf("DoRA adapter: missing tensor %q", p.Name)
				}
			}
		}
	}
	return t, t.Load(a.Tensors, "adapter", true)
}
