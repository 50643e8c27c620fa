package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// RawTensor is tensor data as a safetensors file stores it: little-endian,
// row-major bytes of a dtype named as safetensors names it.
type RawTensor struct {
	DType string // F32, BF16, U32, ...
	Shape []int
	Data  []byte
}

// ApplyPlan makes p's tensor from its sources, given in p.Sources order:
// the one function that carries out sanitize plans on tensor bytes (the
// loader uses it; a converter streaming checkpoints can too). A copy
// without steps returns the source's bytes themselves; anything else is
// a new buffer, the sources are never written. Dtypes other than floats
// pass through every op but OpAddScalar unchanged.
func ApplyPlan(p TensorPlan, srcs []RawTensor) (RawTensor, error) {
	r, err := applyPlan(p, srcs, false)
	if err != nil {
		return RawTensor{}, fmt.Errorf("sanitize plan for %q: %w", p.Name, err)
	}
	return r, nil
}

// PlanMeta returns the dtype and shape ApplyPlan makes from sources of
// these dtypes and shapes, with the same checks, without any data.
func PlanMeta(p TensorPlan, srcs []TensorMeta) (TensorMeta, error) {
	raws := make([]RawTensor, len(srcs))
	for i, s := range srcs {
		raws[i] = RawTensor{DType: s.DType, Shape: s.Shape}
	}
	r, err := applyPlan(p, raws, true)
	if err != nil {
		return TensorMeta{}, fmt.Errorf("sanitize plan for %q: %w", p.Name, err)
	}
	return TensorMeta{DType: r.DType, Shape: r.Shape}, nil
}

// Axis0Slabs reports whether p, made from one source of shape src.Shape,
// can be carried out in slabs along the leading axis: ApplyPlan on rows
// [lo, hi) of the source's axis 0 (a byte range of it, with that axis
// hi − lo long) gives rows [lo, hi) of the result. A streaming converter
// then holds one slab of a large tensor (one expert of a stacked
// gate_up_proj) instead of the whole of it.
func Axis0Slabs(p TensorPlan, src TensorMeta) bool {
	if p.Op != OpCopy || len(p.Sources) != 1 || len(src.Shape) == 0 {
		return false
	}
	shape := slices.Clone(src.Shape)
	for _, s := range p.Steps {
		nd := len(shape)
		switch s.Op {
		case OpEvenCols, OpOddCols, OpAddScalar:
			if nd < 2 && s.Op != OpAddScalar {
				return false
			}
		case OpEvenRows, OpOddRows, OpTranspose:
			if nd < 3 {
				return false
			}
		case OpSlice:
			if axis := s.Axis; axis == 0 || axis == -nd {
				return false
			}
		default: // stack, reshape (its shape names the whole leading axis)
			return false
		}
		m, err := PlanMeta(TensorPlan{Name: p.Name, Op: OpCopy, Sources: p.Sources, Steps: []Step{s}}, []TensorMeta{{DType: src.DType, Shape: shape}})
		if err != nil {
			return false
		}
		shape = m.Shape
	}
	return true
}

func elemSize(dtype string) (int, error) {
	n, ok := safetensors.DType(dtype).Size()
	if !ok {
		return 0, fmt.Errorf("dtype %s has no element size", dtype)
	}
	return n, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// applyPlan runs p; with metaOnly it computes dtypes and shapes alone.
func applyPlan(p TensorPlan, srcs []RawTensor, metaOnly bool) (RawTensor, error) {
	if len(srcs) != len(p.Sources) || len(srcs) == 0 {
		return RawTensor{}, fmt.Errorf("%d source tensors for %d named", len(srcs), len(p.Sources))
	}
	for i, s := range srcs {
		es, err := elemSize(s.DType)
		if err != nil {
			return RawTensor{}, fmt.Errorf("%s: %w", p.Sources[i], err)
		}
		if !metaOnly && len(s.Data) != numel(s.Shape)*es {
			return RawTensor{}, fmt.Errorf("%s: %s%v needs %d bytes, got %d", p.Sources[i], s.DType, s.Shape, numel(s.Shape)*es, len(s.Data))
		}
	}
	var r RawTensor
	switch p.Op {
	case OpCopy:
		if len(srcs) != 1 {
			return RawTensor{}, fmt.Errorf("copy needs one source, got %d", len(srcs))
		}
		r = srcs[0]
	case OpStack:
		first := srcs[0]
		for i, s := range srcs[1:] {
			if s.DType != first.DType || !slices.Equal(s.Shape, first.Shape) {
				return RawTensor{}, fmt.Errorf("cannot stack %s (%s %v) with %s (%s %v)", p.Sources[i+1], s.DType, s.Shape, p.Sources[0], first.DType, first.Shape)
			}
		}
		r = RawTensor{DType: first.DType, Shape: append([]int{len(srcs)}, first.Shape...)}
		if !metaOnly {
			r.Data = make([]byte, 0, len(first.Data)*len(srcs))
			for _, s := range srcs {
				r.Data = append(r.Data, s.Data...)
			}
		}
	case OpEvenRows, OpOddRows:
		if len(srcs) != 1 {
			return RawTensor{}, fmt.Errorf("row split needs one source, got %d", len(srcs))
		}
		var err error
		if r, err = applyStep(srcs[0], Step{Op: p.Op}, metaOnly); err != nil {
			return RawTensor{}, err
		}
	default:
		return RawTensor{}, fmt.Errorf("op %d cannot combine sources (expected copy, stack, even or odd rows)", p.Op)
	}
	for _, s := range p.Steps {
		var err error
		if r, err = applyStep(r, s, metaOnly); err != nil {
			return RawTensor{}, err
		}
	}
	return r, nil
}

// applyStep runs one step on r (data untouched when metaOnly).
func applyStep(r RawTensor, s Step, metaOnly bool) (RawTensor, error) {
	es, err := elemSize(r.DType)
	if err != nil {
		return RawTensor{}, err
	}
	nd := len(r.Shape)
	switch s.Op {
	case OpEvenRows, OpOddRows, OpEvenCols, OpOddCols:
		axis := nd - 1
		if s.Op == OpEvenRows || s.Op == OpOddRows {
			axis = nd - 2
		}
		if axis < 0 || r.Shape[axis]%2 != 0 {
			return RawTensor{}, fmt.Errorf("even/odd split needs an even axis %d, got shape %v", axis-nd, r.Shape)
		}
		start := 0
		if s.Op == OpOddRows || s.Op == OpOddCols {
			start = 1
		}
		return strided(r, es, axis, start, r.Shape[axis], 2, metaOnly), nil
	case OpSlice:
		axis := s.Axis
		if axis < 0 {
			axis += nd
		}
		if axis < 0 || axis >= nd || s.Start < 0 || s.Start > s.Stop || s.Stop > r.Shape[axis] {
			return RawTensor{}, fmt.Errorf("slice %d:%d of axis %d does not fit shape %v", s.Start, s.Stop, s.Axis, r.Shape)
		}
		return strided(r, es, axis, s.Start, s.Stop, 1, metaOnly), nil
	case OpTranspose:
		if nd < 2 {
			return RawTensor{}, fmt.Errorf("transpose needs 2 or more dims, got shape %v", r.Shape)
		}
		out := RawTensor{DType: r.DType, Shape: slices.Clone(r.Shape)}
		out.Shape[nd-2], out.Shape[nd-1] = r.Shape[nd-1], r.Shape[nd-2]
		if !metaOnly {
			out.Data = make([]byte, len(r.Data))
			transpose(out.Data, r.Data, numel(r.Shape[:nd-2]), r.Shape[nd-2], r.Shape[nd-1], es)
		}
		return out, nil
	case OpReshape:
		shape := slices.Clone(s.Shape)
		dtype := r.DType
		n := numel(r.Shape)
		if s.DType != "" && s.DType != r.DType {
			osz, err := elemSize(s.DType)
			if err != nil {
				return RawTensor{}, err
			}
			if n*es%osz != 0 {
				return RawTensor{}, fmt.Errorf("cannot view %v %s (%d bytes) as %s", r.Shape, r.DType, n*es, s.DType)
			}
			dtype, n = s.DType, n*es/osz
		}
		infer, known := -1, 1
		for i, d := range shape {
			switch {
			case d == -1 && infer < 0:
				infer = i
			case d < 0:
				return RawTensor{}, fmt.Errorf("reshape to %v: bad dim %d", s.Shape, d)
			default:
				known *= d
			}
		}
		if infer >= 0 && known > 0 && n%known == 0 {
			shape[infer] = n / known
		}
		if numel(shape) != n || slices.Contains(shape, -1) {
			return RawTensor{}, fmt.Errorf("cannot reshape %v (%d elements) to %v", r.Shape, n, s.Shape)
		}
		return RawTensor{DType: dtype, Shape: shape, Data: r.Data}, nil
	case OpAddScalar:
		if !addable(r.DType) {
			return RawTensor{}, fmt.Errorf("adding %g needs a float tensor, got %s", s.Value, r.DType)
		}
		out := RawTensor{DType: r.DType, Shape: slices.Clone(r.Shape)}
		if out.DType == string(safetensors.F16) || out.DType == string(safetensors.BF16) {
			out.DType = string(safetensors.F32)
		}
		if metaOnly {
			return out, nil
		}
		out.Data = make([]byte, numel(r.Shape)*4)
		if r.DType == string(safetensors.F64) {
			out.Data = make([]byte, len(r.Data))
		}
		addScalar(out.Data, r.Data, r.DType, s.Value)
		return out, nil
	}
	return RawTensor{}, fmt.Errorf("unknown step op %d", s.Op)
}

// strided keeps indices start, start+step, … < stop of axis.
func strided(r RawTensor, es, axis, start, stop, step int, metaOnly bool) RawTensor {
	n := r.Shape[axis]
	k := (stop - start + step - 1) / step
	out := RawTensor{DType: r.DType, Shape: slices.Clone(r.Shape)}
	out.Shape[axis] = k
	if metaOnly {
		return out
	}
	outer, inner := numel(r.Shape[:axis]), numel(r.Shape[axis+1:])*es
	out.Data = make([]byte, 0, outer*k*inner)
	for o := range outer {
		base := o * n * inner
		if step == 1 {
			out.Data = append(out.Data, r.Data[base+start*inner:base+stop*inner]...)
			continue
		}
		for i := start; i < stop; i += step {
			out.Data = append(out.Data, r.Data[base+i*inner:base+(i+1)*inner]...)
		}
	}
	return out
}

// transpose writes batch [R, C] matrices of es-byte elements as [C, R],
// in 32×32 tiles, matrices in parallel.
func transpose(dst, src []byte, batch, R, C, es int) {
	const tile = 32
	n := R * C * es
	kernels.Parallel(batch, 1, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			s, d := src[b*n:(b+1)*n], dst[b*n:(b+1)*n]
			for r0 := 0; r0 < R; r0 += tile {
				for c0 := 0; c0 < C; c0 += tile {
					for r := r0; r < min(r0+tile, R); r++ {
						for c := c0; c < min(c0+tile, C); c++ {
							i, o := (r*C+c)*es, (c*R+r)*es
							switch es {
							case 2:
								d[o], d[o+1] = s[i], s[i+1]
							case 4:
								d[o], d[o+1], d[o+2], d[o+3] = s[i], s[i+1], s[i+2], s[i+3]
							default:
								copy(d[o:o+es], s[i:i+es])
							}
						}
					}
				}
			}
		}
	})
}

func addable(dtype string) bool {
	switch safetensors.DType(dtype) {
	case safetensors.F32, safetensors.F64, safetensors.F16, safetensors.BF16:
		return true
	}
	return false
}

// addScalar writes src + v to dst: float64 for F64, else float32 (half
// inputs widen exactly, so the sum is transformers' 1 + w.float()).
func addScalar(dst, src []byte, dtype string, v float64) {
	switch safetensors.DType(dtype) {
	case safetensors.F64:
		for i := 0; i < len(src); i += 8 {
			x := math.Float64frombits(binary.LittleEndian.Uint64(src[i:]))
			binary.LittleEndian.PutUint64(dst[i:], math.Float64bits(x+v))
		}
	case safetensors.F32:
		for i := 0; i < len(src); i += 4 {
			x := math.Float32frombits(binary.LittleEndian.Uint32(src[i:]))
			binary.LittleEndian.PutUint32(dst[i:], math.Float32bits(x+float32(v)))
		}
	default: // F16, BF16
		kind := kernels.BF16
		if safetensors.DType(dtype) == safetensors.F16 {
			kind = kernels.F16
		}
		h := make([]uint16, len(src)/2)
		for i := range h {
			h[i] = binary.LittleEndian.Uint16(src[2*i:])
		}
		f := make([]float32, len(h))
		kernels.HalfToF32Slice(f, h, kind)
		for i, x := range f {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x+float32(v)))
		}
	}
}
