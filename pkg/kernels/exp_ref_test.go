package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// A scalar float32 Cephes expf, op for op as the vector kernels (AVX-512
// in exp_amd64.s, NEON in exp_arm64.s) compute it, with every fused
// multiply-add rounded once (fma32). The vector kernels must match it bit
// for bit (no 1-ulp allowance anywhere): both ISAs have the same fused
// operations, a floor for the range reduction (VRNDSCALEPS $9, FRINTM), and
// the 2^n scaling is exact because the clamp keeps every result normal; the
// sums add in the same lane order. Runs wherever a kernel exists (AVX-512 on
// amd64, NEON on arm64 under scripts/test-kernels-arm64.sh) and skips
// elsewhere.

var (
	cephLo    = math.Float32frombits(0xc2ae999a) // −87.3
	cephHi    = math.Float32frombits(0x42b16666) // 88.7
	cephLog2e = math.Float32frombits(0x3fb8aa3b)
	cephC1    = math.Float32frombits(0x3f318000)
	cephC2    = math.Float32frombits(0xb95e8083)
	cephP     = [6]float32{
		math.Float32frombits(0x39506967), math.Float32frombits(0x3ab743ce),
		math.Float32frombits(0x3c088908), math.Float32frombits(0x3d2aa9c1),
		math.Float32frombits(0x3e2aaaaa), 0.5,
	}
)

// fma32 is a·b+c rounded once to float32. a·b is exact in float64; the
// float64 sum s and its error e (TwoSum) hold a·b+c exactly, and rounding
// s to float32 is right unless s sits exactly halfway between two float32
// with e ≠ 0, where e's sign decides.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	bb := s - p
	e := (p - (s - bb)) + (float64(c) - bb)
	f := float32(s)
	if e == 0 || float64(f) == s || math.IsInf(s, 0) || math.IsNaN(s) {
		return f
	}
	g := math.Nextafter32(f, float32(math.Inf(1)))
	if float64(f) > s {
		g = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	if (float64(f)+float64(g))/2 != s {
		return f
	}
	if (e > 0) == (float64(g) > float64(f)) {
		return g
	}
	return f
}

// refCephes is e^x for x in [cephLo, cephHi] or NaN.
func refCephes(x float32) float32 {
	if x != x {
		return x
	}
	fx := float32(math.Floor(float64(fma32(x, cephLog2e, 0.5))))
	x = fma32(-fx, cephC1, x)
	x = fma32(-fx, cephC2, x)
	y := fma32(cephP[0], x, cephP[1])
	for _, p := range cephP[2:] {
		y = fma32(y, x, p)
	}
	z := float32(x * x)
	y = fma32(y, z, x)
	y = float32(y + 1)
	return float32(math.Ldexp(float64(y), int(fx)))
}

// refExpM is ExpSub's term e^(v−m): 0 below −87.3, clamped above 88.7.
func refExpM(v, m float32) float32 {
	x := v - m
	if x < cephLo {
		return 0
	}
	if x > cephHi {
		x = cephHi
	}
	return refCephes(x)
}

// refSigmoid is Sigmoid's 1/(1+e^−x), −x clamped to [−87.3, 88.7].
func refSigmoid(v float32) float32 {
	x := -v
	if x < cephLo {
		x = cephLo
	}
	if x > cephHi {
		x = cephHi
	}
	return float32(1 / float32(refCephes(x)+1))
}

// refRound rounds to kind's precision (0 bf16, 1 f16, 2 none).
func refRound(v float32, kind int) float32 {
	switch kind {
	case 0:
		return BF16ToF32(F32ToBF16(v))
	case 1:
		return F16ToF32(F32ToF16(v))
	}
	return v
}

// refSum16 adds terms into 16 lanes (element i into lane i%16) and reduces
// them as the kernels do: halves, quarters, lanes 0+2 and 1+3, the two.
func refSum16[T float32 | float64](terms []float32) T {
	var a [16]T
	for i, v := range terms {
		a[i%16] += T(v)
	}
	var b [8]T
	for i := range b {
		b[i] = a[i] + a[i+8]
	}
	c0, c1, c2, c3 := b[0]+b[4], b[1]+b[5], b[2]+b[6], b[3]+b[7]
	return (c0 + c2) + (c1 + c3)
}

// sameF32 is bit equality, any NaN matching any NaN.
func sameF32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// expTestLengths are every tail length around one and two vectors, and a
// long row.
var expTestLengths = func() []int {
	var ns []int
	for n := 1; n <= 33; n++ {
		ns = append(ns, n)
	}
	return append(ns, 1000)
}()

// expTestInput fills n values around scale with the special ones spread
// over bulk and tail positions.
func expTestInput(r *rand.Rand, n int, scale float64, specials []float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
		if i%5 == 2 || n < 4 {
			x[i] = specials[(i/5+n+i)%len(specials)]
		}
	}
	return x
}

// noExpKernel ends a test whose kernel answered false: a failure where one
// should exist (AVX-512 on amd64, NEON on arm64), else a skip.
func noExpKernel(t *testing.T) {
	t.Helper()
	if hasAVX512 || runtime.GOARCH == "arm64" {
		t.Fatal("the vector kernel answered false")
	}
	t.Skip("no vector kernel here")
}

var (
	nan32  = float32(math.NaN())
	inf32  = float32(math.Inf(1))
	tiny32 = math.Float32frombits(1) // smallest subnormal
)

func TestExpSubSumRef(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	specials := []float32{-inf32, nan32, 88.8, -88.8, cephLo, cephHi, -87.31, 0, -tiny32,
		1e-40, math.Float32frombits(0x80000000), 3 * float32(math.Ln2) / 2, 100, -1e30}
	for _, n := range expTestLengths {
		for _, m := range []float32{0, 2.5, -3} {
			x := expTestInput(r, n, 20, specials)
			s := append([]float32(nil), x...)
			sum, ok := ExpSub(s, m)
			if !ok {
				noExpKernel(t)
			}
			want := make([]float32, n)
			for i, v := range x {
				want[i] = refExpM(v, m)
				if !sameF32(s[i], want[i]) {
					t.Fatalf("n=%d m=%v: ExpSub e^(%v−m) = %v (%#x), want %v (%#x)",
						n, m, v, s[i], math.Float32bits(s[i]), want[i], math.Float32bits(want[i]))
				}
			}
			if ws := refSum16[float32](want); !sameF32(sum, ws) {
				t.Errorf("n=%d m=%v: ExpSub sum = %v, want %v", n, m, sum, ws)
			}
			orig := append([]float32(nil), x...)
			sum64, _ := ExpSum(x, m)
			for i := range x {
				if !sameF32(x[i], orig[i]) {
					t.Fatalf("n=%d: ExpSum changed x[%d]", n, i)
				}
			}
			if ws := refSum16[float64](want); sum64 != ws && !(sum64 != sum64 && ws != ws) {
				t.Errorf("n=%d m=%v: ExpSum = %v, want %v", n, m, sum64, ws)
			}
		}
	}
}

func TestSigmoidRef(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	// −87, −88.8 and −1e30 give subnormal results.
	specials := []float32{-inf32, inf32, nan32, 88.8, -88.8, -87, -86.5, 87.3, 1e-40, -tiny32,
		0, math.Float32frombits(0x80000000), 15, -15}
	for _, n := range expTestLengths {
		src := expTestInput(r, n, 6, specials)
		dst := make([]float32, n+1)
		dst[n] = 42
		if !Sigmoid(dst, src) {
			noExpKernel(t)
		}
		if dst[n] != 42 {
			t.Fatalf("n=%d: Sigmoid wrote past len(src)", n)
		}
		for i, v := range src {
			if want := refSigmoid(v); !sameF32(dst[i], want) {
				t.Fatalf("n=%d: sigmoid(%v) = %v (%#x), want %v (%#x)",
					n, v, dst[i], math.Float32bits(dst[i]), want, math.Float32bits(want))
			}
		}
		in := append([]float32(nil), src...)
		Sigmoid(in, in) // in place
		for i := range in {
			if !sameF32(in[i], dst[i]) {
				t.Fatalf("n=%d: in-place sigmoid differs at %d", n, i)
			}
		}
	}
}

func TestSwiGLURef(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	specials := []float32{-inf32, inf32, nan32, 88.8, -88.8, -87, 1e-40, 0, 3, -2.75}
	for _, n := range expTestLengths {
		for kind := 0; kind < 3; kind++ {
			for _, withUp := range []bool{false, true} {
				x := expTestInput(r, n, 4, specials)
				var up []float32
				if withUp {
					up = expTestInput(r, n, 3, []float32{nan32, -inf32, 1e-30, 7})
				}
				got := append([]float32(nil), x...)
				if !SwiGLU(got, up, kind) {
					noExpKernel(t)
				}
				for i, v := range x {
					p := float32(v * refRound(refSigmoid(v), kind))
					if withUp {
						p = float32(refRound(p, kind) * up[i])
					}
					if !sameF32(got[i], p) {
						t.Fatalf("n=%d kind=%d up=%v: swiglu(%v) = %v (%#x), want %v (%#x)",
							n, kind, withUp, v, got[i], math.Float32bits(got[i]), p, math.Float32bits(p))
					}
				}
			}
		}
	}
}

func TestRoundHalfRef(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	specials := []float32{-inf32, inf32, nan32, math.Float32frombits(0x7f800001), // signalling NaN
		math.Float32frombits(0xffc12345), math.Float32frombits(0x3f808000), // bf16 tie, even
		math.Float32frombits(0x3f818000), 65504, 65520, 1e-7, 3e-8, 1e-40, -tiny32,
		math.Float32frombits(0x7f7fffff)}
	for _, n := range expTestLengths {
		for _, kind := range []HalfKind{BF16, F16} {
			x := expTestInput(r, n, 100, specials)
			got := append([]float32(nil), x...)
			if !RoundHalf(got, kind) {
				noExpKernel(t)
			}
			for i, v := range x {
				want := refRound(v, int(kind))
				ok := math.Float32bits(got[i]) == math.Float32bits(want)
				if kind == F16 && want != want { // f16 NaN payloads may differ
					ok = got[i] != got[i]
				}
				if !ok {
					t.Fatalf("n=%d kind=%v: round(%v %#x) = %#x, want %#x",
						n, kind, v, math.Float32bits(v), math.Float32bits(got[i]), math.Float32bits(want))
				}
			}
		}
	}
}
