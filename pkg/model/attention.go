package model

import (
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
		k, v = c.Update(k, v) // [B, Hk, T, Dh]
	}
	mask := MaskFor(c, L, window)
	for _, e := range edit {
		e(&mask)
	}
	o := nn.Attend(q, k, v, scale, mask) // [B, H, L, Dh]
	return nn.MergeHeads(o)              // [B, L, H·Dh]
}
