package convert

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/model"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// chunkBytes bounds the source bytes handled in one step of a tensor, so
// scratch buffers stay small whatever the tensor size.
const chunkBytes = 16 << 20

// floating reports whether MLX loads d as a floating dtype (the ones a
// --dtype cast applies to and the quantizer accepts). F8 kinds load as
// uint8 in MLX and are not floating.
func floating(d st.DType) bool {
	switch d {
	case st.F16, st.BF16, st.F32, st.F64:
		return true
	}
	return false
}

// input is one output tensor's data as the sanitize plan makes it from
// source tensors, before any cast: rows of rowLen elements of dtype.
type input struct {
	name   string
	op     model.TensorOp
	srcs   []st.Tensor
	dtype  st.DType
	shape  []int // output shape
	rowLen int   // last dimension (1 for a scalar)
	rows   int   // elements / rowLen
	esize  int
	// mapped: the sources are views of memory-mapped files
	// (safetensors.Open), whose pages may be dropped after use.
	mapped bool
}

func newInput(p model.TensorPlan, srcs []st.Tensor) (*input, error) {
	if len(srcs) == 0 {
		return nil, fmt.Errorf("sanitize plan for %s names no source tensor", p.Name)
	}
	in := &input{name: p.Name, op: p.Op, srcs: srcs, dtype: srcs[0].DType}
	esize, ok := in.dtype.Size()
	if !ok {
		return nil, fmt.Errorf("tensor %s (%s): dtype %s is not supported (expected one of F32, F16, BF16, F64, or an integer/F8 type to copy)", srcs[0].Name, srcs[0].File, in.dtype)
	}
	in.esize = esize
	first := srcs[0].Shape
	switch p.Op {
	case model.OpCopy:
		if len(srcs) != 1 {
			return nil, fmt.Errorf("sanitize plan for %s: copy of %d tensors", p.Name, len(srcs))
		}
		in.shape = append([]int(nil), first...)
	case model.OpStack:
		for _, s := range srcs[1:] {
			if s.DType != in.dtype || !slices.Equal(s.Shape, first) {
				return nil, fmt.Errorf("cannot stack %s into %s: %s %v differs from %s's %s %v", s.Name, p.Name, s.DType, s.Shape, srcs[0].Name, in.dtype, first)
			}
		}
		in.shape = append([]int{len(srcs)}, first...)
	case model.OpEvenRows, model.OpOddRows:
		if len(srcs) != 1 || len(first) < 2 || first[len(first)-2]%2 != 0 {
			return nil, fmt.Errorf("sanitize plan for %s: even/odd rows need one tensor with an even axis -2, got %v", p.Name, first)
		}
		in.shape = append([]int(nil), first...)
		in.shape[len(first)-2] /= 2
	default:
		return nil, fmt.Errorf("sanitize plan for %s: unknown op %d", p.Name, p.Op)
	}
	n := 1
	for _, d := range in.shape {
		n *= d
	}
	in.rowLen = 1
	if len(in.shape) > 0 {
		in.rowLen = in.shape[len(in.shape)-1]
	}
	if in.rowLen > 0 {
		in.rows = n / in.rowLen
	}
	return in, nil
}

func (in *input) numBytes() int64 {
	return int64(in.rows) * int64(in.rowLen) * int64(in.esize)
}

// whole returns the tensor's bytes without copying when one source holds
// them contiguously.
func (in *input) whole() ([]byte, bool) {
	if in.op == model.OpCopy {
		return in.srcs[0].Bytes(), true
	}
	return nil, false
}

// chunks calls fn with consecutive runs of whole rows (row is the index of
// the first), each at most about chunkBytes, as views of the source where
// the rows are contiguous there and gathered into scratch otherwise. The
// source pages of each chunk are dropped from the resident set once fn has
// used them, so a tensor of any size occupies about one chunk of memory.
func (in *input) chunks(scratch *[]byte, fn func(row int, data []byte) error) error {
	rowBytes := in.rowLen * in.esize
	if rowBytes == 0 || in.rows == 0 {
		return nil
	}
	per := max(1, chunkBytes/rowBytes)
	switch in.op {
	case model.OpCopy, model.OpStack:
		row := 0
		for _, s := range in.srcs {
			b := s.Bytes()
			n := len(b) / rowBytes
			for r := 0; r < n; r += per {
				k := min(per, n-r)
				view := b[r*rowBytes : (r+k)*rowBytes]
				if err := fn(row+r, view); err != nil {
					return err
				}
				if in.mapped {
					dropPages(view)
				}
			}
			row += n
		}
		return nil
	}
	// Even or odd rows of axis -2: output row r is source row 2r (+1).
	b := in.srcs[0].Bytes()
	off := 0
	if in.op == model.OpOddRows {
		off = 1
	}
	for r := 0; r < in.rows; r += per {
		k := min(per, in.rows-r)
		buf := grow(scratch, k*rowBytes)
		for i := 0; i < k; i++ {
			src := 2*(r+i) + off
			copy(buf[i*rowBytes:], b[src*rowBytes:(src+1)*rowBytes])
		}
		if err := fn(r, buf); err != nil {
			return err
		}
		if in.mapped {
			dropPages(b[(2*r)*rowBytes : 2*(r+k)*rowBytes])
		}
	}
	return nil
}

// gather returns all the rows in one slice: a view when possible, else a
// copy in scratch.
func (in *input) gather(scratch *[]byte) ([]byte, error) {
	if b, ok := in.whole(); ok {
		return b, nil
	}
	out := grow(scratch, int(in.numBytes()))
	rowBytes := in.rowLen * in.esize
	var tmp []byte
	err := in.chunks(&tmp, func(row int, data []byte) error {
		copy(out[row*rowBytes:], data)
		return nil
	})
	return out, err
}

// grow returns (*b)[:n], reallocating when too small.
func grow(b *[]byte, n int) []byte {
	if b == nil {
		return make([]byte, n)
	}
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	return (*b)[:n]
}

// Typed views of byte slices. Every platform mlxgo targets is
// little-endian, as safetensors data is; unaligned views are copied.
func asU16(b []byte, scratch *[]byte) []uint16 {
	if uintptr(unsafe.Pointer(unsafe.SliceData(b)))%2 != 0 {
		c := grow(scratch, len(b))
		copy(c, b)
		b = c
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

func asU32(b []byte, scratch *[]byte) []uint32 {
	if uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 != 0 {
		c := grow(scratch, len(b))
		copy(c, b)
		b = c
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

func asF32(b []byte, scratch *[]byte) []float32 {
	u := asU32(b, scratch)
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(u))), len(u))
}

func asF64(b []byte, scratch *[]byte) []float64 {
	if uintptr(unsafe.Pointer(unsafe.SliceData(b)))%8 != 0 {
		c := grow(scratch, len(b))
		copy(c, b)
		b = c
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}

func halfKind(d st.DType) kernels.HalfKind {
	if d == st.F16 {
		return kernels.F16
	}
	return kernels.BF16
}

// castInto converts src (elements of dtype from) into dst (dtype to), as
// MLX's astype: widening is exact, narrowing rounds to nearest even; F64
// goes through float32 first. f32 is scratch for the half-to-half path.
func castInto(dst []byte, to st.DType, src []byte, from st.DType, scratch *[]byte) {
	if from == to {
		copy(dst, src)
		return
	}
	var s2, s3 []byte
	switch {
	case from == st.F32 && to != st.F64:
		kernels.F32ToHalfSlice(asU16(dst, &s3), asF32(src, &s2), halfKind(to))
	case to == st.F32 && from != st.F64:
		kernels.HalfToF32Slice(asF32(dst, &s3), asU16(src, &s2), halfKind(from))
	case from == st.F64:
		f64 := asF64(src, &s2)
		var f32 []float32
		if to == st.F32 {
			f32 = asF32(dst, &s3)
		} else {
			f32 = asF32(grow(scratch, 4*len(f64)), &s3)
		}
		kernels.Parallel(len(f64), 1<<16, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				f32[i] = float32(f64[i])
			}
		})
		if to != st.F32 {
			kernels.F32ToHalfSlice(asU16(dst, &s3), f32, halfKind(to))
		}
	case to == st.F64:
		out := asF64(dst, &s3)
		var f32 []float32
		if from == st.F32 {
			f32 = asF32(src, &s2)
		} else {
			h := asU16(src, &s2)
			f32 = asF32(grow(scratch, 4*len(h)), &s3)
			kernels.HalfToF32Slice(f32, h, halfKind(from))
		}
		for i, v := range f32 {
			out[i] = float64(v)
		}
	default: // half to the other half: exact widening, then one rounding
		h := asU16(src, &s2)
		f32 := asF32(grow(scratch, 4*len(h)), &s3)
		kernels.HalfToF32Slice(f32, h, halfKind(from))
		kernels.F32ToHalfSlice(asU16(dst, &s3), f32, halfKind(to))
	}
}

// dtypeSize is the element size of a dtype known to be sized.
func dtypeSize(d st.DType) int {
	n, _ := d.Size()
	return n
}

// bitsPerWeight is mlx_lm's compute_bits_per_weight from the index totals.
func bitsPerWeight(idx *st.Index) float64 {
	if idx.TotalParameters == 0 {
		return math.NaN()
	}
	return float64(idx.TotalSize) * 8 / float64(idx.TotalParameters)
}
