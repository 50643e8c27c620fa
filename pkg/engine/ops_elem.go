package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// promote returns the result dtype of combining a and b, MLX style: floats
// beat ints, wider beats narrower, bfloat16 with float16 gives float32, and
// a weak scalar takes the other side's type (float32 if it is a float
// scalar meeting an integer array).
func promote(a, b *Array) DType {
	switch {
	case a.weak && !b.weak:
		if a.dtype.IsFloat() && !b.dtype.IsFloat() {
			return Float32
		}
		return b.dtype
	case b.weak && !a.weak:
		if b.dtype.IsFloat() && !a.dtype.IsFloat() {
			return Float32
		}
		return a.dtype
	}
	x, y := a.dtype, b.dtype
	if x == y {
		return x
	}
	if x.IsFloat() || y.IsFloat() {
		if !x.IsFloat() {
			return y
		}
		if !y.IsFloat() {
			return x
		}
		return Float32 // mixed float types
	}
	rank := func(d DType) int {
		switch d {
		case Bool:
			return 0
		case Uint8:
			return 1
		case Uint32:
			return 2
		}
		return 3 // int32
	}
	if rank(x) >= rank(y) {
		return x
	}
	return y
}

// BroadcastShapes returns the numpy broadcast of shapes.
func BroadcastShapes(shapes ...[]int) ([]int, error) {
	nd := 0
	for _, s := range shapes {
		nd = max(nd, len(s))
	}
	out := make([]int, nd)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := nd - len(s)
		for i, d := range s {
			switch {
			case d == out[off+i] || d == 1:
			case out[off+i] == 1:
				out[off+i] = d
			default:
				return nil, fmt.Errorf("engine: shapes %v do not broadcast", shapes)
			}
		}
	}
	return out, nil
}

// AsType casts a to dtype dt (floats to ints truncate toward zero).
func AsType(a *Array, dt DType) *Array {
	if e := bad(a); e != nil {
		return e
	}
	if a.dtype == dt {
		return a
	}
	return newNode(dt, a.shape, copyPrim{}, a)
}

// Copy returns a contiguous copy of a.
func Copy(a *Array) *Array {
	if e := bad(a); e != nil {
		return e
	}
	return newNode(a.dtype, a.shape, copyPrim{}, a)
}

type copyPrim struct{}

func (copyPrim) name() string { return "AsType" }
func (copyPrim) eval(out *Array, in []*Array) error {
	return run(backend.Copy{}, out, in[0])
}
func (copyPrim) vjp(out *Array, in []*Array, cot *Array) []*Array {
	if !in[0].dtype.IsFloat() {
		return []*Array{nil}
	}
	return []*Array{AsType(cot, in[0].dtype)}
}

// unary

type unaryPrim struct{ op backend.UnaryOp }

var unaryNames = map[backend.UnaryOp]string{
	backend.Neg: "Negative", backend.Abs: "Abs", backend.Exp: "Exp", backend.Log: "Log",
	backend.Log1p: "Log1p", backend.Expm1: "Expm1", backend.Sqrt: "Sqrt", backend.Rsqrt: "Rsqrt",
	backend.Square: "Square", backend.Tanh: "Tanh", backend.Sigmoid: "Sigmoid", backend.Sin: "Sin",
	backend.Cos: "Cos", backend.Erf: "Erf", backend.ErfInv: "ErfInv", backend.Sign: "Sign",
	backend.Floor: "Floor", backend.Ceil: "Ceil", backend.Round: "Round",
	backend.LogicalNot: "LogicalNot", backend.Reciprocal: "Reciprocal",
}

func (p unaryPrim) name() string { return unaryNames[p.op] }
func (p unaryPrim) eval(out *Array, in []*Array) error {
	return run(backend.Unary{Op: p.op}, out, in[0])
}

func (p unaryPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	x := in[0]
	var r *Array
	switch p.op {
	case backend.Neg:
		r = Negative(g)
	case backend.Abs:
		r = Multiply(g, Sign(x))
	case backend.Exp:
		r = Multiply(g, out)
	case backend.Log:
		r = Divide(g, x)
	case backend.Log1p:
		r = Divide(g, Add(x, Scalar(1)))
	case backend.Expm1:
		r = Multiply(g, Add(out, Scalar(1)))
	case backend.Sqrt:
		r = Divide(Multiply(g, Scalar(0.5)), out)
	case backend.Rsqrt:
		r = Multiply(Multiply(g, Scalar(-0.5)), Divide(out, x))
	case backend.Square:
		r = Multiply(g, Multiply(x, Scalar(2)))
	case backend.Tanh:
		r = Multiply(g, Subtract(Scalar(1), Square(out)))
	case backend.Sigmoid:
		r = Multiply(g, Multiply(out, Subtract(Scalar(1), out)))
	case backend.Sin:
		r = Multiply(g, Cos(x))
	case backend.Cos:
		r = Negative(Multiply(g, Sin(x)))
	case backend.Erf:
		r = Multiply(g, Multiply(Scalar(2/math.Sqrt(math.Pi)), Exp(Negative(Square(x)))))
	case backend.ErfInv:
		r = Multiply(g, Multiply(Scalar(math.Sqrt(math.Pi)/2), Exp(Square(out))))
	case backend.Reciprocal:
		r = Negative(Multiply(g, Square(out)))
	case backend.Sign, backend.Floor, backend.Ceil, backend.Round:
		r = ZerosLike(x)
	default:
		return []*Array{nil}
	}
	return []*Array{r}
}

func unaryOp(op backend.UnaryOp, a *Array) *Array {
	if e := bad(a); e != nil {
		return e
	}
	dt := a.dtype
	switch op {
	case backend.LogicalNot:
		dt = Bool
	case backend.Neg, backend.Abs, backend.Sign, backend.Square, backend.Floor, backend.Ceil, backend.Round:
	default:
		if !dt.IsFloat() {
			dt = Float32
		}
	}
	return newNode(dt, a.shape, unaryPrim{op}, a)
}

// Negative returns -a.
func Negative(a *Array) *Array { return unaryOp(backend.Neg, a) }

// Abs returns |a|.
func Abs(a *Array) *Array { return unaryOp(backend.Abs, a) }

// Exp returns e^a.
func Exp(a *Array) *Array { return unaryOp(backend.Exp, a) }

// Log returns ln a.
func Log(a *Array) *Array { return unaryOp(backend.Log, a) }

// Log1p returns ln(1+a).
func Log1p(a *Array) *Array { return unaryOp(backend.Log1p, a) }

// Expm1 returns e^a - 1.
func Expm1(a *Array) *Array { return unaryOp(backend.Expm1, a) }

// Sqrt returns √a.
func Sqrt(a *Array) *Array { return unaryOp(backend.Sqrt, a) }

// Rsqrt returns 1/√a.
func Rsqrt(a *Array) *Array { return unaryOp(backend.Rsqrt, a) }

// Square returns a².
func Square(a *Array) *Array { return unaryOp(backend.Square, a) }

// Tanh returns tanh a.
func Tanh(a *Array) *Array { return unaryOp(backend.Tanh, a) }

// Sigmoid returns 1/(1+e^-a).
func Sigmoid(a *Array) *Array { return unaryOp(backend.Sigmoid, a) }

// Sin returns sin a.
func Sin(a *Array) *Array { return unaryOp(backend.Sin, a) }

// Cos returns cos a.
func Cos(a *Array) *Array { return unaryOp(backend.Cos, a) }

// Erf returns the error function of a.
func Erf(a *Array) *Array { return unaryOp(backend.Erf, a) }

// ErfInv returns the inverse error function of a.
func ErfInv(a *Array) *Array { return unaryOp(backend.ErfInv, a) }

// Sign returns -1, 0 or 1.
func Sign(a *Array) *Array { return unaryOp(backend.Sign, a) }

// Floor rounds down.
func Floor(a *Array) *Array { return unaryOp(backend.Floor, a) }

// Ceil rounds up.
func Ceil(a *Array) *Array { return unaryOp(backend.Ceil, a) }

// Round rounds half to even.
func Round(a *Array) *Array { return unaryOp(backend.Round, a) }

// Reciprocal returns 1/a.
func Reciprocal(a *Array) *Array { return unaryOp(backend.Reciprocal, a) }

// LogicalNot returns !a as bool.
func LogicalNot(a *Array) *Array { return unaryOp(backend.LogicalNot, a) }

// binary

type binaryPrim struct{ op backend.BinaryOp }

var binaryNames = map[backend.BinaryOp]string{
	backend.Add: "Add", backend.Sub: "Subtract", backend.Mul: "Multiply", backend.Div: "Divide",
	backend.Pow: "Power", backend.Maximum: "Maximum", backend.Minimum: "Minimum",
	backend.Equal: "Equal", backend.NotEqual: "NotEqual", backend.Less: "Less",
	backend.LessEqual: "LessEqual", backend.Greater: "Greater", backend.GreaterEqual: "GreaterEqual",
	backend.LogicalAnd: "LogicalAnd", backend.LogicalOr: "LogicalOr",
	backend.FloorDivide: "FloorDivide", backend.Remainder: "Remainder",
	backend.LogAddExp: "LogAddExp", backend.Atan2: "ArcTan2",
}

func (p binaryPrim) name() string { return binaryNames[p.op] }
func (p binaryPrim) eval(out *Array, in []*Array) error {
	return runB(backend.Binary{Op: p.op}, out, in, [][]int{out.shape, out.shape})
}

func (p binaryPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	a, b := in[0], in[1]
	var ga, gb *Array
	switch p.op {
	case backend.Add:
		ga, gb = g, g
	case backend.Sub:
		ga, gb = g, Negative(g)
	case backend.Mul:
		ga, gb = Multiply(g, b), Multiply(g, a)
	case backend.Div:
		ga = Divide(g, b)
		gb = Negative(Divide(Multiply(g, out), b))
	case backend.Pow:
		ga = Multiply(g, Multiply(b, Power(a, Subtract(b, Scalar(1)))))
		gb = Multiply(g, Multiply(out, Log(a)))
	case backend.Maximum, backend.Minimum:
		var m *Array
		if p.op == backend.Maximum {
			m = GreaterEqual(a, b)
		} else {
			m = LessEqual(a, b)
		}
		z := Scalar(0)
		ga, gb = Where(m, g, z), Where(m, z, g)
	case backend.LogAddExp:
		ga = Multiply(g, Sigmoid(Subtract(a, b)))
		gb = Multiply(g, Sigmoid(Subtract(b, a)))
	case backend.Atan2:
		den := Add(Square(a), Square(b))
		ga = Divide(Multiply(g, b), den)
		gb = Negative(Divide(Multiply(g, a), den))
	case backend.Remainder:
		ga = g
		gb = Negative(Multiply(g, FloorDivide(a, b)))
	case backend.FloorDivide:
		ga, gb = ZerosLike(a), ZerosLike(b)
	default:
		return []*Array{nil, nil}
	}
	res := []*Array{nil, nil}
	if a.dtype.IsFloat() && !a.weak {
		res[0] = AsType(sumTo(ga, a.shape), a.dtype)
	}
	if b.dtype.IsFloat() && !b.weak {
		res[1] = AsType(sumTo(gb, b.shape), b.dtype)
	}
	return res
}

// prepBinary broadcasts shapes, promotes dtypes and recasts weak scalars.
func prepBinary(a, b *Array) (*Array, *Array, []int, DType, error) {
	if err := firstErr(a, b); err != nil {
		return nil, nil, nil, 0, err
	}
	shape, err := BroadcastShapes(a.shape, b.shape)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	dt := promote(a, b)
	if a.weak && a.dtype != dt {
		a = recastWeak(a, dt)
	}
	if b.weak && b.dtype != dt {
		b = recastWeak(b, dt)
	}
	return a, b, shape, dt, nil
}

func recastWeak(a *Array, dt DType) *Array {
	if p, ok := a.prim.(fillPrim); ok && a.st == nil {
		r := scalarRaw(p.v, dt)
		r.shape = a.shape
		return r
	}
	return AsType(a, dt)
}

func binaryOp(op backend.BinaryOp, a, b *Array) *Array {
	a, b, shape, dt, err := prepBinary(a, b)
	if err != nil {
		return errArray(err)
	}
	switch op {
	case backend.Equal, backend.NotEqual, backend.Less, backend.LessEqual, backend.Greater,
		backend.GreaterEqual, backend.LogicalAnd, backend.LogicalOr:
		dt = Bool
	case backend.Div, backend.LogAddExp, backend.Atan2:
		if !dt.IsFloat() {
			dt = Float32
		}
	}
	r := newNode(dt, shape, binaryPrim{op}, a, b)
	r.weak = a.weak && b.weak
	return r
}

// Add returns a + b with broadcasting.
func Add(a, b *Array) *Array { return binaryOp(backend.Add, a, b) }

// Subtract returns a - b.
func Subtract(a, b *Array) *Array { return binaryOp(backend.Sub, a, b) }

// Multiply returns a · b.
func Multiply(a, b *Array) *Array {
	if r := swiGLU(a, b); r != nil {
		return r
	}
	if r := swiGLU(b, a); r != nil {
		return r
	}
	return binaryOp(backend.Mul, a, b)
}

// Divide returns a / b (float result for integer inputs, like MLX).
func Divide(a, b *Array) *Array { return binaryOp(backend.Div, a, b) }

// Power returns a^b.
func Power(a, b *Array) *Array { return binaryOp(backend.Pow, a, b) }

// Maximum returns the elementwise max (NaN propagates).
func Maximum(a, b *Array) *Array { return binaryOp(backend.Maximum, a, b) }

// Minimum returns the elementwise min (NaN propagates).
func Minimum(a, b *Array) *Array { return binaryOp(backend.Minimum, a, b) }

// Equal returns a == b as bool.
func Equal(a, b *Array) *Array { return binaryOp(backend.Equal, a, b) }

// NotEqual returns a != b as bool.
func NotEqual(a, b *Array) *Array { return binaryOp(backend.NotEqual, a, b) }

// Less returns a < b as bool.
func Less(a, b *Array) *Array { return binaryOp(backend.Less, a, b) }

// LessEqual returns a <= b as bool.
func LessEqual(a, b *Array) *Array { return binaryOp(backend.LessEqual, a, b) }

// Greater returns a > b as bool.
func Greater(a, b *Array) *Array { return binaryOp(backend.Greater, a, b) }

// GreaterEqual returns a >= b as bool.
func GreaterEqual(a, b *Array) *Array { return binaryOp(backend.GreaterEqual, a, b) }

// LogicalAnd returns a && b as bool.
func LogicalAnd(a, b *Array) *Array { return binaryOp(backend.LogicalAnd, a, b) }

// LogicalOr returns a || b as bool.
func LogicalOr(a, b *Array) *Array { return binaryOp(backend.LogicalOr, a, b) }

// FloorDivide returns floor(a / b).
func FloorDivide(a, b *Array) *Array { return binaryOp(backend.FloorDivide, a, b) }

// Remainder returns a mod b with the sign of b (Python semantics).
func Remainder(a, b *Array) *Array { return binaryOp(backend.Remainder, a, b) }

// LogAddExp returns log(e^a + e^b), stably.
func LogAddExp(a, b *Array) *Array { return binaryOp(backend.LogAddExp, a, b) }

// ArcTan2 returns atan2(a, b).
func ArcTan2(a, b *Array) *Array { return binaryOp(backend.Atan2, a, b) }

// where

type wherePrim struct{}

func (wherePrim) name() string { return "Where" }
func (wherePrim) eval(out *Array, in []*Array) error {
	return runB(backend.Where{}, out, in, [][]int{out.shape, out.shape, out.shape})
}
func (wherePrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	z := Scalar(0)
	res := []*Array{nil, nil, nil}
	if in[1].dtype.IsFloat() && !in[1].weak {
		res[1] = AsType(sumTo(Where(in[0], g, z), in[1].shape), in[1].dtype)
	}
	if in[2].dtype.IsFloat() && !in[2].weak {
		res[2] = AsType(sumTo(Where(in[0], z, g), in[2].shape), in[2].dtype)
	}
	return res
}

// Where picks a where cond is true, else b, with broadcasting.
func Where(cond, a, b *Array) *Array {
	if err := firstErr(cond, a, b); err != nil {
		return errArray(err)
	}
	a, b, shape, dt, err := prepBinary(a, b)
	if err != nil {
		return errArray(err)
	}
	shape, err = BroadcastShapes(cond.shape, shape)
	if err != nil {
		return errArray(err)
	}
	if cond.dtype != Bool {
		cond = NotEqual(cond, Scalar(0))
	}
	return newNode(dt, shape, wherePrim{}, cond, a, b)
}

// sumTo sums g over the dims broadcasting added to reach g's shape from
// shape.
func sumTo(g *Array, shape []int) *Array {
	if g.err != nil || slices.Equal(g.shape, shape) {
		return g
	}
	lead := len(g.shape) - len(shape)
	var axes []int
	for i := range g.shape {
		if i < lead || (shape[i-lead] == 1 && g.shape[i] != 1) {
			axes = append(axes, i)
		}
	}
	r := Sum(g, true, axes...)
	return Reshape(r, shape...)
}
