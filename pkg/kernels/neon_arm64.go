//go:build arm64

package kernels

import "unsafe"

// NEON kernels (neon_arm64.s). Each takes a count that is a positive
// multiple of its vector step; the Go wrappers run the rest.

//go:noescape
func dotNEON(a, b *float32, n int) float32 // n % 16 == 0

//go:noescape
func hdotNEON(w unsafe.Pointer, x *float32, n, kind int) float32 // n % 16 == 0

//go:noescape
func halfToF32NEON(dst *float32, src *uint16, n, kind int) // n % 8 == 0

//go:noescape
func f32ToHalfNEON(dst *uint16, src *float32, n, kind int) // n % 8 == 0

//go:noescape
func sgemmKernelNEON8x8(kc int, a, b, c *float32, ldc int, add bool) // sgemm_arm64.s

var neonKernel = gemmKernel{name: "neon-8x8", mr: 8, nr: 8, fn: sgemmKernelNEON8x8}

// bestGemmKernel returns the NEON 8×8 micro-kernel (Go's 4×4 with NEON off).
func bestGemmKernel() *gemmKernel {
	if hasNEON {
		return &neonKernel
	}
	return &goKernel
}

// gemmKernels lists every micro-kernel this CPU can run, for tests.
func gemmKernels() []*gemmKernel {
	if hasNEON {
		return []*gemmKernel{&goKernel, &neonKernel}
	}
	return []*gemmKernel{&goKernel}
}

// readSum sums x (len a multiple of 128): the read-bandwidth probe.
func readSum(x []float32) float32 { return readSumGo(x) }

// readSums lists every read-bandwidth probe this CPU runs.
func readSums() []func([]float32) float32 { return []func([]float32) float32{readSumGo} }

// dot is a·b (len(a) == len(b)): NEON over the multiple of 16, dot4 after.
func dot(a, b []float32) float32 {
	n16 := len(a) &^ 15
	if !hasNEON || n16 == 0 {
		return dot4(a, b)
	}
	_ = b[len(a)-1]
	s := dotNEON(&a[0], &b[0], n16)
	if n16 < len(a) {
		s += dot4(a[n16:], b[n16:len(a)])
	}
	return s
}

// sgemvT sets y[r] = w[r·ldw : r·ldw+K]·x for r < len(y).
func sgemvT(y, w []float32, ldw, K int, x []float32) {
	if !hasNEON || K < 16 {
		sgemvTGo(y, w, ldw, K, x)
		return
	}
	for r := range y {
		y[r] = dot(w[r*ldw:r*ldw+K], x[:K])
	}
}

//go:noescape
func sgemvNNEON(K, n int, a, b *float32, ldb int, y *float32) // n % 16 == 0 (sgemvn_arm64.s)

// sgemvN adds Σ_p a[p]·b[p·ldb : p·ldb+len(y)] to y.
func sgemvN(y, a, b []float32, ldb int) {
	n16 := len(y) &^ 15
	if !hasNEON || n16 == 0 || len(a) == 0 {
		sgemvNGo(y, a, b, ldb)
		return
	}
	_ = b[(len(a)-1)*ldb+len(y)-1]
	sgemvNNEON(len(a), n16, &a[0], &b[0], ldb, &y[0])
	if n16 < len(y) {
		sgemvNGo(y[n16:], a, b[n16:], ldb)
	}
}

// hgemvRows sets y[r] = W[r]·x for the rows of W [rows, K] (halves of kind).
func hgemvRows(y []float32, W []uint16, x []float32, rows, K int, kind HalfKind) {
	k16 := K &^ 15
	if !hasNEON || k16 == 0 || rows <= 0 {
		hgemvRowsGo(y, W, x, rows, K, kind)
		return
	}
	_, _, _ = W[rows*K-1], x[K-1], y[rows-1]
	var tail [16]float32
	for r := 0; r < rows; r++ {
		s := hdotNEON(unsafe.Pointer(&W[r*K]), &x[0], k16, int(kind))
		if k16 < K {
			halfToF32Go(tail[:K-k16], W[r*K+k16:(r+1)*K], kind)
			s += dot4(tail[:K-k16], x[k16:K])
		}
		y[r] = s
	}
}

// halfToF32 widens src into dst[:len(src)].
func halfToF32(dst []float32, src []uint16, kind HalfKind) {
	if n8 := len(src) &^ 7; hasNEON && n8 > 0 {
		_ = dst[len(src)-1]
		halfToF32NEON(&dst[0], &src[0], n8, int(kind))
		halfToF32Go(dst[n8:], src[n8:], kind)
		return
	}
	halfToF32Go(dst, src, kind)
}

// f32ToHalf narrows src into dst[:len(src)].
func f32ToHalf(dst []uint16, src []float32, kind HalfKind) {
	if n8 := len(src) &^ 7; hasNEON && n8 > 0 {
		_ = dst[len(src)-1]
		f32ToHalfNEON(&dst[0], &src[0], n8, int(kind))
		f32ToHalfGo(dst[n8:], src[n8:], kind)
		return
	}
	f32ToHalfGo(dst, src, kind)
}
