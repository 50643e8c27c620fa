package cpu

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// Float fast paths: when every operand is float32/bfloat16/float16, common
// ops run on float32 blocks (contiguous halves widened by pkg/kernels),
// as MLX computes them; everything else takes the float64 path.

// load32 reads n elements of a float view into dst.
func load32(dst []float32, v backend.View, off, st int) {
	b := bytesOf(v)
	switch v.DType {
	case backend.Float32:
		s := f32s(b)
		if st == 1 {
			copy(dst, s[off:off+len(dst)])
			return
		}
		for i := range dst {
			dst[i] = s[off+i*st]
		}
	case backend.BFloat16, backend.Float16:
		s := u16s(b)
		if st == 1 {
			kernels.HalfToF32Slice(dst, s[off:off+len(dst)], halfKind(v.DType))
			return
		}
		if v.DType == backend.BFloat16 {
			for i := range dst {
				dst[i] = math.Float32frombits(uint32(s[off+i*st]) << 16)
			}
			return
		}
		for i := range dst {
			dst[i] = kernels.F16ToF32(s[off+i*st])
		}
	}
}

// store32 writes src to a float view, rounding to its dtype.
func store32(src []float32, v backend.View, off, st int) {
	b := bytesOf(v)
	switch v.DType {
	case backend.Float32:
		s := f32s(b)
		if st == 1 {
			copy(s[off:off+len(src)], src)
			return
		}
		for i, x := range src {
			s[off+i*st] = x
		}
	case backend.BFloat16, backend.Float16:
		s := u16s(b)
		if st == 1 {
			kernels.F32ToHalfSlice(s[off:off+len(src)], src, halfKind(v.DType))
			return
		}
		k := halfKind(v.DType)
		for i, x := range src {
			if k == kernels.BF16 {
				s[off+i*st] = kernels.F32ToBF16(x)
			} else {
				s[off+i*st] = kernels.F32ToF16(x)
			}
		}
	}
}

func allFloat(vs ...backend.View) bool {
	for _, v := range vs {
		if !v.DType.IsFloat() {
			return false
		}
	}
	return true
}

func unary32(op backend.UnaryOp) func(x []float32) {
	switch op {
	case backend.Neg:
		return func(x []float32) {
			for i, v := range x {
				x[i] = -v
			}
		}
	case backend.Abs:
		return func(x []float32) {
			for i, v := range x {
				x[i] = float32(math.Abs(float64(v)))
			}
		}
	case backend.Exp:
		return func(x []float32) {
			for i, v := range x {
				x[i] = expf(v)
			}
		}
	case backend.Sigmoid:
		return func(x []float32) { sigmoid32(x, x) }
	case backend.Square:
		return func(x []float32) {
			for i, v := range x {
				x[i] = v * v
			}
		}
	case backend.Sqrt:
		return func(x []float32) {
			for i, v := range x {
				x[i] = float32(math.Sqrt(float64(v)))
			}
		}
	case backend.Rsqrt:
		return func(x []float32) {
			for i, v := range x {
				x[i] = float32(1 / math.Sqrt(float64(v)))
			}
		}
	case backend.Reciprocal:
		return func(x []float32) {
			for i, v := range x {
				x[i] = 1 / v
			}
		}
	}
	return nil
}

func binary32(op backend.BinaryOp) func(x, y []float32) {
	switch op {
	case backend.Add:
		return func(x, y []float32) {
			if binFast(x, y, 0) {
				return
			}
			for i := range x {
				x[i] += y[i]
			}
		}
	case backend.Sub:
		return func(x, y []float32) {
			if binFast(x, y, 1) {
				return
			}
			for i := range x {
				x[i] -= y[i]
			}
		}
	case backend.Mul:
		return func(x, y []float32) {
			if binFast(x, y, 2) {
				return
			}
			for i := range x {
				x[i] *= y[i]
			}
		}
	case backend.Div:
		return func(x, y []float32) {
			if binFast(x, y, 3) {
				return
			}
			for i := range x {
				x[i] /= y[i]
			}
		}
	case backend.Maximum:
		return func(x, y []float32) {
			for i, b := range y {
				if a := x[i]; !(a != a || a > b) {
					x[i] = b
				}
			}
		}
	case backend.Minimum:
		return func(x, y []float32) {
			for i, b := range y {
				if a := x[i]; !(a != a || a < b) {
					x[i] = b
				}
			}
		}
	}
	return nil
}

// unaryFast runs op on float32 blocks; false if it has no fast path.
func unaryFast(op backend.UnaryOp, a, out backend.View) bool {
	f := unary32(op)
	if f == nil || !allFloat(a, out) {
		return false
	}
	it := newIter(out.Shape, a.Strides, out.Strides)
	it.rows([]int{a.Offset, out.Offset}, func(offs, inner []int, n int) {
		buf := getF32(min(block, n))
		defer putF32(buf)
		for s := 0; s < n; s += block {
			x := buf[:min(block, n-s)]
			load32(x, a, offs[0]+s*inner[0], inner[0])
			f(x)
			store32(x, out, offs[1]+s*inner[1], inner[1])
		}
	})
	return true
}

// binaryFast runs op on float32 blocks; false if it has no fast path.
func binaryFast(op backend.BinaryOp, a, b, out backend.View) bool {
	f := binary32(op)
	if f == nil || !allFloat(a, b, out) {
		return false
	}
	if binaryContig(f, a, b, out) {
		return true
	}
	it := newIter(out.Shape, a.Strides, b.Strides, out.Strides)
	it.rows([]int{a.Offset, b.Offset, out.Offset}, func(offs, inner []int, n int) {
		bx, by := getF32(min(block, n)), getF32(min(block, n))
		defer func() { putF32(bx); putF32(by) }()
		for s := 0; s < n; s += block {
			m := min(block, n-s)
			x, y := bx[:m], by[:m]
			load32(x, a, offs[0]+s*inner[0], inner[0])
			if inner[1] == 0 {
				v := [1]float32{}
				load32(v[:], b, offs[1], 0)
				for i := range y {
					y[i] = v[0]
				}
			} else {
				load32(y, b, offs[1]+s*inner[1], inner[1])
			}
			f(x, y)
			store32(x, out, offs[2]+s*inner[2], inner[2])
		}
	})
	return true
}

// binaryContig runs f for contiguous a and out when b is contiguous too or
// one row along the last axis repeated (a bias); false for other layouts.
// Small inputs (a decode step's vectors) skip the general iterator.
func binaryContig(f func(x, y []float32), a, b, out backend.View) bool {
	n := backend.Prod(out.Shape)
	if n == 0 || n > parallelWork || !out.Contiguous() || !a.Contiguous() {
		return false
	}
	row := n
	if !b.Contiguous() {
		nd := len(b.Shape)
		if nd == 0 || b.Strides[nd-1] != 1 {
			return false
		}
		for i := 0; i < nd-1; i++ {
			if b.Shape[i] != 1 && b.Strides[i] != 0 {
				return false
			}
		}
		row = b.Shape[nd-1]
	}
	m := min(block, row)
	bx, by := getF32(m), getF32(m)
	for r := 0; r < n; r += row {
		for s := 0; s < row; s += block {
			k := min(block, row-s)
			x, y := bx[:k], by[:k]
			load32(x, a, a.Offset+r+s, 1)
			load32(y, b, b.Offset+s, 1) // r is 0 unless b is a repeated row
			f(x, y)
			store32(x, out, out.Offset+r+s, 1)
		}
	}
	putF32(bx)
	putF32(by)
	return true
}

// sigmoid32 writes 1/(1+e^−x) for each x of src into dst (same length; dst
// may be src). Sigmoid and the fused SwiGLU share it, so fused and unfused
// graphs give the same values.
func sigmoid32(dst, src []float32) {
	if sigmoidFast(dst, src) {
		return
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = 1 / (1 + expf(-v))
	}
}

// roundF32 rounds each value of x to the precision of dt (floats only),
// through the SIMD half conversions of pkg/kernels in blocks.
func roundF32(dt backend.DType, x []float32) {
	if dt != backend.BFloat16 && dt != backend.Float16 {
		return
	}
	kind := halfKind(dt)
	if roundHalfFast(x, int(kind)) {
		return
	}
	// pooled scratch: a local array would escape into the assembly
	f := getF32(256)
	defer putF32(f)
	tmp := u16s(unsafeBytes(f))
	for s := 0; s < len(x); s += len(tmp) {
		c := x[s:min(s+len(tmp), len(x))]
		kernels.F32ToHalfSlice(tmp[:len(c)], c, kind)
		kernels.HalfToF32Slice(c, tmp[:len(c)], kind)
	}
}

// SwiGLU computes silu(x) = x·sigmoid(x), times up when given, in float32
// blocks: sigmoid rounded to the output dtype, the product with x rounded,
// then the product with up rounded on store (the unfused graph's roundings).
func (c *Backend) SwiGLU(x backend.View, up *backend.View, out backend.View) error {
	if !allFloat(x, out) || (up != nil && !allFloat(*up)) {
		return fmt.Errorf("cpu: SwiGLU: float operands required, got %s", x.DType)
	}
	strides := [][]int{x.Strides, out.Strides}
	base := []int{x.Offset, out.Offset}
	if up != nil {
		strides = append(strides, up.Strides)
		base = append(base, up.Offset)
	}
	dt := out.DType
	kind := -1 // swigluFast's rounding: 0 bf16, 1 f16, 2 f32
	switch dt {
	case backend.BFloat16:
		kind = 0
	case backend.Float16:
		kind = 1
	case backend.Float32:
		kind = 2
	}
	it := newIter(out.Shape, strides...)
	it.rows(base, func(offs, inner []int, n int) {
		// blocks of one row: split over the cores when the row is long (a
		// decode step's [1, 4864]; a prompt's rows are split by rows)
		blocks := func(b0, b1 int) {
			bx, bs := getF32(min(block, n)), getF32(min(block, n))
			defer func() { putF32(bx); putF32(bs) }()
			var bu []float32
			if up != nil {
				bu = getF32(min(block, n))
				defer putF32(bu)
			}
			for s := b0 * block; s < min(n, b1*block); s += block {
				m := min(block, n-s)
				xv, sv := bx[:m], bs[:m]
				load32(xv, x, offs[0]+s*inner[0], inner[0])
				if kind >= 0 {
					var uv []float32
					if up != nil {
						uv = bu[:m]
						load32(uv, *up, offs[2]+s*inner[2], inner[2])
					}
					if swigluFast(xv, uv, kind) {
						store32(xv, out, offs[1]+s*inner[1], inner[1])
						continue
					}
				}
				sigmoid32(sv, xv)
				roundF32(dt, sv)
				mulF32(xv, sv)
				if up != nil {
					roundF32(dt, xv)
					uv := bu[:m]
					load32(uv, *up, offs[2]+s*inner[2], inner[2])
					mulF32(xv, uv)
				}
				store32(xv, out, offs[1]+s*inner[1], inner[1])
			}
		}
		nb := (n + block - 1) / block
		if nb >= 4 {
			kernels.Parallel(nb, 1, blocks)
			return
		}
		blocks(0, nb)
	})
	return nil
}
