package fuse

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// LayerReport says how much of the adapter's change a re-quantized layer
// kept.
type LayerReport struct {
	Path      string
	Bits      int
	GroupSize int
	// Error is how far the re-quantized layer misses the intended fused
	// weight W' = W + ΔW, relative to the change: ‖P(Q(W') − W')‖ / ‖ΔW‖,
	// with Q the round trip through the written width and P the projection
	// onto the adapter's own subspace (the span of lora_b's and lora_a's
	// vectors, where a LoRA change lives; the identity for DoRA and full
	// fine-tunes, whose change is not low-rank). 0: the change is kept
	// exactly; 1: it is lost as if rounded away (Q(W') = W); above 1 the
	// re-quantization noise along the adapter's directions is larger than
	// the change itself.
	Error float64
	// Kept is max(0, 1 − Error), the share of the change that survives.
	Kept float64
	// DeltaNorm is ‖ΔW‖; 0 for an adapter that changes nothing (then Error
	// and Kept are NaN).
	DeltaNorm float64
}

// run makes and writes the job's output tensors; reports collects the
// re-quantized adapted layers.
func (j *job) run(w *st.Writer, scale float32) (*LayerReport, error) {
	if j.kind == jobCopy {
		b, err := j.w.bytes()
		if err != nil {
			return nil, err
		}
		return nil, w.WriteTensor(j.name, b)
	}
	if j.kind == jobDequant && j.dtype != st.F32 && !isFPMode(j.src.Mode) {
		// straight into the half dtype, as mx.dequantize, no float32 copy
		qb, sb, bb, err := j.quantBytes()
		if err != nil {
			return nil, err
		}
		h := make([]uint16, numel(j.shape))
		if err := quant.DequantizeHalfTo(words(qb), halves(sb), halves(bb), halfKind(j.dtype), j.shape[len(j.shape)-1], j.src.Options(), h); err != nil {
			return nil, err
		}
		return nil, w.WriteTensor(j.name, st.AsBytes(h))
	}
	vals, err := j.values()
	if err != nil {
		return nil, err
	}
	var base []float32
	round := rounder(j.dtype)
	switch j.kind {
	case jobMerge, jobReplace:
		if j.quantized && j.dst.Bits != 0 {
			base = append([]float32(nil), vals...)
		}
		if j.kind == jobReplace {
			copy(vals, j.full.Data)
			if round != nil {
				for i, v := range vals {
					vals[i] = round(v)
				}
			}
		} else if err := j.merge(vals, scale, round); err != nil {
			return nil, fmt.Errorf("fuse %s: %w", j.path, err)
		}
	}
	if !j.quantized || j.dst.Bits == 0 {
		return nil, w.WriteTensor(j.specs[0].Name, encode(vals, j.dtype))
	}
	cols := j.shape[len(j.shape)-1]
	qw, qs, qb, err := quantize(vals, j.dtype, cols, j.dst)
	if err != nil {
		return nil, fmt.Errorf("quantize %s: %w", j.path, err)
	}
	for i, data := range [][]byte{st.AsBytes(qw), qs, qb}[:len(j.specs)] {
		if err := w.WriteTensor(j.specs[i].Name, data); err != nil {
			return nil, err
		}
	}
	if base == nil {
		return nil, nil
	}
	return j.survival(base, vals, qw, qs, qb)
}

// values returns the layer's weight as float32 values in its dtype's
// precision: decoded, or for a quantized layer dequantized as
// mx.dequantize does (into the scales' dtype).
func (j *job) values() ([]float32, error) {
	if !j.quantized {
		b, err := j.w.bytes()
		if err != nil {
			return nil, err
		}
		return floats(b, j.dtype)
	}
	qb, sb, bb, err := j.quantBytes()
	if err != nil {
		return nil, err
	}
	return dequantize(words(qb), sb, bb, j.dtype, j.shape[len(j.shape)-1], j.src)
}

// quantBytes returns a quantized layer's weight, scales and biases bytes.
func (j *job) quantBytes() (q, s, b []byte, err error) {
	if q, err = j.w.bytes(); err != nil {
		return
	}
	if s, err = j.scales.bytes(); err != nil {
		return
	}
	if j.biases != nil { // none in the float modes
		b, err = j.biases.bytes()
	}
	return
}

// merge fuses the module's adapter into w (the weight's values, in place),
// as mlx_lm's fuse methods do; the shapes were checked by bindAdapter.
func (j *job) merge(w []float32, scale float32, round lora.Round) error {
	r := j.a.Shape[len(j.a.Shape)-1]
	switch j.layer {
	case quant.SwitchLinear:
		// W[e] [out, in] += scale · b[e] [out, r] · a[e] [r, in]
		E, out, in := j.shape[0], j.shape[1], j.shape[2]
		r = j.a.Shape[1]
		for e := 0; e < E; e++ {
			b := j.b.Data[e*out*r : (e+1)*out*r]
			a := transpose(j.a.Data[e*r*in:(e+1)*r*in], r, in)
			addLowRank(w[e*out*in:(e+1)*out*in], out, in, b, a, r, scale, j.dtype)
		}
		return nil
	case quant.Embedding:
		// E [V, D] += scale · a [V, r] · b [r, D]
		rows, cols := j.shape[0], j.shape[1]
		addLowRank(w, rows, cols, j.a.Data, transpose(j.b.Data, r, cols), r, scale, j.dtype)
	default:
		// W [out, in] += scale · bᵀ [out, r] · aᵀ [r, in]
		rows, cols := j.shape[0], j.shape[1]
		addLowRank(w, rows, cols, transpose(j.b.Data, r, rows), j.a.Data, r, scale, j.dtype)
	}
	if j.m != nil {
		rescaleRows(w, j.shape[0], j.shape[1], j.m.Data, round)
	}
	return nil
}

// rescaleRows multiplies each row of w [rows, cols] by m[row] / ‖row‖, the
// DoRA magnitude rescale (DoRAEmbedding.fuse).
func rescaleRows(w []float32, rows, cols int, m []float32, round lora.Round) {
	kernels.Parallel(rows, 64, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := w[r*cols : (r+1)*cols]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			f := m[r] / float32(math.Sqrt(ss))
			for i := range row {
				row[i] = f * row[i]
				if round != nil {
					row[i] = round(row[i])
				}
			}
		}
	})
}

func rounder(d st.DType) lora.Round {
	switch d {
	case st.BF16:
		return lora.RoundBF16
	case st.F16:
		return lora.RoundF16
	}
	return nil
}

// quantize encodes rows of cols values (already rounded to dtype) with
// MLX's affine encoder, scales and biases in dtype's bytes; or in a float
// mode (fpquant.go), uint8 scales and no biases.
func quantize(v []float32, dtype st.DType, cols int, set quant.Settings) (q []uint32, s, b []byte, err error) {
	if isFPMode(set.Mode) {
		q, s, err = fpQuantize(v, cols, set)
		return q, s, nil, err
	}
	rows := len(v) / cols
	ng := cols / set.GroupSize
	q = make([]uint32, rows*quant.PackedCols(cols, set.Bits))
	if dtype == st.F32 {
		sf, bf := make([]float32, rows*ng), make([]float32, rows*ng)
		err = quant.QuantizeF32(v, cols, set.Options(), q, sf, bf)
		return q, st.AsBytes(sf), st.AsBytes(bf), err
	}
	h := make([]uint16, len(v))
	kernels.F32ToHalfSlice(h, v, halfKind(dtype))
	sh, bh := make([]uint16, rows*ng), make([]uint16, rows*ng)
	err = quant.QuantizeHalf(h, halfKind(dtype), cols, set.Options(), q, sh, bh)
	return q, st.AsBytes(sh), st.AsBytes(bh), err
}

// dequantize decodes as mx.dequantize: float32 scales give float32
// values; half scales give values rounded as MLX's CPU kernel does in the
// half type, returned widened; the float modes give values rounded to
// dtype (bfloat16).
func dequantize(q []uint32, s, b []byte, dtype st.DType, cols int, set quant.Settings) ([]float32, error) {
	if isFPMode(set.Mode) {
		out, err := fpDequantize(q, s, cols, set)
		if err == nil {
			fpRound(out, dtype)
		}
		return out, err
	}
	n := len(q) * 32 / set.Bits
	out := make([]float32, n)
	if dtype == st.F32 {
		sf, bf := make([]float32, len(s)/4), make([]float32, len(b)/4)
		copy(f32view(sf), s)
		copy(f32view(bf), b)
		return out, quant.DequantizeF32(q, sf, bf, cols, set.Options(), out)
	}
	h := make([]uint16, n)
	if err := quant.DequantizeHalfTo(q, halves(s), halves(b), halfKind(dtype), cols, set.Options(), h); err != nil {
		return nil, err
	}
	kernels.HalfToF32Slice(out, h, halfKind(dtype))
	return out, nil
}
