package cpu

import (
	"math"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// positions calls fn with the operands' offsets for every index of shape
// (parallel over indices).
func positions(shape []int, strides [][]int, base []int, fn func(offs []int)) {
	it := newIter(shape, strides...)
	it.rows(base, func(offs, inner []int, n int) {
		o := make([]int, len(offs))
		for i := 0; i < n; i++ {
			for k := range o {
				o[k] = offs[k] + i*inner[k]
			}
			fn(o)
		}
	})
}

// lines calls fn(offs) with the start of every line along axis of the
// operands (all with the same shape apart from axis).
func lines(shape []int, axis int, strides [][]int, base []int, fn func(offs []int)) {
	s := slices.Clone(shape)
	s[axis] = 1
	positions(s, strides, base, fn)
}

// serialWalk visits the strided block (shape, strides) from base serially.
func serialWalk(shape, strides []int, base int, fn func(off, st, n int)) {
	nd := len(shape)
	if nd == 0 {
		fn(base, 0, 1)
		return
	}
	idx := make([]int, nd-1)
	off := base
	for {
		fn(off, strides[nd-1], shape[nd-1])
		d := nd - 2
		for ; d >= 0; d-- {
			idx[d]++
			off += strides[d]
			if idx[d] < shape[d] {
				break
			}
			off -= strides[d] * shape[d]
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

func reduceInit(op backend.ReduceOp) float64 {
	switch op {
	case backend.Product:
		return 1
	case backend.Max:
		return math.Inf(-1)
	case backend.Min:
		return math.Inf(1)
	}
	return 0
}

func reduceBlock(op backend.ReduceOp, acc float64, x []float64) float64 {
	switch op {
	case backend.Sum:
		for _, v := range x {
			acc += v
		}
	case backend.Product:
		for _, v := range x {
			acc *= v
		}
	case backend.Max:
		for _, v := range x {
			if v > acc || v != v {
				acc = v
			}
		}
	case backend.Min:
		for _, v := range x {
			if v < acc || v != v {
				acc = v
			}
		}
	}
	return acc
}

func reduce(op backend.ReduceOp, axes []int, a, out backend.View) {
	red := make([]bool, len(a.Shape))
	for _, ax := range axes {
		red[ax] = true
	}
	var rs, rst []int
	for d := range a.Shape {
		if red[d] && a.Shape[d] > 1 {
			rs = append(rs, a.Shape[d])
			rst = append(rst, a.Strides[d])
		}
	}
	// merge contiguous reduced dims
	it := newIter(rs, rst)
	rs, rst = it.shape, it.strides[0]
	init := reduceInit(op)
	one := func(off int) float64 {
		acc := init
		var buf [block]float64
		serialWalk(rs, rst, off, func(o, st, n int) {
			for s := 0; s < n; s += block {
				m := min(block, n-s)
				x := buf[:m]
				load(x, a, o+s*st, st)
				acc = reduceBlock(op, acc, x)
			}
		})
		return acc
	}
	astr := slices.Clone(a.Strides)
	for d := range astr {
		if red[d] {
			astr[d] = 0
		}
	}
	positions(out.Shape, [][]int{astr, out.Strides}, []int{a.Offset, out.Offset}, func(offs []int) {
		v := [1]float64{one(offs[0])}
		store(v[:], out, offs[1], 0)
	})
}

func argReduce(op backend.ReduceOp, axis int, a, out backend.View) {
	n := a.Shape[axis]
	st := a.Strides[axis]
	lines(a.Shape, axis, [][]int{a.Strides, out.Strides}, []int{a.Offset, out.Offset}, func(offs []int) {
		buf := make([]float64, n)
		load(buf, a, offs[0], st)
		best := 0
		for i := 1; i < n; i++ {
			v, b := buf[i], buf[best]
			if b != b {
				break
			}
			if v != v || (op == backend.ArgMax && v > b) || (op == backend.ArgMin && v < b) {
				best = i
			}
		}
		v := [1]float64{float64(best)}
		store(v[:], out, offs[1], 0)
	})
}

func scan(o backend.Scan, a, out backend.View) {
	n := a.Shape[o.Axis]
	sa, so := a.Strides[o.Axis], out.Strides[o.Axis]
	lines(a.Shape, o.Axis, [][]int{a.Strides, out.Strides}, []int{a.Offset, out.Offset}, func(offs []int) {
		x := make([]float64, n)
		load(x, a, offs[0], sa)
		if o.Reverse {
			slices.Reverse(x)
		}
		acc := reduceInit(o.Op)
		for i, v := range x {
			prev := acc
			acc = reduceBlock(o.Op, acc, []float64{v})
			if o.Inclusive {
				x[i] = acc
			} else {
				x[i] = prev
			}
		}
		if o.Reverse {
			slices.Reverse(x)
		}
		store(x, out, offs[1], so)
	})
}
