package engine

import (
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// A decode step of one transformer block shaped like Qwen2.5-0.5B
// (D=896, H=14, Hk=2, Dh=64, MLP 4864, bf16 weights, 512 cached keys),
// through the engine: graph building, Eval, intermediates released.
func BenchmarkDecodeBlock(b *testing.B) { benchBlock(b, 1) }

// The same block over a 128-token prompt chunk (prefill).
func BenchmarkPrefillBlock(b *testing.B) { benchBlock(b, 128) }

func benchBlock(b *testing.B, T int) {
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
	x := RandomNormal([]int{1, T, D}, 0, 1, Float32, nil)
	if err := Eval(norm, kc, vc, x); err != nil {
		b.Fatal(err)
	}
	lin := func(x, w *Array) *Array { return Matmul(x, Transpose(w)) }
	if os.Getenv("MLXGO_TRACE") != "" {
		per := map[string]time.Duration{}
		SetTrace(func(op string, shape []int, d time.Duration) { per[fmt.Sprint(op, shape)] += d })
		defer func() {
			SetTrace(nil)
			for k, d := range per {
				b.Logf("%-50s %v", k, d/time.Duration(b.N))
			}
		}()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := RMSNorm(x, norm, 1e-6)
		q := Transpose(Reshape(lin(h, wq), 1, T, H, Dh), 0, 2, 1, 3)
		k := Transpose(Reshape(lin(h, wk), 1, T, Hk, Dh), 0, 2, 1, 3)
		v := Transpose(Reshape(lin(h, wv), 1, T, Hk, Dh), 0, 2, 1, 3)
		q = RoPE(q, RoPEOptions{Dims: Dh, Base: 1e6, Scale: 1, Offset: L})
		k = RoPE(k, RoPEOptions{Dims: Dh, Base: 1e6, Scale: 1, Offset: L})
		keys := Concatenate([]*Array{kc, k}, 2)
		vals := Concatenate([]*Array{vc, v}, 2)
		a := ScaledDotProductAttention(q, keys, vals, AttentionOptions{Scale: float32(1 / math.Sqrt(Dh)), Causal: true})
		a = Reshape(Transpose(a, 0, 2, 1, 3), 1, T, H*Dh)
		x2 := Add(x, lin(a, wo))
		h2 := RMSNorm(x2, norm, 1e-6)
		y := Add(x2, lin(Multiply(SiLU(lin(h2, wg)), lin(h2, wu)), wd))
		if err := Eval(y); err != nil {
			b.Fatal(err)
		}
	}
}

// The same block's seven weight products called straight on pkg/kernels:
// the floor the engine's BenchmarkDecodeBlock is compared with.
func BenchmarkDecodeBlockKernels(b *testing.B) { benchBlockKernels(b, 1) }

// The prefill block's weight products on pkg/kernels.
func BenchmarkPrefillBlockKernels(b *testing.B) { benchBlockKernels(b, 128) }

func benchBlockKernels(b *testing.B, T int) {
	const D, H, Hk, Dh, F = 896, 14, 2, 64, 4864
	type lin struct{ n, k int }
	shapes := []lin{{H * Dh, D}, {Hk * Dh, D}, {Hk * Dh, D}, {D, H * Dh}, {F, D}, {F, D}, {D, F}}
	ws := make([][]uint16, len(shapes))
	for i, s := range shapes {
		ws[i] = make([]uint16, s.n*s.k)
		for j := range ws[i] {
			ws[i][j] = kernels.F32ToBF16(float32(0.02 * math.Sin(float64(j))))
		}
	}
	x := make([]float32, T*F)
	for i := range x {
		x[i] = float32(math.Cos(float64(i)))
	}
	y := make([]float32, T*F)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, s := range shapes {
			kernels.HGemm(y[:T*s.n], x[:T*s.k], T, s.n, s.k, ws[j], kernels.BF16)
		}
	}
}

// Decode attention: 14 query heads over 2 kv heads with 4096 cached keys.
func BenchmarkSDPADecode(b *testing.B) {
	q := RandomNormal([]int{1, 14, 1, 64}, 0, 1, Float32, nil)
	k := RandomNormal([]int{1, 2, 4096, 64}, 0, 1, Float32, nil)
	v := RandomNormal([]int{1, 2, 4096, 64}, 0, 1, Float32, nil)
	if err := Eval(q, k, v); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Eval(ScaledDotProductAttention(q, k, v, AttentionOptions{Scale: 0.125})); err != nil {
			b.Fatal(err)
		}
	}
}

// A small training step: embedding, RMSNorm, attention block and MLP,
// cross-entropy over a 2048 vocabulary, gradients for every parameter.
func BenchmarkTrainStep(b *testing.B) {
	const B, L, D, H, Dh, F, V = 4, 64, 256, 4, 64, 768, 2048
	k := NewKey(1)
	keys := k.Split(8)
	p := func(i int, shape ...int) *Array { return RandomNormal(shape, 0, 0.05, Float32, &keys[i]) }
	params := []*Array{p(0, V, D), p(1, 3*D, D), p(2, D, D), p(3, F, D), p(4, D, F), Ones([]int{D}, Float32)}
	ids := AsType(RandomUniform(0, V, []int{B, L}, Float32, &keys[5]), Int32)
	if err := Eval(append(params, ids)...); err != nil {
		b.Fatal(err)
	}
	inputs, targets := SliceAxis(ids, 1, 0, L-1), SliceAxis(ids, 1, 1, L)
	loss := func(ps []*Array) *Array {
		emb, wqkv, wo, w1, w2, norm := ps[0], ps[1], ps[2], ps[3], ps[4], ps[5]
		lin := func(x, w *Array) *Array { return Matmul(x, Transpose(w)) }
		x := Take(emb, inputs, 0) // [B, L-1, D]
		h := RMSNorm(x, norm, 1e-5)
		qkv := Split(lin(h, wqkv), 3, -1)
		heads := func(t *Array) *Array { return Transpose(Reshape(t, B, L-1, H, Dh), 0, 2, 1, 3) }
		q := RoPE(heads(qkv[0]), RoPEOptions{Dims: Dh, Base: 10000, Scale: 1})
		kk := RoPE(heads(qkv[1]), RoPEOptions{Dims: Dh, Base: 10000, Scale: 1})
		a := ScaledDotProductAttention(q, kk, heads(qkv[2]), AttentionOptions{Scale: 0.125, Causal: true})
		x = Add(x, lin(Reshape(Transpose(a, 0, 2, 1, 3), B, L-1, D), wo))
		x = Add(x, lin(GELU(lin(RMSNorm(x, norm, 1e-5), w1)), w2))
		logits := lin(RMSNorm(x, norm, 1e-5), emb) // tied embeddings
		return Mean(CrossEntropy(logits, targets), false)
	}
	vg := ValueAndGrad(loss)
	if os.Getenv("MLXGO_TRACE") != "" {
		per := map[string]time.Duration{}
		SetTrace(func(op string, shape []int, d time.Duration) { per[fmt.Sprint(op, shape)] += d })
		defer func() {
			SetTrace(nil)
			for k, d := range per {
				b.Logf("%-50s %v", k, d/time.Duration(b.N))
			}
		}()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, g, err := vg(params)
		if err != nil {
			b.Fatal(err)
		}
		if err := Eval(append([]*Array{v}, g...)...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(PeakMemory())/1e6, "peakMB")
}

// Per-node cost of building and evaluating a graph of tiny ops (the
// engine's fixed overhead, ≈ 1150 nodes per decode step of a 24-layer model).
func BenchmarkGraphOverhead(b *testing.B) {
	x := FromFloat32s(make([]float32, 8), 8)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		y := x
		for j := 0; j < 1000; j++ {
			y = Add(y, x)
		}
		if err := Eval(y); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/node")
}
