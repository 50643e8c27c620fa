package blas

import (
	"math"
	"testing"
)

// TestSgemm checks the purego binding (argument order, transposes, beta)
// against plain loops when the system library is installed.
func TestSgemm(t *testing.T) {
	if err := Load(); err != nil {
		t.Skipf("no system BLAS: %v", err)
	}
	const M, N, K = 3, 5, 4
	A := make([]float32, M*K) // [K, M] when transposed: same count
	B := make([]float32, K*N)
	for i := range A {
		A[i] = float32(i%7) - 2.5
	}
	for i := range B {
		B[i] = float32(i%5)*0.5 - 1
	}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			C := make([]float32, M*N)
			for i := range C {
				C[i] = 1
			}
			lda, ldb := K, N
			if tA {
				lda = M
			}
			if tB {
				ldb = K
			}
			Sgemm(tA, tB, M, N, K, A, lda, B, ldb, C, N, true)
			for i := 0; i < M; i++ {
				for j := 0; j < N; j++ {
					want := float32(1)
					for p := 0; p < K; p++ {
						a, b := A[i*K+p], B[p*N+j]
						if tA {
							a = A[p*M+i]
						}
						if tB {
							b = B[j*K+p]
						}
						want += a * b
					}
					if math.Abs(float64(C[i*N+j]-want)) > 1e-4 {
						t.Fatalf("%s tA=%v tB=%v: C[%d,%d] = %v, want %v", Name(), tA, tB, i, j, C[i*N+j], want)
					}
				}
			}
		}
	}
}
