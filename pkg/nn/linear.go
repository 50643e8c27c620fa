package nn

import (
	"fmt"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// Layer maps [..., in] to [..., out]: a Linear, a QuantizedLinear, or a
// wrapper around one (LoRA).
type Layer interface {
	Forward(x *engine.Array) *engine.Array
}

// Linear is y = x·Wᵀ + b (mlx.nn.Linear).
type Linear struct {
	Weight *engine.Array // [out, in]
	Bias   *engine.Array // [out] or nil
}

// Forward maps x [..., in] to [..., out].
func (l *Linear) Forward(x *engine.Array) *engine.Array {
	y := engine.Matmul(x, engine.Transpose(l.Weight, 1, 0))
	if l.Bias != nil {
		y = engine.Add(y, l.Bias)
	}
	return y
}

// QuantizedLinear is a Linear whose weight is MLX-quantized: Weight [out,
// in·Bits/32] packed uint32 and Scales [out, in/GroupSize]; in the affine
// mode also Biases [out, in/GroupSize] (scale·q + bias per group), in the
// float modes (mxfp4, nvfp4, mxfp8: 4- or 8-bit float codes) uint8 Scales
// and no Biases. The weight stays packed; Forward runs
// engine.QuantizedMatmulMode.
type QuantizedLinear struct {
	Weight    *engine.Array // [out, in·Bits/32] uint32
	Scales    *engine.Array // [out, in/GroupSize] (uint8 in the float modes)
	Biases    *engine.Array // [out, in/GroupSize]; nil in the float modes
	Bias      *engine.Array // [out] or nil
	GroupSize int
	Bits      int
	// Mode is MLX's quantization mode: "affine" (or "") and the float
	// modes "mxfp4", "nvfp4", "mxfp8".
	Mode string
	// QuantizeInput rounds the activations to Mode's format (per group of
	// GroupSize along the input dim) before the product: mlx.nn.QQLinear,
	// what mlx_lm's --quantize-activations swaps in (nvfp4 and mxfp8 only).
	QuantizeInput bool
	// Exact multiplies by the dequantized weight in the activations' dtype
	// instead of engine.QuantizedMatmul, whose CPU kernels may quantize
	// activations to int8 (a reference mode for tests; slow).
	Exact bool
}

// Forward maps x [..., in] to [..., out].
func (q *QuantizedLinear) Forward(x *engine.Array) *engine.Array {
	if q.QuantizeInput {
		x = QuantizeDequantize(x, q.Mode, q.GroupSize, q.Bits)
	}
	var y *engine.Array
	if q.Exact {
		y = engine.Matmul(x, engine.Transpose(exactWeight(q.Dequantized(), q.Mode, x), 1, 0))
	} else {
		y = engine.QuantizedMatmulMode(x, q.Weight, q.Scales, q.Biases, true, q.GroupSize, q.Bits, ModeName(q.Mode))
	}
	if q.Bias != nil {
		y = engine.Add(y, q.Bias)
	}
	return y
}

// Dequantized returns the float weight [out, in]: in the scales' dtype for
// the affine mode, float32 for the float modes.
func (q *QuantizedLinear) Dequantized() *engine.Array {
	return engine.DequantizeMode(q.Weight, q.Scales, q.Biases, q.GroupSize, q.Bits, ModeName(q.Mode))
}

// ModeName is mode with "" read as "affine".
func ModeName(mode string) string {
	if mode == "" {
		return "affine"
	}
	return mode
}

// IsFloatMode reports whether mode is one of MLX's float quantization
// modes (uint8 scales, no biases).
func IsFloatMode(mode string) bool {
	return mode == "mxfp4" || mode == "nvfp4" || mode == "mxfp8"
}

// exactWeight casts a float-mode dequantized weight (float32) to x's dtype,
// as mx.quantized_matmul computes in x's dtype for those modes; affine
// weights keep the scales' dtype.
func exactWeight(w *engine.Array, mode string, x *engine.Array) *engine.Array {
	if IsFloatMode(mode) {
		return castTo(w, ptr(x.DType()))
	}
	return w
}

func ptr[T any](v T) *T { return &v }

// QuantizedShapes returns the stored shapes of an MLX-quantized matrix
// [rows, cols] (any mode): the packed weight and the scales (= biases).
func QuantizedShapes(rows, cols, groupSize, bits int) (weight, scales []int, err error) {
	if groupSize <= 0 || cols%groupSize != 0 {
		return nil, nil, fmt.Errorf("input dim %d is not a multiple of the group size %d", cols, groupSize)
	}
	if cols*bits%32 != 0 {
		return nil, nil, fmt.Errorf("input dim %d × %d bits does not fill whole uint32 words", cols, bits)
	}
	return []int{rows, cols * bits / 32}, []int{rows, cols / groupSize}, nil
}
