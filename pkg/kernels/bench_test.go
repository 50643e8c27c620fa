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
	streamBuf  []float32
)

// streamRead measures read bandwidth the STREAM way: both cores sum their
// half of a 512 MiB array with every probe this CPU has (256- and 512-bit
// loads, plain Go); the best of three passes each counts. Each GEMV
// benchmark calls it right before timing itself, so the ratio compares
// two measurements taken under the same load on a shared machine.
func streamRead() float64 {
	streamOnce.Do(func() {
		streamBuf = make([]float32, streamBytes/4)
		for i := range streamBuf {
			streamBuf[i] = 1
		}
	})
	var gbs float64
	for _, sum := range readSums() {
		for range 3 {
			t0 := time.Now()
			Parallel(len(streamBuf)/128, 1<<13, func(lo, hi int) {
				sink = sum(streamBuf[lo*128 : hi*128])
			})
			gbs = max(gbs, streamBytes/time.Since(t0).Seconds()/1e9)
		}
	}
	return gbs
}

var sink float32

// BenchmarkStreamRead reports the read-bandwidth ceiling the GEMV
// benchmarks compare against.
func BenchmarkStreamRead(b *testing.B) {
	bw := streamRead()
	for b.Loop() {
	}
	b.ReportMetric(bw, "GB/s")
}

// BenchmarkQGemv reports effective weight bandwidth (packed weights plus
// bf16 scales and biases, read once per call) of QMatmul with M = 1, and
// its ratio to the read bandwidth measured in the same run.
func BenchmarkQGemv(b *testing.B) {
	for _, bits := range []int{4, 8} {
		for _, sh := range [][2]int{{4096, 4096}, {151936, 896}} {
			N, K := sh[0], sh[1]
			r := rand.New(rand.NewPCG(1, uint64(bits)))
			q := randQWeight(r, N, K, bits, 64, "bf16")
			x := randF32(r, K)
			y := make([]float32, N)
			bytes := float64(N*K*bits/8 + 2*2*N*K/64)
			b.Run(fmt.Sprintf("%dbit/%dx%d", bits, N, K), func(b *testing.B) {
				bw := streamRead()
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

// BenchmarkHGemv reports effective weight bandwidth of HGemm with M = 1
// (bf16 and f16 weights) and its ratio to the read bandwidth.
func BenchmarkHGemv(b *testing.B) {
	for _, kind := range []HalfKind{BF16, F16} {
		for _, sh := range [][2]int{{4096, 4096}, {151936, 896}} {
			N, K := sh[0], sh[1]
			r := rand.New(rand.NewPCG(2, 3))
			W := make([]uint16, N*K)
			F32ToHalfSlice(W, randF32(r, N*K), kind)
			x, y := randF32(r, K), make([]float32, N)
			b.Run(fmt.Sprintf("%s/%dx%d", kindName(kind), N, K), func(b *testing.B) {
				bw := streamRead()
				for b.Loop() {
					HGemm(y, x, 1, N, K, W, kind)
				}
				gbs := float64(2*N*K) * float64(b.N) / b.Elapsed().Seconds() / 1e9
				b.ReportMetric(gbs, "GB/s")
				b.ReportMetric(gbs/bw, "x_stream")
			})
		}
	}
}

func kindName(k HalfKind) string {
	if k == BF16 {
		return "bf16"
	}
	return "f16"
}

// BenchmarkPrefill reports GFLOP/s of the M > 1 paths (prompt processing,
// 512 tokens through a 4096×4096 weight): QMatmul 4-bit and 8-bit (int8
// kernels where the CPU has VNNI, and the dequantize+Sgemm path), HGemm
// bf16, and Sgemm with a transposed f32 weight for comparison.
func BenchmarkPrefill(b *testing.B) {
	const M, N, K = 512, 4096, 4096
	r := rand.New(rand.NewPCG(4, 5))
	X, Y := randF32(r, M*K), make([]float32, M*N)
	flops := 2.0 * M * N * K
	report := func(b *testing.B) {
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}
	for _, bits := range []int{4, 8} {
		q := randQWeight(r, N, K, bits, 64, "bf16")
		b.Run(fmt.Sprintf("q%d/%dx%dx%d", bits, M, N, K), func(b *testing.B) {
			for b.Loop() {
				QMatmul(Y, X, M, q)
			}
			report(b)
		})
		// The dequantize + f32 GEMM path (CPUs without VNNI, other bits).
		b.Run(fmt.Sprintf("q%d-dequant-sgemm/%dx%dx%d", bits, M, N, K), func(b *testing.B) {
			for b.Loop() {
				qmatmulGemm(Y, X, M, q)
			}
			report(b)
		})
	}
	W := make([]uint16, N*K)
	Wf := randF32(r, N*K)
	F32ToHalfSlice(W, Wf, BF16)
	b.Run(fmt.Sprintf("bf16/%dx%dx%d", M, N, K), func(b *testing.B) {
		for b.Loop() {
			HGemm(Y, X, M, N, K, W, BF16)
		}
		report(b)
	})
	b.Run(fmt.Sprintf("f32-transB/%dx%dx%d", M, N, K), func(b *testing.B) {
		for b.Loop() {
			Sgemm(false, true, M, N, K, X, K, Wf, K, Y, N, false)
		}
		report(b)
	})
}

// BenchmarkConvert reports GB/s (bytes read plus written) of the slice
// conversions on 16 Mi elements.
func BenchmarkConvert(b *testing.B) {
	const n = 16 << 20
	r := rand.New(rand.NewPCG(6, 7))
	f := randF32(r, n)
	h := make([]uint16, n)
	for _, kind := range []HalfKind{BF16, F16} {
		b.Run("f32-to-"+kindName(kind), func(b *testing.B) {
			for b.Loop() {
				F32ToHalfSlice(h, f, kind)
			}
			b.ReportMetric(6*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
		b.Run(kindName(kind)+"-to-f32", func(b *testing.B) {
			for b.Loop() {
				HalfToF32Slice(f, h, kind)
			}
			b.ReportMetric(6*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkSgemv reports weight bandwidth of Sgemm with M = 1 (decoding
// through an f32 weight), B stored [N, K] (transB, the Linear layout) and
// [K, N], against the read bandwidth.
func BenchmarkSgemv(b *testing.B) {
	const N, K = 4096, 4096
	r := rand.New(rand.NewPCG(8, 9))
	W, x, y := randF32(r, N*K), randF32(r, K), make([]float32, N)
	for _, tB := range []bool{true, false} {
		b.Run(fmt.Sprintf("transB=%v/%dx%d", tB, N, K), func(b *testing.B) {
			bw := streamRead()
			for b.Loop() {
				Sgemm(false, tB, 1, N, K, x, K, W, K, y, N, false)
			}
			gbs := float64(4*N*K) * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(gbs, "GB/s")
			b.ReportMetric(gbs/bw, "x_stream")
		})
	}
}
