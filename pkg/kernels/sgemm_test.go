package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randF32(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// sgemmF64 is the float64 reference for op(A)·op(B) (+C).
func sgemmF64(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, accumulate bool) ([]float64, []float64) {
	out := make([]float64, M*N)
	mag := make([]float64, M*N) // Σ|a·b|, for the rounding bound
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s, m float64
			if accumulate {
				s = float64(C[i*ldc+j])
				m = math.Abs(s)
			}
			for p := 0; p < K; p++ {
				var a, b float64
				if transA {
					a = float64(A[p*lda+i])
				} else {
					a = float64(A[i*lda+p])
				}
				if transB {
					b = float64(B[j*ldb+p])
				} else {
					b = float64(B[p*ldb+j])
				}
				s += a * b
				m += math.Abs(a * b)
			}
			out[i*N+j] = s
			mag[i*N+j] = m
		}
	}
	return out, mag
}

// TestSgemmKernels checks every micro-kernel the CPU has, through the blocked
// driver, against a float64 reference on odd shapes, strides, transposes and
// accumulation. Float32 summation of K terms in any order is within
// K·eps32·Σ|a·b| of the exact result (plus the accumulated C).
func TestSgemmKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {7, 5, 3}, {13, 33, 17}, {6, 32, 256}, {37, 71, 300}, {100, 45, 513}, {5, 200, 9}}
	for _, k := range gemmKernels() {
		for _, sh := range shapes {
			M, N, K := sh[0], sh[1], sh[2]
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for _, acc := range []bool{false, true} {
						name := fmt.Sprintf("%s/%dx%dx%d/tA=%v/tB=%v/acc=%v", k.name, M, N, K, tA, tB, acc)
						ar, ac := M, K
						if tA {
							ar, ac = K, M
						}
						br, bc := K, N
						if tB {
							br, bc = N, K
						}
						lda, ldb, ldc := ac+3, bc+1, N+5
						A := randF32(r, ar*lda)
						B := randF32(r, br*ldb)
						C := randF32(r, M*ldc)
						orig := append([]float32(nil), C...)
						want, mag := sgemmF64(tA, tB, M, N, K, A, lda, B, ldb, orig, ldc, acc)
						sgemmBlocked(k, tA, tB, M, N, K, A, lda, B, ldb, C, ldc, acc)
						checkGemm(t, name, M, N, ldc, K, C, orig, want, mag)
					}
				}
			}
		}
	}
}

func checkGemm(t *testing.T, name string, M, N, ldc, K int, C, orig []float32, want, mag []float64) {
	t.Helper()
	for i := 0; i < M; i++ {
		for j := 0; j < ldc; j++ {
			got := C[i*ldc+j]
			if j >= N {
				if got != orig[i*ldc+j] {
					t.Fatalf("%s: wrote C[%d,%d] outside N", name, i, j)
				}
				continue
			}
			tol := float64(K+2)*0x1p-23*mag[i*N+j] + 1e-30
			if d := math.Abs(float64(got) - want[i*N+j]); d > tol || math.IsNaN(float64(got)) {
				t.Fatalf("%s: C[%d,%d] = %v, want %v (|diff| %g > %g)", name, i, j, got, want[i*N+j], d, tol)
			}
		}
	}
}

// TestSgemmPublic checks the exported entry point (small and blocked paths).
func TestSgemmPublic(t *testing.T) { forEachLevel(t, testSgemmPublic) }

func testSgemmPublic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sh := range [][3]int{{2, 3, 4}, {65, 129, 257}, {300, 20, 1}, {1, 1037, 515}, {3, 2100, 77}, {4, 33, 1500}} {
		M, N, K := sh[0], sh[1], sh[2]
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, acc := range []bool{false, true} {
					ar, ac := M, K
					if tA {
						ar, ac = K, M
					}
					br, bc := K, N
					if tB {
						br, bc = N, K
					}
					lda, ldb, ldc := ac+1, bc+2, N+3
					A, B := randF32(r, ar*lda), randF32(r, br*ldb)
					C := randF32(r, M*ldc)
					orig := append([]float32(nil), C...)
					want, mag := sgemmF64(tA, tB, M, N, K, A, lda, B, ldb, orig, ldc, acc)
					Sgemm(tA, tB, M, N, K, A, lda, B, ldb, C, ldc, acc)
					checkGemm(t, fmt.Sprintf("%v/tA=%v/tB=%v/acc=%v", sh, tA, tB, acc), M, N, ldc, K, C, orig, want, mag)
				}
			}
		}
	}
	// K = 0 clears C unless accumulating.
	C := []float32{1, 2}
	Sgemm(false, false, 1, 2, 0, nil, 0, nil, 2, C, 2, false)
	if C[0] != 0 || C[1] != 0 {
		t.Fatalf("K=0 left C = %v, want zeros", C)
	}
}
