package cpu

// Portable forms of the row kernels behind RMSNorm (see sumSqF64,
// scaleF64 and mulF32).

func sumSqF64Go(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

func scaleF64Go(x []float32, r float64) {
	for i, e := range x {
		x[i] = float32(float64(e) * r)
	}
}

func mulF32Go(x, w []float32) {
	w = w[:len(x)]
	for i := range x {
		x[i] *= w[i]
	}
}
