package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// tensor is a float64 reference array (row-major).
type tensor struct {
	shape []int
	data  []float64
}

func prod(s []int) int {
	p := 1
	for _, d := range s {
		p *= d
	}
	return p
}

// rng is deterministic; MLXGO_TEST_SEED picks another stream (to shake out
// tolerances that only hold for one draw).
var rng = rand.New(rand.NewPCG(testSeed(), 2))

func testSeed() uint64 {
	if s, err := strconv.ParseUint(os.Getenv("MLXGO_TEST_SEED"), 10, 64); err == nil {
		return s
	}
	return 1
}

// randT returns values in ±[0.1, 2] (never zero).
func randT(shape ...int) tensor {
	d := make([]float64, prod(shape))
	for i := range d {
		v := 0.1 + 1.9*rng.Float64()
		if rng.IntN(2) == 0 {
			v = -v
		}
		d[i] = float64(float32(v)) // exactly representable in float32
	}
	return tensor{shape, d}
}

// randPos returns values in [0.2, 2].
func randPos(shape ...int) tensor {
	d := make([]float64, prod(shape))
	for i := range d {
		d[i] = float64(float32(0.2 + 1.8*rng.Float64()))
	}
	return tensor{shape, d}
}

func (t tensor) arr() *Array { return FromFloat64s(t.data, t.shape...) }

// roundTo rounds the reference data to dt, as storing it would.
func (t tensor) roundTo(dt DType) tensor {
	d := make([]float64, len(t.data))
	for i, v := range t.data {
		switch dt {
		case BFloat16:
			d[i] = float64(kernels.BF16ToF32(kernels.F32ToBF16(float32(v))))
		case Float16:
			d[i] = float64(kernels.F16ToF32(kernels.F32ToF16(float32(v))))
		default:
			d[i] = float64(float32(v))
		}
	}
	return tensor{t.shape, d}
}

// arrAs builds the array in dtype dt (half types through their bits).
func (t tensor) arrAs(dt DType) *Array {
	if dt == Float32 {
		return t.arr()
	}
	return AsType(t.arr(), dt)
}

func strides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// at reads the element at a multi-index.
func (t tensor) at(idx ...int) float64 {
	st := strides(t.shape)
	o := 0
	for i, v := range idx {
		o += v * st[i]
	}
	return t.data[o]
}

// transpose2 permutes a reference tensor.
func (t tensor) permute(perm ...int) tensor {
	shape := make([]int, len(perm))
	for i, p := range perm {
		shape[i] = t.shape[p]
	}
	out := tensor{shape, make([]float64, len(t.data))}
	st := strides(t.shape)
	idx := make([]int, len(shape))
	for i := range out.data {
		o := 0
		for k, p := range perm {
			o += idx[k] * st[p]
		}
		out.data[i] = t.data[o]
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

// broadcastT expands t to shape.
func (t tensor) broadcast(shape ...int) tensor {
	out := tensor{shape, make([]float64, prod(shape))}
	off := len(shape) - len(t.shape)
	st := strides(t.shape)
	idx := make([]int, len(shape))
	for i := range out.data {
		o := 0
		for k := range t.shape {
			if t.shape[k] != 1 {
				o += idx[off+k] * st[k]
			}
		}
		out.data[i] = t.data[o]
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

func mustF(t *testing.T, a *Array) []float64 {
	t.Helper()
	f, err := a.Float64s()
	if err != nil {
		t.Fatalf("eval: %v", err)
	}
	return f
}

// near checks got against want with |g−w| ≤ atol + rtol·|w|.
func near(t *testing.T, name string, got *Array, want tensor, atol, rtol float64) {
	t.Helper()
	if err := got.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if fmt.Sprint(got.Shape()) != fmt.Sprint(want.shape) && !(len(got.Shape()) == 0 && len(want.shape) == 0) {
		t.Fatalf("%s: shape %v, want %v", name, got.Shape(), want.shape)
	}
	g := mustF(t, got)
	bad := 0
	for i := range g {
		w := want.data[i]
		if math.IsNaN(w) != math.IsNaN(g[i]) || (!math.IsNaN(w) && math.Abs(g[i]-w) > atol+rtol*math.Abs(w) && !(math.IsInf(w, 0) && g[i] == w)) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %g, want %g", name, i, g[i], w)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements off", name, bad, len(g))
	}
}

// mapT applies f elementwise.
func (t tensor) mapT(f func(float64) float64) tensor {
	d := make([]float64, len(t.data))
	for i, v := range t.data {
		d[i] = f(v)
	}
	return tensor{t.shape, d}
}

// zip applies f to two same-shape tensors.
func zip(a, b tensor, f func(x, y float64) float64) tensor {
	d := make([]float64, len(a.data))
	for i := range d {
		d[i] = f(a.data[i], b.data[i])
	}
	return tensor{a.shape, d}
}

// matmulT multiplies [..., M, K]·[..., K, N] with equal batch dims.
func matmulT(a, b tensor) tensor {
	na, nb := len(a.shape), len(b.shape)
	M, K, N := a.shape[na-2], a.shape[na-1], b.shape[nb-1]
	batch := prod(a.shape[:na-2])
	shape := append(append([]int{}, a.shape[:na-2]...), M, N)
	out := tensor{shape, make([]float64, batch*M*N)}
	for bi := 0; bi < batch; bi++ {
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				var s float64
				for k := 0; k < K; k++ {
					s += a.data[bi*M*K+i*K+k] * b.data[bi*K*N+k*N+j]
				}
				out.data[bi*M*N+i*N+j] = s
			}
		}
	}
	return out
}

// gradCheck compares ValueAndGrad of sum(f(xs)·R) with float64 central
// differences of the same float32 engine function. h and tol suit float32.
func gradCheck(t *testing.T, name string, f func(xs []*Array) *Array, inputs ...tensor) {
	t.Helper()
	gradCheckTol(t, name, 3e-3, f, inputs...)
}

func gradCheckTol(t *testing.T, name string, tol float64, f func(xs []*Array) *Array, inputs ...tensor) {
	t.Helper()
	mk := func(ts []tensor) []*Array {
		a := make([]*Array, len(ts))
		for i, x := range ts {
			a[i] = x.arr()
		}
		return a
	}
	out := f(mk(inputs))
	if err := Eval(out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	R := randT(out.Shape()...)
	loss := func(xs []*Array) *Array {
		y := AsType(f(xs), Float32)
		return Sum(Multiply(y, R.arr()), false)
	}
	_, grads, err := ValueAndGrad(loss)(mk(inputs))
	if err != nil {
		t.Fatalf("%s: grad: %v", name, err)
	}
	if err := Eval(grads...); err != nil {
		t.Fatalf("%s: grad eval: %v", name, err)
	}
	for i, in := range inputs {
		g := mustF(t, grads[i])
		if len(g) != len(in.data) {
			t.Fatalf("%s: grad %d has %d elements, want %d", name, i, len(g), len(in.data))
		}
		for j := range in.data {
			val := func(d float64) float64 {
				ts := append([]tensor(nil), inputs...)
				c := append([]float64(nil), in.data...)
				c[j] += d
				ts[i] = tensor{in.shape, c}
				v, err := loss(mk(ts)).Item()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return v
			}
			// step shrinks near zero, where 1/x-like functions curve hard
			h := 1e-2 * min(1, max(math.Abs(in.data[j]), 0.1))
			fd := (val(h) - val(-h)) / (2 * h)
			if math.Abs(fd-g[j]) > tol*(1+math.Abs(fd)) {
				t.Errorf("%s: d/dx%d[%d] = %g, finite difference %g", name, i, j, g[j], fd)
				return
			}
		}
	}
}
