package kernels

import (
	"fmt"
	"math"
	"sync"
)

// Validate checks that the packed words, scales and biases have the sizes
// N, K, Bits and GroupSize call for.
func (q *QWeight) Validate() error {
	switch q.Bits {
	case 2, 3, 4, 5, 6, 8:
	default:
		return fmt.Errorf("kernels: quantized weight: bits %d, want 2, 3, 4, 5, 6 or 8", q.Bits)
	}
	switch q.GroupSize {
	case 32, 64, 128:
	default:
		return fmt.Errorf("kernels: quantized weight: group size %d, want 32, 64 or 128", q.GroupSize)
	}
	if q.N < 0 || q.K <= 0 || q.K%q.GroupSize != 0 || (q.K*q.Bits)%32 != 0 {
		return fmt.Errorf("kernels: quantized weight: shape [%d, %d] does not fit group size %d and %d-bit words", q.N, q.K, q.GroupSize, q.Bits)
	}
	if want := q.N * q.K * q.Bits / 32; len(q.W) < want {
		return fmt.Errorf("kernels: quantized weight: %d packed words, want %d for [%d, %d] at %d bits", len(q.W), want, q.N, q.K, q.Bits)
	}
	ng := q.N * (q.K / q.GroupSize)
	if q.ScalesF32 != nil {
		if len(q.ScalesF32) < ng || len(q.BiasesF32) < ng {
			return fmt.Errorf("kernels: quantized weight: %d f32 scales and %d biases, want %d", len(q.ScalesF32), len(q.BiasesF32), ng)
		}
		return nil
	}
	if len(q.Scales) < ng || len(q.Biases) < ng {
		return fmt.Errorf("kernels: quantized weight: %d scales and %d biases, want %d", len(q.Scales), len(q.Biases), ng)
	}
	if q.Kind != BF16 && q.Kind != F16 {
		return fmt.Errorf("kernels: quantized weight: half kind %d, want BF16 or F16", q.Kind)
	}
	return nil
}

// unpackRow writes the q values of row n into dst [K] as float32.
func (q *QWeight) unpackRow(n int, dst []float32) {
	words := q.K * q.Bits / 32
	row := q.W[n*words : (n+1)*words]
	dst = dst[:q.K]
	switch q.Bits {
	case 4:
		for i, w := range row {
			d := dst[i*8 : i*8+8 : i*8+8]
			d[0], d[1], d[2], d[3] = float32(w&15), float32(w>>4&15), float32(w>>8&15), float32(w>>12&15)
			d[4], d[5], d[6], d[7] = float32(w>>16&15), float32(w>>20&15), float32(w>>24&15), float32(w>>28)
		}
	case 8:
		for i, w := range row {
			d := dst[i*4 : i*4+4 : i*4+4]
			d[0], d[1], d[2], d[3] = float32(w&255), float32(w>>8&255), float32(w>>16&255), float32(w>>24)
		}
	default:
		// LSB-first bit stream through a 64-bit buffer.
		bits := uint(q.Bits)
		mask := uint64(1)<<bits - 1
		var buf uint64
		var nb uint
		wi := 0
		for k := range dst {
			if nb < bits {
				buf |= uint64(row[wi]) << nb
				wi++
				nb += 32
			}
			dst[k] = float32(buf & mask)
			buf >>= bits
			nb -= bits
		}
	}
}

// dequantRowGo writes row n of W into dst [K] (portable path).
func (q *QWeight) dequantRowGo(n int, dst []float32) {
	q.unpackRow(n, dst)
	G := q.GroupSize
	for g := 0; g < q.K/G; g++ {
		sg, bg := q.scaleBias(n, g)
		d := dst[g*G : g*G+G]
		for k, v := range d {
			d[k] = sg*v + bg
		}
	}
}

// dequantRows writes rows [n0, n0+rows) of W into dst [rows, K].
func (q *QWeight) dequantRows(n0, rows int, dst []float32) {
	if rows > 0 && dequantFast(q, n0, rows, dst[:rows*q.K]) {
		return
	}
	for r := 0; r < rows; r++ {
		q.dequantRowGo(n0+r, dst[r*q.K:(r+1)*q.K])
	}
}

// DequantizeRow writes row n of W into dst [K].
func (q *QWeight) DequantizeRow(n int, dst []float32) { q.dequantRows(n, 1, dst) }

// dequantizeRowRef is the reference: one element at a time.
func (q *QWeight) dequantizeRowRef(n int, dst []float32) {
	for g := 0; g < q.K/q.GroupSize; g++ {
		s, b := q.scaleBias(n, g)
		for k := g * q.GroupSize; k < (g+1)*q.GroupSize; k++ {
			dst[k] = s*float32(q.unpack(n, k)) + b
		}
	}
}

// qmatmulRef is the reference: dequantize each row, f32 dot products.
func qmatmulRef(Y, X []float32, M int, q *QWeight) {
	Parallel(q.N, 16, func(lo, hi int) {
		row := make([]float32, q.K)
		for n := lo; n < hi; n++ {
			q.dequantizeRowRef(n, row)
			for m := 0; m < M; m++ {
				x := X[m*q.K : (m+1)*q.K]
				var s float32
				for k, w := range row {
					s += w * x[k]
				}
				Y[m*q.N+n] = s
			}
		}
	})
}

// dot4 is an f32 dot product with four partial sums.
func dot4(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	k := 0
	for ; k+4 <= len(a); k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < len(a); k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// qmatmulGo is the portable path for small M: dequantize a row at a time
// (bit-width specialised), dot it with every activation row.
func qmatmulGo(Y, X []float32, M int, q *QWeight) {
	Parallel(q.N, 16, func(lo, hi int) {
		row := make([]float32, q.K)
		for n := lo; n < hi; n++ {
			q.dequantRows(n, 1, row)
			for m := 0; m < M; m++ {
				Y[m*q.N+n] = dot4(row, X[m*q.K:(m+1)*q.K])
			}
		}
	})
}

// qmatmulGemm is the path for many activation rows (prompt processing):
// dequantize blocks of weight rows to f32, then Sgemm against them.
func qmatmulGemm(Y, X []float32, M int, q *QWeight) {
	nb := max(64, min(q.N, (4<<20)/q.K))
	buf := make([]float32, nb*q.K)
	for n0 := 0; n0 < q.N; n0 += nb {
		rows := min(nb, q.N-n0)
		Parallel(rows, 8, func(lo, hi int) {
			q.dequantRows(n0+lo, hi-lo, buf[lo*q.K:hi*q.K])
		})
		// Y[:, n0:n0+rows] = X · buf[:rows]ᵀ
		Sgemm(false, true, M, rows, q.K, X, q.K, buf, q.K, Y[n0:], q.N, false)
	}
}

// qmatmulGemmMinM is the number of activation rows from which QMatmul
// dequantizes into an f32 GEMM rather than running f32 GEMVs (and, on
// AVX2-only CPUs, rather than the int8 kernels). With AVX-512 VNNI the int8
// kernels win at every M measured (up to 512: they are an int8 GEMM blocked
// for L2), so they take all 4- and 8-bit products.
const qmatmulGemmMinM = 32

// QMatmul computes Y [M, N] = X [M, K] · Wᵀ for a quantized W [N, K]. For
// 4- and 8-bit weights on CPUs with AVX-512 VNNI (any M), or AVX2 (M < 32,
// K a multiple of 128), it quantizes each activation row to int8 in
// blocks of 32 (scale max|x|/127) and uses integer dot products; the result
// is the product of the weights with the rounded activations, within
// Σ_k |w_k|·dx/2 of the f32 result (see qgemv_test.go). Otherwise it
// dequantizes in f32. q must pass Validate.
func QMatmul(Y, X []float32, M int, q *QWeight) {
	if M <= 0 || q.N <= 0 {
		return
	}
	// The assembly reads and writes through pointers: check the extents.
	ng := q.N * (q.K / q.GroupSize)
	_, _, _ = Y[M*q.N-1], X[M*q.K-1], q.W[q.N*q.K*q.Bits/32-1]
	if q.ScalesF32 != nil {
		_, _ = q.ScalesF32[ng-1], q.BiasesF32[ng-1]
	} else {
		_, _ = q.Scales[ng-1], q.Biases[ng-1]
	}
	if qgemvFast(Y, X, M, q) {
		return
	}
	if M >= qmatmulGemmMinM {
		qmatmulGemm(Y, X, M, q)
		return
	}
	qmatmulGo(Y, X, M, q)
}

// QMatmulMulti computes Ys[i] [M, N_i] = X [M, K] · Wᵢᵀ for several
// weights that read the same activations (a layer's q, k and v
// projections; gate and up): where the weights share K, bit width and
// group size and the CPU has the int8 kernels, the activations are
// prepared once and the rows of all the weights are split over the cores
// as one job. The results are those of QMatmul on each weight.
func QMatmulMulti(Ys [][]float32, X []float32, M int, qs []*QWeight) {
	if M <= 0 || len(qs) == 0 {
		return
	}
	if len(qs) > 1 {
		ok := true
		for i, q := range qs {
			if q.N <= 0 || q.K != qs[0].K {
				ok = false
				break
			}
			ng := q.N * (q.K / q.GroupSize)
			_, _, _ = Ys[i][M*q.N-1], X[M*q.K-1], q.W[q.N*q.K*q.Bits/32-1]
			if q.ScalesF32 != nil {
				_, _ = q.ScalesF32[ng-1], q.BiasesF32[ng-1]
			} else {
				_, _ = q.Scales[ng-1], q.Biases[ng-1]
			}
		}
		if ok && qmatmulMultiFast(Ys, X, M, qs) {
			return
		}
	}
	for i, q := range qs {
		QMatmul(Ys[i], X, M, q)
	}
}

// qact is an activation row prepared for the int8 kernels.
type qact struct {
	xq   []int8    // K int8s, chunk layout per bit width (see prepAct)
	dxl  []float32 // per 128-chunk lane multipliers: 16 (4-bit) or 32 (8-bit)
	sumx []float32 // Σx per weight group [K/G]
	dx   []float32 // per 32-block scale
	bsum []float32 // per 32-block Σx
}

// actScratch is the per-call scratch of the int8 paths: prepared
// activation rows (their buffers reused from call to call) and the lane
// index tables. It comes from actPool, so concurrent calls each get their
// own.
type actScratch struct {
	acts []qact
	// Interleaved activation tiles of the multi-row kernel (amd64).
	txq        []int8
	tdxl, tsum []float32
	idx        [32]int32
	widx       [64]uint16
}

var actPool = sync.Pool{New: func() any { return new(actScratch) }}

// getActScratch returns a scratch from actPool with len(acts) == M; the
// caller puts it back when done.
func getActScratch(M int) *actScratch {
	sc := actPool.Get().(*actScratch)
	if cap(sc.acts) < M {
		sc.acts = append(sc.acts[:cap(sc.acts)], make([]qact, M-cap(sc.acts))...)
	}
	sc.acts = sc.acts[:M]
	return sc
}

// prepActs runs prepAct on each row of X [M, K] (M = len(acts)), rows in
// parallel when there are many.
func prepActs(acts []qact, X []float32, K, bits, G int) {
	if len(acts) == 1 {
		prepAct(X[:K], bits, G, &acts[0])
		return
	}
	Parallel(len(acts), 16, func(lo, hi int) {
		for m := lo; m < hi; m++ {
			prepAct(X[m*K:(m+1)*K], bits, G, &acts[m])
		}
	})
}

// prepAct quantizes x [K] (K a multiple of 32) to int8 in blocks of 32
// with dx = max|x|/127, and lays it out for the bits-wide kernel:
//
//   - 4-bit: per 128-chunk, the 64 even elements then the 64 odd ones (the
//     low and high nibbles of the chunk's 64 weight bytes); lane l of the
//     integer dot covers elements 8l..8l+7, block l/4.
//   - 8-bit: natural order; lane l of the first (second) 64 covers
//     elements 4l..4l+3 (64+4l..), block l/8 (2+l/8).
func prepAct(x []float32, bits, G int, a *qact) {
	K := len(x)
	nb := K / 32
	nc := (K + 127) / 128 // chunks, the last one possibly partial
	lanes := 16
	if bits == 8 {
		lanes = 32
	}
	a.xq = grow(a.xq, nc*128)
	a.dx = grow(a.dx, nc*4)
	a.bsum = grow(a.bsum, nc*4)
	a.dxl = grow(a.dxl, nc*lanes)
	a.sumx = grow(a.sumx, K/G)
	clear(a.xq[K:])
	clear(a.dx[nb:])
	if !quantAct(x, bits, a.xq, a.dx[:nb], a.bsum[:nb]) {
		roundedSums(a.xq, bits, a.dx[:nb], a.bsum[:nb])
	}
	clear(a.sumx)
	for b, s := range a.bsum[:nb] {
		a.sumx[b*32/G] += s
	}
	for c := 0; c < nc; c++ {
		dx := a.dx[c*4 : c*4+4 : c*4+4]
		l := a.dxl[c*lanes : (c+1)*lanes]
		if bits == 4 {
			for i := 0; i < 16; i++ {
				l[i] = dx[i/4]
			}
		} else {
			for i := 0; i < 16; i++ {
				l[i] = dx[i/8]
				l[16+i] = dx[2+i/8]
			}
		}
	}
}

// roundedSums replaces each block's Σx by the sum of its int8-rounded
// values, dx·Σxi. The bias term Σ_g bias_g·Σx then sees the same rounded
// activations as the scale·q term, so the product is exactly Σ w_k·x̃_k
// with x̃ the rounded activations and w = scale·q + bias the weights.
// With the exact Σx instead, the rounding error is weighted by scale·q,
// which ranges over [0, 2^bits-1]·scale rather than over w: about 2-3
// times the error (measured: 1.3% RMS vs 0.55% on a 4-bit GEMV).
func roundedSums(xq []int8, bits int, dx, bsum []float32) {
	for b := range dx {
		c, off := b/4, (b%4)*32
		chunk := xq[c*128 : c*128+128]
		var s int32
		if bits == 4 {
			for _, v := range chunk[off/2 : off/2+16] {
				s += int32(v)
			}
			for _, v := range chunk[64+off/2 : 64+off/2+16] {
				s += int32(v)
			}
		} else {
			for _, v := range chunk[off : off+32] {
				s += int32(v)
			}
		}
		bsum[b] = dx[b] * float32(s)
	}
}

// grow returns s resized to n, reusing its array when large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// quantActGo is the portable quantizer behind prepAct: per block of 32,
// dx = max|x|/127, xi = round-to-even(x·(127/max)), Σx; xq laid out as
// prepAct says.
func quantActGo(x []float32, bits int, xq []int8, dx, bsum []float32) {
	var blk [32]int8
	for b := range dx {
		xs := x[b*32 : b*32+32 : b*32+32]
		var mx, sum float32
		for _, v := range xs {
			mx = max(mx, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
			sum += v
		}
		bsum[b] = sum
		dx[b] = mx / 127
		inv := float32(0)
		if mx > 0 {
			inv = 127 / mx
		}
		for i, v := range xs {
			blk[i] = int8(math.RoundToEven(float64(v * inv)))
		}
		c, off := b/4, (b%4)*32 // chunk, offset of this block in it
		dst := xq[c*128 : c*128+128]
		if bits == 4 {
			for i := 0; i < 32; i += 2 {
				dst[(off+i)/2] = blk[i]
				dst[64+(off+i)/2] = blk[i+1]
			}
		} else {
			copy(dst[off:off+32], blk[:])
		}
	}
}
