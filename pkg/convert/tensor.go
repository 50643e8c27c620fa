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
// scratch buffers stay small whatever the tensor size (a variable so
// tests can make tensors span several chunks).
var chunkBytes = 16 << 20

// noSlabs turns slab processing off (benchmarks: the whole-tensor peer).
var noSlabs bool

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
	// plan is the sanitize plan entry; stepped when it has steps, which
	// model.ApplyPlan carries out: on slabs of the source's leading axis
	// when slabs (model.Axis0Slabs), else on the whole tensor at once.
	plan    model.TensorPlan
	stepped bool
	slabs   bool
	// srcDtype is the sources' dtype; a step may widen it (qwen3_next's
	// norm + 1 comes out F32 from half sources).
	srcDtype st.DType
}

func newInput(p model.TensorPlan, srcs []st.Tensor) (*input, error) {
	if len(srcs) == 0 {
		return nil, fmt.Errorf("sanitize plan for %s names no source tensor", p.Name)
	}
	in := &input{name: p.Name, op: p.Op, srcs: srcs, dtype: srcs[0].DType, plan: p, srcDtype: srcs[0].DType}
	esize, ok := in.dtype.Size()
	if !ok {
		return nil, fmt.Errorf("tensor %s (%s): dtype %s is not supported (expected one of F32, F16, BF16, F64, or an integer/F8 type to copy)", srcs[0].Name, srcs[0].File, in.dtype)
	}
	in.esize = esize
	first := srcs[0].Shape
	op := p.Op
	if len(p.Steps) > 0 {
		op = -1
	}
	switch op {
	case -1:
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
		in.dtype, in.shape = st.DType(m.DType), m.Shape
		// Slabs of whole output rows: the leading axis must not be the
		// last one (a 1-D norm is done at once).
		in.stepped = true
		in.slabs = !noSlabs && len(srcs) == 1 && len(in.shape) >= 2 && len(first) >= 1 && first[0] == in.shape[0] && model.Axis0Slabs(p, metas[0])
		if in.esize, ok = in.dtype.Size(); !ok {
			return nil, fmt.Errorf("sanitize plan for %s: dtype %s has no element size", p.Name, in.dtype)
		}
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
	if in.op == model.OpCopy && !in.stepped {
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
	if in.stepped {
		return in.steppedChunks(per, fn)
	}
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

// steppedChunks runs a stepped plan through model.ApplyPlan: slab by slab
// of the source's leading axis (each slab about a quarter of chunkBytes of
// source, one leading index at least) when the plan allows, else on the whole tensor,
// whose result is then handed on in runs of per rows.
func (in *input) steppedChunks(per int, fn func(row int, data []byte) error) error {
	rowBytes := in.rowLen * in.esize
	if !in.slabs {
		r, err := in.apply()
		if err != nil {
			return err
		}
		for row := 0; row < in.rows; row += per {
			k := min(per, in.rows-row)
			if err := fn(row, r[row*rowBytes:(row+k)*rowBytes]); err != nil {
				return err
			}
		}
		return nil
	}
	src := in.srcs[0]
	b := src.Bytes()
	lead := src.Shape[0]
	if lead == 0 {
		return nil
	}
	slab := len(b) / lead            // source bytes per leading index
	outRows := in.rows / in.shape[0] // output rows per leading index
	// A quarter chunk of source a step (one leading index at least): each
	// step's ApplyPlan intermediates are Go heap garbage next to the
	// output buffer, so they are kept small.
	step := max(1, chunkBytes/4/max(1, slab))
	for lo := 0; lo < lead; lo += step {
		hi := min(lead, lo+step)
		view := b[lo*slab : hi*slab]
		shape := append([]int{hi - lo}, src.Shape[1:]...)
		r, err := model.ApplyPlan(in.plan, []model.RawTensor{{DType: string(src.DType), Shape: shape, Data: view}})
		if err != nil {
			return err
		}
		in.roundToSource(r.Data)
		if len(r.Data) != (hi-lo)*outRows*rowBytes {
			return fmt.Errorf("sanitize plan for %s: slab %d:%d gave %d bytes, expected %d", in.name, lo, hi, len(r.Data), (hi-lo)*outRows*rowBytes)
		}
		if err := fn(lo*outRows, r.Data); err != nil {
			return err
		}
		if in.mapped {
			dropPages(view)
		}
	}
	return nil
}

// apply runs the whole plan with model.ApplyPlan.
func (in *input) apply() ([]byte, error) {
	raws := make([]model.RawTensor, len(in.srcs))
	for i, t := range in.srcs {
		raws[i] = model.RawTensor{DType: string(t.DType), Shape: t.Shape, Data: t.Bytes()}
	}
	r, err := model.ApplyPlan(in.plan, raws)
	if err != nil {
		return nil, err
	}
	in.roundToSource(r.Data)
	return r.Data, nil
}

// roundToSource rounds, in place, the float32 result of a plan that widened
// half sources (qwen3_next's norm + 1) to the sources' dtype and back:
// mlx_lm adds in the loaded half dtype, so its values are half values
// whatever dtype they are later cast to. data is ApplyPlan's own buffer
// (a widening step never returns a source's bytes).
func (in *input) roundToSource(data []byte) {
	if in.dtype != st.F32 || (in.srcDtype != st.F16 && in.srcDtype != st.BF16) {
		return
	}
	f := asF32(data, nil)
	h := make([]uint16, len(f))
	kernels.F32ToHalfSlice(h, f, halfKind(in.srcDtype))
	kernels.HalfToF32Slice(f, h, halfKind(in.srcDtype))
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
