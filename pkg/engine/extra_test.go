package engine

import (
	"math"
	"slices"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

func TestExtraOps(t *testing.T) {
	x := randT(3, 4)
	near(t, "Clip", Clip(x.arr(), Scalar(-0.5), Scalar(0.7)), x.mapT(func(v float64) float64 { return min(max(v, -0.5), 0.7) }), 0, 1e-7)
	tril := tensor{x.shape, slices.Clone(x.data)}
	triu := tensor{x.shape, slices.Clone(x.data)}
	for i := 0; i < 3; i++ {
		for j := 0; j < 4; j++ {
			if j > i+1 {
				tril.data[i*4+j] = 0
			}
			if j < i+1 {
				triu.data[i*4+j] = 0
			}
		}
	}
	near(t, "Tril", Tril(x.arr(), 1), tril, 0, 0)
	near(t, "Triu", Triu(x.arr(), 1), triu, 0, 0)
	near(t, "Eye", Eye(2, Float32), tensor{[]int{2, 2}, []float64{1, 0, 0, 1}}, 0, 0)
	near(t, "Linspace", Linspace(1, 2, 5, Float32), tensor{[]int{5}, []float64{1, 1.25, 1.5, 1.75, 2}}, 0, 1e-7)
	p := Pad(x.arr(), []int{1, 0}, []int{0, 2}, -9)
	pw := tensor{[]int{4, 6}, nil}
	for i := 0; i < 4; i++ {
		for j := 0; j < 6; j++ {
			v := -9.0
			if i >= 1 && j < 4 {
				v = x.at(i-1, j)
			}
			pw.data = append(pw.data, v)
		}
	}
	near(t, "Pad", p, pw, 0, 0)
	r := randT(2, 3)
	near(t, "Repeat", Repeat(r.arr(), 2, 1), tensor{[]int{2, 6}, []float64{
		r.data[0], r.data[0], r.data[1], r.data[1], r.data[2], r.data[2],
		r.data[3], r.data[3], r.data[4], r.data[4], r.data[5], r.data[5]}}, 0, 0)
	near(t, "Tile", Tile(r.arr(), 2, 1), tensor{[]int{4, 3}, append(slices.Clone(r.data), r.data...)}, 0, 0)
	gradCheck(t, "Repeat", func(xs []*Array) *Array { return Repeat(xs[0], 3, 0) }, r)
	gradCheck(t, "Pad", func(xs []*Array) *Array { return Pad(xs[0], []int{0, 1}, []int{2, 0}, 1) }, r)
	// PutAlongAxis writes -inf at top-k positions, like a sampler does
	idx := FromInt32s([]int32{3, 0, 1, 2, 0, 3}, 3, 2)
	pa := PutAlongAxis(x.arr(), idx, Scalar(-7), 1)
	pwant := tensor{x.shape, slices.Clone(x.data)}
	for r, cols := range [][]int{{3, 0}, {1, 2}, {0, 3}} {
		for _, c := range cols {
			pwant.data[r*4+c] = -7
		}
	}
	near(t, "PutAlongAxis", pa, pwant, 0, 0)
	all, _ := All(Greater(x.arr(), Scalar(-5)), false).Item()
	anyv, _ := Any(Greater(x.arr(), Scalar(5)), false).Item()
	if all != 1 || anyv != 0 {
		t.Errorf("All = %v, Any = %v", all, anyv)
	}
	ok, err := AllClose(x.arr(), Add(x.arr(), Scalar(1e-7)), 1e-5, 1e-6)
	if err != nil || !ok {
		t.Errorf("AllClose = %v %v", ok, err)
	}
	if ok, _ := AllClose(x.arr(), Add(x.arr(), Scalar(1e-2)), 1e-5, 1e-6); ok {
		t.Error("AllClose of different arrays")
	}
	if _, err := backend.Open("cpu"); err != nil {
		t.Errorf("cpu backend not registered: %v", err)
	}
	if _, err := backend.Open("nonesuch"); err == nil {
		t.Error("opening an unknown backend did not fail")
	}
}

// UpdateSlice writes into a preallocated cache without a new buffer, and
// copies first when an earlier view shares the buffer.
func TestUpdateSliceInPlace(t *testing.T) {
	cache := Zeros([]int{1, 2, 8, 4}, Float32) // [B, Hk, Lmax, Dh]
	if err := Eval(cache); err != nil {
		t.Fatal(err)
	}
	k := randT(1, 2, 3, 4)
	before := ActiveMemory()
	if err := cache.UpdateSlice(k.arr(), []int{0, 0, 2, 0}, []int{1, 2, 5, 4}, nil); err != nil {
		t.Fatal(err)
	}
	// k's buffer (3·8·4 bytes … bucketed) is the only new memory
	if grown := ActiveMemory() - before; grown > 256 {
		t.Errorf("UpdateSlice grew active memory by %d bytes", grown)
	}
	got := mustF(t, SliceAxis(cache, 2, 2, 5))
	if !slices.Equal(got, k.data) {
		t.Errorf("cache[2:5] = %v, want %v", got, k.data)
	}
	// an evaluated view held from before keeps its values
	old := SliceAxis(cache, 2, 0, 4)
	if err := Eval(old); err != nil {
		t.Fatal(err)
	}
	snapshot := mustF(t, old)
	if err := cache.UpdateSlice(Scalar(5), []int{0, 0, 0, 0}, []int{1, 2, 8, 4}, nil); err != nil {
		t.Fatal(err)
	}
	if after := mustF(t, old); !slices.Equal(after, snapshot) {
		t.Error("a view taken before UpdateSlice changed")
	}
	if v := mustF(t, cache); v[0] != 5 || v[len(v)-1] != 5 {
		t.Errorf("cache not updated: %v", v[:4])
	}
}

// The lazy in-place update lets a whole decode step (cache write and the
// attention reading it) be one Eval, with no new cache buffer.
func TestSliceUpdateInPlace(t *testing.T) {
	cache := Zeros([]int{1, 1, 6, 2}, Float32) // [B, Hk, Lmax, Dh]
	if err := Eval(cache); err != nil {
		t.Fatal(err)
	}
	var want []float64
	for step := 0; step < 3; step++ {
		k := randT(1, 1, 1, 2)
		want = append(want, k.data...)
		before := ActiveMemory()
		kv := SliceUpdateInPlace(cache, Multiply(k.arr(), Scalar(1)), []int{0, 0, step, 0}, []int{1, 1, step + 1, 2}, nil)
		keys := SliceAxis(kv, 2, 0, step+1) // [1, 1, step+1, 2]
		total := Sum(keys, false)
		if err := Eval(total); err != nil {
			t.Fatal(err)
		}
		if got, _ := total.Item(); math.Abs(got-sumF(want)) > 1e-5 {
			t.Errorf("step %d: sum of keys = %v, want %v", step, got, sumF(want))
		}
		if grown := ActiveMemory() - before; grown > 256 {
			t.Errorf("step %d: active memory grew by %d bytes", step, grown)
		}
	}
	got := mustF(t, SliceAxis(cache, 2, 0, 3))
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-7 {
			t.Fatalf("cache = %v, want %v", got, want)
		}
	}
	// a target computed in the same Eval is refused
	if err := Eval(SliceUpdateInPlace(Zeros([]int{2}, Float32), Scalar(1), []int{0}, []int{1}, nil)); err == nil {
		t.Error("writing into an unevaluated target did not fail")
	}
}
