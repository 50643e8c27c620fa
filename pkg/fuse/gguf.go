package fuse

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/gguf"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// checkGGUF refuses, before anything is written, an export that cannot
// succeed: an architecture pkg/gguf does not write, an unknown type, a
// path outside the output folder, a model without tokenizer.json.
func checkGGUF(cfg *mlxdir.Config, srcDir string, o *Options) (gguf.Type, error) {
	mt := cfg.Str("model_type")
	if !slices.Contains(gguf.SupportedModelTypes(), mt) {
		return 0, fmt.Errorf("--export-gguf: model type %q is not supported for GGUF export (supported: %s)", mt, strings.Join(gguf.SupportedModelTypes(), ", "))
	}
	name := o.GGUFType
	if name == "" {
		name = "f16"
	}
	t, err := gguf.ParseType(name)
	if err != nil {
		return 0, fmt.Errorf("--gguf-type: %w", err)
	}
	p := filepath.Clean(o.GGUFPath)
	if o.GGUFPath == "" || filepath.IsAbs(p) || p == "." || strings.HasPrefix(p, ".."+string(filepath.Separator)) || p == ".." {
		return 0, fmt.Errorf("--gguf-path %q: expected a file name inside --save-path", o.GGUFPath)
	}
	if _, err := fileExists(filepath.Join(srcDir, "tokenizer.json")); err != nil {
		return 0, fmt.Errorf("--export-gguf needs the model's tokenizer.json: %w", err)
	}
	return t, nil
}

// dequantSource is a gguf.TensorSource over a written MLX folder:
// quantized layers (affine or float modes) are listed with their unquantized shape and dequantized
// when read (their scales and biases are not listed), so a quantized fused
// model exports the values it computes with.
type dequantSource struct {
	m     *st.Model
	q     *model.Quantization
	quant map[string]*job // weight name -> layer to decode
	list  []gguf.SourceTensor
}

func newDequantSource(m *st.Model, q *model.Quantization) (*dequantSource, error) {
	s := &dequantSource{m: m, q: q, quant: map[string]*job{}}
	hidden := map[string]bool{}
	for _, n := range m.Names() {
		path, param := mlxdir.SplitParam(n)
		info, _, _ := m.Info(n)
		if param != "weight" || info.DType != st.U32 || q == nil || !m.Has(path+".scales") {
			continue
		}
		spec, ok := q.For(path, true)
		if !ok {
			continue
		}
		src := func(name string) *source {
			t, _ := m.Tensor(name)
			i, _, _ := m.Info(name)
			return &source{name: name, plan: model.TensorPlan{Name: name, Op: model.OpCopy, Sources: []string{name}},
				srcs: []st.Tensor{t}, dtype: i.DType, shape: i.Shape}
		}
		w, sc := src(n), src(path+".scales")
		var bi *source
		if m.Has(path + ".biases") { // none in the float modes
			bi = src(path + ".biases")
		}
		if err := checkQuantized(path, w, sc, bi, spec); err != nil {
			return nil, err
		}
		cols := info.Shape[len(info.Shape)-1] * 32 / spec.Bits
		dtype := sc.dtype
		if isFPMode(spec.Mode) {
			dtype = st.BF16 // mx.dequantize's default for the float modes
		}
		j := &job{name: n, path: path, w: w, scales: sc, biases: bi, dtype: dtype, quantized: true,
			src:   settings(spec),
			shape: append(append([]int(nil), info.Shape[:len(info.Shape)-1]...), cols)}
		s.quant[n] = j
		hidden[path+".scales"], hidden[path+".biases"] = true, true
	}
	for _, n := range m.Names() {
		if hidden[n] {
			continue
		}
		info, _, _ := m.Info(n)
		t := gguf.SourceTensor{Name: n, Shape: info.Shape, DType: string(info.DType)}
		if j := s.quant[n]; j != nil {
			t.Shape, t.DType = j.shape, string(j.dtype)
		}
		s.list = append(s.list, t)
	}
	return s, nil
}

func (s *dequantSource) Tensors() []gguf.SourceTensor { return s.list }

func (s *dequantSource) ReadFloat32(name string) ([]float32, error) {
	if j := s.quant[name]; j != nil {
		defer func() {
			for _, x := range j.sources() {
				x.release()
			}
		}()
		return j.values()
	}
	return gguf.ModelSource{Model: s.m}.ReadFloat32(name)
}

// exportGGUF writes the GGUF file of the finished folder dir.
func exportGGUF(dir, rel string, t gguf.Type, cfgJSON []byte) error {
	var plain map[string]any
	if err := json.Unmarshal(cfgJSON, &plain); err != nil {
		return err
	}
	var q *model.Quantization
	if v, ok := plain["quantization"]; ok && v != nil {
		raw, _ := json.Marshal(v)
		var err error
		if q, err = model.ParseQuantization(raw); err != nil {
			return err
		}
	}
	delete(plain, "quantization")
	delete(plain, "quantization_config")
	cfg, err := json.Marshal(plain)
	if err != nil {
		return err
	}
	m, err := st.OpenModel(dir)
	if err != nil {
		return err
	}
	defer m.Close()
	src, err := newDequantSource(m, q)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return gguf.Export(dst, cfg, dir, src, t)
}
