package engine

import (
	"fmt"
	"testing"
)

func conv1dRef(x, w tensor, stride, padding, dilation, groups int) tensor {
	B, L := x.shape[0], x.shape[1]
	Cout, K, Cg := w.shape[0], w.shape[1], w.shape[2]
	Lout := (L+2*padding-dilation*(K-1)-1)/stride + 1
	og := Cout / groups
	out := tensor{[]int{B, Lout, Cout}, nil}
	for b := 0; b < B; b++ {
		for l := 0; l < Lout; l++ {
			for o := 0; o < Cout; o++ {
				g := o / og
				var s float64
				for k := 0; k < K; k++ {
					p := l*stride + k*dilation - padding
					if p < 0 || p >= L {
						continue
					}
					for c := 0; c < Cg; c++ {
						s += x.at(b, p, g*Cg+c) * w.at(o, k, c)
					}
				}
				out.data = append(out.data, s)
			}
		}
	}
	return out
}

func TestConv1d(t *testing.T) {
	for _, c := range []struct{ cin, cout, k, stride, pad, dil, groups int }{
		{4, 6, 3, 1, 0, 1, 1},
		{4, 6, 3, 2, 1, 1, 1},
		{4, 4, 4, 1, 3, 1, 4}, // depthwise, causal-style padding
		{4, 6, 2, 1, 1, 2, 2},
	} {
		name := fmt.Sprintf("Conv1d%+v", c)
		x, w := randT(2, 7, c.cin), randT(c.cout, c.k, c.cin/c.groups)
		near(t, name, Conv1d(x.arr(), w.arr(), c.stride, c.pad, c.dil, c.groups), conv1dRef(x, w, c.stride, c.pad, c.dil, c.groups), 1e-5, 1e-5)
		gradCheck(t, name, func(xs []*Array) *Array { return Conv1d(xs[0], xs[1], c.stride, c.pad, c.dil, c.groups) }, randT(1, 5, c.cin), w)
	}
	if Conv1d(randT(1, 2, 4).arr(), randT(4, 5, 4).arr(), 1, 0, 1, 1).Err() == nil {
		t.Error("Conv1d with a kernel longer than the input did not fail")
	}
}
