package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestQMatmulMulti checks that QMatmulMulti gives, for every weight, the
// same bits as QMatmul on that weight alone: for q/k/v- and gate/up-like
// groups, mixed scale types, 4 and 8 bits, K with a partial last chunk,
// weights that cannot share a job (different bit widths) and row counts on both
// sides of the multi-row tile.
func TestQMatmulMulti(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := []struct {
		name  string
		shape [][2]int // N, K per weight
		bits  int
		kinds []string
	}{
		{"qkv", [][2]int{{96, 256}, {32, 256}, {32, 256}}, 4, []string{"bf16", "bf16", "bf16"}},
		{"gate-up", [][2]int{{320, 128}, {320, 128}}, 4, []string{"bf16", "f16"}},
		{"mixed-scales", [][2]int{{40, 192}, {72, 192}, {8, 192}}, 8, []string{"f32", "bf16", "f16"}},
		{"tail", [][2]int{{33, 960}, {65, 960}}, 4, []string{"bf16", "f32"}},
		{"different-bits", [][2]int{{64, 256}, {48, 256}}, 4, []string{"bf16", "bf16"}},
		{"one", [][2]int{{200, 384}}, 8, []string{"bf16"}},
	}
	for _, c := range cases {
		for _, M := range []int{1, 3, 4, 9} {
			t.Run(fmt.Sprintf("%s/M%d", c.name, M), func(t *testing.T) {
				var qs []*QWeight
				var Ys, want [][]float32
				for i, sh := range c.shape {
					q := randQWeight(r, sh[0], sh[1], c.bits, 64, c.kinds[i])
					qs = append(qs, q)
					Ys = append(Ys, make([]float32, M*sh[0]))
				}
				X := randAct(r, M, c.shape[0][1])
				if c.name == "different-bits" {
					// cannot share one job: each runs alone
					qs[1] = randQWeight(r, 48, 256, 8, 64, "bf16")
				}
				for _, q := range qs {
					w := make([]float32, M*q.N)
					QMatmul(w, X, M, q)
					want = append(want, w)
				}
				QMatmulMulti(Ys, X, M, qs)
				for i := range qs {
					if !slices.Equal(Ys[i], want[i]) {
						t.Fatalf("weight %d [%d, %d]: QMatmulMulti differs from QMatmul", i, qs[i].N, qs[i].K)
					}
				}
			})
		}
	}
}
