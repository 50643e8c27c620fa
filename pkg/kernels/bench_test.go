package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/kernels/internal/blas"
)

// gemmShapes are the GEMM benchmark shapes, M×N×K.
var gemmShapes = [][3]int{{1024, 1024, 1024}, {4096, 4096, 512}}

// BenchmarkSgemm reports GFLOP/s for Sgemm and, in the same run, for
// OpenBLAS cblas_sgemm (through purego) on the same shape, plus their ratio.
func BenchmarkSgemm(b *testing.B) {
	for _, sh := range gemmShapes {
		M, N, K := sh[0], sh[1], sh[2]
		r := rand.New(rand.NewPCG(5, 6))
		A, B, C := randF32(r, M*K), randF32(r, K*N), make([]float32, M*N)
		flops := 2 * float64(M) * float64(N) * float64(K)
		var ours, peer float64
		b.Run(fmt.Sprintf("mlxgo/%dx%dx%d", M, N, K), func(b *testing.B) {
			for b.Loop() {
				Sgemm(false, false, M, N, K, A, K, B, N, C, N, false)
			}
			ours = flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(ours, "GFLOP/s")
		})
		b.Run(fmt.Sprintf("openblas/%dx%dx%d", M, N, K), func(b *testing.B) {
			if err := blas.Load(); err != nil {
				b.Skipf("no OpenBLAS peer (apt-get install libopenblas0): %v", err)
			}
			for b.Loop() {
				blas.Sgemm(false, false, M, N, K, A, K, B, N, C, N, false)
			}
			peer = flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(peer, "GFLOP/s")
			if ours > 0 {
				b.ReportMetric(ours/peer, "mlxgo/openblas")
			}
		})
	}
}

var _ = time.Second
