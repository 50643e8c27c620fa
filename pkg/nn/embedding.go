package nn

import "github.com/mlxgo/mlxgo/pkg/engine"

// Embedder looks up token ids and, for tied embeddings, doubles as the
// output projection (mlx.nn.Embedding.as_linear).
type Embedder interface {
	// Forward maps ids [...] (int32) to [..., D].
	Forward(ids *engine.Array) *engine.Array
	// AsLinear maps x [..., D] to logits [..., V] with the embedding matrix.
	AsLinear(x *engine.Array) *engine.Array
}

// Embedding is a [V, D] lookup table.
type Embedding struct {
	Weight *engine.Array // [V, D]
	// Cast, when set, is the dtype lookups are cast to (the model's compute
	// dtype, e.g. float32 activations over bf16 weights); nil keeps Weight's.
	Cast *engine.DType
}

// Forward maps ids [...] to [..., D].
func (e *Embedding) Forward(ids *engine.Array) *engine.Array {
	return castTo(engine.Take(e.Weight, ids, 0), e.Cast)
}

// AsLinear maps x [..., D] to [..., V]: x·Wᵀ.
func (e *Embedding) AsLinear(x *engine.Array) *engine.Array {
	return engine.Matmul(x, engine.Transpose(e.Weight, 1, 0))
}

// QuantizedEmbedding is an Embedding stored MLX-quantized (any mode; see
// QuantizedLinear): a lookup dequantizes only the gathered rows; AsLinear
// is a quantized matmul on the packed matrix (a tied quantized embedding
// is the output projection).
type QuantizedEmbedding struct {
	Weight    *engine.Array // [V, D·Bits/32] uint32
	Scales    *engine.Array // [V, D/GroupSize] (uint8 in the float modes)
	Biases    *engine.Array // [V, D/GroupSize]; nil in the float modes
	GroupSize int
	Bits      int
	Mode      string        // as QuantizedLinear.Mode
	Cast      *engine.DType // as Embedding.Cast
	Exact     bool          // AsLinear through the dequantized matrix (QuantizedLinear.Exact)
}

// Forward maps ids [...] to [..., D] in the scales' dtype for the affine
// mode and bfloat16 for the float modes (mx.dequantize's defaults), or
// Cast.
func (e *QuantizedEmbedding) Forward(ids *engine.Array) *engine.Array {
	w := engine.Take(e.Weight, ids, 0) // [..., D·Bits/32]
	s := engine.Take(e.Scales, ids, 0) // [..., D/GroupSize]
	var b *engine.Array
	if e.Biases != nil {
		b = engine.Take(e.Biases, ids, 0) // [..., D/GroupSize]
	}
	y := engine.DequantizeMode(w, s, b, e.GroupSize, e.Bits, ModeName(e.Mode))
	if e.Cast == nil && IsFloatMode(e.Mode) {
		return castTo(y, ptr(engine.BFloat16))
	}
	return castTo(y, e.Cast)
}

// AsLinear maps x [..., D] to [..., V].
func (e *QuantizedEmbedding) AsLinear(x *engine.Array) *engine.Array {
	mode := ModeName(e.Mode)
	if e.Exact {
		w := engine.DequantizeMode(e.Weight, e.Scales, e.Biases, e.GroupSize, e.Bits, mode)
		return engine.Matmul(x, engine.Transpose(exactWeight(w, mode, x), 1, 0))
	}
	return engine.QuantizedMatmulMode(x, e.Weight, e.Scales, e.Biases, true, e.GroupSize, e.Bits, mode)
}

func castTo(x *engine.Array, dt *engine.DType) *engine.Array {
	if dt == nil || x.DType() == *dt {
		return x
	}
	return engine.AsType(x, *dt)
}
