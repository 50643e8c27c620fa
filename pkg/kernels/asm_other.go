//go:build !amd64 && !arm64

package kernels

// bestGemmKernel returns the portable micro-kernel.
func bestGemmKernel() *gemmKernel { return &goKernel }

// gemmKernels lists every micro-kernel this CPU can run, for tests.
func gemmKernels() []*gemmKernel { return []*gemmKernel{&goKernel} }

// readSum sums x (len a multiple of 128): the read-bandwidth probe.
func readSum(x []float32) float32 { return readSumGo(x) }

// readSums lists every read-bandwidth probe this CPU runs.
func readSums() []func([]float32) float32 { return []func([]float32) float32{readSumGo} }

// sgemvT sets y[r] = w[r·ldw : r·ldw+K]·x for r < len(y).
func sgemvT(y, w []float32, ldw, K int, x []float32) { sgemvTGo(y, w, ldw, K, x) }

// sgemvN adds Σ_p a[p]·b[p·ldb : p·ldb+len(y)] to y.
func sgemvN(y, a, b []float32, ldb int) { sgemvNGo(y, a, b, ldb) }
