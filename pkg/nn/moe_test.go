package nn_test

import (
	"math"
	"slices"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// sortedInds returns the router's indices for one token, sorted.
func sortedInds(t *testing.T, a *engine.Array) []int32 {
	t.Helper()
	v, err := a.Int32s()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(v)
	return v
}

func TestSoftmaxRouters(t *testing.T) {
	logits := engine.FromFloat32s([]float32{0.5, 2, -1, 1.5, 0}, 1, 5)
	ia, wa := nn.TopKSoftmax(logits, 2)
	ib, wb := nn.SoftmaxTopK(logits, 2, true)
	if got := sortedInds(t, ia); !slices.Equal(got, []int32{1, 3}) {
		t.Fatalf("TopKSoftmax indices %v, want [1 3]", got)
	}
	if got := sortedInds(t, ib); !slices.Equal(got, []int32{1, 3}) {
		t.Fatalf("SoftmaxTopK indices %v, want [1 3]", got)
	}
	// Renormalised top-k probabilities equal a softmax over the top-k logits.
	if d := maxDiff(vals(t, engine.Sum(wa, false, -1)), []float32{1}); d > 1e-6 {
		t.Errorf("TopKSoftmax weights sum off by %g", d)
	}
	if d := maxDiff(vals(t, engine.Sort(wa, -1)), vals(t, engine.Sort(wb, -1))); d > 1e-6 {
		t.Errorf("TopKSoftmax vs normalised SoftmaxTopK diff %g", d)
	}
	// Without norm the weights are the full-softmax probabilities.
	_, wc := nn.SoftmaxTopK(logits, 2, false)
	var z float64
	for _, l := range []float64{0.5, 2, -1, 1.5, 0} {
		z += math.Exp(l)
	}
	want := []float32{float32(math.Exp(1.5) / z), float32(math.Exp(2) / z)}
	if d := maxDiff(vals(t, engine.Sort(wc, -1)), want); d > 1e-6 {
		t.Errorf("SoftmaxTopK(norm=false) weights %v, want %v", vals(t, wc), want)
	}
	y := engine.FromFloat32s([]float32{1, 2, 10, 20}, 1, 2, 2) // [1, K, D]
	w := engine.FromFloat32s([]float32{0.25, 0.75}, 1, 2)
	if got := vals(t, nn.WeightedExpertSum(y, w)); maxDiff(got, []float32{7.75, 15.5}) > 1e-6 {
		t.Errorf("WeightedExpertSum %v, want [7.75 15.5]", got)
	}
}

func TestSigmoidGroupedTopK(t *testing.T) {
	// D = E = 4 with an identity gate: logits are x. Two groups {0,1},
	// {2,3}; only the best group survives, so expert 2 (the single largest
	// logit, in the weaker group) is never picked.
	eye := engine.FromFloat32s([]float32{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, 4, 4)
	g := &nn.SigmoidGroupedTopK{Weight: eye, EScoreCorrectionBias: engine.FromFloat32s(make([]float32, 4), 4),
		K: 2, Groups: 2, TopkGroup: 1, Norm: true, Scaling: 2.5}
	x := engine.FromFloat32s([]float32{1, 0.5, 3, -4}, 1, 1, 4)
	inds, w := g.Route(x)
	if got := sortedInds(t, inds); !slices.Equal(got, []int32{0, 1}) {
		t.Fatalf("indices %v, want [0 1] (group {0,1} rates σ(1)+σ(.5) > σ(3)+σ(-4))", got)
	}
	s0, s1 := 1/(1+math.Exp(-1)), 1/(1+math.Exp(-0.5))
	want := []float32{float32(2.5 * s1 / (s0 + s1)), float32(2.5 * s0 / (s0 + s1))}
	if d := maxDiff(vals(t, engine.Sort(w, -1)), want); d > 1e-6 {
		t.Errorf("weights %v, want %v", vals(t, w), want)
	}
	// With both groups kept, the top two choice scores win.
	g.TopkGroup = 2
	if inds, _ = g.Route(x); !slices.Equal(sortedInds(t, inds), []int32{0, 2}) {
		t.Errorf("ungrouped indices %v, want [0 2]", sortedInds(t, inds))
	}
}
