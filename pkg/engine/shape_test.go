package engine

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

func TestReshapeTransposeSlice(t *testing.T) {
	x := randT(2, 3, 4)
	// reshape of a transposed (non-contiguous) view copies correctly
	xt := x.permute(2, 0, 1)
	near(t, "Reshape(Transpose)", Reshape(Transpose(x.arr(), 2, 0, 1), 4, 6), tensor{[]int{4, 6}, xt.data}, 0, 0)
	near(t, "Reshape(-1)", Reshape(x.arr(), -1, 4), tensor{[]int{6, 4}, x.data}, 0, 0)
	// slices with steps, negative indices and negative steps
	got := Slice(x.arr(), []int{1, -2, 3}, []int{2, 3, -5}, []int{1, 1, -2}) // [1:2, 1:3, 3::-2]
	want := tensor{[]int{1, 2, 2}, []float64{x.at(1, 1, 3), x.at(1, 1, 1), x.at(1, 2, 3), x.at(1, 2, 1)}}
	near(t, "Slice", got, want, 0, 0)
	near(t, "SliceAxis", SliceAxis(x.arr(), -1, 1, 3), sliceRef(x, 2, 1, 3), 0, 0)
	// expand / squeeze / broadcast
	if s := ExpandDims(x.arr(), 0, -1).Shape(); !slices.Equal(s, []int{1, 2, 3, 4, 1}) {
		t.Errorf("ExpandDims shape %v", s)
	}
	if s := Squeeze(ExpandDims(x.arr(), 1)).Shape(); !slices.Equal(s, []int{2, 3, 4}) {
		t.Errorf("Squeeze shape %v", s)
	}
	b := randT(3, 1)
	near(t, "BroadcastTo", BroadcastTo(b.arr(), 2, 3, 4), b.broadcast(2, 3, 4), 0, 0)
	if err := Eval(BroadcastTo(b.arr(), 2, 2)); err == nil {
		t.Error("BroadcastTo [3,1]->[2,2] did not fail")
	} else if err := Eval(Squeeze(x.arr(), 0)); err == nil || !strings.Contains(err.Error(), "not 1") {
		t.Errorf("Squeeze of a non-1 axis: %v", err)
	}
	gradCheck(t, "Reshape", func(xs []*Array) *Array { return Reshape(Transpose(xs[0]), 6, 4) }, x)
	gradCheck(t, "Slice", func(xs []*Array) *Array {
		return Slice(xs[0], []int{0, 2, 3}, []int{2, 0, 0}, []int{1, -1, -2})
	}, x)
	gradCheck(t, "BroadcastTo", func(xs []*Array) *Array { return BroadcastTo(xs[0], 2, 3, 4) }, b)
}

func sliceRef(x tensor, axis, lo, hi int) tensor {
	shape := slices.Clone(x.shape)
	shape[axis] = hi - lo
	out := tensor{shape, nil}
	idx := make([]int, len(shape))
	for range prod(shape) {
		src := slices.Clone(idx)
		src[axis] += lo
		out.data = append(out.data, x.at(src...))
		for d := len(idx) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

func TestConcatStackSplit(t *testing.T) {
	a, b := randT(2, 3), randT(2, 5)
	got := Concatenate([]*Array{a.arr(), Transpose(Transpose(b.arr()))}, 1)
	want := tensor{[]int{2, 8}, nil}
	for i := 0; i < 2; i++ {
		want.data = append(want.data, a.data[i*3:i*3+3]...)
		want.data = append(want.data, b.data[i*5:i*5+5]...)
	}
	near(t, "Concatenate", got, want, 0, 0)
	parts := SplitAt(got, []int{3}, 1)
	near(t, "SplitAt0", parts[0], a, 0, 0)
	near(t, "SplitAt1", parts[1], b, 0, 0)
	c := randT(2, 3)
	st := Stack([]*Array{a.arr(), c.arr()}, 1) // [2, 2, 3]
	wantS := tensor{[]int{2, 2, 3}, nil}
	for i := 0; i < 2; i++ {
		wantS.data = append(wantS.data, a.data[i*3:i*3+3]...)
		wantS.data = append(wantS.data, c.data[i*3:i*3+3]...)
	}
	near(t, "Stack", st, wantS, 0, 0)
	halves := Split(randT(4, 6).arr(), 3, 1)
	if len(halves) != 3 || !slices.Equal(halves[2].Shape(), []int{4, 2}) {
		t.Errorf("Split gave %d parts", len(halves))
	}
	gradCheck(t, "Concatenate", func(xs []*Array) *Array { return Concatenate([]*Array{xs[0], xs[1]}, 1) }, a, b)
	gradCheck(t, "Stack", func(xs []*Array) *Array { return Stack([]*Array{xs[0], xs[1]}, 0) }, a, c)
	// SliceUpdate
	u := randT(2, 2)
	su := SliceUpdate(b.arr(), u.arr(), []int{0, 1}, []int{2, 5}, []int{1, 2})
	wantU := tensor{b.shape, slices.Clone(b.data)}
	for i := 0; i < 2; i++ {
		wantU.data[i*5+1] = u.data[i*2]
		wantU.data[i*5+3] = u.data[i*2+1]
	}
	near(t, "SliceUpdate", su, wantU, 0, 0)
	gradCheck(t, "SliceUpdate", func(xs []*Array) *Array {
		return SliceUpdate(xs[0], xs[1], []int{0, 1}, []int{2, 5}, []int{1, 2})
	}, b, u)
}

func TestTakeGatherScatter(t *testing.T) {
	x := randT(4, 5)
	idx := FromInt32s([]int32{3, 0, -1, 3, 1, 1}, 2, 3)
	// Take along axis 0: [2, 3, 5]; along axis 1 of the transpose
	want := tensor{[]int{2, 3, 5}, nil}
	for _, i := range []int{3, 0, 3, 3, 1, 1} {
		want.data = append(want.data, x.data[i*5:i*5+5]...)
	}
	near(t, "Take", Take(x.arr(), idx, 0), want, 0, 0)
	near(t, "Take/T", Transpose(Take(Transpose(x.arr()), idx, 1), 1, 2, 0), want, 0, 0)
	idx2 := FromUint32s([]uint32{3, 0, 0, 3, 1, 1}, 2, 3)
	gradCheck(t, "Take", func(xs []*Array) *Array { return Take(xs[0], idx2, 0) }, x)
	// TakeAlongAxis on rows, indices broadcast over columns
	ti := FromInt32s([]int32{4, 0, 2, 2, 1, 3, 0, 0}, 4, 2)
	tw := tensor{[]int{4, 2}, nil}
	tiv := []int{4, 0, 2, 2, 1, 3, 0, 0}
	for r := 0; r < 4; r++ {
		tw.data = append(tw.data, x.at(r, tiv[2*r]), x.at(r, tiv[2*r+1]))
	}
	near(t, "TakeAlongAxis", TakeAlongAxis(x.arr(), ti, 1), tw, 0, 0)
	gradCheck(t, "TakeAlongAxis", func(xs []*Array) *Array { return TakeAlongAxis(xs[0], ti, 1) }, x)
	// ScatterAddAxis with repeated indices accumulates
	u := randT(4, 2)
	sw := tensor{x.shape, slices.Clone(x.data)}
	for r := 0; r < 4; r++ {
		for j := 0; j < 2; j++ {
			sw.data[r*5+tiv[2*r+j]] += u.data[r*2+j]
		}
	}
	near(t, "ScatterAddAxis", ScatterAddAxis(x.arr(), ti, u.arr(), 1), sw, 1e-6, 1e-6)
	gradCheck(t, "ScatterAddAxis", func(xs []*Array) *Array { return ScatterAddAxis(xs[0], ti, xs[1], 1) }, x, u)
	// out-of-range index is an error from Eval
	if err := Eval(Take(x.arr(), FromInt32s([]int32{9}, 1), 0)); err == nil {
		t.Error("out-of-range Take did not fail")
	}
}

func TestCreation(t *testing.T) {
	near(t, "Arange", Arange(2, 7, 1.5, Float32), tensor{[]int{4}, []float64{2, 3.5, 5, 6.5}}, 0, 0)
	near(t, "Arange/neg", Arange(3, 0, -1, Int32), tensor{[]int{3}, []float64{3, 2, 1}}, 0, 0)
	near(t, "Full", Full([]int{2, 2}, 2.5, BFloat16), tensor{[]int{2, 2}, []float64{2.5, 2.5, 2.5, 2.5}}, 0, 0)
	near(t, "Ones", Ones([]int{3}, Int32), tensor{[]int{3}, []float64{1, 1, 1}}, 0, 0)
	bs, err := Greater(Arange(0, 4, 1, Float32), Scalar(1.5)).Bools()
	if err != nil || !slices.Equal(bs, []bool{false, false, true, true}) {
		t.Errorf("Bools = %v %v", bs, err)
	}
	if FromFloat32s([]float32{1, 2, 3}, 2, 2).Err() == nil {
		t.Error("FromFloat32s with a wrong shape did not fail")
	}
}

// FromBytes uses host memory in place: writing the bytes shows through.
func TestFromBytesZeroCopy(t *testing.T) {
	// own allocator: cleanups of other tests' garbage must not move the count
	old := DefaultBackend()
	SetDefaultBackend(freshBackend(t))
	defer SetDefaultBackend(old)
	words := make([]uint32, 4)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), 16)
	h := []uint16{0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0, 0x40e0, 0x4100} // bf16 1..8
	copy(raw, unsafe.Slice((*byte)(unsafe.Pointer(&h[0])), 16))
	a := FromBytes(BFloat16, []int{2, 4}, raw)
	before := ActiveMemory()
	near(t, "FromBytes", a, tensor{[]int{2, 4}, []float64{1, 2, 3, 4, 5, 6, 7, 8}}, 0, 0)
	raw[1] = 0x40 // element 0: 0x4080 = 4
	near(t, "FromBytes/aliased", Reshape(a, -1), tensor{[]int{8}, []float64{4, 2, 3, 4, 5, 6, 7, 8}}, 0, 0)
	if ActiveMemory() != before {
		t.Errorf("reading a wrapped array changed active memory %d -> %d", before, ActiveMemory())
	}
	if FromBytes(Float32, []int{3}, raw).Err() == nil {
		t.Error("FromBytes with a wrong size did not fail")
	}
	if m := MappedMemory(); m < 16 {
		t.Errorf("MappedMemory = %d with a 16-byte wrapped array alive", m)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(words)
}

// Eval frees intermediates: afterwards only held arrays own memory, and
// the peak stays near the working set, not the whole graph.
func TestMemoryReleasedAfterEval(t *testing.T) {
	b, ok := freshBackend(t).(backend.MemoryStats)
	if !ok {
		t.Skipf("backend %s reports no memory statistics", testBackend)
	}
	old := DefaultBackend()
	SetDefaultBackend(b.(backend.Backend))
	defer SetDefaultBackend(old)
	const n = 1 << 16 // 256 KiB per float32 buffer
	x := Arange(0, n, 1, Float32)
	if err := Eval(x); err != nil {
		t.Fatal(err)
	}
	held := b.ActiveMemory()
	if held < 4*n {
		t.Fatalf("held %d bytes, want ≥ %d", held, 4*n)
	}
	b.ResetPeakMemory()
	// a chain of 20 elementwise ops: 20 intermediates if nothing were freed
	y := x
	for i := 0; i < 20; i++ {
		y = Add(Multiply(y, Scalar(0.5)), Scalar(1))
	}
	if err := Eval(y); err != nil {
		t.Fatal(err)
	}
	if got := b.ActiveMemory(); got != held+held {
		t.Errorf("active after Eval = %d, want held x + result = %d", got, 2*held)
	}
	// x, plus one buffer the chain updates in place (intermediates donate
	// their buffers), plus scalars
	if peak := b.PeakMemory(); peak > 2*held+4096 {
		t.Errorf("peak %d > 2 buffers of %d", peak, held)
	}
	// the result is right, and an intermediate is recomputed on demand
	f, _ := y.Float32s()
	want := float64(7)
	for i := 0; i < 20; i++ {
		want = want*0.5 + 1
	}
	if d := float64(f[7]) - want; d > 1e-5 || d < -1e-5 {
		t.Errorf("y[7] = %v, want %v", f[7], want)
	}
	mid := Add(x, Scalar(1))
	out := Multiply(mid, Scalar(2))
	if err := Eval(out); err != nil {
		t.Fatal(err)
	}
	if mid.Evaluated() {
		t.Error("intermediate kept its buffer")
	}
	mf, _ := mid.Float32s()
	if mf[3] != 4 {
		t.Errorf("recomputed intermediate = %v", mf[3])
	}
	// buffers went back to the pool and are reused
	if b.CacheMemory() == 0 {
		t.Error("pool is empty after Eval")
	}
}

func TestErrorsPropagate(t *testing.T) {
	bad := Add(randT(2, 3).arr(), randT(4).arr())
	if bad.Err() == nil {
		t.Fatal("broadcast error not reported")
	}
	chain := Exp(Sum(Multiply(bad, Scalar(2)), false))
	if err := Eval(chain); err == nil || !strings.Contains(err.Error(), "broadcast") {
		t.Errorf("Eval error = %v", err)
	}
	if _, err := chain.Float32s(); err == nil {
		t.Error("Float32s of a failed array returned no error")
	}
	if _, _, err := ValueAndGrad(func(p []*Array) *Array { return p[0] })([]*Array{randT(3).arr()}); err == nil {
		t.Error("ValueAndGrad of a non-scalar did not fail")
	}
}

// nil arrays are errors, never panics
func TestNilArrays(t *testing.T) {
	for name, a := range map[string]*Array{
		"Exp": Exp(nil), "Sum": Sum(nil, false), "Reshape": Reshape(nil, 2), "Add": Add(nil, Scalar(1)),
		"Softmax": Softmax(nil, -1), "Matmul": Matmul(nil, nil), "Tril": Tril(nil, 0), "TopK": TopK(nil, 1, -1),
		"RMSNorm": RMSNorm(nil, nil, 1e-5), "Take": Take(nil, nil, 0), "Categorical": RandomCategorical(nil, -1, nil),
	} {
		if a.Err() == nil {
			t.Errorf("%s(nil) carries no error", name)
		}
	}
	if err := Eval(nil); err == nil {
		t.Error("Eval(nil) did not fail")
	}
	if _, err := (*Array)(nil).Item(); err == nil {
		t.Error("Item of nil did not fail")
	}
}

// Graphs built and evaluated from several goroutines at once give the same
// results as one goroutine (Eval serialises; graph building needs no lock).
func TestConcurrentEval(t *testing.T) {
	x := randT(8, 16)
	w := randT(16, 4)
	want := mustF(t, Softmax(Matmul(x.arr(), w.arr()), -1))
	xa, wa := x.arr(), w.arr()
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 20; i++ {
				got, err := Softmax(Matmul(xa, wa), -1).Float32s()
				if err != nil {
					errs <- err
					return
				}
				for j := range got {
					if float64(got[j]) != want[j] {
						errs <- fmt.Errorf("goroutine result differs at %d", j)
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Empty arrays flow through ops without errors or panics.
func TestEmptyArrays(t *testing.T) {
	e := Zeros([]int{0, 3}, Float32)
	w := randT(3, 2).arr()
	outs := []*Array{
		Exp(e), Add(e, Scalar(1)), Sum(e, false, 0), Matmul(e, w), Softmax(e, -1), Concatenate([]*Array{e, e}, 0),
		Transpose(e), Reshape(e, 3, 0), RMSNorm(e, nil, 1e-5), Take(w, FromInt32s(nil, 0), 0), TakeAlongAxis(e, Zeros([]int{0, 1}, Int32), 1),
	}
	if err := Eval(outs...); err != nil {
		t.Fatal(err)
	}
	s := mustF(t, outs[2])
	if len(s) != 3 || s[0] != 0 {
		t.Errorf("sum over an empty axis = %v", s)
	}
	if sh := outs[3].Shape(); sh[0] != 0 || sh[1] != 2 {
		t.Errorf("empty matmul shape %v", sh)
	}
}
