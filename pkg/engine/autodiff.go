package engine

import (
	"fmt"
)

// vjpGraph back-propagates cotangents of outs to primals through the graph
// that links them and returns one cotangent per primal (zeros where no path
// exists). Primals are leaves of the traversal; evaluated arrays (which have
// dropped their graph) and StopGradient end paths.
func vjpGraph(outs, primals, cots []*Array) []*Array {
	isPrimal := make(map[*Array]bool, len(primals))
	for _, p := range primals {
		isPrimal[p] = true
	}
	// post-order DFS; needs[n]: n depends on a primal
	needs := map[*Array]bool{}
	visited := map[*Array]bool{}
	var order []*Array
	type frame struct {
		a *Array
		i int
	}
	for _, root := range outs {
		if visited[root] {
			continue
		}
		visited[root] = true
		stack := []frame{{root, 0}}
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if !isPrimal[f.a] && f.i < len(f.a.inputs) {
				in := f.a.inputs[f.i]
				f.i++
				if !visited[in] {
					visited[in] = true
					stack = append(stack, frame{in, 0})
				}
				continue
			}
			n := f.a
			if isPrimal[n] {
				needs[n] = true
			} else {
				for _, in := range n.inputs {
					if needs[in] {
						needs[n] = true
					}
				}
			}
			order = append(order, n)
			stack = stack[:len(stack)-1]
		}
	}
	grads := map[*Array]*Array{}
	for i, o := range outs {
		if cots[i] != nil && needs[o] {
			grads[o] = accum(grads[o], cots[i], o)
		}
	}
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		g := grads[n]
		if g == nil || isPrimal[n] || n.prim == nil || !needs[n] {
			continue
		}
		var ins []*Array
		if mv, ok := n.prim.(maskedVJP); ok { // Checkpoint: recompute only what is needed
			ins = mv.vjpMasked(n, n.inputs, g, func(a *Array) bool { return needs[a] })
		} else {
			ins = n.prim.vjp(n, n.inputs, g)
		}
		for j, in := range n.inputs {
			if j < len(ins) && ins[j] != nil && needs[in] {
				grads[in] = accum(grads[in], ins[j], in)
			}
		}
	}
	res := make([]*Array, len(primals))
	for i, p := range primals {
		if g := grads[p]; g != nil {
			res[i] = g
		} else {
			res[i] = ZerosLike(p)
		}
	}
	return res
}

// accum adds cotangent g (cast and shaped like x) to acc.
func accum(acc, g, x *Array) *Array {
	if g.err == nil && !sameShape(g.shape, x.shape) {
		g = Errorf("engine: internal: cotangent %v for array %v", g.shape, x.shape)
	}
	if x.dtype.IsFloat() && g.dtype != x.dtype {
		g = AsType(g, x.dtype)
	}
	if acc == nil {
		return g
	}
	return Add(acc, g)
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// VJP runs f on primals and returns its outputs and the vector-Jacobian
// products of cotangents (one per output, shaped like it) with respect to
// each primal. Nothing is evaluated: pass what you need to Eval.
func VJP(f func([]*Array) []*Array, primals, cotangents []*Array) (outs, vjps []*Array, err error) {
	if err := firstErr(primals...); err != nil {
		return nil, nil, err
	}
	outs = f(primals)
	if len(outs) != len(cotangents) {
		return nil, nil, fmt.Errorf("engine: VJP: %d outputs but %d cotangents", len(outs), len(cotangents))
	}
	for i, o := range outs {
		if err := firstErr(o, cotangents[i]); err != nil {
			return nil, nil, err
		}
		if !sameShape(o.shape, cotangents[i].shape) {
			return nil, nil, fmt.Errorf("engine: VJP: output %d is %v but its cotangent is %v", i, o.shape, cotangents[i].shape)
		}
	}
	vjps = vjpGraph(outs, primals, cotangents)
	if err := firstErr(vjps...); err != nil {
		return nil, nil, err
	}
	return outs, vjps, nil
}

// ValueAndGrad turns f (a scalar function of a flat, ordered parameter
// list, e.g. a model's (name, *Array) list in checkpoint order) into a
// function returning f's value and its gradient with respect to every
// parameter, in the same order. Nothing is evaluated: pass the value and
// the gradients to one Eval.
func ValueAndGrad(f func(params []*Array) *Array) func(params []*Array) (*Array, []*Array, error) {
	return func(params []*Array) (*Array, []*Array, error) {
		if err := firstErr(params...); err != nil {
			return nil, nil, err
		}
		out := f(params)
		if err := firstErr(out); err != nil {
			return nil, nil, err
		}
		if out.Size() != 1 || !out.dtype.IsFloat() {
			return nil, nil, fmt.Errorf("engine: ValueAndGrad: f must return a float scalar, got %s%v", out.dtype, out.shape)
		}
		grads := vjpGraph([]*Array{out}, params, []*Array{OnesLike(out)})
		if err := firstErr(grads...); err != nil {
			return nil, nil, err
		}
		return out, grads, nil
	}
}

// ValueAndGradAux is ValueAndGrad for a function with auxiliary outputs
// (mlx_lm's loss returns the loss and the token count): the gradient is of
// outs[0], which must be a float scalar; all outputs are returned.
func ValueAndGradAux(f func(params []*Array) []*Array) func(params []*Array) (outs, grads []*Array, err error) {
	return func(params []*Array) ([]*Array, []*Array, error) {
		if err := firstErr(params...); err != nil {
			return nil, nil, err
		}
		outs := f(params)
		if len(outs) == 0 {
			return nil, nil, fmt.Errorf("engine: ValueAndGradAux: f returned no outputs")
		}
		if err := firstErr(outs...); err != nil {
			return nil, nil, err
		}
		if outs[0].Size() != 1 || !outs[0].dtype.IsFloat() {
			return nil, nil, fmt.Errorf("engine: ValueAndGradAux: outs[0] must be a float scalar, got %s%v", outs[0].dtype, outs[0].shape)
		}
		grads := vjpGraph(outs[:1], params, []*Array{OnesLike(outs[0])})
		if err := firstErr(grads...); err != nil {
			return nil, nil, err
		}
		return outs, grads, nil
	}
}

// Grad is ValueAndGrad without the value.
func Grad(f func(params []*Array) *Array) func(params []*Array) ([]*Array, error) {
	vg := ValueAndGrad(f)
	return func(params []*Array) ([]*Array, error) {
		_, g, err := vg(params)
		return g, err
	}
}
