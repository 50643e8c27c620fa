package gguf

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// refQ8_0 and refQ4_0 transcribe ggml's quantize_row_q8_0_ref and
// quantize_row_q4_0_ref (ggml-quants.c) operation by operation, in float32,
// one block at a time, returning (f16 scale bits, quants) rather than bytes.
func refQ8_0(x []float32) (uint16, [32]int8) {
	var amax float32
	for j := 0; j < 32; j++ {
		v := x[j]
		if v < 0 {
			v = -v
		}
		if v > amax {
			amax = v
		}
	}
	d := amax / float32((1<<7)-1)
	id := float32(0)
	if d != 0 {
		id = float32(1.0) / d
	}
	var q [32]int8
	for j := 0; j < 32; j++ {
		x0 := float32(x[j] * id)
		// roundf: half away from zero
		r := math.Floor(math.Abs(float64(x0)) + 0.5)
		if x0 < 0 {
			r = -r
		}
		q[j] = int8(r)
	}
	return kernels.F32ToF16(d), q
}

func refQ4_0(x []float32) (uint16, [32]uint8) {
	var amax, maxv float32
	for j := 0; j < 32; j++ {
		v := x[j]
		if float32(math.Abs(float64(v))) > amax {
			amax = float32(math.Abs(float64(v)))
			maxv = v
		}
	}
	d := maxv / -8
	id := float32(0)
	if d != 0 {
		id = float32(1.0) / d
	}
	var q [32]uint8
	for j := 0; j < 32; j++ {
		x0 := float32(x[j] * id)
		xi := int(float32(x0 + 8.5)) // (int8_t) truncates toward zero
		if xi > 15 {
			xi = 15
		}
		q[j] = uint8(xi)
	}
	return kernels.F32ToF16(d), q
}

func randBlocks(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		switch r.IntN(8) {
		case 0:
			x[i] = 0
		case 1:
			x[i] = float32(r.IntN(33) - 16) // exact ties are likely
		case 2:
			x[i] = float32(r.NormFloat64() * 1e-3)
		default:
			x[i] = float32(r.NormFloat64())
		}
	}
	// a zero block and a constant block
	for j := 0; j < 32; j++ {
		x[j] = 0
		x[32+j] = -0.75
	}
	return x
}

func TestQ8_0MatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randBlocks(r, 32*200)
	out := make([]byte, len(x)/32*34)
	QuantizeQ8_0(out, x)
	for b := 0; b < len(x)/32; b++ {
		d, q := refQ8_0(x[b*32:])
		y := out[b*34:]
		if got := binary.LittleEndian.Uint16(y); got != d {
			t.Fatalf("block %d: d %#04x, ref %#04x", b, got, d)
		}
		for j := 0; j < 32; j++ {
			if int8(y[2+j]) != q[j] {
				t.Fatalf("block %d[%d]: q %d, ref %d (x=%g)", b, j, int8(y[2+j]), q[j], x[b*32+j])
			}
		}
	}
}

func TestQ4_0MatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := randBlocks(r, 32*200)
	out := make([]byte, len(x)/32*18)
	QuantizeQ4_0(out, x)
	for b := 0; b < len(x)/32; b++ {
		d, q := refQ4_0(x[b*32:])
		y := out[b*18:]
		if got := binary.LittleEndian.Uint16(y); got != d {
			t.Fatalf("block %d: d %#04x, ref %#04x", b, got, d)
		}
		for j := 0; j < 16; j++ {
			if lo, hi := y[2+j]&15, y[2+j]>>4; lo != q[j] || hi != q[j+16] {
				t.Fatalf("block %d byte %d: nibbles %d,%d, ref %d,%d", b, j, lo, hi, q[j], q[j+16])
			}
		}
	}
}

// Blocks worked out by hand from ggml's algorithm.
func TestQ8_0HandBlocks(t *testing.T) {
	// amax 127 -> d = 1 (f16 0x3C00), id = 1: q = round-half-away(x).
	x := make([]float32, 32)
	copy(x, []float32{127, 2.5, -2.5, 0.5, -0.49, -127, 3.49})
	out := make([]byte, 34)
	QuantizeQ8_0(out, x)
	if d := binary.LittleEndian.Uint16(out); d != 0x3C00 {
		t.Fatalf("d = %#04x, want 0x3C00", d)
	}
	want := []int8{127, 3, -3, 1, 0, -127, 3}
	for j, w := range want {
		if int8(out[2+j]) != w {
			t.Errorf("q[%d] = %d, want %d", j, int8(out[2+j]), w)
		}
	}
	// x = j-16: amax 16, d = 16/127 -> f16 0x3008 (2^-3 * (1+8/1024)),
	// id = 7.9375: -16 -> -127, 1 -> 8, 2 -> 16 (15.875), 15 -> 119 (119.06).
	for j := range x {
		x[j] = float32(j - 16)
	}
	QuantizeQ8_0(out, x)
	if d := binary.LittleEndian.Uint16(out); d != 0x3008 {
		t.Fatalf("d = %#04x, want 0x3008", d)
	}
	for j, w := range map[int]int8{0: -127, 15: -8, 16: 0, 17: 8, 18: 16, 31: 119} {
		if int8(out[2+j]) != w {
			t.Errorf("q[%d] = %d, want %d", j, int8(out[2+j]), w)
		}
	}
}

func TestQ4_0HandBlocks(t *testing.T) {
	// largest magnitude -8 -> d = 1 (0x3C00), q = min(15, trunc(x+8.5)).
	x := make([]float32, 32)
	copy(x, []float32{-8, 7, 0, 0.5, -0.5, 3.2, 7.4})
	x[16], x[17] = 1, -3
	out := make([]byte, 18)
	QuantizeQ4_0(out, x)
	if d := binary.LittleEndian.Uint16(out); d != 0x3C00 {
		t.Fatalf("d = %#04x, want 0x3C00", d)
	}
	// byte j = q[j] | q[j+16]<<4; x[7..15] = 0 -> 8, x[18..31] = 0 -> 8
	want := []byte{0 | 9<<4, 15 | 5<<4, 8 | 8<<4, 9 | 8<<4, 8 | 8<<4, 11 | 8<<4, 15 | 8<<4, 8 | 8<<4}
	for j, w := range want {
		if out[2+j] != w {
			t.Errorf("byte %d = %#02x, want %#02x", j, out[2+j], w)
		}
	}
	// largest magnitude +8 (first of ±8) -> d = -1 (0xBC00): 8 -> 0, -8 -> 16.5 clamps to 15.
	for j := range x {
		x[j] = 0
	}
	x[0], x[1] = 8, -8
	QuantizeQ4_0(out, x)
	if d := binary.LittleEndian.Uint16(out); d != 0xBC00 {
		t.Fatalf("d = %#04x, want 0xBC00", d)
	}
	if out[2]&15 != 0 || out[3]&15 != 15 {
		t.Errorf("q = %d, %d, want 0, 15", out[2]&15, out[3]&15)
	}
}

// TestDecodeErrorBounds round-trips random data and checks each format's
// error bound:
//
//	F16:  |x - x'| <= 2^-11 |x|   (normal range)
//	BF16: |x - x'| <= 2^-8 |x|
//	Q8_0: |x - x'| <= d/2 + 127 |d - d16|, d = amax/127, d16 = stored f16 scale
//	Q4_0: |x - x'| <= |d|/2 + 8 |d - d16| for all but an element equal to
//	      -m (which clamps from +8 to +7): |d| + 8 |d - d16|, d = m/-8
func TestDecodeErrorBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := randBlocks(r, 32*64)
	for _, typ := range []Type{F32, F16, BF16, Q8_0, Q4_0} {
		b, err := Encode(nil, typ, x)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := typ.RowSize(len(x)); len(b) != want {
			t.Fatalf("%v: %d bytes, want %d", typ, len(b), want)
		}
		y, err := Decode(typ, b, len(x))
		if err != nil {
			t.Fatal(err)
		}
		for i := range x {
			e := math.Abs(float64(x[i]) - float64(y[i]))
			var bound float64
			blk := x[i/32*32 : i/32*32+32]
			switch typ {
			case F32:
				bound = 0
			case F16:
				bound = math.Abs(float64(x[i]))*math.Ldexp(1, -11) + math.Ldexp(1, -25)
			case BF16:
				bound = math.Abs(float64(x[i])) * math.Ldexp(1, -8)
			case Q8_0:
				var amax float64
				for _, v := range blk {
					amax = max(amax, math.Abs(float64(v)))
				}
				d := amax / 127
				d16 := float64(kernels.F16ToF32(binary.LittleEndian.Uint16(b[i/32*34:])))
				bound = d/2 + 127*math.Abs(d-d16) + 1e-6*d
			case Q4_0:
				var m float64
				for _, v := range blk {
					if math.Abs(float64(v)) > math.Abs(m) {
						m = float64(v)
					}
				}
				d := m / -8
				d16 := float64(kernels.F16ToF32(binary.LittleEndian.Uint16(b[i/32*18:])))
				bound = math.Abs(d)/2 + 8*math.Abs(d-d16) + 1e-6*math.Abs(d)
				if float64(x[i]) == -m && m != 0 {
					bound += math.Abs(d) / 2
				}
			}
			if e > bound {
				t.Fatalf("%v: x[%d]=%g decoded %g, error %g > bound %g", typ, i, x[i], y[i], e, bound)
			}
		}
	}
}

func TestEncodeRejectsPartialBlock(t *testing.T) {
	if _, err := Encode(nil, Q8_0, make([]float32, 40)); err == nil {
		t.Fatal("Q8_0 of 40 values: no error")
	}
	if _, err := Encode(nil, Type(99), make([]float32, 4)); err == nil {
		t.Fatal("unknown type: no error")
	}
}
