package engine

import (
	"fmt"

	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// Clip limits a to [lo, hi]; a nil bound is open.
func Clip(a, lo, hi *Array) *Array {
	if lo != nil {
		a = Maximum(a, lo)
	}
	if hi != nil {
		a = Minimum(a, hi)
	}
	return a
}

// Tri returns an n×m bool mask that is true on and below diagonal k
// (k > 0 above the main diagonal).
func Tri(n, m, k int) *Array {
	r := Reshape(Arange(0, float64(n), 1, Int32), n, 1)
	c := Reshape(Arange(0, float64(m), 1, Int32), 1, m)
	return LessEqual(c, Add(r, ScalarOf(float64(k), Int32)))
}

// Tril zeroes the elements of the last two axes above diagonal k.
func Tril(a *Array, k int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	if len(a.shape) < 2 {
		return errOr(a, "Tril needs at least 2 dims")
	}
	nd := len(a.shape)
	return Where(Tri(a.shape[nd-2], a.shape[nd-1], k), a, Scalar(0))
}

// Triu zeroes the elements of the last two axes below diagonal k.
func Triu(a *Array, k int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	if len(a.shape) < 2 {
		return errOr(a, "Triu needs at least 2 dims")
	}
	nd := len(a.shape)
	return Where(Tri(a.shape[nd-2], a.shape[nd-1], k-1), Scalar(0), a)
}

func errOr(a *Array, msg string) *Array {
	if e := bad(a); e != nil {
		return e
	}
	return Errorf("engine: %s, got %v", msg, a.shape)
}

// Eye returns an n×n identity matrix.
func Eye(n int, dt DType) *Array {
	r := Reshape(Arange(0, float64(n), 1, Int32), n, 1)
	c := Reshape(Arange(0, float64(n), 1, Int32), 1, n)
	return AsType(Equal(r, c), dt)
}

// Linspace returns n evenly spaced values from start to stop inclusive.
func Linspace(start, stop float64, n int, dt DType) *Array {
	if n < 1 {
		return Errorf("engine: Linspace needs n ≥ 1, got %d", n)
	}
	step := 0.0
	if n > 1 {
		step = (stop - start) / float64(n-1)
	}
	return AsType(Add(Multiply(Arange(0, float64(n), 1, Float32), Scalar(step)), Scalar(start)), dt)
}

// Pad pads each axis with before/after copies of value.
func Pad(a *Array, before, after []int, value float64) *Array {
	if e := bad(a); e != nil {
		return e
	}
	nd := len(a.shape)
	if len(before) != nd || len(after) != nd {
		return Errorf("engine: Pad: need %d before and after widths for %v", nd, a.shape)
	}
	shape := slices.Clone(a.shape)
	stop := make([]int, nd)
	for i := range shape {
		if before[i] < 0 || after[i] < 0 {
			return Errorf("engine: Pad: negative width")
		}
		shape[i] += before[i] + after[i]
		stop[i] = before[i] + a.shape[i]
	}
	return SliceUpdate(Full(shape, value, a.dtype), a, before, stop, nil)
}

// Repeat repeats each element n times along axis.
func Repeat(a *Array, n, axis int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil || n < 1 {
		return Errorf("engine: Repeat(%d, axis %d) of %v", n, axis, a.shape)
	}
	e := ExpandDims(a, ax+1)
	s := slices.Clone(e.shape)
	s[ax+1] = n
	shape := slices.Clone(a.shape)
	shape[ax] *= n
	return Reshape(BroadcastTo(e, s...), shape...)
}

// Tile repeats the whole array reps[i] times along axis i (reps may be
// shorter than the rank; missing leading reps are 1).
func Tile(a *Array, reps ...int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	for len(reps) < len(a.shape) {
		reps = append([]int{1}, reps...)
	}
	for len(a.shape) < len(reps) {
		a = ExpandDims(a, 0)
	}
	var ex, bs, shape []int
	for i, d := range a.shape {
		ex = append(ex, 1, d)
		bs = append(bs, reps[i], d)
		shape = append(shape, reps[i]*d)
	}
	return Reshape(BroadcastTo(Reshape(a, ex...), bs...), shape...)
}

// PutAlongAxis returns a with values written at indices along axis (the
// layout of TakeAlongAxis; values broadcast to the indices' shape). Indices
// along a row must be distinct.
func PutAlongAxis(a, indices, values *Array, axis int) *Array {
	if err := firstErr(a, indices, values); err != nil {
		return errArray(err)
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	idx := BroadcastTo(indices, broadcastOff(a.shape, indices.shape, ax)...)
	if idx.err != nil {
		return idx
	}
	v := BroadcastTo(AsType(values, a.dtype), idx.shape...)
	hit := ScatterAddAxis(Zeros(a.shape, Float32), idx, Ones(idx.shape, Float32), ax)
	val := ScatterAddAxis(Zeros(a.shape, a.dtype), idx, v, ax)
	return Where(Greater(hit, Scalar(0)), val, a)
}

// broadcastOff is a's shape with axis replaced by the indices' length.
func broadcastOff(a, idx []int, ax int) []int {
	s := slices.Clone(a)
	if len(idx) == len(a) {
		s[ax] = idx[ax]
	}
	return s
}

// All reports whether every element (over axes) is non-zero.
func All(a *Array, keepDims bool, axes ...int) *Array {
	return AsType(Min(AsType(NotEqual(a, Scalar(0)), Uint8), keepDims, axes...), Bool)
}

// Any reports whether some element (over axes) is non-zero.
func Any(a *Array, keepDims bool, axes ...int) *Array {
	return AsType(Max(AsType(NotEqual(a, Scalar(0)), Uint8), keepDims, axes...), Bool)
}

// IsClose is |a − b| ≤ atol + rtol·|b| elementwise.
func IsClose(a, b *Array, rtol, atol float64) *Array {
	return LessEqual(Abs(Subtract(a, b)), Add(Scalar(atol), Multiply(Scalar(rtol), Abs(b))))
}

// AllClose reports whether IsClose holds everywhere.
func AllClose(a, b *Array, rtol, atol float64) (bool, error) {
	v, err := All(IsClose(a, b, rtol, atol), false).Item()
	return v != 0, err
}

// UpdateSlice writes update into a[start:stop:step] in place: a must be
// evaluated; update is evaluated first. This is the escape hatch for
// preallocated caches (mlx_lm's KVCache writes keys this way): no new
// buffer and no copy of the rest of a. If another evaluated array shares
// a's buffer (a view taken earlier, or memory-mapped weights), a gets a
// private copy first, so those arrays keep their values. Unevaluated
// arrays built from a will see the new contents: evaluate them before.
func (a *Array) UpdateSlice(update *Array, start, stop, step []int) error {
	if err := firstErr(a, update); err != nil {
		return err
	}
	s, st, dims, err := resolveSlice(a.shape, start, stop, step)
	if err != nil {
		return err
	}
	u := BroadcastTo(AsType(update, a.dtype), dims...)
	if err := Eval(a, u); err != nil {
		return err
	}
	evalMu.Lock()
	defer evalMu.Unlock()
	b := a.st.raw.b
	if a.st.refs > 1 || isWrapped(a) || !a.view().Contiguous() {
		if err := privatize(a); err != nil {
			return err
		}
	}
	o := a.view()
	region := backend.View{Buf: o.Buf, DType: o.DType, Shape: dims, Strides: make([]int, len(dims)), Offset: o.Offset}
	for i := range dims {
		region.Offset += s[i] * o.Strides[i]
		region.Strides[i] = o.Strides[i] * st[i]
	}
	return b.Run(backend.Copy{}, []backend.View{u.view()}, region)
}

type inPlacePrim struct{ start, step, dims []int }

func (inPlacePrim) name() string { return "SliceUpdateInPlace" }
func (p inPlacePrim) eval(out *Array, in []*Array) error {
	a, u := in[0], in[1]
	if a.mark == 2 || a.st == nil {
		return fmt.Errorf("SliceUpdateInPlace: the target must be evaluated before the Eval that writes it")
	}
	b := a.st.raw.b
	if a.st.refs > 1 || isWrapped(a) || !a.view().Contiguous() {
		if err := privatize(a); err != nil {
			return err
		}
	}
	o := a.view()
	region := backend.View{Buf: o.Buf, DType: o.DType, Shape: p.dims, Strides: make([]int, len(p.dims)), Offset: o.Offset}
	for i := range p.dims {
		region.Offset += p.start[i] * o.Strides[i]
		region.Strides[i] = o.Strides[i] * p.step[i]
	}
	uv := broadcastView(u.view(), p.dims)
	if err := b.Run(backend.Copy{}, []backend.View{uv}, region); err != nil {
		return err
	}
	setView(out, a, a.strides, a.offset)
	return nil
}
func (inPlacePrim) vjp(*Array, []*Array, *Array) []*Array { return []*Array{nil, nil} }

// SliceUpdateInPlace is the lazy form of UpdateSlice, for caches inside
// one step's graph: when the result is evaluated it writes update into
// a[start:stop:step] in a's own buffer (a must have been evaluated before
// that Eval) and becomes a view of that buffer. Read what was written
// through the result or arrays built from it; other arrays reading a in
// the same Eval may see either contents. Copy-on-write as in UpdateSlice.
// Not differentiable.
func SliceUpdateInPlace(a, update *Array, start, stop, step []int) *Array {
	if err := firstErr(a, update); err != nil {
		return errArray(err)
	}
	s, st, dims, err := resolveSlice(a.shape, start, stop, step)
	if err != nil {
		return errArray(err)
	}
	if bs, err := BroadcastShapes(update.shape, dims); err != nil || !sameShape(bs, dims) {
		return Errorf("engine: SliceUpdateInPlace: update %v does not fit the region %v", update.shape, dims)
	}
	return newNode(a.dtype, a.shape, inPlacePrim{s, st, dims}, a, AsType(update, a.dtype))
}

// privatize gives a its own contiguous copy of its data (copy-on-write).
func privatize(a *Array) error {
	b := a.st.raw.b
	old := a.view()
	buf, err := b.Alloc(a.NBytes())
	if err != nil {
		return fmt.Errorf("engine: copy-on-write: %w", err)
	}
	nv := backend.View{Buf: buf, DType: a.dtype, Shape: a.shape, Strides: backend.RowMajor(a.shape)}
	if err := b.Run(backend.Copy{}, []backend.View{old}, nv); err != nil {
		b.Free(buf)
		return err
	}
	a.st.refs--
	a.st = newStorage(b, buf)
	a.st.refs = 1
	a.strides, a.offset = nv.Strides, 0
	return nil
}

// isWrapped reports whether a's buffer is caller memory used in place.
func isWrapped(a *Array) bool {
	w, ok := a.st.raw.buf.(interface{ Wrapped() bool })
	return ok && w.Wrapped()
}
