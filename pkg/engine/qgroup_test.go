package engine

import (
	"fmt"
	"slices"
	"testing"
)

// TestQuantizedMatmulSiblings evaluates quantized products that read the
// same input in one Eval (the engine runs them as one backend job) and
// checks each result is bit-identical to the product evaluated alone: for
// bf16 and f32 activations, one and several rows, a sibling whose scales
// are computed in the same graph (not ready when the group runs) and one
// with another group size (not groupable).
func TestQuantizedMatmulSiblings(t *testing.T) {
	for _, dt := range []DType{Float32, BFloat16} {
		for _, M := range []int{1, 5} {
			t.Run(fmt.Sprintf("%s/M%d", dt, M), func(t *testing.T) {
				K := 256
				type lin struct{ w, s, b *Array }
				mk := func(N, G int) lin {
					q := quantizeRef(randT(N, K), G, 4, BFloat16)
					w, s, b := q.arrays(BFloat16)
					if err := Eval(w, s, b); err != nil {
						t.Fatal(err)
					}
					return lin{w, s, b}
				}
				ls := []lin{mk(96, 64), mk(32, 64), mk(32, 64), mk(64, 64), mk(48, 32)}
				// scales computed in the graph: ready only after their op runs
				ls[3].s = Multiply(ls[3].s, Ones(ls[3].s.Shape(), BFloat16))
				x := AsType(randT(1, M, K).arr(), dt)
				if err := Eval(x); err != nil {
					t.Fatal(err)
				}
				var want [][]float64
				for _, l := range ls {
					want = append(want, mustF(t, QuantizedMatmul(x, l.w, l.s, l.b, true, K/l.s.Dim(1), 4)))
				}
				before := groupedRuns
				var outs []*Array
				for _, l := range ls {
					outs = append(outs, QuantizedMatmul(x, l.w, l.s, l.b, true, K/l.s.Dim(1), 4))
				}
				if err := Eval(outs...); err != nil {
					t.Fatal(err)
				}
				if groupedRuns == before {
					t.Fatal("the products were not run as a group")
				}
				for i, o := range outs {
					if got := mustF(t, o); !slices.Equal(got, want[i]) {
						t.Fatalf("product %d: grouped result differs from the product alone", i)
					}
				}
			})
		}
	}
}

// TestRelease checks that Release hands an evaluated array's buffer back
// to the backend at once (the allocator's active bytes drop), leaves a view
// of the same buffer readable, and makes the released array report an
// error.
func TestRelease(t *testing.T) {
	x := Add(randT(64, 1024).arr(), Full([]int{64, 1024}, 1, Float32)) // 256 KiB
	if err := Eval(x); err != nil {
		t.Fatal(err)
	}
	v := SliceAxis(x, 0, 0, 8)
	if err := Eval(v); err != nil {
		t.Fatal(err)
	}
	want := mustF(t, v)
	Release(x)
	if x.Err() == nil {
		t.Fatal("released array reports no error")
	}
	if got := mustF(t, v); !slices.Equal(got, want) {
		t.Fatal("a view of a released array lost its data")
	}
	before := ActiveMemory()
	Release(v)
	if after := ActiveMemory(); before-after < 256<<10 {
		t.Fatalf("active memory %d -> %d after releasing the last view: the buffer was not freed", before, after)
	}
}
