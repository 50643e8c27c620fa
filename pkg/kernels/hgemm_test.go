package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestHGemm checks HGemm (GEMV path for few rows, widen+Sgemm for many)
// against float64 on odd shapes for both half kinds. The f32 evaluation in
// any order is within (K+2)·eps32·Σ|w·x| of the exact value.
func TestHGemm(t *testing.T) { forEachLevel(t, testHGemm) }

func testHGemm(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, kind := range []HalfKind{BF16, F16} {
		for _, sh := range [][2]int{{1, 1}, {37, 15}, {45, 100}, {67, 515}, {3, 1024}} {
			N, K := sh[0], sh[1]
			W := make([]uint16, N*K)
			F32ToHalfSlice(W, randF32(r, N*K), kind)
			for _, M := range []int{1, 3, hgemmGemmMinM + 1} {
				name := fmt.Sprintf("kind=%d/M=%d/N=%d/K=%d", kind, M, N, K)
				X := randF32(r, M*K)
				Y := make([]float32, M*N)
				HGemm(Y, X, M, N, K, W, kind)
				for m := 0; m < M; m++ {
					for n := 0; n < N; n++ {
						var exact, mag float64
						for k := 0; k < K; k++ {
							p := float64(HalfToF32(W[n*K+k], kind)) * float64(X[m*K+k])
							exact += p
							mag += math.Abs(p)
						}
						tol := float64(K+2) * 0x1p-23 * mag
						if d := math.Abs(float64(Y[m*N+n]) - exact); !(d <= tol) {
							t.Fatalf("%s: Y[%d,%d] = %v, want %v (|diff| %g > %g)", name, m, n, Y[m*N+n], exact, d, tol)
						}
					}
				}
			}
		}
	}
}

// TestHalfSlices checks the fast slice conversions against the scalar
// ones: every half widens exactly; narrowing matches bit for bit on random,
// subnormal, overflowing, infinite and tie values (NaNs stay NaNs), at
// lengths that exercise the vector tails and the parallel split.
func TestHalfSlices(t *testing.T) { forEachLevel(t, testHalfSlices) }

func testHalfSlices(t *testing.T) {
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	for _, kind := range []HalfKind{BF16, F16} {
		got := make([]float32, len(all))
		HalfToF32Slice(got, all, kind)
		for i, h := range all {
			want := HalfToF32(h, kind)
			if math.Float32bits(got[i]) != math.Float32bits(want) && !(isNaN32(got[i]) && isNaN32(want)) {
				t.Fatalf("kind %d: widen %#04x = %v, want %v", kind, h, got[i], want)
			}
		}
	}
	r := rand.New(rand.NewPCG(15, 16))
	src := make([]float32, 3*convGrain+17)
	for i := range src {
		switch i % 5 {
		case 0:
			src[i] = float32(r.NormFloat64())
		case 1:
			src[i] = math.Float32frombits(r.Uint32()) // anything, NaNs included
		case 2:
			src[i] = float32(r.NormFloat64() * 1e-6) // f16 subnormals
		case 3:
			src[i] = float32(r.NormFloat64() * 7e4) // f16 overflow
		default:
			src[i] = math.Float32frombits(r.Uint32()&0xffff0000 | 0x8000) // bf16 ties
		}
	}
	src[0], src[1] = float32(math.Inf(1)), float32(math.Inf(-1))
	for _, n := range []int{0, 1, 15, 16, 33, len(src)} {
		for _, kind := range []HalfKind{BF16, F16} {
			dst := make([]uint16, n+1)
			dst[n] = 0xabcd
			F32ToHalfSlice(dst[:n], src[:n], kind)
			if dst[n] != 0xabcd {
				t.Fatalf("kind %d n %d: wrote past the end", kind, n)
			}
			for i, f := range src[:n] {
				var want uint16
				if kind == BF16 {
					want = F32ToBF16(f)
				} else {
					want = F32ToF16(f)
				}
				if isNaN32(f) {
					if !isNaN32(HalfToF32(dst[i], kind)) {
						t.Fatalf("kind %d: NaN %#08x narrowed to %#04x", kind, math.Float32bits(f), dst[i])
					}
					continue
				}
				if dst[i] != want {
					t.Fatalf("kind %d: narrow %#08x = %#04x, want %#04x", kind, math.Float32bits(f), dst[i], want)
				}
			}
		}
	}
}

func isNaN32(f float32) bool { return f != f }
