package engine

import (
	"math"
	"slices"
	"strings"
	"testing"
)

var unaryCases = []struct {
	name string
	op   func(*Array) *Array
	ref  func(float64) float64
	pos  bool // needs positive input
}{
	{"Negative", Negative, func(x float64) float64 { return -x }, false},
	{"Abs", Abs, math.Abs, false},
	{"Exp", Exp, math.Exp, false},
	{"Log", Log, math.Log, true},
	{"Log1p", Log1p, math.Log1p, true},
	{"Expm1", Expm1, math.Expm1, false},
	{"Sqrt", Sqrt, math.Sqrt, true},
	{"Rsqrt", Rsqrt, func(x float64) float64 { return 1 / math.Sqrt(x) }, true},
	{"Square", Square, func(x float64) float64 { return x * x }, false},
	{"Tanh", Tanh, math.Tanh, false},
	{"Sigmoid", Sigmoid, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, false},
	{"Sin", Sin, math.Sin, false},
	{"Cos", Cos, math.Cos, false},
	{"Erf", Erf, math.Erf, false},
	{"Reciprocal", Reciprocal, func(x float64) float64 { return 1 / x }, false},
	{"Sign", Sign, func(x float64) float64 { return math.Copysign(1, x) }, false},
	{"Floor", Floor, math.Floor, false},
	{"Ceil", Ceil, math.Ceil, false},
	{"SiLU", SiLU, func(x float64) float64 { return x / (1 + math.Exp(-x)) }, false},
	{"GELU", GELU, func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }, false},
	{"GELUApprox", GELUApprox, func(x float64) float64 {
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	}, false},
	{"ReLU", ReLU, func(x float64) float64 { return math.Max(x, 0) }, false},
	{"Softplus", Softplus, func(x float64) float64 { return math.Log1p(math.Exp(x)) }, false},
}

func TestUnary(t *testing.T) {
	for _, c := range unaryCases {
		x := randT(3, 5)
		if c.pos {
			x = randPos(3, 5)
		}
		// transposed view input
		xt := x.permute(1, 0)
		near(t, c.name, c.op(Transpose(x.arr())), xt.mapT(c.ref), 1e-6, 2e-6)
		// bf16 and f16 inputs: computed wide, rounded once
		for _, dt := range []DType{BFloat16, Float16} {
			xr := x.roundTo(dt)
			got := c.op(x.arrAs(dt))
			if got.DType() != dt {
				t.Errorf("%s(%s) gave %s", c.name, dt, got.DType())
			}
			// one rounding for primitives; composites (SiLU, GELU, ...)
			// round after every op, as MLX does in bf16
			tol := 8e-3
			if dt == Float16 {
				tol = 1e-3
			}
			atol := 1e-3
			if strings.HasPrefix(c.name, "GELU") || c.name == "SiLU" || c.name == "Softplus" {
				tol *= 4
				atol = 1e-2 // x·(1 + tanh(..)) cancels near 0 in bf16
			}
			near(t, c.name+"/"+dt.String(), got, xr.mapT(c.ref), atol, tol)
		}
	}
}

func TestUnaryGrad(t *testing.T) {
	for _, c := range unaryCases {
		if c.name == "Sign" || c.name == "Floor" || c.name == "Ceil" || c.name == "ReLU" {
			continue
		}
		x := randT(2, 3)
		if c.pos {
			x = randPos(2, 3)
		}
		gradCheck(t, c.name, func(xs []*Array) *Array { return c.op(xs[0]) }, x)
	}
	// ErfInv on (-1, 1)
	x := randT(5).mapT(func(v float64) float64 { return v / 2.5 })
	near(t, "ErfInv", ErfInv(x.arr()), x.mapT(math.Erfinv), 1e-5, 1e-5)
	gradCheck(t, "ErfInv", func(xs []*Array) *Array { return ErfInv(xs[0]) }, x)
}

var binaryCases = []struct {
	name string
	op   func(a, b *Array) *Array
	ref  func(a, b float64) float64
	grad bool
}{
	{"Add", Add, func(a, b float64) float64 { return a + b }, true},
	{"Subtract", Subtract, func(a, b float64) float64 { return a - b }, true},
	{"Multiply", Multiply, func(a, b float64) float64 { return a * b }, true},
	{"Divide", Divide, func(a, b float64) float64 { return a / b }, true},
	{"Maximum", Maximum, math.Max, true},
	{"Minimum", Minimum, math.Min, true},
	{"LogAddExp", LogAddExp, func(a, b float64) float64 { return math.Log(math.Exp(a) + math.Exp(b)) }, true},
	{"ArcTan2", ArcTan2, math.Atan2, true},
	{"Remainder", Remainder, func(a, b float64) float64 { return a - math.Floor(a/b)*b }, false},
	{"FloorDivide", FloorDivide, func(a, b float64) float64 { return math.Floor(a / b) }, false},
	{"Less", func(a, b *Array) *Array { return AsType(Less(a, b), Float32) }, func(a, b float64) float64 { return b2f(a < b) }, false},
	{"GreaterEqual", func(a, b *Array) *Array { return AsType(GreaterEqual(a, b), Float32) }, func(a, b float64) float64 { return b2f(a >= b) }, false},
	{"Equal", func(a, b *Array) *Array { return AsType(Equal(a, b), Float32) }, func(a, b float64) float64 { return b2f(a == b) }, false},
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestBinaryBroadcast(t *testing.T) {
	for _, c := range binaryCases {
		a := randT(3, 1, 4)
		b := randT(2, 4)
		want := zip(a.broadcast(3, 2, 4), b.broadcast(3, 2, 4), c.ref)
		near(t, c.name, c.op(a.arr(), b.arr()), want, 1e-6, 2e-6)
		// sliced (strided) operands: b2 = bb[:, ::2]
		bb := randT(2, 8)
		bs := Slice(bb.arr(), nil, nil, []int{1, 2})
		bref := tensor{[]int{2, 4}, make([]float64, 8)}
		for i := 0; i < 2; i++ {
			for j := 0; j < 4; j++ {
				bref.data[i*4+j] = bb.at(i, 2*j)
			}
		}
		want = zip(a.broadcast(3, 2, 4), bref.broadcast(3, 2, 4), c.ref)
		near(t, c.name+"/strided", c.op(a.arr(), bs), want, 1e-6, 2e-6)
		// bf16 with bf16
		ar, br := a.roundTo(BFloat16), b.roundTo(BFloat16)
		want = zip(ar.broadcast(3, 2, 4), br.broadcast(3, 2, 4), c.ref)
		near(t, c.name+"/bf16", c.op(a.arrAs(BFloat16), b.arrAs(BFloat16)), want, 1e-2, 8e-3)
	}
}

func TestBinaryGrad(t *testing.T) {
	for _, c := range binaryCases {
		if !c.grad {
			continue
		}
		a, b := randT(2, 1, 3), randT(4, 3)
		if c.name == "Maximum" || c.name == "Minimum" {
			// no near-ties: a finite difference must not flip the winner
			a, b = distinct(2, 1, 3), distinct(4, 3).mapT(func(v float64) float64 { return v + 0.1 })
		}
		gradCheck(t, c.name, func(xs []*Array) *Array { return c.op(xs[0], xs[1]) }, a, b)
	}
	gradCheck(t, "Power", func(xs []*Array) *Array { return Power(xs[0], xs[1]) }, randPos(2, 3), randT(2, 3))
	gradCheck(t, "Where", func(xs []*Array) *Array {
		return Where(Greater(xs[0], Scalar(0)), xs[0], xs[1])
	}, randT(2, 3), randT(3))
}

func TestPromotion(t *testing.T) {
	f32, bf, f16 := randT(2).arr(), randT(2).arrAs(BFloat16), randT(2).arrAs(Float16)
	i32 := FromInt32s([]int32{3, -7}, 2)
	cases := []struct {
		got  *Array
		want DType
	}{
		{Add(bf, f32), Float32},
		{Add(bf, f16), Float32},
		{Multiply(bf, Scalar(2)), BFloat16},
		{Add(i32, Scalar(0.5)), Float32},
		{Add(i32, ScalarOf(2, Int32)), Int32},
		{Divide(i32, ScalarOf(2, Int32)), Float32},
		{Less(f32, Scalar(0)), Bool},
		{Sum(FromBools([]bool{true, true, false}, 3), false), Int32},
		{Exp(i32), Float32},
	}
	for i, c := range cases {
		if c.got.DType() != c.want {
			t.Errorf("case %d: dtype %s, want %s", i, c.got.DType(), c.want)
		}
	}
	// weak scalars are rounded to the array's dtype first, as in MLX
	x := FromFloat32s([]float32{1}, 1)
	got := mustF(t, Add(AsType(x, BFloat16), Scalar(0.1)))
	if got[0] != 1.1015625 {
		t.Errorf("bf16(1) + 0.1 = %v, want 1.1015625", got[0])
	}
	// integer arithmetic stays exact
	iv, err := Add(FromInt32s([]int32{1 << 30, -5}, 2), FromInt32s([]int32{7, 3}, 2)).Int32s()
	if err != nil || iv[0] != 1<<30+7 || iv[1] != -2 {
		t.Errorf("int32 add = %v, %v", iv, err)
	}
	fd, _ := FloorDivide(FromInt32s([]int32{-7, 7}, 2), ScalarOf(2, Int32)).Int32s()
	if !slices.Equal(fd, []int32{-4, 3}) {
		t.Errorf("floor_divide = %v", fd)
	}
	// casts truncate toward zero
	c, _ := AsType(FromFloat32s([]float32{-1.7, 2.9}, 2), Int32).Int32s()
	if !slices.Equal(c, []int32{-1, 2}) {
		t.Errorf("cast = %v", c)
	}
}

func reduceRef(x tensor, axes []int, init float64, f func(acc, v float64) float64) tensor {
	shape := slices.Clone(x.shape)
	for _, a := range axes {
		shape[a] = 1
	}
	out := tensor{shape, make([]float64, prod(shape))}
	for i := range out.data {
		out.data[i] = init
	}
	ost := strides(shape)
	idx := make([]int, len(x.shape))
	for _, v := range x.data {
		o := 0
		for d := range idx {
			if shape[d] != 1 {
				o += idx[d] * ost[d]
			}
		}
		out.data[o] = f(out.data[o], v)
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < x.shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

func TestReductions(t *testing.T) {
	x := randT(3, 4, 5)
	xt := x.permute(2, 0, 1) // [5, 3, 4]
	a := Transpose(x.arr(), 2, 0, 1)
	for _, axes := range [][]int{{0}, {2}, {0, 2}, {1, 2}, {0, 1, 2}} {
		sum := reduceRef(xt, axes, 0, func(a, v float64) float64 { return a + v })
		near(t, "Sum", Sum(a, true, axes...), sum, 1e-5, 1e-5)
		n := float64(prod(xt.shape) / prod(sum.shape))
		near(t, "Mean", Mean(a, true, axes...), sum.mapT(func(v float64) float64 { return v / n }), 1e-5, 1e-5)
		near(t, "Max", Max(a, true, axes...), reduceRef(xt, axes, math.Inf(-1), math.Max), 0, 1e-7)
		near(t, "Min", Min(a, true, axes...), reduceRef(xt, axes, math.Inf(1), math.Min), 0, 1e-7)
		near(t, "Prod", Prod(a, true, axes...), reduceRef(xt, axes, 1, func(a, v float64) float64 { return a * v }), 1e-5, 1e-5)
		lse := reduceRef(xt.mapT(math.Exp), axes, 0, func(a, v float64) float64 { return a + v }).mapT(math.Log)
		near(t, "LogSumExp", LogSumExp(a, true, axes...), lse, 1e-5, 1e-5)
		gradCheck(t, "Sum", func(xs []*Array) *Array { return Sum(Transpose(xs[0], 2, 0, 1), false, axes...) }, x)
		gradCheck(t, "Max", func(xs []*Array) *Array { return Max(xs[0], false, axes...) }, distinct(3, 4, 5))
		gradCheck(t, "LogSumExp", func(xs []*Array) *Array { return LogSumExp(xs[0], false, axes...) }, x)
	}
	// leading-axis sums of a contiguous array (the row-adding path)
	c := randT(3, 4, 20)
	for _, axes := range [][]int{{0}, {0, 1}} {
		near(t, "Sum/leading", Sum(c.arr(), true, axes...), reduceRef(c, axes, 0, func(a, v float64) float64 { return a + v }), 1e-5, 1e-5)
	}
	// keepDims=false drops axes
	if s := Sum(a, false, 1).Shape(); !slices.Equal(s, []int{5, 4}) {
		t.Errorf("Sum shape %v", s)
	}
	gradCheck(t, "Prod", func(xs []*Array) *Array { return Prod(xs[0], false, 1) }, randT(2, 3))
	gradCheck(t, "Mean", func(xs []*Array) *Array { return Mean(xs[0], false, 0) }, randT(2, 3))
	gradCheck(t, "Var", func(xs []*Array) *Array { return Var(xs[0], false, 1) }, randT(2, 3))
	// ArgMax/ArgMin on a transposed view
	am, err := ArgMax(a, 1, false).Int32s()
	if err != nil {
		t.Fatal(err)
	}
	amin, _ := ArgMin(a, 2, false).Int32s()
	for i := 0; i < 5; i++ {
		for k := 0; k < 4; k++ {
			best := 0
			for j := 1; j < 3; j++ {
				if xt.at(i, j, k) > xt.at(i, best, k) {
					best = j
				}
			}
			if int(am[i*4+k]) != best {
				t.Fatalf("ArgMax[%d,%d] = %d, want %d", i, k, am[i*4+k], best)
			}
		}
		for j := 0; j < 3; j++ {
			best := 0
			for k := 1; k < 4; k++ {
				if xt.at(i, j, k) < xt.at(i, j, best) {
					best = k
				}
			}
			if int(amin[i*3+j]) != best {
				t.Fatalf("ArgMin[%d,%d] = %d, want %d", i, j, amin[i*3+j], best)
			}
		}
	}
	// bf16 sum accumulates wide
	big := randT(4096)
	bs := big.roundTo(BFloat16)
	near(t, "Sum/bf16", AsType(Sum(big.arrAs(BFloat16), false), Float32),
		tensor{nil, []float64{float64(bf16Round(sumF(bs.data)))}}, 0, 0)
}

func sumF(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s
}

func bf16Round(v float64) float64 {
	return tensor{[]int{1}, []float64{v}}.roundTo(BFloat16).data[0]
}

func TestCumSum(t *testing.T) {
	x := randT(3, 4)
	for _, rev := range []bool{false, true} {
		for _, inc := range []bool{false, true} {
			want := tensor{x.shape, make([]float64, 12)}
			for i := 0; i < 3; i++ {
				for j := 0; j < 4; j++ {
					var s float64
					for k := 0; k < 4; k++ {
						take := (!rev && (k < j || (inc && k == j))) || (rev && (k > j || (inc && k == j)))
						if take {
							s += x.at(i, k)
						}
					}
					want.data[i*4+j] = s
				}
			}
			near(t, "CumSum", CumSum(x.arr(), 1, rev, inc), want, 1e-6, 1e-6)
			gradCheck(t, "CumSum", func(xs []*Array) *Array { return CumSum(xs[0], 1, rev, inc) }, x)
		}
	}
}

func TestMatmul(t *testing.T) {
	// batch broadcast: [2, 1, 3, 4] · [5, 4, 6]
	a, b := randT(2, 1, 3, 4), randT(5, 4, 6)
	want := matmulT(a.broadcast(2, 5, 3, 4), b.broadcast(2, 5, 4, 6))
	near(t, "Matmul/broadcast", Matmul(a.arr(), b.arr()), want, 1e-5, 1e-5)
	// transposed views on both sides
	at, bt := randT(4, 3), randT(6, 4)
	want = matmulT(at.permute(1, 0), bt.permute(1, 0))
	near(t, "Matmul/transposed", Matmul(Transpose(at.arr()), Transpose(bt.arr())), want, 1e-5, 1e-5)
	// bf16 weight in Linear layout: x [M, K] · w[N, K]ᵀ
	x, w := randT(3, 8), randT(5, 8)
	wr := w.roundTo(BFloat16)
	near(t, "Matmul/bf16-weight", Matmul(x.arr(), Transpose(w.arrAs(BFloat16))), matmulT(x, wr.permute(1, 0)), 1e-5, 1e-5)
	// bf16 both: result rounded to bf16
	xr := x.roundTo(BFloat16)
	near(t, "Matmul/bf16", Matmul(x.arrAs(BFloat16), Transpose(w.arrAs(BFloat16))), matmulT(xr, wr.permute(1, 0)), 2e-2, 8e-3)
	// f16 weight
	wh := w.roundTo(Float16)
	near(t, "Matmul/f16-weight", Matmul(x.arr(), Transpose(w.arrAs(Float16))), matmulT(x, wh.permute(1, 0)), 1e-5, 1e-5)
	// vectors
	v, b2 := randT(4), randT(4, 6)
	near(t, "Matmul/vec", Matmul(v.arr(), b2.arr()), matmulT(tensor{[]int{1, 4}, v.data}, b2).squeezeRow(), 1e-5, 1e-5)
	// sliced rows
	big := randT(6, 4)
	sl := Slice(big.arr(), []int{1, 0}, []int{5, 4}, []int{2, 1}) // rows 1, 3
	ref := tensor{[]int{2, 4}, append(append([]float64{}, big.data[4:8]...), big.data[12:16]...)}
	near(t, "Matmul/sliced", Matmul(sl, Transpose(bt.arr())), matmulT(ref, bt.permute(1, 0)), 1e-5, 1e-5)
	// errors are values, not panics
	if err := Eval(Matmul(randT(2, 3).arr(), randT(4, 2).arr())); err == nil {
		t.Error("Matmul of [2,3]·[4,2] did not fail")
	}
	gradCheck(t, "Matmul", func(xs []*Array) *Array { return Matmul(xs[0], xs[1]) }, randT(2, 1, 3, 4), randT(3, 4, 2))
	gradCheck(t, "Matmul/T", func(xs []*Array) *Array { return Matmul(xs[0], Transpose(xs[1])) }, randT(3, 4), randT(2, 4))
}

func (t tensor) squeezeRow() tensor {
	return tensor{t.shape[1:], t.data}
}

// distinct returns well-separated values (no near-ties), for max/min/sort
// gradients where a finite difference must not flip the winner.
func distinct(shape ...int) tensor {
	n := prod(shape)
	d := make([]float64, n)
	for i, p := range rng.Perm(n) {
		d[i] = float64(float32(-1.5 + 3*float64(p)/float64(n)))
	}
	return tensor{shape, d}
}
