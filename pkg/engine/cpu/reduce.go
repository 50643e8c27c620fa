package cpu

import (
	"math"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
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
	for d := range a.Shape {
		if red[d] && a.Shape[d] == 0 { // empty reduction: the identity
			positions(out.Shape, [][]int{out.Strides}, []int{out.Offset}, func(offs []int) {
				x := [1]float64{reduceInit(op)}
				store(x[:], out, offs[0], 0)
			})
			return
		}
	}
	if leadingReduce(op, red, a, out) {
		return
	}
	var rs, rst []int
	for d := range a.Shape {
		if red[d] && a.Shape[d] > 1 {
			rs = append(rs, a.Shape[d])
			rst = append(rst, a.Strides[d])
		}
	}
	// merge contiguous reduced dims
	rit := newIter(rs, rst)
	rs, rst = rit.shape, rit.strides[0]
	init := reduceInit(op)
	// float32 data reduced over one unit-stride run: read it in place
	direct := a.DType == backend.Float32 && len(rs) == 1 && rst[0] == 1
	var af []float32
	if direct {
		af = f32s(bytesOf(a))
	}
	inner := rs[len(rs)-1]
	astr := slices.Clone(a.Strides)
	for d := range astr {
		if red[d] {
			astr[d] = 0
		}
	}
	it := newIter(out.Shape, astr, out.Strides)
	it.rows([]int{a.Offset, out.Offset}, func(offs, in []int, n int) {
		buf := make([]float64, min(block, inner))
		res := make([]float64, n)
		for i := range res {
			off := offs[0] + i*in[0]
			acc := init
			if direct {
				acc = reduceF32(op, acc, af[off:off+inner])
			} else {
				serialWalk(rs, rst, off, func(o, st, m int) {
					for s := 0; s < m; s += block {
						x := buf[:min(block, m-s)]
						load(x, a, o+s*st, st)
						acc = reduceBlock(op, acc, x)
					}
				})
			}
			res[i] = acc
		}
		store(res, out, offs[1], in[1])
	})
}

func reduceF32(op backend.ReduceOp, acc float64, x []float32) float64 {
	switch op {
	case backend.Sum:
		var s0, s1, s2, s3 float64
		i := 0
		for ; i+4 <= len(x); i += 4 {
			s0 += float64(x[i])
			s1 += float64(x[i+1])
			s2 += float64(x[i+2])
			s3 += float64(x[i+3])
		}
		for ; i < len(x); i++ {
			s0 += float64(x[i])
		}
		return acc + s0 + s1 + s2 + s3
	case backend.Max:
		m := float32(acc)
		for _, v := range x {
			if v > m || v != v {
				m = v
			}
		}
		return float64(m)
	case backend.Min:
		m := float32(acc)
		for _, v := range x {
			if v < m || v != v {
				m = v
			}
		}
		return float64(m)
	}
	for _, v := range x {
		acc *= float64(v)
	}
	return acc
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

// leadingReduce handles a contiguous float32 input reduced over leading
// axes only (bias and norm-weight gradients: [B, L, D] -> [D]) by adding
// whole rows, in parallel over column chunks; false if it does not apply.
func leadingReduce(op backend.ReduceOp, red []bool, a, out backend.View) bool {
	if a.DType != backend.Float32 || op != backend.Sum || !a.Contiguous() {
		return false
	}
	k := 0
	for k < len(red) && red[k] {
		k++
	}
	for d := k; d < len(red); d++ {
		if red[d] {
			return false
		}
	}
	rows, cols := backend.Prod(a.Shape[:k]), backend.Prod(a.Shape[k:])
	if k == 0 || rows < 2 || cols < 16 {
		return false
	}
	x := f32s(bytesOf(a))[a.Offset : a.Offset+rows*cols]
	res := make([]float64, cols)
	kernels.Parallel(cols, 256, func(lo, hi int) {
		acc := res[lo:hi]
		for r := 0; r < rows; r++ {
			row := x[r*cols+lo : r*cols+hi]
			for j, v := range row {
				acc[j] += float64(v)
			}
		}
	})
	tmp := make([]float64, cols)
	copy(tmp, res)
	o := out
	o.Shape, o.Strides = []int{cols}, []int{1}
	if !out.Contiguous() {
		positions(out.Shape, [][]int{out.Strides, backend.RowMajor(out.Shape)}, []int{out.Offset, 0}, func(offs []int) {
			v := [1]float64{tmp[offs[1]]}
			store(v[:], out, offs[0], 0)
		})
		return true
	}
	store(tmp, o, out.Offset, 1)
	return true
}
