package lora

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// Dropout is the shared dropout state of the adapter layers of one model:
// dropout only runs while Training is set (mlx's model.train()/eval()).
type Dropout struct {
	P        float64
	Training bool
	key      engine.Key
	n        uint64
}

func newDropout(p float64, seed uint64) *Dropout {
	return &Dropout{P: p, key: engine.NewKey(seed ^ 0x6a09e667f3bcc908)}
}

// apply zeroes each element with probability P and scales the rest by
// 1/(1−P) (mlx.nn.Dropout), when training.
func (d *Dropout) apply(x *engine.Array) *engine.Array {
	if d == nil || !d.Training || d.P == 0 {
		return x
	}
	d.n++
	k := engine.NewKey(uint64(d.key[0])<<32 ^ uint64(d.key[1]) ^ d.n*0x9e3779b97f4a7c15)
	keep := engine.RandomBernoulli(1-d.P, x.Shape(), &k)
	return engine.Multiply(engine.Where(keep, x, engine.ScalarOf(0, x.DType())), engine.ScalarOf(1/(1-d.P), x.DType()))
}

// LoRALinear wraps a linear layer (dense or quantized; QLoRA keeps the
// quantized base packed): y = base(x) + scale·((dropout(x)·A)·B), the LoRA
// term cast to x's dtype (mlx_lm's LoRALinear).
type LoRALinear struct {
	Base    nn.Layer
	A       *engine.Array // lora_a [in, r] float32
	B       *engine.Array // lora_b [r, out] float32
	Scale   float64
	Dropout *Dropout
}

// Forward maps x [..., in] to [..., out].
func (l *LoRALinear) Forward(x *engine.Array) *engine.Array {
	y := l.Base.Forward(x)
	z := engine.Matmul(engine.Matmul(l.Dropout.apply(x), l.A), l.B) // [..., out]
	return engine.Add(y, castLike(engine.Multiply(z, engine.Scalar(l.Scale)), x))
}

// DoRALinear is mlx_lm's DoRALinear: out = (m / sg(‖W + scale·Bᵀ·Aᵀ‖_row)) ⊙
// (x·Wᵀ + scale·(dropout(x)·A)·B) + bias, the norm under stop-gradient.
type DoRALinear struct {
	Base    nn.Layer      // *nn.Linear or *nn.QuantizedLinear
	A       *engine.Array // lora_a [in, r]
	B       *engine.Array // lora_b [r, out]
	M       *engine.Array // m [out]
	Scale   float64
	Dropout *Dropout
}

// Forward maps x [..., in] to [..., out].
func (l *DoRALinear) Forward(x *engine.Array) *engine.Array {
	w, bias := denseWeight(l.Base)                                // [out, in]
	y := engine.Matmul(x, engine.Transpose(castLike(w, x), 1, 0)) // [..., out]
	z := engine.Matmul(engine.Matmul(l.Dropout.apply(x), l.A), l.B)
	out := engine.Add(y, castLike(engine.Multiply(z, engine.Scalar(l.Scale)), x))
	delta := engine.Matmul(engine.Multiply(engine.Transpose(l.B, 1, 0), engine.Scalar(l.Scale)), engine.Transpose(l.A, 1, 0)) // [out, in]
	adapted := engine.Add(engine.AsType(w, engine.Float32), delta)
	denom := engine.StopGradient(rowNorm(adapted)) // [out]
	out = engine.Multiply(castLike(engine.Divide(l.M, denom), x), out)
	if bias != nil {
		out = engine.Add(out, bias)
	}
	return out
}

// LoRAEmbedding is mlx_lm's LoRAEmbedding: E[x] + scale·dropout(A[x]·B),
// A [V, r], B [r, D]; as the tied output projection x·Eᵀ + scale·(dropout(x)·Bᵀ)·Aᵀ.
type LoRAEmbedding struct {
	Base    nn.Embedder
	A       *engine.Array // lora_a [V, r]
	B       *engine.Array // lora_b [r, D]
	Scale   float64
	Dropout *Dropout
}

// Forward maps ids [...] to [..., D].
func (e *LoRAEmbedding) Forward(ids *engine.Array) *engine.Array {
	y := e.Base.Forward(ids)
	z := e.Dropout.apply(engine.Matmul(engine.Take(e.A, ids, 0), e.B)) // [..., D]
	return engine.Add(y, castLike(engine.Multiply(z, engine.Scalar(e.Scale)), y))
}

// AsLinear maps x [..., D] to [..., V].
func (e *LoRAEmbedding) AsLinear(x *engine.Array) *engine.Array {
	y := e.Base.AsLinear(x)
	z := engine.Matmul(engine.Matmul(e.Dropout.apply(x), engine.Transpose(e.B, 1, 0)), engine.Transpose(e.A, 1, 0))
	return engine.Add(y, castLike(engine.Multiply(z, engine.Scalar(e.Scale)), x))
}

// DoRAEmbedding is mlx_lm's DoRAEmbedding: each looked-up row is rescaled
// to m[x] / sg(‖E[x] + scale·A[x]·B‖).
type DoRAEmbedding struct {
	Base    nn.Embedder
	Weight  *engine.Array // the dense base table [V, D] (dequantized once)
	A       *engine.Array // lora_a [V, r]
	B       *engine.Array // lora_b [r, D]
	M       *engine.Array // m [V]
	Scale   float64
	Dropout *Dropout
}

// Forward maps ids [...] to [..., D].
func (e *DoRAEmbedding) Forward(ids *engine.Array) *engine.Array {
	y := e.Base.Forward(ids)
	z := engine.Multiply(engine.Matmul(engine.Take(e.A, ids, 0), e.B), engine.Scalar(e.Scale)) // [..., D]
	out := engine.Add(y, castLike(e.Dropout.apply(z), y))
	adapted := engine.Add(engine.AsType(y, engine.Float32), z)
	denom := engine.StopGradient(rowNorm(adapted)) // [...]
	ratio := engine.ExpandDims(engine.Divide(engine.Take(e.M, ids, 0), denom), -1)
	return engine.Multiply(castLike(ratio, out), out)
}

// AsLinear maps x [..., D] to [..., V].
func (e *DoRAEmbedding) AsLinear(x *engine.Array) *engine.Array {
	y := e.Base.AsLinear(x)
	z := engine.Matmul(engine.Matmul(e.Dropout.apply(x), engine.Transpose(e.B, 1, 0)), engine.Transpose(e.A, 1, 0))
	out := engine.Add(y, castLike(engine.Multiply(z, engine.Scalar(e.Scale)), x))
	adapted := engine.Add(engine.AsType(e.Weight, engine.Float32), engine.Multiply(engine.Matmul(e.A, e.B), engine.Scalar(e.Scale)))
	denom := engine.StopGradient(rowNorm(adapted)) // [V]
	return engine.Multiply(castLike(engine.Divide(e.M, denom), out), out)
}

// LoRASwitchLinear wraps a bank of E experts (MoE): for each selected
// expert e, base(x) + scale·(dropout(x)·A[e]ᵀ)·B[e]ᵀ with A [E, r, in],
// B [E, out, r] (mlx_lm's LoRASwitchLinear).
type LoRASwitchLinear struct {
	Base    nn.SwitchLayer
	A       *engine.Array // lora_a [E, r, in]
	B       *engine.Array // lora_b [E, out, r]
	Scale   float64
	Dropout *Dropout
}

// Forward maps x [..., 1 or K, 1, in] and indices [..., K] to [..., K, 1, out].
func (s *LoRASwitchLinear) Forward(x, indices *engine.Array) *engine.Array {
	y := s.Base.Forward(x, indices)
	z := engine.GatherMM(s.Dropout.apply(x), engine.SwapAxes(s.A, -1, -2), nil, indices) // [..., K, 1, r]
	z = engine.GatherMM(z, engine.SwapAxes(s.B, -1, -2), nil, indices)                   // [..., K, 1, out]
	return engine.Add(y, castLike(engine.Multiply(z, engine.Scalar(s.Scale)), x))
}

// denseWeight returns a linear layer's float weight [out, in] and bias.
func denseWeight(l nn.Layer) (w, bias *engine.Array) {
	switch b := l.(type) {
	case *nn.Linear:
		return b.Weight, b.Bias
	case *nn.QuantizedLinear:
		return b.Dequantized(), b.Bias
	}
	return engine.Errorf("lora: DoRA needs a Linear or QuantizedLinear base, got %T", l), nil
}

// rowNorm is the L2 norm over the last axis.
func rowNorm(x *engine.Array) *engine.Array {
	return engine.Sqrt(engine.Sum(engine.Square(x), false, -1))
}

func castLike(x, like *engine.Array) *engine.Array {
	if x.DType() == like.DType() {
		return x
	}
	return engine.AsType(x, like.DType())
}

// uniformInit is lora_a's initialisation, U(−1/√fanIn, 1/√fanIn), float32.
func uniformInit(shape []int, fanIn int, key *engine.Key) *engine.Array {
	bound := 1 / math.Sqrt(float64(fanIn))
	return engine.RandomUniform(-bound, bound, shape, engine.Float32, key)
}
