//go:build amd64

package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestQMatmulTilesMatchRows checks that the multi-row int8 kernel gives
// exactly the results of the one-row kernel it replaces, for random shapes
// with M not a multiple of the tile and K with a partial 128-chunk, every
// bit width, group size and scale kind it takes.
func TestQMatmulTilesMatchRows(t *testing.T) {
	if !hasVNNI {
		t.Skip("no AVX-512 VNNI: the multi-row kernel does not run")
	}
	defer func() { useTiles, usePanels = true, true }()
	usePanels = false // the panel path would take M >= panelMinM from both
	r := rand.New(rand.NewPCG(31, 32))
	for _, bits := range []int{4, 8} {
		for _, kind := range []string{"bf16", "f16", "f32"} {
			for trial := 0; trial < 4; trial++ {
				G := []int{32, 64, 128}[r.IntN(3)]
				K := G * (1 + r.IntN(2048/G))
				if trial == 0 {
					K = 896 + G // a partial last chunk whenever G < 128
				}
				N := 1 + r.IntN(70)
				M := 1 + r.IntN(23)
				q := randQWeight(r, N, K, bits, G, kind)
				X := randF32(r, M*K)
				for i := 0; i < K; i += 7 {
					X[i] = 0 // zero blocks and lanes
				}
				want, got := make([]float32, M*N), make([]float32, M*N)
				useTiles = false
				QMatmul(want, X, M, q)
				useTiles = true
				QMatmul(got, X, M, q)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("bits=%d %s G=%d M=%d N=%d K=%d: Y[%d, %d] = %g tiled, %g one row at a time",
							bits, kind, G, M, N, K, i/N, i%N, got[i], want[i])
					}
				}
			}
		}
	}
}
