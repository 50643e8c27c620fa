package model_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func randArray(r *rand.Rand, shape ...int) *engine.Array {
	n := 1
	for _, d := range shape {
		n *= d
	}
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(r.NormFloat64())
	}
	return engine.FromFloat32s(f, shape...)
}

func floats(t *testing.T, a *engine.Array) []float32 {
	t.Helper()
	f, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Tolerances of the quantized path against dequantize-then-attend. Both
// read the same codes, scales and biases, but engine.QuantizedMatmul may
// round its activation rows to int8 in blocks of 32 (scale: the block's
// max|x|/127; pkg/kernels QMatmul, on CPUs with AVX-512 VNNI), here q·scale
// for the scores and the probabilities for the values: each term is then
// off by up to 1/254 of its block's largest, as a bf16 activation would
// be off by 1/256 of itself. Through the softmax and the value product
// that measures 0.2–1.6% of the largest output in TestQuantizedAttend
// (tolerance 3e-2), and 2.5e-5–5.6e-5 of the largest logit after two
// layers of smallLlama, whose attention adds little to the residual
// stream (tolerance 5e-4). Without int8 activations (other CPUs) the two
// paths differ only by float32 reassociation, about 1e-6. A causal mask
// or a window one position off, or the head groups mixed up, move the
// output of TestQuantizedAttend by 25% or more of its largest value and
// the logits by 1.6e-2 or more (checked by mutating AttendCached).
const (
	quantizedAttendTol = 3e-2
	quantizedLogitsTol = 5e-4
)

// TestQuantizedAttend checks QuantizedAttend against ScaledDotProductAttention
// over the dequantized keys and values, with grouped heads, for each mask
// AttendCached sends: none, causal, causal sliding window, a window alone
// (single queries of a sliding layer), and soft-capped scores.
func TestQuantizedAttend(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, bits := range []int{4, 8} {
		for _, L := range []int{1, 5} {
			T := 11
			c := model.NewQuantizedKVCache(32, bits, 0)
			c.Update(randArray(r, 1, 2, T-L, 32), randArray(r, 1, 2, T-L, 32))
			kv, _, _ := c.UpdateQuantized(randArray(r, 1, 2, L, 32), randArray(r, 1, 2, L, 32))
			if kv == nil {
				t.Fatal("the cache did not quantize")
			}
			k := engine.Dequantize(kv.Keys[0], kv.Keys[1], kv.Keys[2], 32, bits)
			v := engine.Dequantize(kv.Values[0], kv.Values[1], kv.Values[2], 32, bits)
			q := randArray(r, 1, 4, L, 32)
			for _, o := range []engine.AttentionOptions{{}, {Causal: true}, {Causal: true, Window: 3}, {Window: 4}, {Causal: true, SoftCap: 2}} {
				got := floats(t, model.QuantizedAttend(q, kv, 0.3, o))
				want := floats(t, nn.Attend(q, k, v, 0.3, o))
				if e := modeltest.RelErr(got, want); e > quantizedAttendTol {
					t.Errorf("bits %d, L %d, %+v: rel err %.3g", bits, L, o, e)
				}
			}
		}
	}
	kv := &model.QuantizedKV{GroupSize: 32, Bits: 8}
	if err := model.QuantizedAttend(randArray(r, 1, 1, 1, 32), kv, 1, engine.AttentionOptions{Sinks: engine.Zeros([]int{1}, engine.Float32)}).Err(); err == nil {
		t.Error("sinks accepted")
	}
}

// hidden hides a cache's UpdateQuantized: AttendCached then attends its
// dequantized keys and values (the path before quantized attention).
type hidden struct{ model.Cache }

func (c hidden) Mask(L, window int) engine.AttentionOptions { return model.MaskFor(c.Cache, L, window) }

// counted counts the steps a cache gave AttendCached quantized keys.
type counted struct {
	model.Cache
	n *int
}

func (c counted) Mask(L, window int) engine.AttentionOptions {
	return model.MaskFor(c.Cache, L, window)
}

func (c counted) UpdateQuantized(k, v *engine.Array) (*model.QuantizedKV, *engine.Array, *engine.Array) {
	q, fk, fv := c.Cache.(model.QuantizedUpdater).UpdateQuantized(k, v)
	if q != nil {
		*c.n++
	}
	return q, fk, fv
}

// TestAttendCachedQuantized: with --kv-bits 4 and 8 (and with
// --max-kv-size, and on sliding-window layers) AttendCached attends the
// quantized cache directly; the logits stay within quantizedAttendTol of
// the dequantize-then-attend path and the greedy tokens are the same,
// through prefill, single-token decoding past the rotating caches' wrap,
// and a multi-token update after it.
func TestAttendCachedQuantized(t *testing.T) {
	for _, window := range []int{0, 6} {
		m := smallLlama(t, window)
		V := m.VocabSize()
		for _, o := range []model.CacheOptions{
			{KVBits: 8, KVGroupSize: 32},
			{KVBits: 4, KVGroupSize: 32, QuantizedKVStart: 5},
			{MaxKVSize: 16, KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 4},
			{MaxKVSize: 16, KVBits: 4, KVGroupSize: 32},
		} {
			name := fmt.Sprintf("window %d %+v", window, o)
			steps := 0
			var fast, slow []model.Cache
			for _, c := range m.NewCaches(o) {
				fast = append(fast, counted{c, &steps})
			}
			for _, c := range m.NewCaches(o) {
				slow = append(slow, hidden{c})
			}
			// Greedy decoding on the quantized path; the dequantizing
			// path is fed the same tokens.
			ids := []int{3, 17, 99, 42, 7, 150, 201, 5, 64}
			var got, want []float32
			var tokens, wantTokens []int
			chunk := ids
			for len(tokens) < 30 {
				g := modeltest.Logits(t, m, fast, chunk)
				w := modeltest.Logits(t, m, slow, chunk)
				got, want = append(got, g...), append(want, w...)
				last := g[len(g)-V:]
				next := slices.Index(last, slices.Max(last))
				lastW := w[len(w)-V:]
				tokens, wantTokens = append(tokens, next), append(wantTokens, slices.Index(lastW, slices.Max(lastW)))
				chunk = []int{next}
				if len(tokens) == 24 {
					chunk = []int{next, 11, 12, 13} // a multi-token update after the wrap
				}
			}
			if e := modeltest.RelErr(got, want); e > quantizedLogitsTol {
				t.Errorf("%s: rel err %.3g", name, e)
			}
			if !slices.Equal(tokens, wantTokens) {
				t.Errorf("%s: greedy tokens %v, dequantizing path %v", name, tokens, wantTokens)
			}
			if steps == 0 {
				t.Errorf("%s: the quantized path never ran", name)
			}
		}
	}
}

// TestAttendCachedSinksDequantize: attention sinks, which quantized
// attention does not take (nor mlx_lm's), read the quantized cache
// dequantized, exactly as before.
func TestAttendCachedSinksDequantize(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sinks := func(o *engine.AttentionOptions) { o.Sinks = engine.FromFloat32s([]float32{0.5, -1, 2, 0}, 4) }
	a, b := model.NewQuantizedKVCache(32, 4, 0), model.NewQuantizedKVCache(32, 4, 0)
	steps := 0
	for _, L := range []int{6, 1, 1} {
		q, k, v := randArray(r, 1, 4, L, 32), randArray(r, 1, 2, L, 32), randArray(r, 1, 2, L, 32)
		got := floats(t, model.AttendCached(q, k, v, nil, counted{a, &steps}, 0.2, 0, sinks))
		want := floats(t, model.AttendCached(q, k, v, nil, hidden{b}, 0.2, 0, sinks))
		if !slices.Equal(got, want) {
			t.Fatalf("L %d: with sinks the outputs differ", L)
		}
	}
	if steps != 0 || !a.Quantized() {
		t.Errorf("quantized path ran %d times with sinks (cache quantized: %v)", steps, a.Quantized())
	}
}
