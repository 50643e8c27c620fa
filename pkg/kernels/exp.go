package kernels

// ExpSub sets s[i] = e^(s[i]−m) (Cephes' float32 expf, NaN passing
// through, 0 below −87.3) and returns their float32 sum, on AVX-512 or NEON; ok is
// false when the CPU lacks it (the caller computes it instead).
func ExpSub(s []float32, m float32) (sum float32, ok bool) {
	if len(s) == 0 {
		return 0, true
	}
	return expSub(s, m)
}

// ExpSum returns Σ e^(x[i]−m) with each term as ExpSub computes it and the
// sum in float64, x unchanged, on AVX-512 or NEON; ok is false without it.
func ExpSum(x []float32, m float32) (sum float64, ok bool) {
	if len(x) == 0 {
		return 0, true
	}
	return expSum(x, m)
}

// Sigmoid sets dst[i] = 1/(1+e^−src[i]) (dst may be src; len(dst) >=
// len(src)) with Cephes' expf on AVX-512 or NEON; false without them.
func Sigmoid(dst, src []float32) bool {
	if len(src) == 0 {
		return true
	}
	_ = dst[len(src)-1]
	return sigmoid(dst, src)
}

// SwiGLU computes in place in x silu(x) = x·sigmoid(x) rounded as an
// unfused graph in the output dtype rounds it (sigmoid, then the product
// with x, to kind's precision: 0 bf16, 1 f16, 2 float32), times up when
// up is not nil (that product left for the caller's store to round), on
// AVX-512 or NEON; false without them.
func SwiGLU(x, up []float32, kind int) bool {
	if len(x) == 0 {
		return true
	}
	if up != nil {
		_ = up[len(x)-1]
	}
	return swiglu(x, up, kind)
}
