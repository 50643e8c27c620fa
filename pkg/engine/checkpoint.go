package engine

// Gradient checkpointing (mx.checkpoint): a block's forward is computed as
// usual but the backward pass does not keep its intermediates; it re-runs
// the block on its saved inputs and back-propagates through that fresh graph.

// Checkpoint returns f wrapped for gradient checkpointing, like
// mx.checkpoint. The wrapped function builds f's graph and returns one new
// array per output of f, with the same values; when a gradient is taken
// through them, f is run again on the block's inputs (made to wait for the
// output's cotangent) and the cotangent is back-propagated through that
// fresh graph. So within one Eval of a value and its gradients the block's
// intermediates are released once its forward has run, and only its inputs
// and outputs stay alive until the backward reaches the block: peak memory
// drops from every block's intermediates to one block's, at the price of a
// second forward per block. (Evaluate the value and the gradients in one
// Eval, as everywhere: an Eval of the value alone releases the saved
// inputs too, and the gradients' Eval would recompute the whole forward.)
//
// Gradients flow to the inputs xs and to the evaluated float arrays f
// reads by closure (weights, LoRA parameters): f may take its parameters
// either way. Arrays f reads by closure that are not evaluated are treated
// as part of the block; they must not depend on xs (pass such arrays as
// inputs). f must be deterministic: the global random key (Seed) is set back
// to its value of the first call while f is re-run, so random ops drawing
// from it repeat their draws; other state f changes is its own business.
//
// A block with several outputs is re-run once per output that receives a
// cotangent; a transformer block returns one array.
func Checkpoint(f func([]*Array) []*Array) func([]*Array) []*Array {
	return func(xs []*Array) []*Array {
		key := globalKey()
		inner := f(xs)
		if firstErr(xs...) != nil || firstErr(inner...) != nil {
			return inner
		}
		c := &ckpt{f: f, xs: xs, key: key, nOut: len(inner)}
		c.captured = capturedLeaves(inner, xs)
		ins := make([]*Array, 0, len(xs)+len(c.captured)+1)
		ins = append(append(ins, xs...), c.captured...)
		outs := make([]*Array, len(inner))
		for i, o := range inner {
			in := append(ins[:len(ins):len(ins)], o)
			outs[i] = newNode(o.dtype, o.shape, ckptPrim{c: c, i: i}, in...)
		}
		return outs
	}
}

// ckpt is one application of a checkpointed function.
type ckpt struct {
	f        func([]*Array) []*Array
	xs       []*Array
	captured []*Array // evaluated float arrays f reads by closure
	key      Key
	nOut     int
}

// ckptPrim is output i of a checkpointed block. Its inputs are the block's
// inputs, the captured arrays, and the block's output i, whose buffer it
// views; gradients go to the first two groups only, through a recomputation.
type ckptPrim struct {
	c *ckpt
	i int
}

func (ckptPrim) name() string { return "Checkpoint" }
func (ckptPrim) eval(out *Array, in []*Array) error {
	o := in[len(in)-1]
	setView(out, o, o.strides, o.offset)
	return nil
}

// vjp without knowing which inputs need a gradient: all of them.
func (p ckptPrim) vjp(out *Array, in []*Array, cot *Array) []*Array {
	return p.vjpMasked(out, in, cot, func(*Array) bool { return true })
}

// vjpMasked re-runs the block and back-propagates cot through the fresh
// graph to the inputs that need a gradient.
func (p ckptPrim) vjpMasked(_ *Array, in []*Array, cot *Array, needs func(*Array) bool) []*Array {
	c := p.c
	nx := len(c.xs)
	res := make([]*Array, len(in))
	want := false
	for j := 0; j < nx+len(c.captured); j++ {
		if needs(in[j]) && in[j].dtype.IsFloat() {
			want = true
		}
	}
	if !want {
		return res
	}
	// The recomputation waits for cot: evaluated after the blocks above
	// have run their backward, not ahead of them.
	rx := make([]*Array, nx)
	for j, x := range c.xs {
		rx[j] = after(x, cot)
	}
	outs := withGlobalKey(c.key, func() []*Array { return c.f(rx) })
	if len(outs) != c.nOut {
		err := Errorf("engine: Checkpoint: the block returned %d outputs when re-run, %d the first time", len(outs), c.nOut)
		for j := range res {
			res[j] = err
		}
		return res
	}
	// every recomputed input is a primal (so no path leaks past it into
	// the outer graph); of the captured arrays, those that need a gradient
	primals := append([]*Array(nil), rx...)
	var capIdx []int
	for j := range c.captured {
		if a := in[nx+j]; needs(a) {
			primals = append(primals, a)
			capIdx = append(capIdx, nx+j)
		}
	}
	cots := make([]*Array, len(outs))
	cots[p.i] = cot
	g := vjpGraph(outs, primals, cots)
	capGrads := g[nx:]
	for k, j := range capIdx {
		res[j] = capGrads[k]
	}
	for j := range nx {
		if needs(in[j]) && in[j].dtype.IsFloat() {
			// computing the parameters' gradients before handing the
			// cotangent down lets this block's recomputed values die here
			res[j] = after(g[j], capGrads...)
		}
	}
	return res
}

// capturedLeaves returns the evaluated float arrays the graph of outs reads,
// not counting xs and not looking past them.
func capturedLeaves(outs, xs []*Array) []*Array {
	seen := make(map[*Array]bool, 64)
	for _, x := range xs {
		seen[x] = true
	}
	var leaves []*Array
	stack := append([]*Array(nil), outs...)
	for len(stack) > 0 {
		a := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[a] {
			continue
		}
		seen[a] = true
		if a.prim == nil {
			if a.st != nil && a.dtype.IsFloat() {
				leaves = append(leaves, a)
			}
			continue
		}
		stack = append(stack, a.inputs...)
	}
	return leaves
}

// after returns a view of x that is computed only once deps are (mlx's
// depends); the gradient passes to x.
func after(x *Array, deps ...*Array) *Array {
	if len(deps) == 0 || x.err != nil {
		return x
	}
	if err := firstErr(deps...); err != nil {
		return errArray(err)
	}
	return newNode(x.dtype, x.shape, afterPrim{}, append([]*Array{x}, deps...)...)
}

type afterPrim struct{}

func (afterPrim) name() string { return "Depends" }
func (afterPrim) eval(out *Array, in []*Array) error {
	setView(out, in[0], in[0].strides, in[0].offset)
	return nil
}
func (afterPrim) vjp(_ *Array, in []*Array, cot *Array) []*Array {
	res := make([]*Array, len(in))
	res[0] = cot
	return res
}

// maskedVJP is a primitive whose vjp is told which inputs need a gradient
// (vjpGraph asks it instead of vjp).
type maskedVJP interface {
	vjpMasked(out *Array, in []*Array, cot *Array, needs func(*Array) bool) []*Array
}

func globalKey() Key {
	rngMu.Lock()
	defer rngMu.Unlock()
	return rngKey
}

// withGlobalKey runs fn with the global random key set to k and puts the
// key back afterwards.
func withGlobalKey(k Key, fn func() []*Array) []*Array {
	rngMu.Lock()
	saved := rngKey
	rngKey = k
	rngMu.Unlock()
	defer func() {
		rngMu.Lock()
		rngKey = saved
		rngMu.Unlock()
	}()
	return fn()
}
