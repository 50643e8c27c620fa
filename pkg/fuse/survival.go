package fuse

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/kernels"
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
//
// It holds no full-size copy beyond its arguments: Q(W') is decoded and
// compared a block of rows at a time.
func (j *job) survival(base, want []float32, qw []uint32, qs, qb []byte) (*LayerReport, error) {
	r := &LayerReport{Path: j.path, Bits: j.dst.Bits, GroupSize: j.dst.GroupSize}
	var dd float64
	for i := range want {
		d := float64(want[i]) - float64(base[i])
		dd += d * d
	}
	r.DeltaNorm = math.Sqrt(dd)
	r.Error, r.Kept = math.NaN(), math.NaN()
	if dd == 0 {
		return r, nil
	}
	cols := j.shape[len(j.shape)-1]
	rows := len(want) / cols

	// The adapter's subspace: per matrix (one, or one per expert) an
	// orthonormal basis u of its output side and v of its input side.
	// None for DoRA and full fine-tunes, whose change is not low-rank.
	var us, vs [][][]float64
	perMatrix := rows
	if j.kind == jobMerge && j.m == nil {
		rank := j.a.Shape[1]
		switch j.layer {
		case quant.SwitchLinear: // ΔW[e] = scale · b[e] [out, r] · a[e] [r, in]
			E, out, in := j.shape[0], j.shape[1], j.shape[2]
			perMatrix = out
			for x := 0; x < E; x++ {
				us = append(us, basis(out, rank, func(k, i int) float32 { return j.b.Data[(x*out+i)*rank+k] }))
				vs = append(vs, basis(in, rank, func(k, i int) float32 { return j.a.Data[(x*rank+k)*in+i] }))
			}
		case quant.Embedding: // ΔE = scale · a [V, r] · b [r, D]
			us = append(us, basis(rows, rank, func(k, i int) float32 { return j.a.Data[i*rank+k] }))
			vs = append(vs, basis(cols, rank, func(k, i int) float32 { return j.b.Data[k*cols+i] }))
		default: // ΔW = scale · bᵀ [out, r] · aᵀ [r, in]
			us = append(us, basis(rows, rank, func(k, i int) float32 { return j.b.Data[k*rows+i] }))
			vs = append(vs, basis(cols, rank, func(k, i int) float32 { return j.a.Data[i*rank+k] }))
		}
	}

	// E = Q(W') − W', decoded a block of rows at a time (never across two
	// experts): either its squared norm, or E·V [rows, r] (kernels.Sgemm;
	// float32 is plenty for a diagnostic).
	var ev []float64
	var vmats [][]float32 // per matrix: V as [cols, nv]
	if us != nil {
		ev = make([]float64, rows*rank0(vs))
		for _, v := range vs {
			m := make([]float32, cols*len(v))
			for k, vk := range v {
				for i, x := range vk {
					m[i*len(v)+k] = float32(x)
				}
			}
			vmats = append(vmats, m)
		}
	}
	pc := quant.PackedCols(cols, j.dst.Bits)
	ng := cols / j.dst.GroupSize
	es, _ := j.dtype.Size()
	if isFPMode(j.dst.Mode) {
		es = 1 // uint8 scales, no biases
	}
	block := max(1, min(perMatrix, (1<<20)/cols))
	nr := rank0(vs)
	var sum float64
	for r0 := 0; r0 < rows; {
		r1 := min(rows, r0+block, (r0/perMatrix+1)*perMatrix)
		var bs []byte
		if qb != nil {
			bs = qb[r0*ng*es : r1*ng*es]
		}
		got, err := dequantize(qw[r0*pc:r1*pc], qs[r0*ng*es:r1*ng*es], bs, j.dtype, cols, j.dst)
		if err != nil {
			return nil, err
		}
		w := want[r0*cols : r1*cols]
		if ev == nil {
			for i, g := range got {
				d := float64(g) - float64(w[i])
				sum += d * d
			}
		} else {
			for i := range got {
				got[i] -= w[i]
			}
			m := r0 / perMatrix
			nv := len(vs[m])
			if nv > 0 {
				out := make([]float32, (r1-r0)*nv)
				kernels.Sgemm(false, false, r1-r0, nv, cols, got, cols, vmats[m], nv, out, nv, false)
				for o := r0; o < r1; o++ {
					for k := 0; k < nv; k++ {
						ev[o*nr+k] = float64(out[(o-r0)*nv+k])
					}
				}
			}
		}
		r0 = r1
	}
	ee := sum
	// ‖Uᵀ·(E·V)‖² per matrix
	for m := range us {
		for _, u := range us[m] {
			for k := range vs[m] {
				var s float64
				for o, uo := range u {
					s += uo * ev[(m*perMatrix+o)*nr+k]
				}
				ee += s * s
			}
		}
	}
	r.Error = math.Sqrt(ee / dd)
	r.Kept = math.Max(0, 1-r.Error)
	return r, nil
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

// rank0 is the largest basis size.
func rank0(vs [][][]float64) int {
	n := 0
	for _, v := range vs {
		n = max(n, len(v))
	}
	return n
}
