package engine

import (
	"math"
	"testing"
)

// ckBlock is a transformer-like block: RMSNorm, a softmax mixing over the
// sequence, a SiLU MLP, dropout from the global key and residuals.
// x [B, L, D], g [D], w1 [D, H], w2 [H, D].
func ckBlock(x, g, w1, w2 *Array) *Array {
	h := RMSNorm(x, g, 1e-5)                                                  // [B, L, D]
	att := Matmul(Softmax(Matmul(h, SwapAxes(h, -1, -2)), -1), h)             // [B, L, D]
	keep := RandomBernoulli(0.9, x.Shape(), nil)                              // [B, L, D]
	att = Multiply(Where(keep, att, ScalarOf(0, att.DType())), Scalar(1/0.9)) // dropout
	mlp := Matmul(SiLU(Matmul(h, w1)), w2)                                    // [B, L, D]
	return Add(Add(x, att), mlp)
}

type ckWeights struct{ g, w1, w2 tensor }

func ckSetup(nBlocks, B, L, D, H int) (tensor, []ckWeights) {
	x := randT(B, L, D)
	ws := make([]ckWeights, nBlocks)
	for i := range ws {
		w1, w2 := randT(D, H), randT(H, D)
		for j := range w1.data {
			w1.data[j] = float64(float32(w1.data[j] / math.Sqrt(float64(D))))
		}
		for j := range w2.data {
			w2.data[j] = float64(float32(w2.data[j] / math.Sqrt(float64(H))))
		}
		ws[i] = ckWeights{randPos(D), w1, w2}
	}
	return x, ws
}

// ckModel runs the blocks on params [x, g0, w10, w20, g1, ...] and returns
// the mean square of the output; mode 0 plain, 1 checkpointed with the
// weights read by closure, 2 checkpointed with the weights as inputs.
func ckModel(mode, nBlocks int) func(ps []*Array) *Array {
	return func(ps []*Array) *Array {
		h := ps[0]
		for i := range nBlocks {
			g, w1, w2 := ps[1+3*i], ps[2+3*i], ps[3+3*i]
			switch mode {
			case 0:
				h = ckBlock(h, g, w1, w2)
			case 1:
				h = Checkpoint(func(xs []*Array) []*Array { return []*Array{ckBlock(xs[0], g, w1, w2)} })([]*Array{h})[0]
			case 2:
				h = Checkpoint(func(xs []*Array) []*Array {
					return []*Array{ckBlock(xs[0], xs[1], xs[2], xs[3])}
				})([]*Array{h, g, w1, w2})[0]
			}
		}
		return Mean(Square(h), false)
	}
}

func ckParams(x tensor, ws []ckWeights) []*Array {
	ps := []*Array{x.arr()}
	for _, w := range ws {
		ps = append(ps, w.g.arr(), w.w1.arr(), w.w2.arr())
	}
	return ps
}

// ckRun evaluates the value and the gradients in one Eval, as a training
// step does, and returns them as float64s.
func ckRun(t *testing.T, f func([]*Array) *Array, ps []*Array) [][]float64 {
	t.Helper()
	Seed(7)
	v, gs, err := ValueAndGrad(f)(ps)
	if err != nil {
		t.Fatal(err)
	}
	if err := Eval(append([]*Array{v}, gs...)...); err != nil {
		t.Fatal(err)
	}
	res := [][]float64{mustF(t, v)}
	for _, g := range gs {
		res = append(res, mustF(t, g))
	}
	return res
}

func sameBits(t *testing.T, name string, got, want [][]float64) {
	t.Helper()
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s: output %d has %d values, want %d", name, i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("%s: output %d (0: value, then gradients) element %d = %v, want exactly %v", name, i, j, got[i][j], want[i][j])
			}
		}
	}
}

func TestCheckpointSameValueAndGradients(t *testing.T) {
	const n = 3
	x, ws := ckSetup(n, 2, 5, 8, 12)
	want := ckRun(t, ckModel(0, n), ckParams(x, ws))
	nonzero := false
	for _, g := range want[1:] {
		for _, v := range g {
			nonzero = nonzero || v != 0
		}
	}
	if !nonzero {
		t.Fatal("plain gradients are all zero: the test would prove nothing")
	}
	sameBits(t, "closure", ckRun(t, ckModel(1, n), ckParams(x, ws)), want)
	sameBits(t, "inputs", ckRun(t, ckModel(2, n), ckParams(x, ws)), want)

	// a constant (non-parameter) input and frozen closure weights: only x
	// gets a gradient
	ps := ckParams(x, ws)
	frozen := func(mode int) func([]*Array) *Array {
		return func(p []*Array) *Array { return ckModel(mode, n)(append(p[:1:1], ps[1:]...)) }
	}
	sameBits(t, "frozen", ckRun(t, frozen(1), ps[:1]), ckRun(t, frozen(0), ps[:1]))
}

// A block with two outputs (both used downstream) and a weight shared by
// two checkpointed blocks.
func TestCheckpointMultiOutputSharedWeight(t *testing.T) {
	x, ws := ckSetup(1, 2, 4, 6, 10)
	block := func(a, b, g, w1, w2 *Array) []*Array {
		y := ckBlock(a, g, w1, w2)
		return []*Array{y, Multiply(Tanh(b), y)}
	}
	f := func(ck bool) func(ps []*Array) *Array {
		return func(ps []*Array) *Array {
			a, b := ps[0], Multiply(ps[0], Scalar(0.5))
			for range 2 {
				var o []*Array
				if ck {
					o = Checkpoint(func(xs []*Array) []*Array { return block(xs[0], xs[1], ps[1], ps[2], ps[3]) })([]*Array{a, b})
				} else {
					o = block(a, b, ps[1], ps[2], ps[3])
				}
				a, b = o[0], o[1]
			}
			return Add(Sum(Square(a), false), Sum(b, false))
		}
	}
	want := ckRun(t, f(false), ckParams(x, ws))
	got := ckRun(t, f(true), ckParams(x, ws))
	// The two outputs' cotangents are back-propagated separately and
	// summed at the inputs: same values up to the order of float sums.
	for i := range want {
		for j := range want[i] {
			if d := math.Abs(got[i][j] - want[i][j]); d > 1e-5*(1+math.Abs(want[i][j])) {
				t.Fatalf("output %d element %d = %v, want %v", i, j, got[i][j], want[i][j])
			}
		}
	}
}

func TestCheckpointErrors(t *testing.T) {
	bad := Errorf("boom")
	out := Checkpoint(func(xs []*Array) []*Array { return []*Array{Add(xs[0], xs[0])} })([]*Array{bad})
	if out[0].Err() == nil {
		t.Fatal("an input error was not passed on")
	}
	// a block that returns a different number of outputs when re-run
	calls := 0
	f := func(ps []*Array) *Array {
		o := Checkpoint(func(xs []*Array) []*Array {
			calls++
			if calls > 1 {
				return []*Array{xs[0], xs[0]}
			}
			return []*Array{Square(xs[0])}
		})(ps)
		return Sum(o[0], false)
	}
	if _, _, err := ValueAndGrad(f)([]*Array{FromFloat32s([]float32{1, 2}, 2)}); err == nil {
		t.Fatal("a block changing its output count on recomputation gave no error")
	}
}

// Peak allocator memory of one value-and-gradient Eval through deep
// blocks: checkpointed, only the blocks' inputs and one block's
// intermediates are alive at a time.
func TestCheckpointLowersPeakMemory(t *testing.T) {
	const n = 8
	x, ws := ckSetup(n, 1, 128, 32, 512)
	peak := func(mode int) int64 {
		ps := ckParams(x, ws)
		if err := Eval(ps...); err != nil {
			t.Fatal(err)
		}
		Seed(7)
		v, gs, err := ValueAndGrad(ckModel(mode, n))(ps)
		if err != nil {
			t.Fatal(err)
		}
		base := ActiveMemory()
		ResetPeakMemory()
		if err := Eval(append([]*Array{v}, gs...)...); err != nil {
			t.Fatal(err)
		}
		return PeakMemory() - base
	}
	plain, ck := peak(0), peak(1)
	t.Logf("peak above the parameters: plain %d KiB, checkpointed %d KiB", plain>>10, ck>>10)
	if plain <= 0 || ck <= 0 {
		t.Skip("the backend reports no allocator statistics")
	}
	if float64(ck) > 0.5*float64(plain) {
		t.Fatalf("checkpointed peak %d bytes is not clearly below the plain %d", ck, plain)
	}
}
