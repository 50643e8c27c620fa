package gguf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// ModelSource is a TensorSource over safetensors files (a single file or a
// model folder of shards): F32 tensors are copied, F16/BF16 widened with
// kernels.HalfToF32Slice, one tensor at a time; each tensor's pages are
// released after it is read.
type ModelSource struct {
	Model *safetensors.Model
}

// Tensors lists the model's tensors in name order.
func (s ModelSource) Tensors() []SourceTensor {
	names := s.Model.Names()
	out := make([]SourceTensor, 0, len(names))
	for _, n := range names {
		info, _, _ := s.Model.Info(n)
		out = append(out, SourceTensor{Name: n, Shape: info.Shape, DType: string(info.DType)})
	}
	return out
}

// ReadFloat32 reads one tensor widened to float32.
func (s ModelSource) ReadFloat32(name string) ([]float32, error) {
	t, err := s.Model.Tensor(name)
	if err != nil {
		return nil, err
	}
	defer t.Release()
	info, _, _ := s.Model.Info(name)
	out := make([]float32, info.NumElements())
	switch info.DType {
	case safetensors.F32:
		x, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		copy(out, x)
	case safetensors.F16, safetensors.BF16:
		h, err := t.Uint16s()
		if err != nil {
			return nil, err
		}
		kind := kernels.F16
		if info.DType == safetensors.BF16 {
			kind = kernels.BF16
		}
		kernels.HalfToF32Slice(out, h, kind)
	default:
		return nil, fmt.Errorf("tensor %s has dtype %s, want F32, F16 or BF16", name, info.DType)
	}
	return out, nil
}

// ExportDir exports the model folder dir (config.json, *.safetensors,
// tokenizer.json and friends, as mlx_lm and transformers save them) to a
// GGUF file at dst. See Export.
func ExportDir(dst, dir string, outType Type) error {
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gguf: %s has no config.json", dir)
	}
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	m, err := safetensors.OpenModel(dir)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	defer m.Close()
	return Export(dst, cfg, dir, ModelSource{m}, outType)
}
