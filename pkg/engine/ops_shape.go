package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

func normAxis(ax, nd int) (int, error) {
	if ax < 0 {
		ax += nd
	}
	if ax < 0 || ax >= nd {
		return 0, fmt.Errorf("engine: axis %d out of range for rank %d", ax, nd)
	}
	return ax, nil
}

// Zeros returns a new array of zeros.
func Zeros(shape []int, dt DType) *Array { return Full(shape, 0, dt) }

// Ones returns a new array of ones.
func Ones(shape []int, dt DType) *Array { return Full(shape, 1, dt) }

// Full returns a new array filled with v.
func Full(shape []int, v float64, dt DType) *Array {
	for _, d := range shape {
		if d < 0 {
			return Errorf("engine: Full: negative dim in %v", shape)
		}
	}
	return newNode(dt, slices.Clone(shape), fillPrim{v: v})
}

// ZerosLike returns zeros with a's shape and dtype.
func ZerosLike(a *Array) *Array {
	if e := bad(a); e != nil {
		return e
	}
	return Zeros(a.shape, a.dtype)
}

// OnesLike returns ones with a's shape and dtype.
func OnesLike(a *Array) *Array {
	if e := bad(a); e != nil {
		return e
	}
	return Ones(a.shape, a.dtype)
}

type arangePrim struct{ start, step float64 }

func (arangePrim) name() string { return "Arange" }
func (p arangePrim) eval(out *Array, _ []*Array) error {
	return run(backend.Arange{Start: p.start, Step: p.step}, out)
}
func (arangePrim) vjp(*Array, []*Array, *Array) []*Array { return nil }

// Arange returns start, start+step, ... below stop (above, for step < 0).
func Arange(start, stop, step float64, dt DType) *Array {
	if step == 0 {
		return Errorf("engine: Arange: step is 0")
	}
	n := max(int(math.Ceil((stop-start)/step)), 0)
	return newNode(dt, []int{n}, arangePrim{start, step})
}

// reshape

type reshapePrim struct{}

func (reshapePrim) name() string { return "Reshape" }
func (reshapePrim) eval(out *Array, in []*Array) error {
	x := in[0]
	if x.view().Contiguous() {
		setView(out, x, backend.RowMajor(out.shape), x.offset)
		return nil
	}
	if err := alloc(out); err != nil {
		return err
	}
	dst := out.view()
	dst.Shape, dst.Strides = x.shape, backend.RowMajor(x.shape)
	return defaultBackend.Run(backend.Copy{}, []backend.View{x.view()}, dst)
}
func (reshapePrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	return []*Array{Reshape(g, in[0].shape...)}
}

// Reshape returns a with a new shape of the same size; one dim may be -1.
// It is a view when a is contiguous, else a copy.
func Reshape(a *Array, shape ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	shape = slices.Clone(shape)
	infer := -1
	known := 1
	for i, d := range shape {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return Errorf("engine: Reshape: bad shape %v", shape)
		default:
			known *= d
		}
	}
	if infer >= 0 {
		if known == 0 || a.Size()%known != 0 {
			return Errorf("engine: Reshape: cannot reshape %v to %v", a.shape, shape)
		}
		shape[infer] = a.Size() / known
	}
	if backend.Prod(shape) != a.Size() {
		return Errorf("engine: Reshape: cannot reshape %v (%d elements) to %v", a.shape, a.Size(), shape)
	}
	if slices.Equal(shape, a.shape) {
		return a
	}
	return newNode(a.dtype, shape, reshapePrim{}, a)
}

// Flatten merges all dims into one.
func Flatten(a *Array) *Array { return Reshape(a, -1) }

// ExpandDims inserts size-1 dims at the given axes (of the result).
func ExpandDims(a *Array, axes ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	nd := len(a.shape) + len(axes)
	ins := make([]bool, nd)
	for _, ax := range axes {
		n, err := normAxis(ax, nd)
		if err != nil {
			return errArray(err)
		}
		ins[n] = true
	}
	shape := make([]int, 0, nd)
	j := 0
	for i := 0; i < nd; i++ {
		if ins[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, a.shape[j])
			j++
		}
	}
	return Reshape(a, shape...)
}

// Squeeze removes the given size-1 axes (all size-1 axes when none given).
func Squeeze(a *Array, axes ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	drop := make([]bool, len(a.shape))
	if len(axes) == 0 {
		for i, d := range a.shape {
			drop[i] = d == 1
		}
	}
	for _, ax := range axes {
		n, err := normAxis(ax, len(a.shape))
		if err != nil {
			return errArray(err)
		}
		if a.shape[n] != 1 {
			return Errorf("engine: Squeeze: axis %d of %v is not 1", ax, a.shape)
		}
		drop[n] = true
	}
	var shape []int
	for i, d := range a.shape {
		if !drop[i] {
			shape = append(shape, d)
		}
	}
	return Reshape(a, shape...)
}

// transpose

type transposePrim struct{ perm []int }

func (transposePrim) name() string { return "Transpose" }
func (p transposePrim) eval(out *Array, in []*Array) error {
	x := in[0]
	st := make([]int, len(p.perm))
	for i, ax := range p.perm {
		st[i] = x.strides[ax]
	}
	setView(out, x, st, x.offset)
	return nil
}
func (p transposePrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	inv := make([]int, len(p.perm))
	for i, ax := range p.perm {
		inv[ax] = i
	}
	return []*Array{Transpose(g, inv...)}
}

// Transpose permutes the axes (reverses them when none given); a view.
func Transpose(a *Array, axes ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	nd := len(a.shape)
	if len(axes) == 0 {
		axes = make([]int, nd)
		for i := range axes {
			axes[i] = nd - 1 - i
		}
	}
	if len(axes) != nd {
		return Errorf("engine: Transpose: %d axes for rank %d", len(axes), nd)
	}
	perm := make([]int, nd)
	seen := make([]bool, nd)
	for i, ax := range axes {
		n, err := normAxis(ax, nd)
		if err != nil || seen[n] {
			return Errorf("engine: Transpose: bad axes %v for rank %d", axes, nd)
		}
		seen[n] = true
		perm[i] = n
	}
	shape := make([]int, nd)
	for i, ax := range perm {
		shape[i] = a.shape[ax]
	}
	return newNode(a.dtype, shape, transposePrim{perm}, a)
}

// SwapAxes exchanges two axes; a view.
func SwapAxes(a *Array, i, j int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	nd := len(a.shape)
	i2, err1 := normAxis(i, nd)
	j2, err2 := normAxis(j, nd)
	if err1 != nil || err2 != nil {
		return Errorf("engine: SwapAxes(%d, %d) for rank %d", i, j, nd)
	}
	perm := make([]int, nd)
	for k := range perm {
		perm[k] = k
	}
	perm[i2], perm[j2] = perm[j2], perm[i2]
	return Transpose(a, perm...)
}

// broadcast

type broadcastPrim struct{}

func (broadcastPrim) name() string { return "BroadcastTo" }
func (broadcastPrim) eval(out *Array, in []*Array) error {
	v := broadcastView(in[0].view(), out.shape)
	setView(out, in[0], v.Strides, v.Offset)
	return nil
}
func (broadcastPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	return []*Array{sumTo(g, in[0].shape)}
}

// BroadcastTo stretches a to shape (numpy rules); a view with zero strides.
func BroadcastTo(a *Array, shape ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	s, err := BroadcastShapes(a.shape, shape)
	if err != nil || !slices.Equal(s, shape) {
		return Errorf("engine: BroadcastTo: cannot broadcast %v to %v", a.shape, shape)
	}
	if slices.Equal(a.shape, shape) {
		return a
	}
	return newNode(a.dtype, slices.Clone(shape), broadcastPrim{}, a)
}

// StopGradient returns a (a view) that autodiff treats as a constant.
func StopGradient(a *Array) *Array {
	if e := bad(a); e != nil {
		return e
	}
	return newNode(a.dtype, a.shape, stopPrim{}, a)
}

type stopPrim struct{}

func (stopPrim) name() string { return "StopGradient" }
func (stopPrim) eval(out *Array, in []*Array) error {
	setView(out, in[0], in[0].strides, in[0].offset)
	return nil
}
func (stopPrim) vjp(*Array, []*Array, *Array) []*Array { return []*Array{nil} }

// slicing

type slicePrim struct{ start, step []int }

func (slicePrim) name() string { return "Slice" }
func (p slicePrim) eval(out *Array, in []*Array) error {
	x := in[0]
	off := x.offset
	st := make([]int, len(x.strides))
	for i := range st {
		off += p.start[i] * x.strides[i]
		st[i] = x.strides[i] * p.step[i]
	}
	setView(out, x, st, off)
	return nil
}
func (p slicePrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	return []*Array{sliceUpdate(ZerosLike(in[0]), g, p.start, p.step)}
}

// resolveSlice turns Python-style start/stop/step (nil entries mean the
// whole axis) into starts, steps and result dims.
func resolveSlice(shape, start, stop, step []int) (s, st, dims []int, err error) {
	nd := len(shape)
	if (start != nil && len(start) != nd) || (stop != nil && len(stop) != nd) || (step != nil && len(step) != nd) {
		return nil, nil, nil, fmt.Errorf("engine: Slice: need %d starts/stops/steps for shape %v", nd, shape)
	}
	s, st, dims = make([]int, nd), make([]int, nd), make([]int, nd)
	for i, n := range shape {
		k := 1
		if step != nil {
			k = step[i]
		}
		if k == 0 {
			return nil, nil, nil, fmt.Errorf("engine: Slice: step 0 on axis %d", i)
		}
		b, e := 0, n
		if k < 0 {
			b, e = n-1, -n-1
		}
		if start != nil {
			b = start[i]
		}
		if stop != nil {
			e = stop[i]
		}
		clampIdx := func(v int, lo, hi int) int {
			if v < 0 {
				v += n
			}
			return min(max(v, lo), hi)
		}
		if k > 0 {
			b, e = clampIdx(b, 0, n), clampIdx(e, 0, n)
			dims[i] = max(0, (e-b+k-1)/k)
		} else {
			b = clampIdx(b, -1, n-1)
			if stop != nil && e >= -n {
				e = clampIdx(e, -1, n-1)
			} else {
				e = -1
			}
			dims[i] = max(0, (b-e+(-k)-1)/(-k))
		}
		s[i], st[i] = b, k
		if dims[i] == 0 {
			s[i] = 0
		}
	}
	return s, st, dims, nil
}

// Slice returns a[start:stop:step] on every axis, Python style: negative
// indices count from the end, nil slices mean "whole axis", steps may be
// negative. A view.
func Slice(a *Array, start, stop, step []int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	s, st, dims, err := resolveSlice(a.shape, start, stop, step)
	if err != nil {
		return errArray(err)
	}
	return newNode(a.dtype, dims, slicePrim{s, st}, a)
}

// SliceAxis returns a[..., start:stop, ...] on one axis.
func SliceAxis(a *Array, axis, start, stop int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	b := make([]int, len(a.shape))
	e := slices.Clone(a.shape)
	b[ax], e[ax] = start, stop
	return Slice(a, b, e, nil)
}

type sliceUpdatePrim struct{ start, step []int }

func (sliceUpdatePrim) name() string { return "SliceUpdate" }
func (p sliceUpdatePrim) eval(out *Array, in []*Array) error {
	if err := run(backend.Copy{}, out, in[0]); err != nil {
		return err
	}
	o := out.view()
	region := backend.View{Buf: o.Buf, DType: o.DType, Shape: in[1].shape, Strides: make([]int, len(o.Shape)), Offset: o.Offset}
	for i := range o.Shape {
		region.Offset += p.start[i] * o.Strides[i]
		region.Strides[i] = o.Strides[i] * p.step[i]
	}
	return defaultBackend.Run(backend.Copy{}, []backend.View{in[1].view()}, region)
}
func (p sliceUpdatePrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	return []*Array{
		sliceUpdate(g, ZerosLike(in[1]), p.start, p.step),
		newNode(g.dtype, in[1].shape, slicePrim{p.start, p.step}, g),
	}
}

func sliceUpdate(a, upd *Array, start, step []int) *Array {
	if err := firstErr(a, upd); err != nil {
		return errArray(err)
	}
	return newNode(a.dtype, a.shape, sliceUpdatePrim{start, step}, a, AsType(upd, a.dtype))
}

// SliceUpdate returns a copy of a with a[start:stop:step] replaced by
// update (broadcast to the region).
func SliceUpdate(a, update *Array, start, stop, step []int) *Array {
	if err := firstErr(a, update); err != nil {
		return errArray(err)
	}
	s, st, dims, err := resolveSlice(a.shape, start, stop, step)
	if err != nil {
		return errArray(err)
	}
	return sliceUpdate(a, BroadcastTo(update, dims...), s, st)
}

// concatenate

type concatPrim struct{ axis int }

func (concatPrim) name() string { return "Concatenate" }
func (p concatPrim) eval(out *Array, in []*Array) error {
	if err := alloc(out); err != nil {
		return err
	}
	o := out.view()
	off := 0
	for _, x := range in {
		region := o
		region.Shape = x.shape
		region.Offset = o.Offset + off*o.Strides[p.axis]
		off += x.shape[p.axis]
		if x.Size() == 0 {
			continue
		}
		if err := defaultBackend.Run(backend.Copy{}, []backend.View{x.view()}, region); err != nil {
			return err
		}
	}
	return nil
}
func (p concatPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	res := make([]*Array, len(in))
	off := 0
	for i, x := range in {
		res[i] = SliceAxis(g, p.axis, off, off+x.shape[p.axis])
		off += x.shape[p.axis]
	}
	return res
}

// Concatenate joins arrays along axis; dtypes are promoted.
func Concatenate(arrays []*Array, axis int) *Array {
	if len(arrays) == 0 {
		return Errorf("engine: Concatenate of no arrays")
	}
	if err := firstErr(arrays...); err != nil {
		return errArray(err)
	}
	ax, err := normAxis(axis, len(arrays[0].shape))
	if err != nil {
		return errArray(err)
	}
	dt := arrays[0].dtype
	for _, a := range arrays[1:] {
		dt = promote(&Array{dtype: dt}, a)
	}
	shape := slices.Clone(arrays[0].shape)
	shape[ax] = 0
	in := make([]*Array, len(arrays))
	for i, a := range arrays {
		if len(a.shape) != len(shape) {
			return Errorf("engine: Concatenate: ranks differ (%v vs %v)", arrays[0].shape, a.shape)
		}
		for d := range shape {
			if d != ax && a.shape[d] != shape[d] {
				return Errorf("engine: Concatenate: shapes %v and %v differ off axis %d", arrays[0].shape, a.shape, axis)
			}
		}
		shape[ax] += a.shape[ax]
		in[i] = AsType(a, dt)
	}
	return newNode(dt, shape, concatPrim{ax}, in...)
}

// Stack joins arrays along a new axis.
func Stack(arrays []*Array, axis int) *Array {
	ex := make([]*Array, len(arrays))
	for i, a := range arrays {
		ex[i] = ExpandDims(a, axis)
	}
	return Concatenate(ex, axis)
}

// Split cuts a into equal parts along axis.
func Split(a *Array, parts, axis int) []*Array {
	if e := bad(a); e != nil {
		return []*Array{e}
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil || parts <= 0 || a.shape[ax]%parts != 0 {
		return []*Array{Errorf("engine: Split: cannot split axis %d of %v into %d parts", axis, a.shape, parts)}
	}
	n := a.shape[ax] / parts
	idx := make([]int, parts-1)
	for i := range idx {
		idx[i] = (i + 1) * n
	}
	return SplitAt(a, idx, ax)
}

// SplitAt cuts a along axis before each index.
func SplitAt(a *Array, indices []int, axis int) []*Array {
	if e := bad(a); e != nil {
		return []*Array{e}
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return []*Array{errArray(err)}
	}
	var out []*Array
	prev := 0
	for _, i := range append(slices.Clone(indices), a.shape[ax]) {
		out = append(out, SliceAxis(a, ax, prev, i))
		prev = i
	}
	return out
}

// indexing

type takePrim struct{ axis int }

func (takePrim) name() string { return "Take" }
func (p takePrim) eval(out *Array, in []*Array) error {
	return run(backend.Take{Axis: p.axis}, out, in[0], in[1])
}
func (p takePrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	a, idx := in[0], in[1]
	pre := backend.Prod(a.shape[:p.axis])
	post := backend.Prod(a.shape[p.axis+1:])
	n := idx.Size()
	g3 := Reshape(g, pre, n, post)
	i3 := BroadcastTo(Reshape(idx, 1, n, 1), pre, n, post)
	z := Zeros([]int{pre, a.shape[p.axis], post}, g.dtype)
	return []*Array{Reshape(ScatterAddAxis(z, i3, g3, 1), a.shape...), nil}
}

// Take picks entries of a along axis at indices (any integer shape):
// the result has shape a.shape[:axis] + indices.shape + a.shape[axis+1:].
func Take(a, indices *Array, axis int) *Array {
	if err := firstErr(a, indices); err != nil {
		return errArray(err)
	}
	if indices.dtype.IsFloat() {
		return Errorf("engine: Take: indices must be integers, got %s", indices.dtype)
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	shape := append(append(slices.Clone(a.shape[:ax]), indices.shape...), a.shape[ax+1:]...)
	return newNode(a.dtype, shape, takePrim{ax}, a, indices)
}

type gatherPrim struct{ axis int }

func (gatherPrim) name() string { return "TakeAlongAxis" }
func (p gatherPrim) eval(out *Array, in []*Array) error {
	as := slices.Clone(out.shape)
	as[p.axis] = in[0].shape[p.axis]
	return runB(backend.Gather{Axis: p.axis}, out, in, [][]int{as, out.shape})
}
func (p gatherPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	a := in[0]
	as := slices.Clone(out.shape)
	as[p.axis] = a.shape[p.axis]
	idx := BroadcastTo(in[1], out.shape...)
	return []*Array{sumTo(ScatterAddAxis(Zeros(as, g.dtype), idx, g, p.axis), a.shape), nil}
}

// TakeAlongAxis is numpy's take_along_axis: indices (same rank as a) pick
// along axis; other dims broadcast.
func TakeAlongAxis(a, indices *Array, axis int) *Array {
	if err := firstErr(a, indices); err != nil {
		return errArray(err)
	}
	if len(a.shape) != len(indices.shape) {
		return Errorf("engine: TakeAlongAxis: indices %v and array %v differ in rank", indices.shape, a.shape)
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	as := slices.Clone(a.shape)
	as[ax] = 1
	is := slices.Clone(indices.shape)
	is[ax] = 1
	shape, err := BroadcastShapes(as, is)
	if err != nil {
		return errArray(err)
	}
	shape[ax] = indices.shape[ax]
	return newNode(a.dtype, shape, gatherPrim{ax}, a, indices)
}

type scatterAddPrim struct{ axis int }

func (scatterAddPrim) name() string { return "ScatterAdd" }
func (p scatterAddPrim) eval(out *Array, in []*Array) error {
	return run(backend.ScatterAdd{Axis: p.axis}, out, in...)
}
func (p scatterAddPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	return []*Array{g, nil, TakeAlongAxis(g, in[1], p.axis)}
}

// ScatterAddAxis returns a copy of a with updates added at indices along
// axis (the layout of TakeAlongAxis: indices and updates share a shape,
// equal to a's off axis). Repeated indices accumulate.
func ScatterAddAxis(a, indices, updates *Array, axis int) *Array {
	if err := firstErr(a, indices, updates); err != nil {
		return errArray(err)
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	if !slices.Equal(indices.shape, updates.shape) || len(indices.shape) != len(a.shape) {
		return Errorf("engine: ScatterAddAxis: indices %v, updates %v and array %v do not match", indices.shape, updates.shape, a.shape)
	}
	for d := range a.shape {
		if d != ax && a.shape[d] != indices.shape[d] {
			return Errorf("engine: ScatterAddAxis: indices %v and array %v differ off axis %d", indices.shape, a.shape, axis)
		}
	}
	return newNode(a.dtype, a.shape, scatterAddPrim{ax}, a, indices, AsType(updates, a.dtype))
}
