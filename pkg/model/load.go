package model

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// LoadOptions change how Load builds a model. The zero value loads like
// mlx_lm: activations in the weights' dtype.
type LoadOptions struct {
	// ComputeDType, when not nil, is the dtype of activations (embedding
	// lookups are cast to it; float32 here computes a bf16 checkpoint in
	// float32 with the weights still stored in bf16).
	ComputeDType *engine.DType
	// ExactQuantized computes quantized layers through their dequantized
	// weights instead of the quantized kernels (which may round activations
	// to int8): a slow reference mode.
	ExactQuantized bool
	// Progress, when not nil, receives a byte progress bar while Load reads
	// every weight page in (as mlx_lm evaluates the weights at load), so the
	// first forward does not pay for the disk reads. nil leaves the pages to
	// be read on first use.
	Progress io.Writer
}

// Load reads a model folder: config.json (+ generation_config.json's EOS
// ids), every model*.safetensors shard memory-mapped (tensors are used in
// place in their stored dtype), the architecture's sanitize plan, and
// quantized layers per the config. The model keeps the files mapped.
func Load(dir string, opts ...LoadOptions) (Model, *Config, error) {
	var o LoadOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	cfg.ComputeDType = o.ComputeDType
	cfg.exactQuantized = o.ExactQuantized
	ctor, err := lookup(cfg.ModelType)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	st, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load weights: %w", err)
	}
	m, err := build(cfg, ctor, st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	if o.Progress != nil {
		prefetch(st, o.Progress)
	}
	return m, cfg, nil
}

// prefetch reads every page of the model's tensors, showing a byte bar.
func prefetch(st *safetensors.Model, w io.Writer) {
	var total int64
	for _, e := range st.Entries() {
		total += e.NumBytes()
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("Loading"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(w, "\n") }),
	)
	var sink byte
	for _, e := range st.Entries() {
		t, err := st.Tensor(e.Name)
		if err != nil {
			continue
		}
		t.WillNeed()
		b := t.Bytes()
		for i := 0; i < len(b); i += 4096 {
			sink ^= b[i]
		}
		_ = bar.Add64(int64(len(b)))
	}
	_ = bar.Finish()
	prefetchSink = sink
}

var prefetchSink byte

func build(cfg *Config, ctor Constructor, st *safetensors.Model) (Model, error) {
	metas := map[string]TensorMeta{}
	for _, e := range st.Entries() {
		metas[e.Name] = TensorMeta{DType: string(e.DType), Shape: e.Shape}
	}
	var raw map[string]any
	data, _ := json.Marshal(cfg.Raw)
	_ = json.Unmarshal(data, &raw)
	plan, err := FullSanitizePlan(cfg.ModelType, raw, metas)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", st.Dir, err)
	}
	tensors := make(map[string]*engine.Array, len(plan))
	source := make(map[string]string, len(plan))
	for _, p := range plan {
		srcs := make([]safetensors.Tensor, len(p.Sources))
		for i, name := range p.Sources {
			t, err := st.Tensor(name)
			if err != nil {
				return nil, fmt.Errorf("load weights: %w", err)
			}
			srcs[i] = t
			source[p.Name] = t.File
		}
		if p.Op == OpCopy && len(p.Steps) == 0 && len(srcs) == 1 {
			// Used in place, memory-mapped.
			if tensors[p.Name], err = fromTensor(srcs[0]); err != nil {
				return nil, err
			}
			continue
		}
		// Derived tensors are computed once here, by the plan code the
		// converter shares, not on every forward.
		raws := make([]RawTensor, len(srcs))
		for i, t := range srcs {
			raws[i] = RawTensor{DType: string(t.DType), Shape: t.Shape, Data: t.Bytes()}
		}
		r, err := ApplyPlan(p, raws)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.Dir, err)
		}
		t := srcs[0]
		t.Name, t.DType, t.Shape = p.Name, safetensors.DType(r.DType), r.Shape
		if tensors[p.Name], err = fromBytes(t, r.Data); err != nil {
			return nil, err
		}
	}
	w := NewWeights(tensors, cfg.Quantization)
	w.source = source
	w.params.keep = append(w.params.keep, st)
	m, err := construct(cfg, ctor, w)
	if err != nil {
		return nil, fmt.Errorf("load %s (%s): %w", st.Dir, cfg.ModelType, err)
	}
	return m, nil
}

// FromTensors builds a model of cfg's model_type from in-memory tensors
// named as a sanitized checkpoint (tests and benchmarks).
func FromTensors(cfg *Config, tensors map[string]*engine.Array, opts ...LoadOptions) (Model, error) {
	if len(opts) > 0 {
		cfg.ComputeDType, cfg.exactQuantized = opts[0].ComputeDType, opts[0].ExactQuantized
	}
	ctor, err := lookup(cfg.ModelType)
	if err != nil {
		return nil, err
	}
	return construct(cfg, ctor, NewWeights(tensors, cfg.Quantization))
}

func construct(cfg *Config, ctor Constructor, w *Weights) (Model, error) {
	w.SetComputeDType(cfg.ComputeDType)
	w.SetExactQuantized(cfg.exactQuantized)
	m, err := ctor(cfg, w)
	if err == nil {
		err = w.Err()
	}
	if err != nil {
		return nil, err
	}
	if un := w.Unused(); len(un) > 0 {
		more := ""
		if len(un) > 8 {
			more = fmt.Sprintf(" and %d more", len(un)-8)
			un = un[:8]
		}
		return nil, fmt.Errorf("checkpoint tensors the model does not use: %s%s", strings.Join(un, ", "), more)
	}
	return m, nil
}

// fromTensor wraps a checkpoint tensor without copying where possible.
func fromTensor(t safetensors.Tensor) (*engine.Array, error) {
	return fromBytes(t, t.Bytes())
}

// fromBytes wraps data as a tensor of t's name, dtype and shape.
func fromBytes(t safetensors.Tensor, data []byte) (*engine.Array, error) {
	var dt engine.DType
	switch t.DType {
	case safetensors.F32:
		dt = engine.Float32
	case safetensors.F16:
		dt = engine.Float16
	case safetensors.BF16:
		dt = engine.BFloat16
	case safetensors.U32:
		dt = engine.Uint32
	case safetensors.I32:
		dt = engine.Int32
	case safetensors.U8:
		dt = engine.Uint8
	case safetensors.BOOL:
		dt = engine.Bool
	default:
		return nil, fmt.Errorf("%s: tensor %q has dtype %s, which mlxgo does not load (expected F32, F16, BF16, U32, I32, U8 or BOOL)", t.File, t.Name, t.DType)
	}
	a := engine.FromBytes(dt, t.Shape, data)
	if err := a.Err(); err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", t.File, t.Name, err)
	}
	return a, nil
}
