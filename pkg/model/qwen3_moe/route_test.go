package qwen3_moe

import (
	"math"
	"sort"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// TestSparseMoe checks the expert block against a per-token float64
// loop written from transformers' Qwen3MoeSparseMoeBlock, with and
// without norm_topk_prob (the fixture only has it on).
func TestSparseMoe(t *testing.T) {
	const D, E, I, K, L = 8, 4, 6, 2, 5
	key := engine.NewKey(11)
	rnd := func(shape ...int) *engine.Array {
		k := key
		key = engine.NewKey(uint64(key[0]) + 7)
		return engine.RandomNormal(shape, 0, 0.5, engine.Float32, &k)
	}
	gw, g, u, d, x := rnd(E, D), rnd(E, I, D), rnd(E, I, D), rnd(E, D, I), rnd(1, L, D)
	f := func(a *engine.Array) []float32 {
		v, err := a.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	gwf, gf, uf, df, xf := f(gw), f(g), f(u), f(d), f(x)
	for _, norm := range []bool{true, false} {
		s := &SparseMoe{Gate: &nn.Linear{Weight: gw}, k: K, normTopK: norm}
		s.SwitchMLP.GateProj, s.SwitchMLP.UpProj, s.SwitchMLP.DownProj = &nn.SwitchLinear{Weight: g}, &nn.SwitchLinear{Weight: u}, &nn.SwitchLinear{Weight: d}
		got := f(s.Forward(x)) // [1, L, D]
		for tok := range L {
			xt := xf[tok*D : (tok+1)*D]
			logits := make([]float64, E)
			var mx float64 = math.Inf(-1)
			for e := range E {
				for j := range D {
					logits[e] += float64(gwf[e*D+j]) * float64(xt[j])
				}
				mx = math.Max(mx, logits[e])
			}
			probs, sum := make([]float64, E), 0.0
			for e := range E {
				probs[e] = math.Exp(logits[e] - mx)
				sum += probs[e]
			}
			order := []int{0, 1, 2, 3}
			sort.Slice(order, func(a, b int) bool { return probs[order[a]] > probs[order[b]] })
			top, tsum := order[:K], 0.0
			for _, e := range top {
				probs[e] /= sum
				tsum += probs[e]
			}
			want := make([]float64, D)
			for _, e := range top {
				w := probs[e]
				if norm {
					w /= tsum
				}
				h := make([]float64, I)
				for i := range I {
					var a, b float64
					for j := range D {
						a += float64(gf[(e*I+i)*D+j]) * float64(xt[j])
						b += float64(uf[(e*I+i)*D+j]) * float64(xt[j])
					}
					h[i] = a / (1 + math.Exp(-a)) * b
				}
				for o := range D {
					var y float64
					for i := range I {
						y += float64(df[(e*D+o)*I+i]) * h[i]
					}
					want[o] += w * y
				}
			}
			for o := range D {
				if diff := math.Abs(float64(got[tok*D+o]) - want[o]); diff > 1e-5*math.Max(1, math.Abs(want[o])) {
					t.Errorf("norm=%v token %d dim %d: got %g, want %g", norm, tok, o, got[tok*D+o], want[o])
				}
			}
		}
	}
}
