package cpu

import "math"

// expf is a float32 exp (Cephes' polynomial after ln2 range reduction),
// within 2 ulp of the rounded true value; inputs below -87.3 (and -inf)
// give 0. It keeps the softmax loops of attention and Softmax off
// float64 math.Exp.
func expf(x float32) float32 {
	if x < -87.3 {
		return 0
	}
	if x > 88.7 {
		return float32(math.Inf(1))
	}
	const log2e = 1.44269504088896341
	t := x*log2e + 0.5
	n := int32(t)
	if float32(n) > t {
		n--
	}
	fn := float32(n)
	r := x - fn*0.693359375 - fn*(-2.12194440e-4)
	p := ((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(n+127)<<23)
}
