package kernels

import (
	"fmt"
	"math/rand/v2"
	"sync"
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

// streamBytes is the size of the read-bandwidth probe: far beyond L3.
const streamBytes = 512 << 20

var (
	streamOnce sync.Once
	streamGBs  float64
	streamBuf  []float32
)

// streamRead measures read bandwidth the STREAM way: both cores sum their
// half of a 512 MiB array; the best of five passes counts.
func streamRead() float64 {
	streamOnce.Do(func() {
		streamBuf = make([]float32, streamBytes/4)
		for i := range streamBuf {
			streamBuf[i] = 1
		}
		for range 5 {
			t0 := time.Now()
			Parallel(len(streamBuf)/64, 1<<14, func(lo, hi int) {
				sink = readSum(streamBuf[lo*64 : hi*64])
			})
			streamGBs = max(streamGBs, streamBytes/time.Since(t0).Seconds()/1e9)
		}
		streamBuf = nil
	})
	return streamGBs
}

var sink float32

// BenchmarkStreamRead reports the read-bandwidth ceiling the GEMV
// benchmarks compare against.
func BenchmarkStreamRead(b *testing.B) {
	b.ReportMetric(streamRead(), "GB/s")
}

// BenchmarkQGemv reports effective weight bandwidth (packed weights plus
// bf16 scales and biases, read once per call) of QMatmul with M = 1, and
// its ratio to the read bandwidth measured in the same run.
func BenchmarkQGemv(b *testing.B) {
	bw := streamRead()
	for _, bits := range []int{4, 8} {
		for _, sh := range [][2]int{{4096, 4096}, {151936, 896}} {
			N, K := sh[0], sh[1]
			r := rand.New(rand.NewPCG(1, uint64(bits)))
			q := randQWeight(r, N, K, bits, 64, "bf16")
			x := randF32(r, K)
			y := make([]float32, N)
			bytes := float64(N*K*bits/8 + 2*2*N*K/64)
			b.Run(fmt.Sprintf("%dbit/%dx%d", bits, N, K), func(b *testing.B) {
				for b.Loop() {
					QMatmul(y, x, 1, q)
				}
				gbs := bytes * float64(b.N) / b.Elapsed().Seconds() / 1e9
				b.ReportMetric(gbs, "GB/s")
				b.ReportMetric(float64(N)*float64(K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gweights/s")
				b.ReportMetric(gbs/bw, "x_stream")
			})
		}
	}
}
