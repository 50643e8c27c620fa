package engine

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/engine/cpu"
)

// primitive is what an unevaluated array computes from its inputs.
type primitive interface {
	name() string
	// eval gives out its data (a new buffer or a view of an input's).
	eval(out *Array, in []*Array) error
	// vjp returns one cotangent per input (nil: no gradient) given the
	// cotangent of out.
	vjp(out *Array, in []*Array, cot *Array) []*Array
}

var (
	// evalMu serialises Eval and the buffer bookkeeping.
	evalMu         sync.Mutex
	defaultBackend backend.Backend = cpu.New()
)

// DefaultBackend returns the backend new arrays are computed on.
func DefaultBackend() backend.Backend {
	evalMu.Lock()
	defer evalMu.Unlock()
	return defaultBackend
}

// SetDefaultBackend switches the backend for arrays created and evaluated
// from now on. Arrays already evaluated keep their buffers on the old one.
func SetDefaultBackend(b backend.Backend) {
	evalMu.Lock()
	defaultBackend = b
	current.Store(&b)
	evalMu.Unlock()
}

// current mirrors defaultBackend for readers that must not wait for an
// Eval in progress (the memory statistics).
var current atomic.Pointer[backend.Backend]

func stats() backend.MemoryStats {
	p := current.Load()
	if p == nil {
		p = &defaultBackend
	}
	s, _ := (*p).(backend.MemoryStats)
	return s
}

// ActiveMemory returns the bytes of live buffers the default backend's
// allocator handed out (memory-mapped weights used in place not counted).
func ActiveMemory() int64 {
	if s := stats(); s != nil {
		return s.ActiveMemory()
	}
	return 0
}

// PeakMemory returns the allocator's high-water mark since the last reset;
// mlx_lm prints it as "Peak memory".
func PeakMemory() int64 {
	if s := stats(); s != nil {
		return s.PeakMemory()
	}
	return 0
}

// ResetPeakMemory sets the peak to the current active memory.
func ResetPeakMemory() {
	if s := stats(); s != nil {
		s.ResetPeakMemory()
	}
}

// CacheMemory returns the bytes the allocator keeps for reuse.
func CacheMemory() int64 {
	if s := stats(); s != nil {
		return s.CacheMemory()
	}
	return 0
}

// SetCacheLimit caps the allocator's pool of reusable buffers (negative:
// no cap, the default), like mx.set_cache_limit.
func SetCacheLimit(bytes int64) {
	if s := stats(); s != nil {
		s.SetCacheLimit(bytes)
	}
}

// ClearCache gives the allocator's pooled buffers back to the system.
func ClearCache() {
	if s := stats(); s != nil {
		s.ClearCache()
	}
}

// Eval computes the given arrays and everything they need that is not yet
// evaluated, each node once. Intermediate buffers are released as soon as
// their last consumer in this evaluation has run; an intermediate that is
// released goes back to being unevaluated (it keeps its inputs and is
// recomputed if asked for later). The arrays passed keep their data and
// drop their graph.
//
// So evaluate together what you need together. In particular, evaluating
// part of a graph in the middle of building it (say, new keys for a cache)
// releases the values computed on the way (the residual stream), and a
// later Eval recomputes them, back to the last evaluated arrays: pass
// those values to the same Eval, or write caches with SliceUpdateInPlace
// so that one Eval per step suffices. (MLX keeps such values alive through
// reference counts, which Go does not have.)
func Eval(arrays ...*Array) error {
	evalMu.Lock()
	defer evalMu.Unlock()
	// Nothing to do (a cache write re-evaluating what is evaluated, a
	// second read): no graph walk, no allocation.
	done := true
	for _, a := range arrays {
		if a == nil || a.err != nil || a.st == nil {
			done = false
			break
		}
	}
	if done {
		return nil
	}
	return evalLocked(arrays)
}

func evalLocked(arrays []*Array) error {
	if err := firstErr(arrays...); err != nil {
		return err
	}
	// Iterative post-order DFS over unevaluated nodes. The per-node
	// bookkeeping lives in the nodes (mark, uses, isOut), reset on return.
	order := make([]*Array, 0, 64)
	var touched []*Array
	defer func() {
		for _, n := range touched {
			n.mark, n.uses, n.isOut = 0, 0, false
		}
	}()
	for _, a := range arrays {
		if !a.isOut {
			a.isOut = true
			touched = append(touched, a)
		}
	}
	type frame struct {
		a *Array
		i int
	}
	var stack []frame
	for _, root := range arrays {
		if root.st != nil || root.mark != 0 {
			continue
		}
		stack = append(stack[:0], frame{root, 0})
		root.mark = 1
		touched = append(touched, root)
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.i < len(f.a.inputs) {
				in := f.a.inputs[f.i]
				f.i++
				if in.err != nil {
					return in.err
				}
				if in.st == nil && in.mark == 0 {
					in.mark = 1
					touched = append(touched, in)
					stack = append(stack, frame{in, 0})
				}
				continue
			}
			f.a.mark = 2
			order = append(order, f.a)
			stack = stack[:len(stack)-1]
		}
	}
	// Quantized products that read the same input (a layer's q, k and v,
	// or gate and up) are run as one job where the backend can.
	var siblings map[*Array][]*Array
	grouper, _ := defaultBackend.(backend.QuantizedMatmulGrouper)
	for _, n := range order {
		if n.prim == nil {
			return fmt.Errorf("engine: array %v has neither data nor a primitive", n.shape)
		}
		for _, in := range n.inputs {
			if in.mark == 2 {
				in.uses++
			}
		}
		if _, ok := n.prim.(qmmPrim); ok && grouper != nil {
			if siblings == nil {
				siblings = map[*Array][]*Array{}
			}
			siblings[n.inputs[0]] = append(siblings[n.inputs[0]], n)
		}
	}
	release := func(n *Array) {
		for _, in := range n.inputs {
			if in.mark != 2 {
				continue
			}
			in.uses--
			if in.uses == 0 && !in.isOut {
				in.releaseData()
			}
		}
	}
	var done map[*Array]bool
	for _, n := range order {
		if done[n] {
			continue
		}
		if _, ok := n.prim.(qmmPrim); ok && len(siblings[n.inputs[0]]) > 1 && siblings[n.inputs[0]][0] == n {
			sib := siblings[n.inputs[0]]
			group, err := runGrouped(grouper, sib)
			if err != nil {
				return fmt.Errorf("engine: %s%v: %w", n.prim.name(), n.shape, err)
			}
			if len(group) > 1 {
				if done == nil {
					done = map[*Array]bool{}
				}
				for _, g := range group {
					done[g] = true
					release(g)
				}
				continue
			}
		}
		if _, ok := n.prim.(elementwise); ok {
			donate(n)
		}
		var t0 time.Time
		if traceFn != nil {
			t0 = time.Now()
		}
		if err := n.prim.eval(n, n.inputs); err != nil {
			return fmt.Errorf("engine: %s%v: %w", n.prim.name(), n.shape, err)
		}
		if traceFn != nil {
			traceFn(n.prim.name(), n.shape, time.Since(t0))
		}
		release(n)
	}
	for _, a := range arrays {
		if a.st != nil {
			a.prim, a.inputs = nil, nil
		}
	}
	return nil
}

// runGrouped runs, as one backend call, sib[0] and those of the other
// quantized products in sib (all reading sib[0]'s input) that have its
// parameters and whose other inputs are evaluated; it returns the nodes it
// ran (none, or fewer than two, means sib[0] is left to run alone).
func runGrouped(g backend.QuantizedMatmulGrouper, sib []*Array) ([]*Array, error) {
	p0 := sib[0].prim.(qmmPrim)
	if !p0.transpose || sib[0].inputs[0].st == nil {
		return nil, nil
	}
	var group []*Array
	for _, n := range sib {
		if n.prim.(qmmPrim) != p0 || n.st != nil {
			continue
		}
		ready := true
		for _, in := range n.inputs[1:] {
			ready = ready && in.st != nil
		}
		if ready {
			group = append(group, n)
		}
	}
	if len(group) < 2 || group[0] != sib[0] {
		return nil, nil
	}
	var t0 time.Time
	if traceFn != nil {
		t0 = time.Now()
	}
	ops := make([]backend.QuantizedMatmul, len(group))
	ws := make([][3]backend.View, len(group))
	outs := make([]backend.View, len(group))
	for i, n := range group {
		if err := alloc(n); err != nil {
			return nil, err
		}
		ops[i] = backend.QuantizedMatmul{Quant: p0.q, Transpose: true}
		ws[i] = [3]backend.View{n.inputs[1].view(), n.inputs[2].view(), n.inputs[3].view()}
		outs[i] = n.view()
	}
	if err := g.RunQuantizedMatmuls(ops, sib[0].inputs[0].view(), ws, outs); err != nil {
		return nil, err
	}
	groupedRuns++
	if traceFn != nil {
		el := time.Since(t0)
		for _, n := range group {
			traceFn(n.prim.name(), n.shape, el/time.Duration(len(group)))
		}
	}
	return group, nil
}

// groupedRuns counts runGrouped's backend calls (for tests).
var groupedRuns int

var traceFn func(op string, shape []int, elapsed time.Duration)

// SetTrace installs fn to be called after every primitive Eval runs, with
// its name, output shape and run time (nil turns tracing off). For
// profiling; fn runs under Eval's lock and must not call into the engine.
func SetTrace(fn func(op string, shape []int, elapsed time.Duration)) {
	evalMu.Lock()
	traceFn = fn
	evalMu.Unlock()
}

// elementwise marks primitives whose output may share memory with an
// input of its shape: they write out[i] from inputs at index i only, or
// (the fused kernels) finish reading a row or compute into scratch before
// writing it.
type elementwise interface{ elementwise() }

func (unaryPrim) elementwise()   {}
func (binaryPrim) elementwise()  {}
func (wherePrim) elementwise()   {}
func (copyPrim) elementwise()    {}
func (fusedPrim) elementwise()   {}
func (softmaxPrim) elementwise() {}

// donate lets n write into the buffer of an input that dies with it: one
// computed in this Eval, consumed only by n, not an output, viewed by no
// other array, contiguous from offset 0, with n's shape and element size.
// MLX does the same; it keeps peak memory near the live working set.
func donate(n *Array) {
	for _, in := range n.inputs {
		if in.mark != 2 || in.uses != 1 || in.isOut || in.st == nil || in.st.refs != 1 ||
			in.offset != 0 || in.dtype.Size() != n.dtype.Size() || !sameShape(in.shape, n.shape) ||
			!in.view().Contiguous() {
			continue
		}
		n.st = in.st
		n.st.refs++
		n.strides = backend.RowMajor(n.shape)
		n.offset = 0
		return
	}
}

// Release gives the data of evaluated arrays back to the backend now,
// rather than when the garbage collector finds them unreachable (which it
// does late: the buffers live outside the Go heap, so they do not count
// towards its collection pace). A released array must not be used again;
// it then reports an error. The buffer itself is freed once no other
// evaluated array views it. Unevaluated arrays are left alone.
func Release(arrays ...*Array) {
	evalMu.Lock()
	defer evalMu.Unlock()
	for _, a := range arrays {
		if a == nil || a.st == nil || a.err != nil {
			continue
		}
		a.releaseData()
		a.prim, a.inputs = nil, nil
		a.err = errReleased
	}
}

var errReleased = errors.New("engine: array used after Release")

// releaseData drops an intermediate's buffer reference; the buffer goes
// back to the pool when no evaluated array views it.
func (a *Array) releaseData() {
	st := a.st
	a.st, a.strides, a.offset = nil, nil, 0
	st.refs--
	if st.refs == 0 {
		st.raw.release()
	}
}

// setView makes out an evaluated view of in's buffer.
func setView(out, in *Array, strides []int, offset int) {
	out.st = in.st
	out.st.refs++
	out.strides = strides
	out.offset = offset
}

// alloc gives out a fresh contiguous buffer (unless Eval donated one).
func alloc(out *Array) error {
	if out.st != nil {
		return nil
	}
	b := defaultBackend
	buf, err := b.Alloc(out.NBytes())
	if err != nil {
		return err
	}
	out.st = newStorage(b, buf)
	out.st.refs = 1
	out.strides = backend.RowMajor(out.shape)
	out.offset = 0
	return nil
}

// run allocates out and runs op on the inputs' views.
func run(op backend.Op, out *Array, in ...*Array) error {
	if err := alloc(out); err != nil {
		return err
	}
	views := make([]backend.View, len(in))
	for i, a := range in {
		views[i] = a.view()
	}
	return defaultBackend.Run(op, views, out.view())
}

// runB is run with inputs broadcast to shapes (nil: unchanged).
func runB(op backend.Op, out *Array, in []*Array, shapes [][]int) error {
	if err := alloc(out); err != nil {
		return err
	}
	views := make([]backend.View, len(in))
	for i, a := range in {
		views[i] = a.view()
		if shapes != nil && shapes[i] != nil {
			views[i] = broadcastView(views[i], shapes[i])
		}
	}
	return defaultBackend.Run(op, views, out.view())
}

// broadcastView stretches v to shape with zero strides.
func broadcastView(v backend.View, shape []int) backend.View {
	nd := len(shape)
	st := make([]int, nd)
	off := nd - len(v.Shape)
	for i := range v.Shape {
		if v.Shape[i] != 1 || shape[off+i] == 1 {
			st[off+i] = v.Strides[i]
		}
	}
	v.Shape, v.Strides = shape, st
	return v
}

// fillPrim fills a new array with one value.
type fillPrim struct{ v float64 }

func (fillPrim) name() string { return "Full" }
func (p fillPrim) eval(out *Array, _ []*Array) error {
	if err := alloc(out); err != nil {
		return err
	}
	v := out.view()
	n := out.Size()
	v.Shape, v.Strides = []int{n}, []int{1}
	return defaultBackend.Run(backend.Arange{Start: p.v}, nil, v)
}
func (fillPrim) vjp(*Array, []*Array, *Array) []*Array { return nil }
