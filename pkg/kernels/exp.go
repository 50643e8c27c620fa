package kernels

// ExpSub sets s[i] = e^(s[i]−m) (Cephes' float32 expf, NaN passing
// through, 0 below −87.3) and returns their float32 sum, on AVX-512; ok is
// false when the CPU lacks it (the caller computes it instead).
func ExpSub(s []float32, m float32) (sum float32, ok bool) {
	if len(s) == 0 {
		return 0, true
	}
	return expSub(s, m)
}

// ExpSum returns Σ e^(x[i]−m) with each term as ExpSub computes it and the
// sum in float64, x unchanged, on AVX-512; ok is false without it.
func ExpSum(x []float32, m float32) (sum float64, ok bool) {
	if len(x) == 0 {
		return 0, true
	}
	return expSum(x, m)
}
