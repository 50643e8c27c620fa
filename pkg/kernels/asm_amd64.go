//go:build amd64

package kernels

//go:noescape
func sgemmKernelAVX512(kc int, a, b, c *float32, ldc int, add bool)

//go:noescape
func sgemmKernelAVX2(kc int, a, b, c *float32, ldc int, add bool)

var (
	avx512Kernel = gemmKernel{name: "avx512-6x32", mr: 6, nr: 32, fn: sgemmKernelAVX512}
	avx2Kernel   = gemmKernel{name: "avx2-6x16", mr: 6, nr: 16, fn: sgemmKernelAVX2}
)

// bestGemmKernel returns the widest micro-kernel this CPU runs.
func bestGemmKernel() *gemmKernel {
	switch {
	case hasAVX512:
		return &avx512Kernel
	case hasAVX2:
		return &avx2Kernel
	}
	return &goKernel
}

// gemmKernels lists every micro-kernel this CPU can run, for tests.
func gemmKernels() []*gemmKernel {
	ks := []*gemmKernel{&goKernel}
	if hasAVX2 {
		ks = append(ks, &avx2Kernel)
	}
	if hasAVX512 {
		ks = append(ks, &avx512Kernel)
	}
	return ks
}

//go:noescape
func readSumAVX2(p *float32, n int) float32

//go:noescape
func readSumAVX512(p *float32, n int) float32

// readSum sums x (len a multiple of 128): the read-bandwidth probe.
func readSum(x []float32) float32 {
	if hasAVX512 && len(x) > 0 {
		return readSumAVX512(&x[0], len(x))
	}
	if hasAVX2 && len(x) > 0 {
		return readSumAVX2(&x[0], len(x))
	}
	return readSumGo(x)
}

// readSums lists every read-bandwidth probe this CPU runs.
func readSums() []func([]float32) float32 {
	fs := []func([]float32) float32{readSumGo}
	if hasAVX2 {
		fs = append(fs, func(x []float32) float32 { return readSumAVX2(&x[0], len(x)) })
	}
	if hasAVX512 {
		fs = append(fs, func(x []float32) float32 { return readSumAVX512(&x[0], len(x)) })
	}
	return fs
}

//go:noescape
func sgemvTAVX512(rows int, w *float32, ldw, K int, x, y *float32)

//go:noescape
func sgemvNAVX512(K, n int, a, b *float32, ldb int, y *float32)

//go:noescape
func sgemvTAVX2(rows int, w *float32, ldw, K int, x, y *float32)

//go:noescape
func sgemvNAVX2(K, n int, a, b *float32, ldb int, y *float32)

// sgemvT sets y[r] = w[r·ldw : r·ldw+K]·x for r < len(y).
func sgemvT(y, w []float32, ldw, K int, x []float32) {
	if hasAVX512 && len(y) > 0 && K > 0 {
		_ = w[(len(y)-1)*ldw+K-1]
		_ = x[K-1]
		sgemvTAVX512(len(y), &w[0], ldw, K, &x[0], &y[0])
		return
	}
	if hasAVX2 && len(y) > 0 && K >= 8 {
		_ = w[(len(y)-1)*ldw+K-1]
		_ = x[K-1]
		sgemvTAVX2(len(y), &w[0], ldw, K, &x[0], &y[0])
		if k8 := K &^ 7; k8 < K {
			for r := range y {
				y[r] += dot4(w[r*ldw+k8:r*ldw+K], x[k8:K])
			}
		}
		return
	}
	sgemvTGo(y, w, ldw, K, x)
}

// sgemvN adds Σ_p a[p]·b[p·ldb : p·ldb+len(y)] to y.
func sgemvN(y, a, b []float32, ldb int) {
	if hasAVX512 && len(y) > 0 && len(a) > 0 {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		sgemvNAVX512(len(a), len(y), &a[0], &b[0], ldb, &y[0])
		return
	}
	if n8 := len(y) &^ 7; hasAVX2 && n8 > 0 && len(a) > 0 {
		_ = b[(len(a)-1)*ldb+len(y)-1]
		sgemvNAVX2(len(a), n8, &a[0], &b[0], ldb, &y[0])
		if n8 < len(y) {
			sgemvNGo(y[n8:], a, b[n8:], ldb)
		}
		return
	}
	sgemvNGo(y, a, b, ldb)
}
