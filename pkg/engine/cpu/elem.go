package cpu

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// iter walks a shape shared by several strided operands row by row.
type iter struct {
	shape   []int
	strides [][]int
}

// newIter drops size-1 dims and merges dims that are contiguous in every
// operand, so a contiguous array becomes one long row.
func newIter(shape []int, strides ...[]int) iter {
	it := iter{strides: make([][]int, len(strides))}
	for d := range shape {
		if shape[d] == 1 {
			continue
		}
		n := len(it.shape)
		if n > 0 {
			merge := true
			for k, st := range strides {
				if it.strides[k][n-1] != st[d]*shape[d] {
					merge = false
					break
				}
			}
			if merge {
				it.shape[n-1] *= shape[d]
				for k, st := range strides {
					it.strides[k][n-1] = st[d]
				}
				continue
			}
		}
		it.shape = append(it.shape, shape[d])
		for k, st := range strides {
			it.strides[k] = append(it.strides[k], st[d])
		}
	}
	if len(it.shape) == 0 {
		it.shape = []int{1}
		for k := range it.strides {
			it.strides[k] = []int{0}
		}
	}
	// Split one very long row so it can run in parallel: into rows of 4096,
	// or of another length in [1024, 8192] that divides it.
	if len(it.shape) == 1 && it.shape[0] >= 1<<16 {
		n := it.shape[0]
		if d := rowSplit(n); d > 0 {
			it.shape = []int{n / d, d}
			for k, st := range it.strides {
				it.strides[k] = []int{st[0] * d, st[0]}
			}
		}
	}
	return it
}

// rowSplit returns a divisor of n in [1024, 8192], the one nearest 4096
// from below first, or 0.
func rowSplit(n int) int {
	for d := 4096; d >= 1024; d-- {
		if n%d == 0 {
			return d
		}
	}
	for d := 4097; d <= 8192; d++ {
		if n%d == 0 {
			return d
		}
	}
	return 0
}

// rows calls fn for every innermost row, in parallel over outer rows. offs
// holds each operand's element offset (base added), inner its inner stride.
func (it iter) rows(base []int, fn func(offs, inner []int, n int)) {
	nd := len(it.shape)
	n := it.shape[nd-1]
	outer := backend.Prod(it.shape[:nd-1])
	inner := make([]int, len(it.strides))
	for k := range it.strides {
		inner[k] = it.strides[k][nd-1]
	}
	grain := max(1, 8192/max(n, 1))
	kernels.Parallel(outer, grain, func(lo, hi int) {
		idx := make([]int, nd-1)
		offs := make([]int, len(base))
		r := lo
		for d := nd - 2; d >= 0; d-- {
			idx[d] = r % it.shape[d]
			r /= it.shape[d]
		}
		for k := range offs {
			offs[k] = base[k]
			for d := 0; d < nd-1; d++ {
				offs[k] += idx[d] * it.strides[k][d]
			}
		}
		for r := lo; r < hi; r++ {
			fn(offs, inner, n)
			for d := nd - 2; d >= 0; d-- {
				idx[d]++
				for k := range offs {
					offs[k] += it.strides[k][d]
				}
				if idx[d] < it.shape[d] {
					break
				}
				for k := range offs {
					offs[k] -= it.strides[k][d] * it.shape[d]
				}
				idx[d] = 0
			}
		}
	})
}

const block = 1024

// load reads n elements of v from element offset off with stride st.
func load(dst []float64, v backend.View, off, st int) {
	b := bytesOf(v)
	switch v.DType {
	case backend.Float32:
		s := f32s(b)
		for i := range dst {
			dst[i] = float64(s[off+i*st])
		}
	case backend.BFloat16:
		s := u16s(b)
		for i := range dst {
			dst[i] = float64(math.Float32frombits(uint32(s[off+i*st]) << 16))
		}
	case backend.Float16:
		s := u16s(b)
		for i := range dst {
			dst[i] = float64(kernels.F16ToF32(s[off+i*st]))
		}
	case backend.Int32:
		s := i32s(b)
		for i := range dst {
			dst[i] = float64(s[off+i*st])
		}
	case backend.Uint32:
		s := u32s(b)
		for i := range dst {
			dst[i] = float64(s[off+i*st])
		}
	case backend.Uint8, backend.Bool:
		for i := range dst {
			dst[i] = float64(b[off+i*st])
		}
	}
}

// store writes src to v at off with stride st, rounding or truncating to
// v's dtype (ints wrap like a C cast of an int64).
func store(src []float64, v backend.View, off, st int) {
	b := bytesOf(v)
	switch v.DType {
	case backend.Float32:
		s := f32s(b)
		for i, x := range src {
			s[off+i*st] = float32(x)
		}
	case backend.BFloat16:
		s := u16s(b)
		for i, x := range src {
			s[off+i*st] = kernels.F32ToBF16(float32(x))
		}
	case backend.Float16:
		s := u16s(b)
		for i, x := range src {
			s[off+i*st] = kernels.F32ToF16(float32(x))
		}
	case backend.Int32:
		s := i32s(b)
		for i, x := range src {
			s[off+i*st] = int32(toInt(x))
		}
	case backend.Uint32:
		s := u32s(b)
		for i, x := range src {
			s[off+i*st] = uint32(toInt(x))
		}
	case backend.Uint8:
		for i, x := range src {
			b[off+i*st] = uint8(toInt(x))
		}
	case backend.Bool:
		for i, x := range src {
			if x != 0 {
				b[off+i*st] = 1
			} else {
				b[off+i*st] = 0
			}
		}
	}
}

func toInt(x float64) int64 {
	if x != x {
		return 0
	}
	return int64(x)
}

// map1 runs f over blocks of a and writes out.
func map1(a, out backend.View, f func(x []float64)) {
	it := newIter(out.Shape, a.Strides, out.Strides)
	it.rows([]int{a.Offset, out.Offset}, func(offs, inner []int, n int) {
		var buf [block]float64
		for s := 0; s < n; s += block {
			m := min(block, n-s)
			x := buf[:m]
			load(x, a, offs[0]+s*inner[0], inner[0])
			if f != nil {
				f(x)
			}
			store(x, out, offs[1]+s*inner[1], inner[1])
		}
	})
}

// fast path: contiguous float32 to contiguous float32 copy
func copyCast(a, out backend.View) {
	if a.DType == out.DType && a.Contiguous() && out.Contiguous() {
		es := a.DType.Size()
		copy(bytesOf(out)[out.Offset*es:(out.Offset+out.Size())*es], bytesOf(a)[a.Offset*es:(a.Offset+a.Size())*es])
		return
	}
	if a.DType == out.DType {
		// same dtype: copy rows of bytes when the inner dim is unit-stride
		it := newIter(out.Shape, a.Strides, out.Strides)
		n := len(it.shape)
		if it.strides[0][n-1] == 1 && it.strides[1][n-1] == 1 {
			es := a.DType.Size()
			ab, ob := bytesOf(a), bytesOf(out)
			it.rows([]int{a.Offset, out.Offset}, func(offs, _ []int, m int) {
				copy(ob[offs[1]*es:(offs[1]+m)*es], ab[offs[0]*es:(offs[0]+m)*es])
			})
			return
		}
	}
	if allFloat(a, out) {
		castFloat(a, out)
		return
	}
	map1(a, out, nil)
}

// castFloat converts between float dtypes through float32 blocks (exact
// widening; narrowing rounds as store does), with the SIMD half
// conversions and pooled scratch.
func castFloat(a, out backend.View) {
	it := newIter(out.Shape, a.Strides, out.Strides)
	it.rows([]int{a.Offset, out.Offset}, func(offs, inner []int, n int) {
		buf := getF32(min(block, n))
		for s := 0; s < n; s += block {
			x := buf[:min(block, n-s)]
			load32(x, a, offs[0]+s*inner[0], inner[0])
			store32(x, out, offs[1]+s*inner[1], inner[1])
		}
		putF32(buf)
	})
}

func unary(op backend.UnaryOp, a, out backend.View) {
	if unaryFast(op, a, out) {
		return
	}
	f := unaryFunc(op)
	map1(a, out, func(x []float64) {
		for i, v := range x {
			x[i] = f(v)
		}
	})
}

func unaryFunc(op backend.UnaryOp) func(float64) float64 {
	switch op {
	case backend.Neg:
		return func(x float64) float64 { return -x }
	case backend.Abs:
		return math.Abs
	case backend.Exp:
		return math.Exp
	case backend.Log:
		return math.Log
	case backend.Log1p:
		return math.Log1p
	case backend.Expm1:
		return math.Expm1
	case backend.Sqrt:
		return math.Sqrt
	case backend.Rsqrt:
		return func(x float64) float64 { return 1 / math.Sqrt(x) }
	case backend.Square:
		return func(x float64) float64 { return x * x }
	case backend.Tanh:
		return math.Tanh
	case backend.Sigmoid:
		return func(x float64) float64 {
			if x >= 0 {
				return 1 / (1 + math.Exp(-x))
			}
			e := math.Exp(x)
			return e / (1 + e)
		}
	case backend.Sin:
		return math.Sin
	case backend.Cos:
		return math.Cos
	case backend.Erf:
		return math.Erf
	case backend.ErfInv:
		return math.Erfinv
	case backend.Sign:
		return func(x float64) float64 {
			switch {
			case x > 0:
				return 1
			case x < 0:
				return -1
			}
			return x
		}
	case backend.Floor:
		return math.Floor
	case backend.Ceil:
		return math.Ceil
	case backend.Round:
		return math.RoundToEven
	case backend.LogicalNot:
		return func(x float64) float64 {
			if x == 0 {
				return 1
			}
			return 0
		}
	case backend.Reciprocal:
		return func(x float64) float64 { return 1 / x }
	}
	panic("cpu: unknown unary op")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func binaryFunc(op backend.BinaryOp) func(a, b float64) float64 {
	switch op {
	case backend.Add:
		return func(a, b float64) float64 { return a + b }
	case backend.Sub:
		return func(a, b float64) float64 { return a - b }
	case backend.Mul:
		return func(a, b float64) float64 { return a * b }
	case backend.Div:
		return func(a, b float64) float64 { return a / b }
	case backend.Pow:
		return math.Pow
	case backend.Maximum:
		return func(a, b float64) float64 {
			if a != a || a > b {
				return a
			}
			return b
		}
	case backend.Minimum:
		return func(a, b float64) float64 {
			if a != a || a < b {
				return a
			}
			return b
		}
	case backend.Equal:
		return func(a, b float64) float64 { return b2f(a == b) }
	case backend.NotEqual:
		return func(a, b float64) float64 { return b2f(a != b) }
	case backend.Less:
		return func(a, b float64) float64 { return b2f(a < b) }
	case backend.LessEqual:
		return func(a, b float64) float64 { return b2f(a <= b) }
	case backend.Greater:
		return func(a, b float64) float64 { return b2f(a > b) }
	case backend.GreaterEqual:
		return func(a, b float64) float64 { return b2f(a >= b) }
	case backend.LogicalAnd:
		return func(a, b float64) float64 { return b2f(a != 0 && b != 0) }
	case backend.LogicalOr:
		return func(a, b float64) float64 { return b2f(a != 0 || b != 0) }
	case backend.FloorDivide:
		return func(a, b float64) float64 { return math.Floor(a / b) }
	case backend.Remainder:
		return func(a, b float64) float64 {
			r := math.Mod(a, b)
			if r != 0 && (r < 0) != (b < 0) {
				r += b
			}
			return r
		}
	case backend.LogAddExp:
		return func(a, b float64) float64 {
			m := math.Max(a, b)
			if math.IsInf(m, -1) {
				return m
			}
			return m + math.Log1p(math.Exp(-math.Abs(a-b)))
		}
	case backend.Atan2:
		return math.Atan2
	}
	panic("cpu: unknown binary op")
}

func binary(op backend.BinaryOp, a, b, out backend.View) {
	// fast path: float32 add/sub/mul on contiguous operands
	if a.DType == backend.Float32 && b.DType == backend.Float32 && out.DType == backend.Float32 &&
		(op == backend.Add || op == backend.Sub || op == backend.Mul) && a.Contiguous() && b.Contiguous() && out.Contiguous() {
		x := f32s(bytesOf(a))[a.Offset : a.Offset+a.Size()]
		y := f32s(bytesOf(b))[b.Offset : b.Offset+b.Size()]
		z := f32s(bytesOf(out))[out.Offset : out.Offset+out.Size()]
		kernels.Parallel(len(z), 1<<14, func(lo, hi int) {
			switch op {
			case backend.Add:
				for i := lo; i < hi; i++ {
					z[i] = x[i] + y[i]
				}
			case backend.Sub:
				for i := lo; i < hi; i++ {
					z[i] = x[i] - y[i]
				}
			default:
				for i := lo; i < hi; i++ {
					z[i] = x[i] * y[i]
				}
			}
		})
		return
	}
	if binaryFast(op, a, b, out) {
		return
	}
	f := binaryFunc(op)
	it := newIter(out.Shape, a.Strides, b.Strides, out.Strides)
	it.rows([]int{a.Offset, b.Offset, out.Offset}, func(offs, inner []int, n int) {
		var bx, by [block]float64
		for s := 0; s < n; s += block {
			m := min(block, n-s)
			x, y := bx[:m], by[:m]
			load(x, a, offs[0]+s*inner[0], inner[0])
			load(y, b, offs[1]+s*inner[1], inner[1])
			for i := range x {
				x[i] = f(x[i], y[i])
			}
			store(x, out, offs[2]+s*inner[2], inner[2])
		}
	})
}

func where(c, a, b, out backend.View) {
	it := newIter(out.Shape, c.Strides, a.Strides, b.Strides, out.Strides)
	it.rows([]int{c.Offset, a.Offset, b.Offset, out.Offset}, func(offs, inner []int, n int) {
		var bc, bx, by [block]float64
		for s := 0; s < n; s += block {
			m := min(block, n-s)
			cc, x, y := bc[:m], bx[:m], by[:m]
			load(cc, c, offs[0]+s*inner[0], inner[0])
			load(x, a, offs[1]+s*inner[1], inner[1])
			load(y, b, offs[2]+s*inner[2], inner[2])
			for i := range x {
				if cc[i] == 0 {
					x[i] = y[i]
				}
			}
			store(x, out, offs[3]+s*inner[3], inner[3])
		}
	})
}

// toF32 returns v as a contiguous float32 slice: v's own memory when it is
// already contiguous float32, else a converted copy.
func toF32(v backend.View) []float32 {
	n := v.Size()
	if n == 0 {
		return nil
	}
	if v.DType == backend.Float32 && v.Contiguous() {
		return f32s(bytesOf(v))[v.Offset : v.Offset+n]
	}
	dst := make([]float32, n)
	if (v.DType == backend.BFloat16 || v.DType == backend.Float16) && v.Contiguous() {
		kind := kernels.BF16
		if v.DType == backend.Float16 {
			kind = kernels.F16
		}
		kernels.HalfToF32Slice(dst, u16s(bytesOf(v))[v.Offset:v.Offset+n], kind)
		return dst
	}
	tmp := backend.View{Buf: &Buffer{b: unsafeBytes(dst), n: 4 * n}, DType: backend.Float32, Shape: v.Shape, Strides: backend.RowMajor(v.Shape)}
	map1(v, tmp, nil)
	return dst
}

// widenInto writes the float view v into dst (len v.Size()) as contiguous
// float32.
func widenInto(dst []float32, v backend.View) {
	n := v.Size()
	if n == 0 {
		return
	}
	if (v.DType == backend.BFloat16 || v.DType == backend.Float16) && v.Contiguous() {
		kernels.HalfToF32Slice(dst, u16s(bytesOf(v))[v.Offset:v.Offset+n], halfKind(v.DType))
		return
	}
	tmp := backend.View{Buf: &Buffer{b: unsafeBytes(dst), n: 4 * n}, DType: backend.Float32, Shape: v.Shape, Strides: backend.RowMajor(v.Shape)}
	map1(v, tmp, nil)
}

// fromF32 writes contiguous float32 data into the view out.
func fromF32(src []float32, out backend.View) {
	n := out.Size()
	if n == 0 {
		return
	}
	if out.DType == backend.Float32 && out.Contiguous() {
		d := f32s(bytesOf(out))[out.Offset : out.Offset+n]
		if &d[0] != &src[0] {
			copy(d, src)
		}
		return
	}
	if (out.DType == backend.BFloat16 || out.DType == backend.Float16) && out.Contiguous() {
		kind := kernels.BF16
		if out.DType == backend.Float16 {
			kind = kernels.F16
		}
		kernels.F32ToHalfSlice(u16s(bytesOf(out))[out.Offset:out.Offset+n], src, kind)
		return
	}
	tmp := backend.View{Buf: &Buffer{b: unsafeBytes(src), n: 4 * n}, DType: backend.Float32, Shape: out.Shape, Strides: backend.RowMajor(out.Shape)}
	map1(tmp, out, nil)
}

// toIdx returns an integer view as contiguous ints.
func toIdx(v backend.View) []int {
	n := v.Size()
	tmp := make([]float64, n)
	dst := make([]int, n)
	it := newIter(v.Shape, v.Strides, backend.RowMajor(v.Shape))
	it.rows([]int{v.Offset, 0}, func(offs, inner []int, m int) {
		load(tmp[offs[1]:offs[1]+m], v, offs[0], inner[0])
		for i := 0; i < m; i++ {
			dst[offs[1]+i] = int(tmp[offs[1]+i])
		}
	})
	return dst
}
