//go:build amd64

package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// roundedActs returns X [M, K] as the int8 kernels round it: per block of
// 32, dx·xi with the int8s and dx of the activation quantizer.
func roundedActs(X []float32, M, K int) []float64 {
	xr := make([]float64, M*K)
	xq := make([]int8, (K+127)/128*128)
	dx, bs := make([]float32, K/32), make([]float32, K/32)
	for m := 0; m < M; m++ {
		quantActGo(X[m*K:(m+1)*K], 8, xq, dx, bs)
		for k := 0; k < K; k++ {
			xr[m*K+k] = float64(xq[k]) * float64(dx[k/32])
		}
	}
	return xr
}

// checkRoundedProduct checks Y [M, N] against the float64 product of q's
// weights with the rounded activations xr: the int8 kernels compute that
// product exactly but for f32 rounding, which the panel path does once per
// 32-block (the ×dx and the FMA into the accumulator) and once per group
// (the bias term, the block sums): within (K/32 + K/G + 8)·2⁻²⁴ of
// Σ_k (|scale·q_k| + |bias|)·|xr_k|.
func checkRoundedProduct(t *testing.T, name string, Y []float32, xr []float64, M int, q *QWeight) {
	t.Helper()
	K, N, G := q.K, q.N, q.GroupSize
	w := make([]float64, K)
	mag := make([]float64, K)
	for n := 0; n < N; n++ {
		for k := 0; k < K; k++ {
			s, b := q.scaleBias(n, k/G)
			qv := float64(q.unpack(n, k))
			w[k] = float64(s)*qv + float64(b)
			mag[k] = math.Abs(float64(s))*qv + math.Abs(float64(b))
		}
		for m := 0; m < M; m++ {
			var want, bound float64
			for k, x := range xr[m*K : (m+1)*K] {
				want += w[k] * x
				bound += mag[k] * math.Abs(x)
			}
			tol := float64(K/32+K/G+8) * 0x1p-24 * bound
			if d := math.Abs(float64(Y[m*N+n]) - want); !(d <= tol) {
				t.Fatalf("%s: Y[%d, %d] = %v, want %v from the rounded activations (|diff| %.3g > %.3g)",
					name, m, n, Y[m*N+n], want, d, tol)
			}
		}
	}
}

// TestQMatmulPanels checks the panel path (many activation rows) against
// the float64 product of the weights with the int8-rounded activations,
// and its error against the unrounded float64 product against that of the
// tile path it replaces: every bit width, scale kind and group size, N not
// a multiple of the 16-row panel, M not a multiple of the 8-row tile, K
// with a partial 128-chunk (960) and a half 64-column (160).
func TestQMatmulPanels(t *testing.T) {
	if !hasVNNI {
		t.Skip("no AVX-512 VNNI: the panel path does not run")
	}
	defer func() { usePanels = true }()
	r := rand.New(rand.NewPCG(41, 42))
	// M: 8-row tiles, with 1, 4 (the 4-row kernel), 7 rows left over.
	Ms := []int{panelMinM, 17, 20, 23, 40}
	nc := 0
	for _, bits := range []int{4, 8} {
		for _, kind := range []string{"bf16", "f16", "f32"} {
			for _, G := range []int{32, 64, 128} {
				for _, K := range []int{960, 160, 384} {
					if K%G != 0 {
						continue
					}
					N := []int{37, 16, 5, 50}[r.IntN(4)]
					M := Ms[nc%len(Ms)]
					nc++
					name := fmt.Sprintf("bits=%d/%s/G=%d/K=%d/N=%d/M=%d", bits, kind, G, K, N, M)
					q := randQWeight(r, N, K, bits, G, kind)
					X := randAct(r, M, K)
					clear(X[32:64]) // an all-zero block
					Y := make([]float32, M*N)
					QMatmul(Y, X, M, q)
					checkRoundedProduct(t, name, Y, roundedActs(X, M, K), M, q)
					// Against the unrounded product: no worse than the
					// tile path (same rounded activations, so nearly equal).
					usePanels = false
					Yt := make([]float32, M*N)
					QMatmul(Yt, X, M, q)
					usePanels = true
					var ep, et, den float64
					for m := 0; m < M; m++ {
						for n := 0; n < N; n++ {
							exact, _, _ := qBound(q, X[m*K:(m+1)*K], n)
							ep += (float64(Y[m*N+n]) - exact) * (float64(Y[m*N+n]) - exact)
							et += (float64(Yt[m*N+n]) - exact) * (float64(Yt[m*N+n]) - exact)
							den += exact * exact
						}
					}
					if ep > et*1.02+1e-12*den {
						t.Errorf("%s: relative RMS error %.4g vs float64, tile path %.4g", name, math.Sqrt(ep/den), math.Sqrt(et/den))
					}
				}
			}
		}
	}
}

// TestQMatmulMultiPanels checks QMatmulMulti on the panel path: the same
// bits as QMatmul on each weight alone, and the rounded-activation product,
// for weights of mixed scale kinds and row counts not a multiple of 16.
func TestQMatmulMultiPanels(t *testing.T) {
	if !hasVNNI {
		t.Skip("no AVX-512 VNNI: the panel path does not run")
	}
	r := rand.New(rand.NewPCG(43, 44))
	for _, bits := range []int{4, 8} {
		for _, M := range []int{panelMinM, 12, 29} {
			const K = 960
			shapes := []int{72, 24, 24}
			kinds := []string{"bf16", "f32", "f16"}
			var qs []*QWeight
			var Ys [][]float32
			for i, N := range shapes {
				qs = append(qs, randQWeight(r, N+i, K, bits, 64, kinds[i]))
				Ys = append(Ys, make([]float32, M*(N+i)))
			}
			X := randAct(r, M, K)
			QMatmulMulti(Ys, X, M, qs)
			xr := roundedActs(X, M, K)
			for i, q := range qs {
				name := fmt.Sprintf("bits=%d/M=%d/weight %d", bits, M, i)
				want := make([]float32, M*q.N)
				QMatmul(want, X, M, q)
				if !slices.Equal(Ys[i], want) {
					t.Fatalf("%s: QMatmulMulti differs from QMatmul", name)
				}
				checkRoundedProduct(t, name, Ys[i], xr, M, q)
			}
		}
	}
}

// TestQuantPanel checks the panel path's activation quantizer against
// quantActGo (8-bit layout) and roundedSums bit for bit, with all-zero
// blocks and blocks of one value, in natural order and in the order of
// the 4-bit panels, for block counts that take its 16-block loop, its
// one-block loop and both.
func TestQuantPanel(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512")
	}
	r := rand.New(rand.NewPCG(45, 46))
	for _, K := range []int{640, 1024, 224} {
		x := randAct(r, 1, K)
		clear(x[96:128])
		for i := 128; i < 160; i++ {
			x[i] = -3.5
		}
		clear(x[K-32:])
		nb := K / 32
		xq1 := make([]int8, (K+127)/128*128) // quantActGo writes whole 128-chunks
		dx1, s1 := make([]float32, nb), make([]float32, nb)
		quantActGo(x, 8, xq1, dx1, s1)
		roundedSums(xq1, 8, dx1, s1)
		for perm := 0; perm < 2; perm++ {
			xq2 := make([]int8, K)
			dx2, s2 := make([]float32, nb), make([]float32, nb)
			quantPanelAVX512(&x[0], nb, &xq2[0], &dx2[0], &s2[0], perm)
			for k := range xq2 {
				i := k
				if perm == 1 {
					i = k&^7 + []int{0, 2, 4, 6, 1, 3, 5, 7}[k&7]
				}
				if xq2[k] != xq1[i] {
					t.Fatalf("K=%d perm %d: xq[%d] = %d, want %d", K, perm, k, xq2[k], xq1[i])
				}
			}
			for b := range dx1 {
				if math.Float32bits(dx1[b]) != math.Float32bits(dx2[b]) || math.Float32bits(s1[b]) != math.Float32bits(s2[b]) {
					t.Fatalf("K=%d perm %d: block %d: dx %v, Σ %v; want %v, %v", K, perm, b, dx2[b], s2[b], dx1[b], s1[b])
				}
			}
		}
	}
}
