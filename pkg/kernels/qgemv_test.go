package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randQWeight makes a random quantized weight with scales and biases that
// vary in sign and magnitude from group to group.
func randQWeight(r *rand.Rand, N, K, bits, G int, scaleKind string) *QWeight {
	q := &QWeight{N: N, K: K, Bits: bits, GroupSize: G, W: make([]uint32, N*K*bits/32)}
	for i := range q.W {
		q.W[i] = r.Uint32()
	}
	ng := N * K / G
	s, b := make([]float32, ng), make([]float32, ng)
	for i := range s {
		s[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()) * 0.01)
		b[i] = float32(r.NormFloat64() * 0.1)
	}
	switch scaleKind {
	case "f32":
		q.ScalesF32, q.BiasesF32 = s, b
	case "bf16", "f16":
		q.Kind = BF16
		if scaleKind == "f16" {
			q.Kind = F16
		}
		q.Scales, q.Biases = make([]uint16, ng), make([]uint16, ng)
		F32ToHalfSlice(q.Scales, s, q.Kind)
		F32ToHalfSlice(q.Biases, b, q.Kind)
	}
	return q
}

// randAct makes activations whose magnitude changes from one 32-block to
// the next, so that a wrong block scale shows.
func randAct(r *rand.Rand, M, K int) []float32 {
	x := randF32(r, M*K)
	for b := 0; b < M*K/32; b++ {
		f := float32(math.Exp(1.5 * r.NormFloat64()))
		for i := b * 32; i < b*32+32; i++ {
			x[i] *= f
		}
	}
	return x
}

// qBound returns, for output (m, n), the exact value in float64 from the
// dequantized weights, the rounding bound of f32 evaluation, and the bound
// of the int8-activation error.
//
// The int8 path replaces x_k by dx_b·xi_k with xi_k = round(x_k/dx_b),
// dx_b = max_{k∈b}|x_k|/127 over its 32-block b, so |x_k − dx_b·xi_k| ≤
// dx_b/2 (the tiny error of computing x/dx is absorbed by the 1.001
// factor). Both the scale·q part and the bias part (through the rounded
// block sums) use the rounded x, so the error is at most
// Σ_k |scale_g(k)·q_k + bias_g(k)|·dx_b(k)/2. The
// f32 evaluation, in any order and split, is within 4·K·eps32 of
// Σ_k (|scale·q_k| + |bias|)·|x_k|.
func qBound(q *QWeight, x []float32, n int) (exact, round, quant float64) {
	G := q.GroupSize
	bmax := make([]float64, q.K/32)
	for k, v := range x[:q.K] {
		bmax[k/32] = max(bmax[k/32], math.Abs(float64(v)))
	}
	for k := 0; k < q.K; k++ {
		s, b := q.scaleBias(n, k/G)
		qv := float64(q.unpack(n, k))
		xk := float64(x[k])
		exact += (float64(s)*qv + float64(b)) * xk
		round += (math.Abs(float64(s))*qv + math.Abs(float64(b))) * math.Abs(xk)
		quant += math.Abs(float64(s)*qv+float64(b)) * bmax[k/32] / 127 / 2 * 1.001
	}
	return exact, round * 4 * float64(q.K) * 0x1p-24, quant
}

// TestQMatmul checks every QMatmul path (int8 VNNI where the CPU has it,
// the portable f32 path, and the dequantize+GEMM path for many rows)
// against float64, for every bit width, group size and scale type, with
// odd N and K both a multiple of 128 and not.
func TestQMatmul(t *testing.T) { forEachLevel(t, testQMatmul) }

func testQMatmul(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, G := range []int{32, 64, 128} {
			for _, kind := range []string{"bf16", "f16", "f32"} {
				for _, K := range []int{384, 3 * G, 128 + G, 5 * 32} {
					if K%G != 0 || (K*bits)%32 != 0 {
						continue
					}
					N := 37
					q := randQWeight(r, N, K, bits, G, kind)
					if err := q.Validate(); err != nil {
						t.Fatal(err)
					}
					for _, M := range []int{1, 3, 33} {
						name := fmt.Sprintf("bits=%d/G=%d/%s/M=%d/K=%d", bits, G, kind, M, K)
						X := randAct(r, M, K)
						Y := make([]float32, M*N)
						QMatmul(Y, X, M, q)
						int8Path := (bits == 4 || bits == 8) && (hasVNNI || hasAVX2 && K%128 == 0 && M < qmatmulGemmMinM)
						for m := 0; m < M; m++ {
							for n := 0; n < N; n++ {
								exact, round, quant := qBound(q, X[m*K:(m+1)*K], n)
								tol := round
								if int8Path {
									tol += quant
								}
								got := float64(Y[m*N+n])
								if d := math.Abs(got - exact); !(d <= tol) {
									t.Fatalf("%s: Y[%d,%d] = %v, want %v (|diff| %g > %g; int8 %v)", name, m, n, got, exact, d, tol, int8Path)
								}
							}
						}
						// The dequantize+GEMM path on the same input.
						if M >= qmatmulGemmMinM {
							qmatmulGemm(Y, X, M, q)
							for n := 0; n < N; n++ {
								exact, round, _ := qBound(q, X[(M-1)*K:M*K], n)
								if d := math.Abs(float64(Y[(M-1)*N+n]) - exact); !(d <= round) {
									t.Fatalf("%s gemm path: Y[%d,%d] = %v, want %v", name, M-1, n, Y[(M-1)*N+n], exact)
								}
							}
						}
						// The portable path on the same input.
						if M < qmatmulGemmMinM {
							qmatmulGo(Y, X, M, q)
							for n := 0; n < N; n++ {
								exact, round, _ := qBound(q, X[:K], n)
								if d := math.Abs(float64(Y[n]) - exact); !(d <= round) {
									t.Fatalf("%s go path: Y[0,%d] = %v, want %v", name, n, Y[n], exact)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestQMatmulInt8Tight checks that the int8 path is close to f32 in
// practice (not just within the worst-case bound) on a model-like shape.
func TestQMatmulInt8Tight(t *testing.T) { forEachLevel(t, testQMatmulInt8Tight) }

func testQMatmulInt8Tight(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, bits := range []int{4, 8} {
		q := randQWeight(r, 64, 1024, bits, 64, "bf16")
		x := randF32(r, 1024)
		got, want := make([]float32, 64), make([]float32, 64)
		QMatmul(got, x, 1, q)
		qmatmulRef(want, x, 1, q)
		var num, den float64
		for i := range got {
			num += (float64(got[i]) - float64(want[i])) * (float64(got[i]) - float64(want[i]))
			den += float64(want[i]) * float64(want[i])
		}
		if rel := math.Sqrt(num / den); rel > 0.008 {
			t.Errorf("bits=%d: int8 path relative RMS error %.4f vs f32, want < 0.8%%", bits, rel)
		}
	}
}

func TestQWeightValidate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	q := randQWeight(r, 4, 128, 4, 64, "bf16")
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := *q
	bad.W = bad.W[:3]
	if err := bad.Validate(); err == nil {
		t.Error("short W: no error")
	}
	bad = *q
	bad.Bits = 7
	if err := bad.Validate(); err == nil {
		t.Error("bits 7: no error")
	}
	bad = *q
	bad.Scales = bad.Scales[:1]
	if err := bad.Validate(); err == nil {
		t.Error("short scales: no error")
	}
}

// TestQuantAct checks the assembly activation quantizer against the Go one:
// identical int8s and block scales, the block sums bit for bit those of
// quantActGo + roundedSums when quantAct says it rounded them, and
// all-zero blocks quantized to zeros.
func TestQuantAct(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, bits := range []int{4, 8} {
		x := randAct(r, 1, 512)
		clear(x[64:96]) // an all-zero block
		nb := len(x) / 32
		xq1, xq2 := make([]int8, len(x)), make([]int8, len(x))
		dx1, dx2 := make([]float32, nb), make([]float32, nb)
		s1, s2 := make([]float32, nb), make([]float32, nb)
		quantActGo(x, bits, xq1, dx1, s1)
		exact := slices.Clone(s1)
		if quantAct(x, bits, xq2, dx2, s2) {
			roundedSums(xq1, bits, dx1, s1)
		}
		for i := range xq1 {
			if xq1[i] != xq2[i] {
				t.Fatalf("bits=%d: xq[%d] = %d, Go path %d", bits, i, xq2[i], xq1[i])
			}
		}
		for b := range dx1 {
			if dx1[b] != dx2[b] {
				t.Fatalf("bits=%d: dx[%d] = %v, Go path %v", bits, b, dx2[b], dx1[b])
			}
			if s1[b] != s2[b] {
				t.Fatalf("bits=%d: block sum %d = %v, Go path %v (exact Σx %v)", bits, b, s2[b], s1[b], exact[b])
			}
		}
		for i := 64; i < 96; i++ {
			if bits == 8 && xq2[i] != 0 {
				t.Fatalf("bits=8: zero block quantized to %d at %d", xq2[i], i)
			}
		}
	}
}

// TestDequantize checks the fast dequantization (AVX-512 for 4/8 bits, the
// bit-width specialised Go loops otherwise) bit for bit against the
// one-element-at-a-time reference, for every format.
func TestDequantize(t *testing.T) { forEachLevel(t, testDequantize) }

func testDequantize(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, G := range []int{32, 64, 128} {
			for _, kind := range []string{"bf16", "f16", "f32"} {
				q := randQWeight(r, 5, 3*128, bits, G, kind)
				got, want := make([]float32, 5*q.K), make([]float32, 5*q.K)
				q.dequantRows(0, 5, got)
				for n := 0; n < 5; n++ {
					q.dequantizeRowRef(n, want[n*q.K:(n+1)*q.K])
				}
				one := make([]float32, q.K)
				q.DequantizeRow(3, one)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("bits=%d G=%d %s: element %d = %v, want %v", bits, G, kind, i, got[i], want[i])
					}
				}
				for k := range one {
					if one[k] != want[3*q.K+k] {
						t.Fatalf("bits=%d G=%d %s: DequantizeRow(3)[%d] = %v, want %v", bits, G, kind, k, one[k], want[3*q.K+k])
					}
				}
			}
		}
	}
}

// TestQMatmulInt8IsRoundedActivations checks the int8 path computes the
// weights times the int8-rounded activations and nothing coarser: its error
// against that float64 product is f32 rounding only, far below the
// activation-rounding error itself.
func TestQMatmulInt8IsRoundedActivations(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(21, 22))
		for _, bits := range []int{4, 8} {
			const N, K = 48, 896
			q := randQWeight(r, N, K, bits, 64, "bf16")
			x := randF32(r, K)
			xr := make([]float64, K) // x rounded as the int8 path rounds it
			for b := 0; b < K; b += 32 {
				var mx float32
				for _, v := range x[b : b+32] {
					mx = max(mx, float32(math.Abs(float64(v))))
				}
				for k := b; k < b+32; k++ {
					if mx > 0 {
						xr[k] = math.RoundToEven(float64(x[k]*(127/mx))) * float64(mx/127)
					}
				}
			}
			got := make([]float32, N)
			QMatmul(got, x, 1, q)
			var errRounded, errExact, den float64
			for n := 0; n < N; n++ {
				var rounded, exact float64
				for k := 0; k < K; k++ {
					s, b := q.scaleBias(n, k/64)
					w := float64(s)*float64(q.unpack(n, k)) + float64(b)
					rounded += w * xr[k]
					exact += w * float64(x[k])
				}
				errRounded += (float64(got[n]) - rounded) * (float64(got[n]) - rounded)
				errExact += (float64(got[n]) - exact) * (float64(got[n]) - exact)
				den += exact * exact
			}
			relR, relE := math.Sqrt(errRounded/den), math.Sqrt(errExact/den)
			if relE < 1e-5 {
				continue // this level runs the f32 path: nothing is rounded
			}
			if relR > relE/20 {
				t.Errorf("bits=%d: error vs rounded-activation product %.2g is not small next to the rounding error %.2g", bits, relR, relE)
			}
		}
	})
}
