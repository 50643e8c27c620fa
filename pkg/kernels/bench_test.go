package kernels

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/kernels/internal/blas"
)

// The benchmarks time mlxgo's kernel and its peer (OpenBLAS, or a
// STREAM-style read of memory) alternately, once each per iteration, and
// report the best time of each and their ratio: on a shared 2-core machine
// both then see the same background load. ns/op is the time of one pair.

// pair runs ours and peer (if not nil) alternately and returns the
// shortest time of each.
func pair(b *testing.B, ours, peer func()) (tOurs, tPeer time.Duration) {
	tOurs, tPeer = time.Hour, time.Hour
	for b.Loop() {
		t0 := time.Now()
		ours()
		tOurs = min(tOurs, time.Since(t0))
		if peer != nil {
			t0 = time.Now()
			peer()
			tPeer = min(tPeer, time.Since(t0))
		}
	}
	return tOurs, tPeer
}

// gemmShapes are the GEMM benchmark shapes, M×N×K.
var gemmShapes = [][3]int{{1024, 1024, 1024}, {4096, 4096, 512}}

// BenchmarkSgemm reports GFLOP/s of Sgemm and of OpenBLAS cblas_sgemm
// (through purego, its own threads) on the same inputs, and their ratio.
func BenchmarkSgemm(b *testing.B) {
	for _, sh := range gemmShapes {
		M, N, K := sh[0], sh[1], sh[2]
		r := rand.New(rand.NewPCG(5, 6))
		A, B, C := randF32(r, M*K), randF32(r, K*N), make([]float32, M*N)
		flops := 2 * float64(M) * float64(N) * float64(K)
		b.Run(fmt.Sprintf("%dx%dx%d", M, N, K), func(b *testing.B) {
			ours := func() { Sgemm(false, false, M, N, K, A, K, B, N, C, N, false) }
			var peer func()
			if err := blas.Load(); err != nil {
				b.Logf("no OpenBLAS peer (apt-get install libopenblas0): %v", err)
			} else {
				peer = func() { blas.Sgemm(false, false, M, N, K, A, K, B, N, C, N, false) }
			}
			to, tp := pair(b, ours, peer)
			b.ReportMetric(flops/to.Seconds()/1e9, "GFLOP/s")
			if peer != nil {
				b.ReportMetric(flops/tp.Seconds()/1e9, "openblas_GFLOP/s")
				b.ReportMetric(tp.Seconds()/to.Seconds(), "x_openblas")
			}
		})
	}
}

// streamBytes is the size of the read-bandwidth probe: far beyond L3.
const streamBytes = 512 << 20

var (
	streamOnce sync.Once
	streamBuf  []float32
	streamOff  int
)

// streamPass is the STREAM-style peer: both cores sum their half of n
// bytes (rounded to 512; at least 64 MiB) of a 512 MiB array, once with
// each probe this CPU has (256- and 512-bit loads); it returns the best
// bandwidth in GB/s. Reading about as many bytes as the kernel it is
// paired with gives both the same exposure to bursts of background load.
func streamPass(n int) float64 {
	streamOnce.Do(func() {
		streamBuf = make([]float32, streamBytes/4)
		for i := range streamBuf {
			streamBuf[i] = 1
		}
	})
	n = min(streamBytes/2, max(64<<20, n)) / 512 * 128 // floats, a multiple of 128
	var gbs float64
	probes := readSums()
	if len(probes) > 1 {
		probes = probes[1:] // the assembly probes; Go is slower
	}
	for _, sum := range probes {
		// A different part of the array each pass, so nothing is left in
		// L3 from the pass before: this is memory bandwidth.
		if streamOff+n > len(streamBuf) {
			streamOff = 0
		}
		buf := streamBuf[streamOff : streamOff+n]
		streamOff += n
		t0 := time.Now()
		Parallel(n/128, 1<<13, func(lo, hi int) {
			sink = sum(buf[lo*128 : hi*128])
		})
		gbs = max(gbs, float64(4*n)/time.Since(t0).Seconds()/1e9)
	}
	return gbs
}

var sink float32

// bandwidth times ours against the STREAM peer and reports ours in GB/s
// (bytes: what one call reads of the weights), the peer, and the ratio.
func bandwidth(b *testing.B, bytes float64, ours func()) time.Duration {
	var best float64
	to, _ := pair(b, ours, func() { best = max(best, streamPass(int(bytes))) })
	gbs := bytes / to.Seconds() / 1e9
	b.ReportMetric(gbs, "GB/s")
	b.ReportMetric(best, "stream_GB/s")
	b.ReportMetric(gbs/best, "x_stream")
	return to
}

// BenchmarkStreamRead reports the read-bandwidth peer alone.
func BenchmarkStreamRead(b *testing.B) {
	var best float64
	for b.Loop() {
		best = max(best, streamPass(streamBytes))
	}
	b.ReportMetric(best, "GB/s")
}

// BenchmarkQGemv reports the effective weight bandwidth (packed weights
// plus bf16 scales and biases, each read once per call) of QMatmul with
// M = 1, group 64, against the STREAM peer.
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
				t := bandwidth(b, bytes, func() { QMatmul(y, x, 1, q) })
				b.ReportMetric(float64(N)*float64(K)/t.Seconds()/1e9, "Gweights/s")
			})
		}
	}
}

// BenchmarkHGemv reports the weight bandwidth of HGemm with M = 1 (bf16
// and f16 weights) against the STREAM peer.
func BenchmarkHGemv(b *testing.B) {
	for _, kind := range []HalfKind{BF16, F16} {
		for _, sh := range [][2]int{{4096, 4096}, {151936, 896}} {
			N, K := sh[0], sh[1]
			r := rand.New(rand.NewPCG(2, 3))
			W := make([]uint16, N*K)
			F32ToHalfSlice(W, randF32(r, N*K), kind)
			x, y := randF32(r, K), make([]float32, N)
			b.Run(fmt.Sprintf("%s/%dx%d", kindName(kind), N, K), func(b *testing.B) {
				bandwidth(b, float64(2*N*K), func() { HGemm(y, x, 1, N, K, W, kind) })
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

// BenchmarkSgemv reports the weight bandwidth of Sgemm with M = 1
// (decoding through an f32 weight), B stored [N, K] (transB, the Linear
// layout) and [K, N], against the STREAM peer.
func BenchmarkSgemv(b *testing.B) {
	const N, K = 4096, 4096
	r := rand.New(rand.NewPCG(8, 9))
	W, x, y := randF32(r, N*K), randF32(r, K), make([]float32, N)
	for _, tB := range []bool{true, false} {
		b.Run(fmt.Sprintf("transB=%v/%dx%d", tB, N, K), func(b *testing.B) {
			bandwidth(b, float64(4*N*K), func() { Sgemm(false, tB, 1, N, K, x, K, W, K, y, N, false) })
		})
	}
}

// BenchmarkPrefill reports GFLOP/s (best iteration) of the M > 1 paths
// (prompt processing, 512 tokens through a 4096×4096 weight): QMatmul 4-
// and 8-bit (int8 kernels where the CPU has VNNI, and the dequantize+Sgemm
// path), HGemm bf16, and Sgemm with a transposed f32 weight.
func BenchmarkPrefill(b *testing.B) {
	const M, N, K = 512, 4096, 4096
	r := rand.New(rand.NewPCG(4, 5))
	X, Y := randF32(r, M*K), make([]float32, M*N)
	run := func(name string, f func()) {
		b.Run(fmt.Sprintf("%s/%dx%dx%d", name, M, N, K), func(b *testing.B) {
			t, _ := pair(b, f, nil)
			b.ReportMetric(2.0*M*N*K/t.Seconds()/1e9, "GFLOP/s")
		})
	}
	for _, bits := range []int{4, 8} {
		q := randQWeight(r, N, K, bits, 64, "bf16")
		run(fmt.Sprintf("q%d", bits), func() { QMatmul(Y, X, M, q) })
		run(fmt.Sprintf("q%d-dequant-sgemm", bits), func() { qmatmulGemm(Y, X, M, q) })
	}
	W := make([]uint16, N*K)
	Wf := randF32(r, N*K)
	F32ToHalfSlice(W, Wf, BF16)
	run("bf16", func() { HGemm(Y, X, M, N, K, W, BF16) })
	run("f32-transB", func() { Sgemm(false, true, M, N, K, X, K, Wf, K, Y, N, false) })
}

// BenchmarkConvert reports GB/s (bytes read plus written, best iteration)
// of the slice conversions on 16 Mi elements.
func BenchmarkConvert(b *testing.B) {
	const n = 16 << 20
	r := rand.New(rand.NewPCG(6, 7))
	f := randF32(r, n)
	h := make([]uint16, n)
	run := func(name string, fn func()) {
		b.Run(name, func(b *testing.B) {
			t, _ := pair(b, fn, nil)
			b.ReportMetric(6*n/t.Seconds()/1e9, "GB/s")
		})
	}
	for _, kind := range []HalfKind{BF16, F16} {
		run("f32-to-"+kindName(kind), func() { F32ToHalfSlice(h, f, kind) })
		run(kindName(kind)+"-to-f32", func() { HalfToF32Slice(f, h, kind) })
	}
}

// BenchmarkQDecodeStep runs the quantized GEMVs (M = 1) of one decode step
// of a Qwen2.5-0.5B-shaped 4-bit model, group 64, bf16 scales: per layer
// q, k, v, o (896→896, 896→128 twice, 896→896) and gate, up, down (896→4864
// twice, 4864→896) over 24 layers, then the 151936×896 lm_head. It reports
// their weight bandwidth against the STREAM peer (best step of each) and
// the best step time.
func BenchmarkQDecodeStep(b *testing.B) {
	const D, F, V, L = 896, 4864, 151936, 24
	r := rand.New(rand.NewPCG(7, 8))
	type mm struct {
		q    *QWeight
		x, y []float32
	}
	var mms []mm
	var bytes float64
	add := func(N, K int) {
		q := randQWeight(r, N, K, 4, 64, "bf16")
		mms = append(mms, mm{q, randF32(r, K), make([]float32, N)})
		bytes += float64(N*K/2 + 2*2*N*K/64)
	}
	for range L {
		add(D, D)
		add(128, D)
		add(128, D)
		add(D, D)
		add(F, D)
		add(F, D)
		add(D, F)
	}
	add(V, D)
	t := bandwidth(b, bytes, func() {
		for _, m := range mms {
			QMatmul(m.y, m.x, 1, m.q)
		}
	})
	b.ReportMetric(float64(t.Microseconds())/1e3, "best_ms/step")
}
