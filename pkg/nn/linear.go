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

// QuantizedLinear is a Linear whose weight is MLX affine-quantized: Weight
// [out, in·Bits/32] packed uint32, Scales and Biases [out, in/GroupSize].
// The weight stays packed; Forward runs engine.QuantizedMatmul.
type QuantizedLinear struct {
	Weight    *engine.Array // [out, in·Bits/32] uint32
	Scales    *engine.Array // [out, in/GroupSize]
	Biases    *engine.Array // [out, in/GroupSize]
	Bias      *engine.Array // [out] or nil
	GroupSize int
	Bits      int
	// Exact multiplies by the dequantized weight in the activations' dtype
	// instead of engine.QuantizedMatmul, whose CPU kernels may quantize
	// activations to int8 (a reference mode for tests; slow).
	Exact bool
}

// Forward maps x [..., in] to [..., out].
func (q *QuantizedLinear) Forward(x *engine.Array) *engine.Array {
	var y *engine.Array
	if q.Exact {
		y = engine.Matmul(x, engine.Transpose(q.Dequantized(), 1, 0))
	} else {
		y = engine.QuantizedMatmul(x, q.Weight, q.Scales, q.Biases, true, q.GroupSize, q.Bits)
	}
	if q.Bias != nil {
		y = engine.Add(y, q.Bias)
	}
	return y
}

// Dequantized returns the float weight [out, in] in the scales' dtype.
func (q *QuantizedLinear) Dequantized() *engine.Array {
	return engine.Dequantize(q.Weight, q.Scales, q.Biases, q.GroupSize, q.Bits)
}

// QuantizedShapes returns the stored shapes of an MLX affine-quantized
// matrix [rows, cols]: the packed weight and the scales (= biases).
func QuantizedShapes(rows, cols, groupSize, bits int) (weight, scales []int, err error) {
	if groupSize <= 0 || cols%groupSize != 0 {
		return nil, nil, fmt.Errorf("input dim %d is not a multiple of the group size %d", cols, groupSize)
	}
	if cols*bits%32 != 0 {
		return nil, nil, fmt.Errorf("input dim %d × %d bits does not fill whole uint32 words", cols, bits)
	}
	return []int{rows, cols * bits / 32}, []int{rows, cols / groupSize}, nil
}
