package quant

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// MLX's float quantization modes (mx.quantize's mode "mxfp4", "nvfp4",
// "mxfp8"): 4- or 8-bit float codes packed LSB-first in uint32 words (8
// E2M1 or 4 E4M3 codes a word), one uint8 scale per group (E8M0, a power
// of two, for mxfp4 and mxfp8; E4M3 for nvfp4) and no biases. The encoder
// is mx.quantize's Metal kernel (fp_quantize, what mlx_lm runs on a Mac),
// all in float32 after widening the input:
//
//	scale = max|w| / (6 for 4 bits, 448 for 8) over the group
//	E8M0:  2^clamp(round(log2 scale), −127, 127), rounding halves away from zero
//	E4M3:  the nearest E4M3 value, ties to even, saturating at 448
//	code  = the nearest E2M1 (or E4M3) of w·(1/scale), ties to the even code,
//	        saturating; a zero scale gives code 0
//
// MLX's portable fallback (CPU) computes in the weight's dtype and breaks
// E2M1 ties toward the smaller magnitude; files from either decode the
// same way. pkg/fuse re-encodes float-mode layers by the same rule.

// FPModes are the float modes' group size and bits: MLX accepts no others.
var FPModes = map[string][2]int{"mxfp4": {32, 4}, "nvfp4": {16, 4}, "mxfp8": {32, 8}}

// IsFloatMode reports whether mode is one of MLX's float modes.
func IsFloatMode(mode string) bool { _, ok := FPModes[mode]; return ok }

// ModeDefaults is MLX's _defaults_for_mode: the group size and bits a mode
// uses when they are not given (affine 64/4, mxfp4 32/4, nvfp4 16/4,
// mxfp8 32/8).
func ModeDefaults(mode string) (groupSize, bits int, err error) {
	switch {
	case mode == "" || mode == "affine":
		return DefaultGroupSize, DefaultBits, nil
	case IsFloatMode(mode):
		return FPModes[mode][0], FPModes[mode][1], nil
	}
	return 0, 0, fmt.Errorf("quant: invalid quantization mode %q; valid modes are affine, mxfp4, nvfp4, mxfp8", mode)
}

// ValidateMode checks bits and group size for mode, with MLX's messages:
// affine as Validate, a float mode only at its own group size and bits.
func ValidateMode(mode string, bits, groupSize int) error {
	if mode == "" || mode == "affine" {
		return Validate(bits, groupSize)
	}
	fp, ok := FPModes[mode]
	if !ok {
		_, _, err := ModeDefaults(mode)
		return err
	}
	if groupSize != fp[0] {
		return fmt.Errorf("quant: %s quantization requires group size %d but got %d", mode, fp[0], groupSize)
	}
	if bits != fp[1] {
		return fmt.Errorf("quant: %s quantization requires bits to be %d but got %d", mode, fp[1], bits)
	}
	return nil
}

var (
	e2m1Vals = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6}
	e4m3Vals [256]float32
)

func init() {
	e2m1Vals[8] = float32(math.Copysign(0, -1)) // the constant -0 is +0 in Go
	for c := range e4m3Vals {
		e, m := (c>>3)&15, float64(c&7)
		v := math.Ldexp(m/8, -6)
		if e > 0 {
			v = math.Ldexp(1+m/8, e-7)
		}
		if e == 15 && c&7 == 7 {
			v = math.NaN()
		}
		if c&0x80 != 0 {
			v = -v
		}
		e4m3Vals[c] = float32(v)
	}
}

// toE4M3 is MLX's float -> E4M3 conversion: round to nearest even,
// saturating at ±448 (NaN too).
func toE4M3(f float32) uint8 {
	bits := math.Float32bits(f)
	sign := bits & 0x80000000
	bits ^= sign
	var r uint8
	switch {
	case bits >= 543<<21: // >= 448 (and NaN)
		r = 0x7e
	case bits < 121<<23: // below 2^-6: subnormal
		const denorm = uint32(141) << 23
		r = uint8(math.Float32bits(math.Float32frombits(bits)+math.Float32frombits(denorm)) - denorm)
	default:
		odd := (bits >> 20) & 1
		r = uint8((bits - 120<<23 + 0x7ffff + odd) >> 20)
	}
	return r | uint8(sign>>24)
}

// toE2M1 is Metal's float -> E2M1 conversion (nearest, ties to the even
// code, saturating at ±6; NaN gives 7).
func toE2M1(x float32) uint8 {
	if x != x {
		return 7
	}
	sign := uint8(0)
	if math.Signbit(float64(x)) {
		sign, x = 8, -x
	}
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

// fpScale decodes a group's uint8 scale.
func fpScale(mode string, c uint8) float32 {
	if mode == "nvfp4" {
		return e4m3Vals[c]
	}
	if c == 0 {
		return float32(math.Ldexp(1, -127))
	}
	return float32(math.Ldexp(1, int(c)-127))
}

// FPCodeValue is the value of code c of a float mode's element format
// (E2M1 for 4 bits, E4M3 for 8), before the group scale.
func FPCodeValue(bits int, c uint32) float32 {
	if bits == 8 {
		return e4m3Vals[c&0xff]
	}
	return e2m1Vals[c&15]
}

// FPScaleValue decodes a group's uint8 scale in mode (E4M3 for nvfp4,
// E8M0 otherwise).
func FPScaleValue(mode string, c uint8) float32 { return fpScale(mode, c) }

// checkFP validates a float-mode call: w holds whole rows of cols values
// and the buffers fit.
func checkFP(n, cols int, mode string, words, scales int) (groupSize, bits int, err error) {
	fp, ok := FPModes[mode]
	if !ok {
		return 0, 0, fmt.Errorf("quant: %q is not a float quantization mode (mxfp4, nvfp4, mxfp8)", mode)
	}
	groupSize, bits = fp[0], fp[1]
	if cols <= 0 || cols%groupSize != 0 {
		return 0, 0, fmt.Errorf("quant: last dimension %d is not a multiple of the %s group size %d", cols, mode, groupSize)
	}
	if n%cols != 0 {
		return 0, 0, fmt.Errorf("quant: %d values do not make whole rows of %d", n, cols)
	}
	if words != n*bits/32 || scales != n/groupSize {
		return 0, 0, fmt.Errorf("quant: %s buffers of %d words and %d scales, want %d and %d for %d values", mode, words, scales, n*bits/32, n/groupSize, n)
	}
	return groupSize, bits, nil
}

// QuantizeFP encodes rows of cols float32 values in a float mode into q
// (len(w)·bits/32 words, overwritten) and scales (one uint8 per group).
// Half inputs are widened to float32 first, as the Metal kernel reads them.
func QuantizeFP(w []float32, cols int, mode string, q []uint32, scales []uint8) error {
	g, bits, err := checkFP(len(w), cols, mode, len(q), len(scales))
	if err != nil {
		return err
	}
	per := 32 / bits
	maxval := float32(6)
	if bits == 8 {
		maxval = 448
	}
	kernels.Parallel(len(w)/cols, 16, func(lo, hi int) {
		for i := lo * cols / per; i < hi*cols/per; i++ {
			q[i] = 0
		}
		for gi := lo * cols / g; gi < hi*cols/g; gi++ {
			grp := w[gi*g : (gi+1)*g]
			var amax float32
			for _, x := range grp {
				amax = max(amax, abs32(x))
			}
			sc := amax / maxval
			if mode == "nvfp4" {
				scales[gi] = toE4M3(sc)
			} else {
				n := math.Round(float64(float32(math.Log2(float64(sc))))) // -Inf for a zero group
				scales[gi] = uint8(min(max(n, -127), 127) + 127)
			}
			dec := fpScale(mode, scales[gi])
			inv := float32(0)
			if dec != 0 {
				inv = 1 / dec
			}
			for j, x := range grp {
				var c uint8
				if bits == 8 {
					c = toE4M3(x * inv)
				} else {
					c = toE2M1(x * inv)
				}
				k := gi*g + j
				q[k/per] |= uint32(c) << (uint(k%per) * uint(bits))
			}
		}
	})
	return nil
}

// DequantizeFP decodes rows of cols values of a float mode into out
// (float32): each code's value times its group's scale, as mx.dequantize.
func DequantizeFP(q []uint32, scales []uint8, cols int, mode string, out []float32) error {
	g, bits, err := checkFP(len(out), cols, mode, len(q), len(scales))
	if err != nil {
		return err
	}
	per := 32 / bits
	mask := uint32(1)<<bits - 1
	kernels.Parallel(len(out)/cols, 16, func(lo, hi int) {
		for i := lo * cols; i < hi*cols; i++ {
			c := q[i/per] >> (uint(i%per) * uint(bits)) & mask
			v := e2m1Vals[c&15]
			if bits == 8 {
				v = e4m3Vals[c]
			}
			out[i] = v * fpScale(mode, scales[i/g])
		}
	})
	return nil
}
