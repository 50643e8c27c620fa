package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestExpSumSub checks ExpSub and ExpSum against float64 math on every
// tail length, with -inf, very negative and NaN-free inputs: each term
// within float32 expf accuracy, ExpSum's total within float64 rounding of
// the float32 terms' exact sum, and ExpSum equal to the sum of ExpSub's
// terms (same per-term values) and leaving x unchanged.
func TestExpSumSub(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 7, 15, 16, 17, 33, 1000, 151936} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 8)
		}
		x[0] = float32(math.Inf(-1))
		if n > 2 {
			x[n-1] = -200
		}
		m := slices.Max(x)
		orig := slices.Clone(x)
		sum, ok := ExpSum(x, m)
		if !ok {
			t.Skip("no AVX-512 here")
		}
		if !slices.Equal(x, orig) {
			t.Fatalf("n=%d: ExpSum changed its input", n)
		}
		terms := slices.Clone(x)
		s32, _ := ExpSub(terms, m)
		var exact, ref float64
		for i, v := range orig {
			want := math.Exp(float64(v - m))
			if d := math.Abs(float64(terms[i]) - want); d > 3e-7*want+1e-45 {
				t.Fatalf("n=%d: e^(%v−%v) = %v, want %v", n, v, m, terms[i], want)
			}
			exact += float64(terms[i])
			ref += want
		}
		if math.Abs(sum-exact) > 1e-12*exact {
			t.Errorf("n=%d: ExpSum = %v, sum of its terms %v", n, sum, exact)
		}
		if math.Abs(float64(s32)-exact) > 1e-5*exact {
			t.Errorf("n=%d: ExpSub's float32 sum = %v, want %v", n, s32, exact)
		}
		if math.Abs(sum-ref) > 1e-6*ref {
			t.Errorf("n=%d: ExpSum = %v, float64 reference %v", n, sum, ref)
		}
	}
}
