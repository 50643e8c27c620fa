package fuse

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// MLX's float quantization modes (mxfp4, nvfp4, mxfp8): 4- or 8-bit float
// codes packed LSB-first in uint32 words, one uint8 scale per group (E8M0,
// a power of two, for mxfp4/mxfp8; E4M3 for nvfp4), no biases. A fused
// layer is decoded as mx.dequantize does (bfloat16, the default for these
// modes, as mlx_lm's fuse then adds the change in the weight's dtype) and
// re-encoded as mx.quantize's Metal kernel (fp_quantize): per group,
// scale = max|w| / (6 for 4 bits, 448 for 8) rounded to the scale format
// (E8M0: 2^round(log2), half away from zero), codes = the nearest E2M1 or
// E4M3 (ties to even, saturating) of w·(1/scale), all in float32.

// fpModes are the float modes' group size and bits.
var fpModes = map[string][2]int{"mxfp4": {32, 4}, "nvfp4": {16, 4}, "mxfp8": {32, 8}}

func isFPMode(mode string) bool { _, ok := fpModes[mode]; return ok }

var (
	e2m1Vals = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6}
	e4m3Vals [256]float32
)

func init() {
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
// saturating at ±448.
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

// toE2M1 is MLX's float -> E2M1 conversion (nearest, ties to even).
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

func e8m0(c uint8) float32 {
	if c == 0 {
		return float32(math.Ldexp(1, -127))
	}
	return float32(math.Ldexp(1, int(c)-127))
}

// fpScale decodes a group's uint8 scale.
func fpScale(mode string, c uint8) float32 {
	if mode == "nvfp4" {
		return e4m3Vals[c]
	}
	return e8m0(c)
}

// fpDequantize decodes rows of cols values: code value × scale in float32.
func fpDequantize(q []uint32, s []byte, cols int, set quant.Settings) ([]float32, error) {
	if !isFPMode(set.Mode) || fpModes[set.Mode] != [2]int{set.GroupSize, set.Bits} {
		return nil, fmt.Errorf("float quantization %s with group size %d and %d bits", set.Mode, set.GroupSize, set.Bits)
	}
	per := 32 / set.Bits
	n := len(q) * per
	if n%cols != 0 || len(s) != n/set.GroupSize {
		return nil, fmt.Errorf("%d words and %d scales do not fit rows of %d %s values", len(q), len(s), cols, set.Mode)
	}
	out := make([]float32, n)
	mask := uint32(1)<<set.Bits - 1
	kernels.Parallel(n/cols, 16, func(lo, hi int) {
		for i := lo * cols; i < hi*cols; i++ {
			c := q[i/per] >> (uint(i%per) * uint(set.Bits)) & mask
			v := e2m1Vals[c&15]
			if set.Bits == 8 {
				v = e4m3Vals[c]
			}
			out[i] = v * fpScale(set.Mode, s[i/set.GroupSize])
		}
	})
	return out, nil
}

// fpQuantize encodes rows of cols values (see the top of the file).
func fpQuantize(v []float32, cols int, set quant.Settings) (q []uint32, s []byte, err error) {
	if !isFPMode(set.Mode) || fpModes[set.Mode] != [2]int{set.GroupSize, set.Bits} {
		return nil, nil, fmt.Errorf("float quantization %s with group size %d and %d bits", set.Mode, set.GroupSize, set.Bits)
	}
	if cols%set.GroupSize != 0 || len(v)%cols != 0 {
		return nil, nil, fmt.Errorf("rows of %d values do not split into groups of %d", cols, set.GroupSize)
	}
	g, bits := set.GroupSize, set.Bits
	per := 32 / bits
	q = make([]uint32, len(v)/per)
	s = make([]byte, len(v)/g)
	maxval := float32(6)
	if bits == 8 {
		maxval = 448
	}
	rows := len(v) / cols
	kernels.Parallel(rows, 16, func(lo, hi int) {
		for gi := lo * cols / g; gi < hi*cols/g; gi++ {
			grp := v[gi*g : (gi+1)*g]
			var amax float32
			for _, x := range grp {
				amax = max(amax, float32(math.Abs(float64(x))))
			}
			sc := amax / maxval
			if set.Mode == "nvfp4" {
				s[gi] = toE4M3(sc)
			} else {
				n := math.Round(float64(float32(math.Log2(float64(sc))))) // -Inf for a zero group
				s[gi] = uint8(min(max(n, -127), 127) + 127)
			}
			dec := fpScale(set.Mode, s[gi])
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
	return q, s, nil
}

// fpRound rounds float-mode decoded values to dtype (mx.dequantize's
// output type) in place.
func fpRound(v []float32, dtype st.DType) {
	if r := rounder(dtype); r != nil {
		for i, x := range v {
			v[i] = r(x)
		}
	}
}
