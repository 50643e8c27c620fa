package model

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// AttendCached is the core of the standard attention block, after the
// projections (and any q/k norms): q [B, H, L, Dh] and k [B, Hk, L, Dh]
// are rotated by rope from c's offset (not at all when rope is nil), k
// and v [B, Hk, L, Dh] are appended to c when it is not nil, and q
// attends over them with scale under c's causal mask (sliding over window
// when window > 0), its options changed by edit if given (gemma's soft
// cap, gpt_oss's sinks). It returns the heads merged, [B, L, H·Dh], for
// the output projection.
//
// A cache that holds its keys and values quantized (QuantizedUpdater) is
// attended without dequantizing it, as mlx_lm's
// quantized_scaled_dot_product_attention; attention sinks and explicit
// masks, which that path does not take, read it dequantized.
func AttendCached(q, k, v *engine.Array, rope *nn.RoPE, c Cache, scale float64, window int, edit ...func(*engine.AttentionOptions)) *engine.Array {
	L := q.Dim(2)
	if rope != nil {
		offset := 0
		if c != nil {
			offset = c.Offset()
		}
		q, k = rope.Forward(q, offset), rope.Forward(k, offset)
	}
	if c != nil {
		// One evaluation of q with k and v: the cache update would evaluate
		// k and v alone and q's projection would run as a job of its own
		// (and the input norm they share twice).
		if err := engine.Eval(q, k, v); err != nil {
			return engine.Errorf("attention: %v", err)
		}
	}
	// The mask settings depend on L, the window and the cache's kind, not
	// on what it holds, so they are known before the update.
	mask := MaskFor(c, L, window)
	for _, e := range edit {
		e(&mask)
	}
	if qc, ok := c.(QuantizedUpdater); ok && mask.Sinks == nil && mask.Mask == nil {
		kv, fk, fv := qc.UpdateQuantized(k, v)
		if kv != nil {
			return nn.MergeHeads(QuantizedAttend(q, kv, scale, mask)) // [B, L, H·Dh]
		}
		k, v = fk, fv
	} else if c != nil {
		k, v = c.Update(k, v) // [B, Hk, T, Dh]
	}
	o := nn.Attend(q, k, v, scale, mask) // [B, H, L, Dh]
	return nn.MergeHeads(o)              // [B, L, H·Dh]
}

// QuantizedAttend is mlx_lm's quantized_scaled_dot_product_attention
// (mlx_lm/models/base.py) for q [B, H, L, Dh] over quantized keys and
// values [B, Hk, T, ·]: scores = quantized_matmul(q·scale, keys,
// transpose) per group of H/Hk query heads ([B, Hk, H/Hk, L, T]), soft
// cap, o's causal and window masks (queries aligned to the end of the
// keys, as ScaledDotProductAttention), softmax, then
// quantized_matmul(scores, values). Unlike mlx_lm, scores and
// probabilities stay float32 (as the dequantized path computes them); the
// result [B, H, L, Dh] is in q's dtype. o.Mask and o.Sinks are not
// supported (AttendCached does not send them here).
func QuantizedAttend(q *engine.Array, kv *QuantizedKV, scale float64, o engine.AttentionOptions) *engine.Array {
	if o.Mask != nil || o.Sinks != nil {
		return engine.Errorf("model: quantized attention takes no explicit mask or sinks")
	}
	B, H, L, D := q.Dim(0), q.Dim(1), q.Dim(2), q.Dim(3)
	Hk, T := kv.Keys[0].Dim(1), kv.Keys[0].Dim(2)
	if Hk == 0 || H%Hk != 0 {
		return engine.Errorf("model: quantized attention: %d query heads over %d kv heads", H, Hk)
	}
	G := H / Hk
	f32 := engine.Float32
	x := engine.Reshape(engine.Multiply(engine.AsType(q, f32), engine.ScalarOf(scale, f32)), B, Hk, G, L, D)
	expand := func(a [3]*engine.Array) [3]*engine.Array { // [B, Hk, 1, T, ·]
		for i := range a {
			a[i] = engine.ExpandDims(a[i], 2)
		}
		return a
	}
	k, v := expand(kv.Keys), expand(kv.Values)
	s := engine.AsType(engine.QuantizedMatmul(x, k[0], k[1], k[2], true, kv.GroupSize, kv.Bits), f32) // [B, Hk, G, L, T]
	if o.SoftCap > 0 {
		c := engine.ScalarOf(float64(o.SoftCap), f32)
		s = engine.Multiply(engine.Tanh(engine.Divide(s, c)), c)
	}
	if o.Causal || o.Window > 0 {
		keep := make([]bool, L*T)
		for i := range L {
			pos := T - L + i // the query's key position
			for j := range T {
				keep[i*T+j] = (!o.Causal || j <= pos) && (o.Window <= 0 || j > pos-o.Window)
			}
		}
		s = engine.Where(engine.FromBools(keep, L, T), s, engine.ScalarOf(math.Inf(-1), f32))
	}
	p := engine.Softmax(s, -1)
	p = engine.Where(engine.IsNaN(p), engine.ScalarOf(0, f32), p)                    // rows with every key hidden give 0
	out := engine.QuantizedMatmul(p, v[0], v[1], v[2], false, kv.GroupSize, kv.Bits) // [B, Hk, G, L, Dh]
	return engine.AsType(engine.Reshape(out, B, H, L, out.Dim(4)), q.DType())
}
