package nn_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// A port of MLX's CPU fp_quantize_dequantize (mlx/backend/cpu/quantized.cpp)
// with its helpers to_fp8_e8m0, to_fp4_e2m1 and detail::ToFP8.

var fp4LUT = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6}

func toFP8(f float32) uint8 {
	bits := math.Float32bits(f)
	sign := bits & 0x80000000
	bits ^= sign
	var r uint8
	switch {
	case bits >= 543<<21:
		r = 0x7e
	case bits < 121<<23:
		const denorm = uint32(141) << 23
		low := math.Float32bits(math.Float32frombits(bits) + math.Float32frombits(denorm))
		r = uint8(low - denorm)
	default:
		odd := (bits >> 20) & 1
		r = uint8((bits - 120<<23 + 0x7ffff + odd) >> 20)
	}
	return r | uint8(sign>>24)
}

func fromFP8(c uint8) float32 {
	e, m := int(c>>3)&15, float64(c&7)
	v := math.Ldexp(m/8, -6)
	if e > 0 {
		v = math.Ldexp(1+m/8, e-7)
	}
	if c&0x80 != 0 {
		v = -v
	}
	return float32(v)
}

func toE8M0(x float32) uint8 {
	if x < 0 {
		return 0
	}
	n := -127.0
	if x > 0 {
		n = math.Round(float64(float32(math.Log2(float64(x)))))
	}
	return uint8(min(max(n, -127), 127) + 127)
}

func toFP4(x float32) uint8 {
	sign := uint8(0)
	if math.Signbit(float64(x)) {
		sign = 8
	}
	x = float32(math.Abs(float64(x)))
	var b uint8
	switch {
	case x > 5:
		b = 7
	case x >= 3.5:
		b = 6
	case x > 2.5:
		b = 5
	case x >= 1.75:
		b = 4
	case x > 1.25:
		b = 3
	case x >= 0.75:
		b = 2
	case x > 0.25:
		b = 1
	}
	return b | sign
}

func mlxQDQ(w []float32, bits, group int) []float32 {
	out := make([]float32, len(w))
	for i := 0; i < len(w); i += group {
		var scale float32
		for _, v := range w[i : i+group] {
			scale = max(scale, float32(math.Abs(float64(v))))
		}
		if bits == 4 {
			scale /= 6
		} else {
			scale /= 448
		}
		if group == 16 {
			scale = fromFP8(toFP8(scale))
		} else {
			scale = float32(math.Ldexp(1, int(toE8M0(scale))-127))
		}
		for j, v := range w[i : i+group] {
			var el float32
			if scale != 0 {
				el = v / scale
			}
			var o float32
			if bits == 8 {
				o = fromFP8(toFP8(el))
			} else {
				o = fp4LUT[toFP4(el)]
			}
			out[i+j] = scale * o
		}
	}
	return out
}

// TestQuantizeDequantize: nn.QuantizeDequantize equals MLX's
// fp_quantize_dequantize bit for bit, on random values and on the rounding
// ties of each format.
func TestQuantizeDequantize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		mode        string
		group, bits int
	}{{"mxfp4", 32, 4}, {"nvfp4", 16, 4}, {"mxfp8", 32, 8}} {
		var x []float32
		// random groups at several magnitudes
		for g := range 12 {
			mag := math.Ldexp(1, g-6)
			for range c.group {
				x = append(x, float32(rng.NormFloat64()*mag))
			}
		}
		// ties: the group max pins the scale to a power of two, then
		// midpoints between neighbouring codes
		var ties []float32
		if c.bits == 4 {
			ties = []float32{0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, -0.25, -0.75, -2.5, -5, 0.1, 5.5}
		} else {
			ties = []float32{1 + 1.0/16, 1 + 3.0/16, 3 + 1.0/8, 448 - 16, 0.0078125 * 1.5, -(1 + 3.0/16), 2.0 / 1024 * 3}
		}
		for _, sc := range []float32{1, 0.25, 1.0 / 64} {
			grp := make([]float32, c.group)
			top := float32(6)
			if c.bits == 8 {
				top = 448
			}
			if c.mode == "nvfp4" {
				sc *= 1.5 // an E4M3 scale with a mantissa
			}
			grp[0] = top * sc
			for i, v := range ties {
				grp[1+i] = v * sc
			}
			x = append(x, grp...)
		}
		x = append(x, make([]float32, c.group)...) // a zero group
		want := mlxQDQ(x, c.bits, c.group)
		a := engine.FromFloat32s(x, len(x)/(2*c.group), 2*c.group)
		got := vals(t, nn.QuantizeDequantize(a, c.mode, c.group, c.bits))
		bad := 0
		for i := range want {
			if got[i] != want[i] && bad < 5 {
				t.Errorf("%s: x[%d] = %g -> %g, MLX %g", c.mode, i, x[i], got[i], want[i])
				bad++
			}
		}
		// bfloat16 in, bfloat16 out, computed from the bf16 values
		b := engine.AsType(a, engine.BFloat16)
		bq := nn.QuantizeDequantize(b, c.mode, c.group, c.bits)
		if bq.DType() != engine.BFloat16 {
			t.Errorf("%s: bf16 input gave %v", c.mode, bq.DType())
		}
		wantB := mlxQDQ(vals(t, b), c.bits, c.group)
		wb := vals(t, engine.AsType(engine.FromFloat32s(wantB, len(wantB)), engine.BFloat16))
		if d := maxDiff(vals(t, bq), wb); d != 0 {
			t.Errorf("%s: bf16 differs from MLX by %g", c.mode, d)
		}
	}
	if err := nn.QuantizeDequantize(engine.Zeros([]int{2, 64}, engine.Float32), "affine", 64, 4).Err(); err == nil {
		t.Error("affine activation quantization did not fail")
	}
	if err := nn.QuantizeDequantize(engine.Zeros([]int{2, 40}, engine.Float32), "mxfp8", 32, 8).Err(); err == nil {
		t.Error("K = 40 with group 32 did not fail")
	}
}

// TestQuantizedLinearQuantizeInput: QuantizeInput multiplies the rounded
// activations by the float-quantized weight (mx.qqmm).
func TestQuantizedLinearQuantizeInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const N, K = 8, 64
	x := make([]float32, 3*K)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	// E4M3 codes for weights (no NaN codes), E8M0 scales around 2^-4
	w := make([]uint32, N*K/4)
	for i := range w {
		for b := 0; b < 4; b++ {
			c := uint32(rng.IntN(0x7e))
			if rng.IntN(2) == 0 {
				c |= 0x80
			}
			w[i] |= c << (8 * b)
		}
	}
	s := make([]uint8, N*K/32)
	for i := range s {
		s[i] = uint8(120 + rng.IntN(4))
	}
	wa, sa := engine.FromUint32s(w, N, K/4), engine.FromUint8s(s, N, K/32)
	xa := engine.FromFloat32s(x, 3, K)
	l := &nn.QuantizedLinear{Weight: wa, Scales: sa, GroupSize: 32, Bits: 8, Mode: "mxfp8", QuantizeInput: true}
	got := vals(t, l.Forward(xa))
	xq := engine.FromFloat32s(mlxQDQ(x, 8, 32), 3, K)
	want := vals(t, engine.Matmul(xq, engine.Transpose(l.Dequantized(), 1, 0)))
	if d := relDiff(got, want); d > 1e-5 {
		t.Errorf("QuantizeInput: rel diff %g from x rounded by MLX's rule times the weight", d)
	}
	plain := vals(t, (&nn.QuantizedLinear{Weight: wa, Scales: sa, GroupSize: 32, Bits: 8, Mode: "mxfp8"}).Forward(xa))
	if d := relDiff(plain, want); d < 1e-4 {
		t.Errorf("rounding the input changed nothing (rel diff %g)", d)
	}
	l.Exact = true
	if d := relDiff(vals(t, l.Forward(xa)), want); d > 1e-5 {
		t.Errorf("QuantizeInput, Exact: rel diff %g", d)
	}
}
