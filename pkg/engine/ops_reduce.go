package engine

import (
	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

type reducePrim struct {
	op   backend.ReduceOp
	axes []int
}

func (p reducePrim) name() string {
	return [...]string{"Sum", "Prod", "Max", "Min"}[p.op]
}
func (p reducePrim) eval(out *Array, in []*Array) error {
	return run(backend.Reduce{Op: p.op, Axes: p.axes}, out, in[0])
}
func (p reducePrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	x := in[0]
	if !x.dtype.IsFloat() {
		return []*Array{nil}
	}
	switch p.op {
	case backend.Sum:
		return []*Array{BroadcastTo(g, x.shape...)}
	case backend.Product:
		return []*Array{Divide(Multiply(g, out), x)}
	default: // max, min: share among ties
		mask := AsType(Equal(x, out), g.dtype)
		cnt := Sum(mask, true, p.axes...)
		return []*Array{Multiply(mask, Divide(g, cnt))}
	}
}

// normAxes resolves reduction axes (none = all).
func normAxes(a *Array, axes []int) ([]int, error) {
	nd := len(a.shape)
	if len(axes) == 0 {
		out := make([]int, nd)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	out := make([]int, 0, len(axes))
	for _, ax := range axes {
		n, err := normAxis(ax, nd)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func reduceOp(op backend.ReduceOp, a *Array, keep bool, axes []int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxes(a, axes)
	if err != nil {
		return errArray(err)
	}
	shape := slices.Clone(a.shape)
	for _, i := range ax {
		shape[i] = 1
	}
	dt := a.dtype
	if (op == backend.Sum || op == backend.Product) && (dt == Bool || dt == Uint8) {
		dt = Int32
	}
	r := newNode(dt, shape, reducePrim{op, ax}, a)
	if !keep {
		r = dropAxes(r, ax)
	}
	return r
}

func dropAxes(a *Array, axes []int) *Array {
	var shape []int
	for i, d := range a.shape {
		if !slices.Contains(axes, i) {
			shape = append(shape, d)
		}
	}
	return Reshape(a, shape...)
}

// Sum reduces over axes (all when none); keepDims keeps them as size 1.
func Sum(a *Array, keepDims bool, axes ...int) *Array {
	return reduceOp(backend.Sum, a, keepDims, axes)
}

// Prod multiplies over axes.
func Prod(a *Array, keepDims bool, axes ...int) *Array {
	return reduceOp(backend.Product, a, keepDims, axes)
}

// Max reduces with max over axes.
func Max(a *Array, keepDims bool, axes ...int) *Array {
	return reduceOp(backend.Max, a, keepDims, axes)
}

// Min reduces with min over axes.
func Min(a *Array, keepDims bool, axes ...int) *Array {
	return reduceOp(backend.Min, a, keepDims, axes)
}

// Mean averages over axes (float32 for integer inputs).
func Mean(a *Array, keepDims bool, axes ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxes(a, axes)
	if err != nil {
		return errArray(err)
	}
	n := 1
	for _, i := range ax {
		n *= a.shape[i]
	}
	x := a
	if !x.dtype.IsFloat() {
		x = AsType(x, Float32)
	}
	return Divide(Sum(x, keepDims, ax...), Scalar(float64(n)))
}

// Var returns the variance over axes (ddof 0).
func Var(a *Array, keepDims bool, axes ...int) *Array {
	m := Mean(a, true, axes...)
	return Mean(Square(Subtract(a, m)), keepDims, axes...)
}

// LogSumExp returns log Σ e^a over axes, stably.
func LogSumExp(a *Array, keepDims bool, axes ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	m := StopGradient(Max(a, true, axes...))
	// a row of all -inf must give -inf, not NaN
	m = Where(IsInf(m), Scalar(0), m)
	r := Add(Log(Sum(Exp(Subtract(a, m)), true, axes...)), m)
	if !keepDims {
		ax, _ := normAxes(a, axes)
		r = dropAxes(r, ax)
	}
	return r
}

// IsInf reports ±inf elementwise.
func IsInf(a *Array) *Array {
	return Equal(Abs(a), Scalar(posInf))
}

// IsNaN reports NaN elementwise.
func IsNaN(a *Array) *Array { return NotEqual(a, a) }

type argReducePrim struct {
	op   backend.ReduceOp
	axis int
}

func (p argReducePrim) name() string {
	if p.op == backend.ArgMax {
		return "ArgMax"
	}
	return "ArgMin"
}
func (p argReducePrim) eval(out *Array, in []*Array) error {
	return run(backend.ArgReduce{Op: p.op, Axis: p.axis}, out, in[0])
}
func (argReducePrim) vjp(*Array, []*Array, *Array) []*Array { return []*Array{nil} }

func argReduce(op backend.ReduceOp, a *Array, axis int, keep bool) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	shape := slices.Clone(a.shape)
	shape[ax] = 1
	r := newNode(Uint32, shape, argReducePrim{op, ax}, a)
	if !keep {
		r = dropAxes(r, []int{ax})
	}
	return r
}

// ArgMax returns uint32 indices of the max along axis (first of ties).
func ArgMax(a *Array, axis int, keepDims bool) *Array {
	return argReduce(backend.ArgMax, a, axis, keepDims)
}

// ArgMin returns uint32 indices of the min along axis.
func ArgMin(a *Array, axis int, keepDims bool) *Array {
	return argReduce(backend.ArgMin, a, axis, keepDims)
}

type scanPrim struct{ o backend.Scan }

func (scanPrim) name() string                         { return "Scan" }
func (p scanPrim) eval(out *Array, in []*Array) error { return run(p.o, out, in[0]) }
func (p scanPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	if p.o.Op != backend.Sum || !in[0].dtype.IsFloat() {
		return []*Array{Errorf("engine: no gradient for cumulative %v", p.o.Op)}
	}
	o := p.o
	o.Reverse = !o.Reverse
	return []*Array{newNode(g.dtype, g.shape, scanPrim{o}, g)}
}

func scanOp(op backend.ReduceOp, a *Array, axis int, reverse, inclusive bool) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	dt := a.dtype
	if op == backend.Sum && (dt == Bool || dt == Uint8) {
		dt = Int32
	}
	return newNode(dt, a.shape, scanPrim{backend.Scan{Op: op, Axis: ax, Reverse: reverse, Inclusive: inclusive}}, a)
}

// CumSum is the cumulative sum along axis.
func CumSum(a *Array, axis int, reverse, inclusive bool) *Array {
	return scanOp(backend.Sum, a, axis, reverse, inclusive)
}

// CumProd is the cumulative product along axis (no gradient).
func CumProd(a *Array, axis int, reverse, inclusive bool) *Array {
	return scanOp(backend.Product, a, axis, reverse, inclusive)
}

// CumMax is the running max along axis (no gradient).
func CumMax(a *Array, axis int, reverse, inclusive bool) *Array {
	return scanOp(backend.Max, a, axis, reverse, inclusive)
}
