package fuse

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/quant"
)

// survival measures how much of the adapter's change a re-quantized layer
// kept. base is W (the base's dequantized weight), want W' = W + ΔW (the
// float fused weight), got Q(W') (the written layer, dequantized); all
// [rows, cols] or [E, out, in] row-major.
//
// Why not ‖Q(W') − Q(W)‖ / ‖ΔW‖: MLX's encoder is not idempotent on
// dequantized weights (it re-derives a zero-anchored grid from each
// group's min and max, and 10-15% of the values of the llama-q4 fixture's
// layers move by a step when re-encoded), so a tiny ΔW that only nudges a
// group's extremes moves whole groups; that ratio then reads 50-100 for an
// adapter that was in fact lost in the noise. Measuring the error against
// the intended W' inside the adapter's subspace counts both the rounded-
// away change (error 1) and noise swamping it (error > 1), while the
// quantization noise outside the adapter's directions, which the base has
// too, does not count.
func (j *job) survival(base, want, got []float32) *LayerReport {
	r := &LayerReport{Path: j.path, Bits: j.dst.Bits, GroupSize: j.dst.GroupSize}
	var dd float64
	for i := range want {
		d := float64(want[i]) - float64(base[i])
		dd += d * d
	}
	r.DeltaNorm = math.Sqrt(dd)
	r.Error, r.Kept = math.NaN(), math.NaN()
	if dd == 0 {
		return r
	}
	e := make([]float64, len(want)) // Q(W') − W'
	for i := range want {
		e[i] = float64(got[i]) - float64(want[i])
	}
	var ee float64
	switch {
	case j.kind != jobMerge || j.m != nil:
		// DoRA and full fine-tunes: the change is not low-rank.
		for _, v := range e {
			ee += v * v
		}
	case j.layer == quant.SwitchLinear:
		// ΔW[e] = scale · b[e] [out, r] · a[e] [r, in]
		E, out, in := j.shape[0], j.shape[1], j.shape[2]
		rank := j.a.Shape[1]
		for x := 0; x < E; x++ {
			u := basis(out, rank, func(k, i int) float32 { return j.b.Data[(x*out+i)*rank+k] })
			v := basis(in, rank, func(k, i int) float32 { return j.a.Data[(x*rank+k)*in+i] })
			ee += projected(e[x*out*in:(x+1)*out*in], out, in, u, v)
		}
	case j.layer == quant.Embedding:
		// ΔE = scale · a [V, r] · b [r, D]
		rows, cols := j.shape[0], j.shape[1]
		rank := j.a.Shape[1]
		u := basis(rows, rank, func(k, i int) float32 { return j.a.Data[i*rank+k] })
		v := basis(cols, rank, func(k, i int) float32 { return j.b.Data[k*cols+i] })
		ee = projected(e, rows, cols, u, v)
	default:
		// ΔW = scale · bᵀ [out, r] · aᵀ [r, in]
		rows, cols := j.shape[0], j.shape[1]
		rank := j.a.Shape[1]
		u := basis(rows, rank, func(k, i int) float32 { return j.b.Data[k*rows+i] })
		v := basis(cols, rank, func(k, i int) float32 { return j.a.Data[i*rank+k] })
		ee = projected(e, rows, cols, u, v)
	}
	r.Error = math.Sqrt(ee / dd)
	r.Kept = math.Max(0, 1-r.Error)
	return r
}

// basis returns an orthonormal basis (modified Gram-Schmidt, float64) of
// the k vectors of length n given by at(k, i); vectors that add nothing
// new are dropped.
func basis(n, k int, at func(k, i int) float32) [][]float64 {
	var out [][]float64
	for c := 0; c < k; c++ {
		v := make([]float64, n)
		var norm0 float64
		for i := range v {
			v[i] = float64(at(c, i))
			norm0 += v[i] * v[i]
		}
		for _, q := range out {
			var d float64
			for i := range v {
				d += q[i] * v[i]
			}
			for i := range v {
				v[i] -= d * q[i]
			}
		}
		var norm float64
		for _, x := range v {
			norm += x * x
		}
		if norm == 0 || norm < 1e-20*norm0 {
			continue
		}
		s := 1 / math.Sqrt(norm)
		for i := range v {
			v[i] *= s
		}
		out = append(out, v)
	}
	return out
}

// projected is ‖Uᵀ·E·V‖², the squared norm of E [rows, cols] projected
// onto span(U) ⊗ span(V).
func projected(e []float64, rows, cols int, u, v [][]float64) float64 {
	ev := make([][]float64, len(v)) // E·V, one column per basis vector
	for c, vc := range v {
		col := make([]float64, rows)
		for o := 0; o < rows; o++ {
			row := e[o*cols : (o+1)*cols]
			var s float64
			for i, x := range row {
				s += x * vc[i]
			}
			col[o] = s
		}
		ev[c] = col
	}
	var ss float64
	for _, uc := range u {
		for _, col := range ev {
			var s float64
			for o, x := range col {
				s += uc[o] * x
			}
			ss += s * s
		}
	}
	return ss
}
