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

// QuantizedEmbedding is an Embedding stored MLX affine-quantized: a lookup
// dequantizes only the gathered rows; AsLinear is a quantized matmul on the
// packed matrix (a tied quantized embedding is the output projection).
type QuantizedEmbedding struct {
	Weight    *engine.Array // [V, D·Bits/32] uint32
	Scales    *engine.Array // [V, D/GroupSize]
	Biases    *engine.Array // [V, D/GroupSize]
	GroupSize int
	Bits      int
	Cast      *engine.DType // as Embedding.Cast
	Exact     bool          // AsLinear through the dequantized matrix (QuantizedLinear.Exact)
}

// Forward maps ids [...] to [..., D] in the scales' dtype (or Cast).
func (e *QuantizedEmbedding) Forward(ids *engine.Array) *engine.Array {
	w := engine.Take(e.Weight, ids, 0) // [..., D·Bits/32]
	s := engine.Take(e.Scales, ids, 0) // [..., D/GroupSize]
	b := engine.Take(e.Biases, ids, 0) // [..., D/GroupSize]
	return castTo(engine.Dequantize(w, s, b, e.GroupSize, e.Bits), e.Cast)
}

// AsLinear maps x [..., D] to [..., V].
func (e *QuantizedEmbedding) AsLinear(x *engine.Array) *engine.Array {
	if e.Exact {
		w := engine.Dequantize(e.Weight, e.Scales, e.Biases, e.GroupSize, e.Bits)
		return engine.Matmul(x, engine.Transpose(w, 1, 0))
	}
	return engine.QuantizedMatmul(x, e.Weight, e.Scales, e.Biases, true, e.GroupSize, e.Bits)
}

func castTo(x *engine.Array, dt *engine.DType) *engine.Array {
	if dt == nil || x.DType() == *dt {
		return x
	}
	return engine.AsType(x, *dt)
}
