package engine

import (
	"math"
	"testing"
)

// A decode step of one transformer block shaped like Qwen2.5-0.5B
// (D=896, H=14, Hk=2, Dh=64, MLP 4864, bf16 weights, 512 cached keys),
// through the engine: graph building, Eval, intermediates released.
func BenchmarkDecodeBlock(b *testing.B) {
	const D, H, Hk, Dh, F, L = 896, 14, 2, 64, 4864, 512
	w := func(n, k int) *Array {
		a := AsType(Multiply(Sin(Reshape(Arange(0, float64(n*k), 1, Float32), n, k)), Scalar(0.02)), BFloat16)
		if err := Eval(a); err != nil {
			b.Fatal(err)
		}
		return a
	}
	wq, wk, wv, wo := w(H*Dh, D), w(Hk*Dh, D), w(Hk*Dh, D), w(D, H*Dh)
	wg, wu, wd := w(F, D), w(F, D), w(D, F)
	norm := Ones([]int{D}, BFloat16)
	kc := RandomNormal([]int{1, Hk, L, Dh}, 0, 1, Float32, nil)
	vc := RandomNormal([]int{1, Hk, L, Dh}, 0, 1, Float32, nil)
	x := RandomNormal([]int{1, 1, D}, 0, 1, Float32, nil)
	if err := Eval(norm, kc, vc, x); err != nil {
		b.Fatal(err)
	}
	lin := func(x, w *Array) *Array { return Matmul(x, Transpose(w)) }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := RMSNorm(x, norm, 1e-6)
		q := Transpose(Reshape(lin(h, wq), 1, 1, H, Dh), 0, 2, 1, 3)
		k := Transpose(Reshape(lin(h, wk), 1, 1, Hk, Dh), 0, 2, 1, 3)
		v := Transpose(Reshape(lin(h, wv), 1, 1, Hk, Dh), 0, 2, 1, 3)
		q = RoPE(q, RoPEOptions{Dims: Dh, Base: 1e6, Scale: 1, Offset: L})
		k = RoPE(k, RoPEOptions{Dims: Dh, Base: 1e6, Scale: 1, Offset: L})
		keys := Concatenate([]*Array{kc, k}, 2)
		vals := Concatenate([]*Array{vc, v}, 2)
		a := ScaledDotProductAttention(q, keys, vals, AttentionOptions{Scale: float32(1 / math.Sqrt(Dh))})
		a = Reshape(Transpose(a, 0, 2, 1, 3), 1, 1, H*Dh)
		x2 := Add(x, lin(a, wo))
		h2 := RMSNorm(x2, norm, 1e-6)
		y := Add(x2, lin(Multiply(SiLU(lin(h2, wg)), lin(h2, wu)), wd))
		if err := Eval(y); err != nil {
			b.Fatal(err)
		}
	}
}
