//go:build amd64

package kernels

//go:noescape
func expSubAVX512(s *float32, n int, m float32) float32

//go:noescape
func expSumAVX512(x *float32, n int, m float32) float64

func expSub(s []float32, m float32) (float32, bool) {
	if !hasAVX512 {
		return 0, false
	}
	return expSubAVX512(&s[0], len(s), m), true
}

func expSum(x []float32, m float32) (float64, bool) {
	if !hasAVX512 {
		return 0, false
	}
	return expSumAVX512(&x[0], len(x), m), true
}

//go:noescape
func sigmoidAVX512(dst, src *float32, n int)

//go:noescape
func swigluAVX512(x, up *float32, n, kind int)

func sigmoid(dst, src []float32) bool {
	if !hasAVX512 {
		return false
	}
	sigmoidAVX512(&dst[0], &src[0], len(src))
	return true
}

func swiglu(x, up []float32, kind int) bool {
	if !hasAVX512 {
		return false
	}
	var u *float32
	if up != nil {
		u = &up[0]
	}
	swigluAVX512(&x[0], u, len(x), kind)
	return true
}

//go:noescape
func roundHalfAVX512(x *float32, n, kind int)

func roundHalf(x []float32, kind HalfKind) bool {
	if !hasAVX512 {
		return false
	}
	roundHalfAVX512(&x[0], len(x), int(kind))
	return true
}
