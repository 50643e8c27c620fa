//go:build !amd64

package kernels

// bestGemmKernel returns the portable micro-kernel.
func bestGemmKernel() *gemmKernel { return &goKernel }

// gemmKernels lists every micro-kernel this CPU can run, for tests.
func gemmKernels() []*gemmKernel { return []*gemmKernel{&goKernel} }
