package nn

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// QuantizeDequantize rounds x [..., K] to an MLX float quantization mode
// and back, group by group along the last axis: MLX's activation
// quantization for mx.qqmm (fp_quantize_dequantize, what nn.QQLinear
// applies to its input). Per group of groupSize values: scale =
// max|x| / (6 for 4 bits, 448 for 8 bits), rounded to the mode's scale
// format (E8M0, a power of two with the exponent rounded to nearest, for
// mxfp4/mxfp8; E4M3 for nvfp4); each x/scale is rounded to nearest, ties
// to even, in E2M1 (4 bits) or E4M3 (8 bits), saturating, and multiplied
// back by the scale. The arithmetic is float32; the result has x's dtype.
// Only the float modes have this; for others x is returned as an error
// array.
func QuantizeDequantize(x *engine.Array, mode string, groupSize, bits int) *engine.Array {
	if !IsFloatMode(mode) {
		return engine.Errorf("nn: activation quantization needs a float mode (nvfp4, mxfp8 or mxfp4), got %q", ModeName(mode))
	}
	if err := x.Err(); err != nil {
		return x
	}
	shape := x.Shape()
	n := len(shape)
	if n == 0 || groupSize <= 0 || shape[n-1]%groupSize != 0 {
		return engine.Errorf("nn: activation quantization: last dim of %v is not a multiple of the group size %d", shape, groupSize)
	}
	grouped := append(append([]int(nil), shape[:n-1]...), shape[n-1]/groupSize, groupSize)
	xf := engine.Reshape(engine.AsType(x, engine.Float32), grouped...) // [..., K/g, g]
	maxval := 6.0
	if bits == 8 {
		maxval = 448
	}
	scale := engine.Divide(engine.Max(engine.Abs(xf), true, -1), engine.Scalar(maxval)) // [..., K/g, 1]
	if mode == "nvfp4" {
		scale = roundMinifloat(scale, 3, -6, 448) // E4M3
	} else {
		// E8M0: 2^round(log2 scale), the exponent clipped to ±127 (a zero
		// scale gives 2^-127, and the group stays zero).
		e := engine.Round(engine.Divide(engine.Log(scale), engine.Scalar(math.Ln2)))
		e = engine.Clip(e, engine.Scalar(-127), engine.Scalar(127))
		scale = engine.Power(engine.Scalar(2), e)
	}
	zero := engine.Equal(scale, engine.Scalar(0))
	q := engine.Where(zero, engine.Scalar(0), engine.Divide(xf, engine.Where(zero, engine.Scalar(1), scale)))
	if bits == 8 {
		q = roundMinifloat(q, 3, -6, 448) // E4M3
	} else {
		q = roundMinifloat(q, 1, 0, 6) // E2M1
	}
	return engine.AsType(engine.Reshape(engine.Multiply(q, scale), shape...), x.DType())
}

// roundMinifloat rounds v (float32) to the nearest value of a small float
// format with mant mantissa bits and smallest normal exponent emin (its
// subnormals step by 2^(emin-mant)), ties to even, saturating at ±maxv.
func roundMinifloat(v *engine.Array, mant, emin int, maxv float64) *engine.Array {
	two := engine.Scalar(2)
	a := engine.Abs(v)
	// e = floor(log2 a), corrected by one either way for the rounding of
	// the logarithm near powers of two (a = 0 stays -inf).
	e := engine.Floor(engine.Divide(engine.Log(a), engine.Scalar(math.Ln2)))
	e = engine.Where(engine.Greater(engine.Power(two, e), a), engine.Subtract(e, engine.Scalar(1)), e)
	e = engine.Where(engine.LessEqual(engine.Power(two, engine.Add(e, engine.Scalar(1))), a), engine.Add(e, engine.Scalar(1)), e)
	e = engine.Maximum(e, engine.Scalar(float64(emin)))
	step := engine.Power(two, engine.Subtract(e, engine.Scalar(float64(mant)))) // a power of two: the divisions are exact
	r := engine.Multiply(engine.Round(engine.Divide(a, step)), step)
	r = engine.Minimum(r, engine.Scalar(maxv))
	return engine.Where(engine.Less(v, engine.Scalar(0)), engine.Negative(r), r)
}
