package lora

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// Round rounds a float32 to a storage dtype's precision (nil: float32).
type Round func(float32) float32

// RoundBF16 and RoundF16 round to bfloat16 / float16 precision, nearest-even.
func RoundBF16(x float32) float32 { return kernels.BF16ToF32(kernels.F32ToBF16(x)) }
func RoundF16(x float32) float32  { return kernels.F16ToF32(kernels.F32ToF16(x)) }

func apply(r Round, x float32) float32 {
	if r == nil {
		return x
	}
	return r(x)
}

// MergeLinear fuses a LoRA pair into a linear weight as mlx_lm's
// LoRALinear.fuse does: W' = W + cast(scale · bᵀ · aᵀ), the delta cast to the
// weight's dtype before the add, the sum rounded to it too.
// w is W [out, in] (in place); a is lora_a [in, r], b is lora_b [r, out].
func MergeLinear(w []float32, out, in int, a, b Tensor, scale float32, round Round) error {
	if err := checkPair(out, in, a, b); err != nil {
		return err
	}
	r := a.Shape[1]
	kernels.Parallel(out, 8, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			row := w[o*in : (o+1)*in]
			for i := range row {
				var d float32
				for k := 0; k < r; k++ {
					d += b.Data[k*out+o] * a.Data[i*r+k]
				}
				row[i] = apply(round, row[i]+apply(round, scale*d))
			}
		}
	})
	return nil
}

func checkPair(out, in int, a, b Tensor) error {
	if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != in || b.Shape[1] != out || a.Shape[1] != b.Shape[0] {
		return fmt.Errorf("adapter shapes lora_a %v, lora_b %v do not fit a weight [%d, %d] (expected lora_a [%d, r], lora_b [r, %d])", a.Shape, b.Shape, out, in, in, out)
	}
	return nil
}

// MergeDoRA fuses a DoRA adapter: W' = W + cast(scale · bᵀaᵀ), then each row
// is rescaled by m / ‖W'_row‖ (mlx_lm's DoRALinear.fuse; the bias, if any,
// is left alone).
func MergeDoRA(w []float32, out, in int, a, b Tensor, m Tensor, scale float32, round Round) error {
	if err := MergeLinear(w, out, in, a, b, scale, round); err != nil {
		return err
	}
	if len(m.Shape) != 1 || m.Shape[0] != out {
		return fmt.Errorf("DoRA magnitude m %v does not fit a weight with %d rows", m.Shape, out)
	}
	kernels.Parallel(out, 8, func(lo, hi int) {
		for o := lo; o < hi; o++ {
			row := w[o*in : (o+1)*in]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			f := m.Data[o] / float32(math.Sqrt(ss))
			for i := range row {
				row[i] = apply(round, f*row[i])
			}
		}
	})
	return nil
}

// MergeEmbedding fuses a LoRA embedding: E' = E + cast(scale · a · b) for
// E [vocab, dims], a [vocab, r], b [r, dims].
func MergeEmbedding(e []float32, vocab, dims int, a, b Tensor, scale float32, round Round) error {
	if len(a.Shape) != 2 || len(b.Shape) != 2 || a.Shape[0] != vocab || b.Shape[1] != dims || a.Shape[1] != b.Shape[0] {
		return fmt.Errorf("adapter shapes lora_a %v, lora_b %v do not fit an embedding [%d, %d]", a.Shape, b.Shape, vocab, dims)
	}
	r := a.Shape[1]
	kernels.Parallel(vocab, 64, func(lo, hi int) {
		for v := lo; v < hi; v++ {
			row := e[v*dims : (v+1)*dims]
			for j := range row {
				var d float32
				for k := 0; k < r; k++ {
					d += a.Data[v*r+k] * b.Data[k*dims+j]
				}
				row[j] = apply(round, row[j]+apply(round, scale*d))
			}
		}
	})
	return nil
}

// MergeSwitch fuses a LoRA adapter on an MoE expert stack W [E, out, in]
// with lora_a [E, r, in] and lora_b [E, out, r]: W'[e] = W[e] + scale·b[e]·a[e].
func MergeSwitch(w []float32, experts, out, in int, a, b Tensor, scale float32, round Round) error {
	if len(a.Shape) != 3 || len(b.Shape) != 3 || a.Shape[0] != experts || b.Shape[0] != experts ||
		a.Shape[2] != in || b.Shape[1] != out || a.Shape[1] != b.Shape[2] {
		return fmt.Errorf("adapter shapes lora_a %v, lora_b %v do not fit an expert stack [%d, %d, %d]", a.Shape, b.Shape, experts, out, in)
	}
	r := a.Shape[1]
	kernels.Parallel(experts*out, 8, func(lo, hi int) {
		for eo := lo; eo < hi; eo++ {
			e, o := eo/out, eo%out
			row := w[eo*in : (eo+1)*in]
			for i := range row {
				var d float32
				for k := 0; k < r; k++ {
					d += b.Data[(e*out+o)*r+k] * a.Data[(e*r+k)*in+i]
				}
				row[i] = apply(round, row[i]+apply(round, scale*d))
			}
		}
	})
	return nil
}
