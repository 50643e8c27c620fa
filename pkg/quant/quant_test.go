package quant

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

var allBits = []int{2, 3, 4, 5, 6, 8}
var allGroups = []int{32, 64, 128}

func encodeOne(t *testing.T, w []float32, bits int, o Options) (codes []uint32, s, b float32) {
	t.Helper()
	o.Bits, o.GroupSize = bits, len(w)
	q := make([]uint32, PackedCols(len(w), bits))
	sc, bi := make([]float32, 1), make([]float32, 1)
	if err := QuantizeF32(w, len(w), o, q, sc, bi); err != nil {
		t.Fatal(err)
	}
	codes = make([]uint32, len(w))
	for k := range codes {
		codes[k] = Unpack(q, k, bits)
	}
	return codes, sc[0], bi[0]
}

// TestEncoderRules checks MLX's encoder properties on hand-made groups.
func TestEncoderRules(t *testing.T) {
	for _, bits := range allBits {
		n := uint32(1)<<bits - 1
		// A group spanning zero, max side larger: negative scale, bias =
		// max, q = 0 decodes to the max, and 0 decodes to exactly 0.
		w := make([]float32, 32)
		for i := range w {
			w[i] = float32(i)/31*1.5 - 0.5 // [-0.5, 1.0]
		}
		w[10] = 0
		codes, s, b := encodeOne(t, w, bits, Options{})
		if !(s < 0) || b != 1.0 {
			t.Errorf("bits %d: scale %g bias %g, want negative scale and bias = max 1.0", bits, s, b)
		}
		if codes[31] != 0 {
			t.Errorf("bits %d: the max encodes to %d, want 0", bits, codes[31])
		}
		if got := s*float32(codes[10]) + b; got != 0 {
			t.Errorf("bits %d: zero decodes to %g", bits, got)
		}
		// min side larger: positive scale, bias = min, min encodes to 0.
		for i := range w {
			w[i] = -w[i]
		}
		codes, s, b = encodeOne(t, w, bits, Options{})
		if !(s > 0) || b != -1.0 || codes[31] != 0 {
			t.Errorf("bits %d: scale %g bias %g code(min) %d", bits, s, b, codes[31])
		}
		if got := s*float32(codes[10]) + b; got != 0 {
			t.Errorf("bits %d: zero decodes to %g", bits, got)
		}
		// All equal: q0 = rint(v/±1e-7) ≠ 0, so scale = v/q0, bias = v,
		// every code 0, and the group decodes exactly.
		for i := range w {
			w[i] = 0.3
		}
		codes, s, b = encodeOne(t, w, bits, Options{})
		if b != 0.3 || codes[0] != 0 || s*float32(codes[0])+b != 0.3 {
			t.Errorf("bits %d: all-equal group: scale %g bias %g code %d", bits, s, b, codes[0])
		}
		// All zero: q0 = 0 so bias = 0 and scale = −1e-7.
		clear(w)
		codes, s, b = encodeOne(t, w, bits, Options{})
		if b != 0 || s != -eps || codes[5] != 0 {
			t.Errorf("bits %d: zero group: scale %g bias %g", bits, s, b)
		}
		// Every code stays within [0, n].
		for i := range w {
			w[i] = float32(math.Sin(float64(i)))
		}
		codes, _, _ = encodeOne(t, w, bits, Options{})
		for _, c := range codes {
			if c > n {
				t.Fatalf("bits %d: code %d > %d", bits, c, n)
			}
		}
	}
}

// TestRoundHalfEven: with scale exactly −1 and bias 15 (4 bits, group
// values 0..15 in halves), (w − 15)/−1 lands on .5 ties, which rint sends to
// the even neighbour and Metal's round away from zero.
func TestRoundHalfEven(t *testing.T) {
	w := make([]float32, 32)
	for i := range w {
		w[i] = float32(i) * 0.5 // 0, 0.5, …, 15.5? keep within [0, 15]
		if w[i] > 15 {
			w[i] = 15
		}
	}
	codes, s, b := encodeOne(t, w, 4, Options{})
	if s != -1 || b != 15 {
		t.Fatalf("scale %g bias %g, want -1 and 15", s, b)
	}
	// w = 0.5 → 14.5 → 14 (even); w = 1.5 → 13.5 → 14 (even)
	if codes[1] != 14 || codes[3] != 14 {
		t.Errorf("ties: codes %d %d, want 14 14 (half to even)", codes[1], codes[3])
	}
	codes, _, _ = encodeOne(t, w, 4, Options{Metal: true})
	if codes[1] != 15 || codes[3] != 14 {
		t.Errorf("Metal ties: codes %d %d, want 15 14 (half away from zero)", codes[1], codes[3])
	}
}

// TestMetalAllNegative: Metal starts its running max at 0, so an
// all-negative group gets a scale computed from (0 − min).
func TestMetalAllNegative(t *testing.T) {
	w := make([]float32, 32)
	for i := range w {
		w[i] = -1 - float32(i)/31 // [-2, -1]
	}
	_, sCPU, bCPU := encodeOne(t, w, 4, Options{})
	_, sMetal, bMetal := encodeOne(t, w, 4, Options{Metal: true})
	// CPU: s = (−1 − −2)/15, q0 = rint(−2/s) = −30, s = −2/−30.
	if sCPU != float32(-2)/float32(-30) || bCPU != -2 {
		t.Errorf("CPU scale %g bias %g, want -2/-30 and -2", sCPU, bCPU)
	}
	// Metal: s = (0 − −2)/15, q0 = round(−2/s) = −15, s = −2/−15.
	if sMetal != float32(-2)/float32(-15) || bMetal != -2 {
		t.Errorf("Metal scale %g bias %g, want -2/-15 and -2", sMetal, bMetal)
	}
}

func TestNonFinite(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	w := make([]float32, 32)
	for i := range w {
		w[i] = float32(i) / 31
	}
	w[7] = nan
	codes, s, b := encodeOne(t, w, 4, Options{})
	// max 1, min 0: s = −1/15, q0 = rint(1/s) = −15, s = 1/−15, b = 1.
	if codes[7] != 0 || s != float32(1)/float32(-15) || b != 1 {
		t.Errorf("NaN element: code %d scale %g bias %g (NaN must be ignored and encode as 0)", codes[7], s, b)
	}
	w[7] = inf
	codes, s, b = encodeOne(t, w, 4, Options{})
	if s == s || !math.IsInf(float64(b), 1) || codes[0] != 0 || codes[31] != 0 {
		t.Errorf("+inf: scale %g bias %g codes %d %d, want NaN, +inf, 0", s, b, codes[0], codes[31])
	}
	if math.Float32bits(s) != nanF32 {
		t.Errorf("NaN scale not canonical: %#x", math.Float32bits(s))
	}
	w[7] = -inf
	_, s, b = encodeOne(t, w, 4, Options{})
	if s == s || !math.IsInf(float64(b), -1) {
		t.Errorf("-inf: scale %g bias %g", s, b)
	}
	for i := range w {
		w[i] = nan
	}
	_, s, b = encodeOne(t, w, 4, Options{})
	if s == s || !math.IsInf(float64(b), -1) {
		t.Errorf("all NaN: scale %g bias %g, want NaN and -inf", s, b)
	}
	// half outputs use the canonical NaN too
	h := make([]uint16, 32)
	for i := range h {
		h[i] = kernels.F32ToBF16(float32(i))
	}
	h[3] = 0x7f80 // +inf
	q := make([]uint32, 4)
	sc, bi := make([]uint16, 1), make([]uint16, 1)
	if err := QuantizeHalf(h, kernels.BF16, 32, Options{Bits: 4, GroupSize: 32}, q, sc, bi); err != nil {
		t.Fatal(err)
	}
	if sc[0] != nanBF16 || bi[0] != 0x7f80 {
		t.Errorf("bf16 +inf group: scale %#x bias %#x", sc[0], bi[0])
	}
}

// TestPackLayout checks Pack and Unpack against a bit-by-bit construction
// of the LSB-first stream, for every width.
func TestPackLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, bits := range allBits {
		n := 96 // 96·bits is a multiple of 32 for every width
		codes := make([]uint32, n)
		for i := range codes {
			codes[i] = uint32(rng.IntN(1 << bits))
		}
		want := make([]uint32, n*bits/32)
		for j, c := range codes {
			for t := 0; t < bits; t++ {
				if c>>t&1 == 1 {
					pos := j*bits + t
					want[pos/32] |= 1 << (pos % 32)
				}
			}
		}
		got := make([]uint32, len(want))
		Pack(codes, bits, got)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("bits %d word %d: %#x, want %#x", bits, i, got[i], want[i])
			}
		}
		for j, c := range codes {
			if u := Unpack(got, j, bits); u != c {
				t.Fatalf("bits %d: Unpack(%d) = %d, want %d", bits, j, u, c)
			}
		}
	}
	// A known word: 4-bit codes 1..8 → 0x87654321, element 0 lowest.
	w := make([]uint32, 1)
	Pack([]uint32{1, 2, 3, 4, 5, 6, 7, 8}, 4, w)
	if w[0] != 0x87654321 {
		t.Errorf("4-bit word %#x", w[0])
	}
}

func randMatrix(rng *rand.Rand, rows, cols int) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * 0.05)
		if i%97 == 0 {
			w[i] *= 20 // some outliers
		}
	}
	return w
}

// TestErrorBounds: every element decodes to within half a step of its
// value, unless it lies beyond the far end of the group's grid (MLX moves
// the grid so zero is exact), where it decodes to that end; overall no
// element is off by more than one step (max−min)/n. Half-precision scales
// and biases add their rounding (n·|Δs| + |Δb|).
func TestErrorBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows, cols := 8, 256
	w32 := randMatrix(rng, rows, cols)
	for _, kind := range []string{"f32", "bf16", "f16"} {
		w := w32
		var hw []uint16
		var hk kernels.HalfKind
		u := 0.0 // unit roundoff of the scale/bias format
		if kind != "f32" {
			hk = kernels.BF16
			u = math.Ldexp(1, -8)
			if kind == "f16" {
				hk = kernels.F16
				u = math.Ldexp(1, -11)
			}
			hw = make([]uint16, len(w32))
			kernels.F32ToHalfSlice(hw, w32, hk)
			w = make([]float32, len(w32))
			kernels.HalfToF32Slice(w, hw, hk)
		}
		for _, g := range allGroups {
			for _, bits := range allBits {
				o := Options{Bits: bits, GroupSize: g}
				nG := rows * cols / g
				q := make([]uint32, rows*PackedCols(cols, bits))
				out := make([]float32, len(w))
				s32, b32 := make([]float32, nG), make([]float32, nG)
				if kind == "f32" {
					if err := QuantizeF32(w, cols, o, q, s32, b32); err != nil {
						t.Fatal(err)
					}
					if err := DequantizeF32(q, s32, b32, cols, o, out); err != nil {
						t.Fatal(err)
					}
				} else {
					s16, b16 := make([]uint16, nG), make([]uint16, nG)
					if err := QuantizeHalf(hw, hk, cols, o, q, s16, b16); err != nil {
						t.Fatal(err)
					}
					if err := DequantizeHalf(q, s16, b16, hk, cols, o, out); err != nil {
						t.Fatal(err)
					}
					for i := range s16 {
						s32[i], b32[i] = kernels.HalfToF32(s16[i], hk), kernels.HalfToF32(b16[i], hk)
					}
				}
				nb := float64(int(1)<<bits - 1)
				worst := 0.0
				for gi := 0; gi < nG; gi++ {
					grp := w[gi*g : (gi+1)*g]
					lo, hi := math.Inf(1), math.Inf(-1)
					for _, x := range grp {
						lo, hi = math.Min(lo, float64(x)), math.Max(hi, float64(x))
					}
					s, b := float64(s32[gi]), float64(b32[gi])
					a, z := math.Min(b, b+nb*s), math.Max(b, b+nb*s) // grid ends
					slack := u*(nb*math.Abs(s)+math.Abs(b)) + 1e-6*math.Max(math.Abs(lo), math.Abs(hi))
					step := (hi - lo) / nb
					for k, x := range grp {
						xv := float64(x)
						d := math.Abs(float64(out[gi*g+k]) - xv)
						beyond := math.Max(a-xv, xv-z)
						bound := math.Abs(s)/2 + slack
						if beyond > 0 {
							bound += beyond
						}
						if d > bound {
							t.Fatalf("%s g%d b%d group %d elem %d: |%g − %g| = %g > %g", kind, g, bits, gi, k, out[gi*g+k], xv, d, bound)
						}
						if d > step*(1+2*u*nb)+slack {
							t.Fatalf("%s g%d b%d: error %g above one step %g", kind, g, bits, d, step)
						}
						worst = math.Max(worst, d/step)
					}
				}
				if worst > 1.0001+2*u*nb {
					t.Errorf("%s g%d b%d: worst error %.3f steps", kind, g, bits, worst)
				}
			}
		}
	}
}

// TestKernelsDecodeSame: pkg/kernels' QWeight.DequantizeRow reads our
// packing and scales exactly as DequantizeF32/DequantizeHalf do.
func TestKernelsDecodeSame(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	N, K := 6, 384
	w := randMatrix(rng, N, K)
	hw := make([]uint16, len(w))
	kernels.F32ToHalfSlice(hw, w, kernels.BF16)
	for _, g := range allGroups {
		for _, bits := range allBits {
			o := Options{Bits: bits, GroupSize: g}
			nG := N * K / g
			q := make([]uint32, N*PackedCols(K, bits))
			s, b := make([]float32, nG), make([]float32, nG)
			if err := QuantizeF32(w, K, o, q, s, b); err != nil {
				t.Fatal(err)
			}
			ours := make([]float32, N*K)
			DequantizeF32(q, s, b, K, o, ours)
			qw := &kernels.QWeight{N: N, K: K, Bits: bits, GroupSize: g, W: q, ScalesF32: s, BiasesF32: b}
			compareRows(t, "f32", qw, ours)

			hs, hb := make([]uint16, nG), make([]uint16, nG)
			if err := QuantizeHalf(hw, kernels.BF16, K, o, q, hs, hb); err != nil {
				t.Fatal(err)
			}
			DequantizeHalf(q, hs, hb, kernels.BF16, K, o, ours)
			qh := &kernels.QWeight{N: N, K: K, Bits: bits, GroupSize: g, W: q, Scales: hs, Biases: hb, Kind: kernels.BF16}
			compareRows(t, "bf16", qh, ours)
		}
	}
}

func compareRows(t *testing.T, kind string, qw *kernels.QWeight, ours []float32) {
	t.Helper()
	row := make([]float32, qw.K)
	for n := 0; n < qw.N; n++ {
		qw.DequantizeRow(n, row)
		for k, v := range row {
			want := ours[n*qw.K+k]
			// equal up to a fused multiply-add's single rounding
			if d := math.Abs(float64(v - want)); d > 1e-7*math.Abs(float64(want))+1e-12 {
				t.Fatalf("%s b%d g%d row %d col %d: kernels %g, quant %g", kind, qw.Bits, qw.GroupSize, n, k, v, want)
			}
		}
	}
}

func TestValidation(t *testing.T) {
	w := make([]float32, 128)
	q := make([]uint32, 16)
	s, b := make([]float32, 2), make([]float32, 2)
	cases := []struct {
		o    Options
		cols int
		q    []uint32
		s    []float32
		want string
	}{
		{Options{Bits: 7, GroupSize: 64}, 128, q, s, "7 bits is not supported"},
		{Options{Bits: 1, GroupSize: 64}, 128, q, s, "1 bits"},
		{Options{Bits: 4, GroupSize: 16}, 128, q, s, "group size 16"},
		{Options{Bits: 4, GroupSize: 64}, 96, q, s, "96 is not a multiple of the group size 64"},
		{Options{Bits: 4, GroupSize: 64}, 128, q[:15], s, "15 words, want 16"},
		{Options{Bits: 4, GroupSize: 64}, 128, q, s[:1], "want 2"},
	}
	for _, c := range cases {
		err := QuantizeF32(w, c.cols, c.o, c.q, c.s, b[:len(c.s)])
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v cols %d: %v, want %q", c.o, c.cols, err, c.want)
		}
	}
	if err := QuantizeF32(w, 128, Options{}, q, s, b); err != nil { // defaults 4 bits, group 64
		t.Errorf("defaults: %v", err)
	}
}

// TestParallelMatchesSerial: splitting the work over goroutines changes
// nothing (each group is encoded independently).
func TestParallelMatchesSerial(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	rows, cols := 64, 1024
	w := randMatrix(rng, rows, cols)
	o := Options{Bits: 3, GroupSize: 32}
	nG := rows * cols / 32
	q := make([]uint32, rows*PackedCols(cols, 3))
	s, b := make([]float32, nG), make([]float32, nG)
	QuantizeF32(w, cols, o, q, s, b)
	for gi := 0; gi < nG; gi++ {
		q1 := make([]uint32, 3)
		s1, b1 := make([]float32, 1), make([]float32, 1)
		QuantizeF32(w[gi*32:(gi+1)*32], 32, o, q1, s1, b1)
		if s1[0] != s[gi] || b1[0] != b[gi] || q1[0] != q[gi*3] || q1[1] != q[gi*3+1] || q1[2] != q[gi*3+2] {
			t.Fatalf("group %d differs when encoded alone", gi)
		}
	}
}

// TestDequantizeHalfTo: MLX rounds s·q to bf16 before adding the bias.
// s = 1.0078125, q = 255, b = 0.99609375: s·q = 256.9921875 rounds to 256,
// 256 + b rounds to 256 (0x4380); rounding once would give 258 (0x4381).
func TestDequantizeHalfTo(t *testing.T) {
	o := Options{Bits: 8, GroupSize: 32}
	codes := make([]uint32, 32)
	codes[0] = 255
	q := make([]uint32, 8)
	Pack(codes, 8, q)
	s := []uint16{kernels.F32ToBF16(1.0078125)}
	b := []uint16{kernels.F32ToBF16(0.99609375)}
	out := make([]uint16, 32)
	if err := DequantizeHalfTo(q, s, b, kernels.BF16, 32, o, out); err != nil {
		t.Fatal(err)
	}
	if out[0] != 0x4380 {
		t.Errorf("got %#x (%g), want 0x4380 (256)", out[0], kernels.BF16ToF32(out[0]))
	}
	if out[1] != b[0] { // q = 0 decodes to the bias
		t.Errorf("q=0 decodes to %#x, want %#x", out[1], b[0])
	}
	once := make([]float32, 32)
	DequantizeHalf(q, s, b, kernels.BF16, 32, o, once)
	if kernels.F32ToBF16(once[0]) != 0x4381 {
		t.Errorf("single rounding gives %#x, want 0x4381", kernels.F32ToBF16(once[0]))
	}
}
