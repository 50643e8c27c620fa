package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// TestNormKernels checks the AVX-512 row kernels of RMSNorm against their
// portable forms on every tail length: scaleF64 and mulF32 bit for bit,
// sumSqF64 to float64 precision (its summation order differs).
func TestNormKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range append([]int{0, 1, 7, 8, 9, 15, 16, 17, 23, 31, 33, 64}, 896, 4864) {
		x := make([]float32, n)
		w := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * math.Exp(r.NormFloat64()))
			w[i] = float32(r.NormFloat64())
		}
		if got, want := sumSqF64(x), sumSqF64Go(x); math.Abs(got-want) > 1e-14*math.Abs(want) {
			t.Errorf("n=%d: sumSqF64 = %v, portable %v", n, got, want)
		}
		a, b := slices.Clone(x), slices.Clone(x)
		scaleF64(a, 0.3183098861837907)
		scaleF64Go(b, 0.3183098861837907)
		if !slices.Equal(a, b) {
			t.Errorf("n=%d: scaleF64 differs from the portable form", n)
		}
		mulF32(a, w)
		mulF32Go(b, w)
		if !slices.Equal(a, b) {
			t.Errorf("n=%d: mulF32 differs from the portable form", n)
		}
		// the sequential float64 sum the kernel replaced
		var seq float64
		for _, e := range x {
			seq += float64(e) * float64(e)
		}
		if got := sumSqF64(x); math.Abs(got-seq) > 1e-14*math.Abs(seq) {
			t.Errorf("n=%d: sumSqF64 = %v, sequential sum %v", n, got, seq)
		}
	}
}

// TestBinFast checks the AVX-512 add, sub, mul and div against Go's float32
// arithmetic bit for bit (incl. infinities and NaN) on every tail length.
func TestBinFast(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 15, 16, 17, 31, 32, 33, 896} {
		x := make([]float32, n)
		y := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 10)
			y[i] = float32(r.NormFloat64())
		}
		x[0], y[n-1] = float32(math.Inf(1)), 0
		for op := range 4 {
			a := slices.Clone(x)
			if !binFast(a, y, op) {
				t.Skip("no AVX-512 here")
			}
			for i := range x {
				var want float32
				switch op {
				case 0:
					want = x[i] + y[i]
				case 1:
					want = x[i] - y[i]
				case 2:
					want = x[i] * y[i]
				case 3:
					want = x[i] / y[i]
				}
				if math.Float32bits(a[i]) != math.Float32bits(want) && !(want != want && a[i] != a[i]) {
					t.Fatalf("n=%d op %d: element %d = %v, want %v", n, op, i, a[i], want)
				}
			}
		}
	}
}

// TestRoundHalfFast checks the in-place AVX-512 rounding to bf16 and f16
// against the scalar conversions bit for bit, incl. ties, NaN, infinities,
// subnormals and values past f16's range, on every tail length.
func TestRoundHalfFast(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0x7f800001), 1e-40, -3e-39, 65504, 65520, 1e6,
		math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000), 5.96e-8, 3e-8}
	for _, n := range []int{1, 5, 15, 16, 17, 33, 100} {
		x := make([]float32, n)
		for i := range x {
			if i < len(special) && n >= len(special) {
				x[i] = special[i]
				continue
			}
			x[i] = float32(r.NormFloat64() * math.Exp(3*r.NormFloat64()))
		}
		for kind := range 2 {
			a := slices.Clone(x)
			if !roundHalfFast(a, kind) {
				t.Skip("no AVX-512 here")
			}
			for i, v := range x {
				var want float32
				if kind == 0 {
					want = math.Float32frombits(uint32(kernels.F32ToBF16(v)) << 16)
				} else {
					want = kernels.F16ToF32(kernels.F32ToF16(v))
				}
				if math.Float32bits(a[i]) != math.Float32bits(want) {
					t.Fatalf("n=%d kind %d: %v (%#x) rounds to %#x, want %#x", n, kind, v, math.Float32bits(v), math.Float32bits(a[i]), math.Float32bits(want))
				}
			}
		}
	}
}
