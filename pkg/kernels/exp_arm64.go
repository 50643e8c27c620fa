//go:build arm64

package kernels

// NEON exponentials (exp_arm64.s), bit-identical with the AVX-512 ones.
// The assembly takes whole vectors (16 floats for the sums, whose lanes
// mirror the AVX-512 accumulator, 4 otherwise); the wrappers run the last
// few through the same kernels in a zero-padded buffer, so every element
// gets the same arithmetic. Untimed: written and tested under qemu.

//go:noescape
func expSubNEON(s *float32, n int, m float32, acc *[16]float32) // n % 16 == 0

//go:noescape
func expSumNEON(x *float32, n int, m float32, acc *[16]float64) // n % 16 == 0

//go:noescape
func sigmoidNEON(dst, src *float32, n int) // n % 4 == 0

//go:noescape
func swigluNEON(x, up *float32, n, kind int) // n % 4 == 0

//go:noescape
func roundHalfNEON(x *float32, n, kind int) // n % 4 == 0

// sum16 adds the 16 lanes in the AVX-512 kernel's reduction order (halves,
// then quarters, then lanes 0+2 and 1+3, then the two).
func sum16(a *[16]float32) float32 {
	var b [8]float32
	for i := range b {
		b[i] = a[i] + a[i+8]
	}
	c0, c1, c2, c3 := b[0]+b[4], b[1]+b[5], b[2]+b[6], b[3]+b[7]
	return (c0 + c2) + (c1 + c3)
}

// sum16d is sum16 in float64.
func sum16d(a *[16]float64) float64 {
	var b [8]float64
	for i := range b {
		b[i] = a[i] + a[i+8]
	}
	c0, c1, c2, c3 := b[0]+b[4], b[1]+b[5], b[2]+b[6], b[3]+b[7]
	return (c0 + c2) + (c1 + c3)
}

func expSub(s []float32, m float32) (float32, bool) {
	if !hasNEON {
		return 0, false
	}
	var acc [16]float32
	n16 := len(s) &^ 15
	if n16 > 0 {
		expSubNEON(&s[0], n16, m, &acc)
	}
	if r := len(s) - n16; r > 0 {
		var buf, zero [16]float32
		copy(buf[:], s[n16:])
		expSubNEON(&buf[0], 16, m, &zero)
		copy(s[n16:], buf[:r])
		for i := range r {
			acc[i] += buf[i]
		}
	}
	return sum16(&acc), true
}

func expSum(x []float32, m float32) (float64, bool) {
	if !hasNEON {
		return 0, false
	}
	var acc [16]float64
	n16 := len(x) &^ 15
	if n16 > 0 {
		expSumNEON(&x[0], n16, m, &acc)
	}
	if r := len(x) - n16; r > 0 {
		var buf, zero [16]float32
		copy(buf[:], x[n16:])
		expSubNEON(&buf[0], 16, m, &zero)
		for i := range r {
			acc[i] += float64(buf[i])
		}
	}
	return sum16d(&acc), true
}

func sigmoid(dst, src []float32) bool {
	if !hasNEON {
		return false
	}
	n4 := len(src) &^ 3
	if n4 > 0 {
		sigmoidNEON(&dst[0], &src[0], n4)
	}
	if r := len(src) - n4; r > 0 {
		var buf [4]float32
		copy(buf[:], src[n4:])
		sigmoidNEON(&buf[0], &buf[0], 4)
		copy(dst[n4:len(src)], buf[:r])
	}
	return true
}

func swiglu(x, up []float32, kind int) bool {
	if !hasNEON {
		return false
	}
	n4 := len(x) &^ 3
	if n4 > 0 {
		var u *float32
		if up != nil {
			u = &up[0]
		}
		swigluNEON(&x[0], u, n4, kind)
	}
	if r := len(x) - n4; r > 0 {
		var buf, ubuf [4]float32
		copy(buf[:], x[n4:])
		var u *float32
		if up != nil {
			copy(ubuf[:], up[n4:len(x)])
			u = &ubuf[0]
		}
		swigluNEON(&buf[0], u, 4, kind)
		copy(x[n4:], buf[:r])
	}
	return true
}

func roundHalf(x []float32, kind HalfKind) bool {
	if !hasNEON {
		return false
	}
	n4 := len(x) &^ 3
	if n4 > 0 {
		roundHalfNEON(&x[0], n4, int(kind))
	}
	if r := len(x) - n4; r > 0 {
		var buf [4]float32
		copy(buf[:], x[n4:])
		roundHalfNEON(&buf[0], 4, int(kind))
		copy(x[n4:], buf[:r])
	}
	return true
}
