package cpu

import "github.com/mlxgo/mlxgo/pkg/kernels"

// The exponential and rounding kernels live in pkg/kernels (AVX-512 on
// amd64, NEON on arm64); elsewhere they report false and the callers use
// their Go loops.

// useKernels lets tests turn the pkg/kernels paths off to check the Go
// loops on the same machine.
var useKernels = true

// sigmoidFast computes sigmoid32 with the SIMD kernel; false when there is none.
func sigmoidFast(dst, src []float32) bool {
	if !useKernels || len(src) == 0 {
		return false
	}
	return kernels.Sigmoid(dst, src)
}

// expSubFast sets s[i] = e^(s[i]−m) and returns their sum, with the SIMD kernel.
func expSubFast(s []float32, m float32) (float32, bool) {
	if !useKernels || len(s) == 0 {
		return 0, false
	}
	return kernels.ExpSub(s, m)
}

// roundHalfFast rounds x in place to bf16 (kind 0) or f16 (kind 1)
// precision (kernels.RoundHalf); false without a SIMD kernel.
func roundHalfFast(x []float32, kind int) bool {
	if !useKernels || len(x) == 0 {
		return false
	}
	return kernels.RoundHalf(x, kernels.HalfKind(kind))
}

// swigluFast computes, in place in x, silu(x) rounded as the unfused ops
// round it (kernels.SwiGLU); false without a SIMD kernel.
func swigluFast(x, up []float32, kind int) bool {
	if !useKernels || len(x) == 0 {
		return false
	}
	return kernels.SwiGLU(x, up, kind)
}
