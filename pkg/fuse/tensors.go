package fuse

import (
	"fmt"
	"unsafe"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/model"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// source is one output tensor of the model type's full sanitize plan (what
// mlx_lm's sanitize makes of the checkpoint, so the fused folder is in MLX
// layout whatever the source's): made by model.ApplyPlan from its source
// tensors.
type source struct {
	name  string
	plan  model.TensorPlan
	srcs  []st.Tensor
	dtype st.DType
	shape []int
	// narrow: the plan widens half sources to float32 (qwen3_next's
	// norm + 1); the result is rounded back to dtype, the sources' one,
	// as mlx_lm adds in the loaded half dtype.
	narrow bool
}

func newSource(p model.TensorPlan, srcs []st.Tensor) (*source, error) {
	if len(srcs) == 0 {
		return nil, fmt.Errorf("sanitize plan for %s names no source tensor", p.Name)
	}
	metas := make([]model.TensorMeta, len(srcs))
	for i, t := range srcs {
		if _, ok := t.DType.Size(); !ok {
			return nil, fmt.Errorf("tensor %s (%s): dtype %s is not supported", t.Name, t.File, t.DType)
		}
		metas[i] = model.TensorMeta{DType: string(t.DType), Shape: t.Shape}
	}
	m, err := model.PlanMeta(p, metas)
	if err != nil {
		return nil, err
	}
	s := &source{name: p.Name, plan: p, srcs: srcs, dtype: st.DType(m.DType), shape: m.Shape}
	if from := srcs[0].DType; s.dtype == st.F32 && (from == st.F16 || from == st.BF16) {
		s.dtype, s.narrow = from, true
	}
	return s, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// bytes returns the tensor's data: a view of the mapped file for a plain
// copy, else a new buffer.
func (s *source) bytes() ([]byte, error) {
	raws := make([]model.RawTensor, len(s.srcs))
	for i, t := range s.srcs {
		raws[i] = model.RawTensor{DType: string(t.DType), Shape: t.Shape, Data: t.Bytes()}
	}
	r, err := model.ApplyPlan(s.plan, raws)
	if err != nil {
		return nil, err
	}
	if s.narrow {
		v, err := floats(r.Data, st.F32)
		if err != nil {
			return nil, err
		}
		return encode(v, s.dtype), nil
	}
	return r.Data, nil
}

// release drops the source pages from memory once used.
func (s *source) release() {
	for _, t := range s.srcs {
		t.Release()
	}
}

// floats decodes F32/F16/BF16 bytes to float32 values.
func floats(b []byte, d st.DType) ([]float32, error) {
	switch d {
	case st.F32:
		out := make([]float32, len(b)/4)
		copy(st.AsBytes(out), b)
		return out, nil
	case st.F16, st.BF16:
		h := make([]uint16, len(b)/2)
		copy(st.AsBytes(h), b)
		out := make([]float32, len(h))
		kernels.HalfToF32Slice(out, h, halfKind(d))
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s: expected F32, F16 or BF16", d)
}

// encode writes float32 values in dtype d (F32, F16 or BF16), rounding
// to nearest even.
func encode(v []float32, d st.DType) []byte {
	if d == st.F32 {
		return st.AsBytes(v)
	}
	h := make([]uint16, len(v))
	kernels.F32ToHalfSlice(h, v, halfKind(d))
	return st.AsBytes(h)
}

func words(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	copy(st.AsBytes(out), b)
	return out
}

func halves(b []byte) []uint16 {
	out := make([]uint16, len(b)/2)
	copy(st.AsBytes(out), b)
	return out
}

func halfKind(d st.DType) kernels.HalfKind {
	if d == st.BF16 {
		return kernels.BF16
	}
	return kernels.F16
}

func isFloat(d st.DType) bool { return d == st.F32 || d == st.F16 || d == st.BF16 }

// f32view reinterprets a float32 buffer's bytes (no copy).
func f32view(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*4)
}
