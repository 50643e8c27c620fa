//go:build arm64

package kernels

import "unsafe"

// qrowNEON returns Σ_g s[g]·Σ_{k in group g} q[k]·x[k] over ng groups of
// 32·iters values of one 4- or 8-bit weight row w (neon_q_arm64.s).
//
//go:noescape
func qrowNEON(bits int, w unsafe.Pointer, x *float32, ng, iters int, s *float32) float32

// qgemvFast runs QMatmul for 4- and 8-bit weights and M < qmatmulGemmMinM
// with NEON, in f32: per row and group MLX's affine form split as
// scale·Σq·x (nibbles or bytes widened and converted in registers, FMLA)
// plus bias·Σx (Σx per group computed once per activation row). It
// reports whether it did.
func qgemvFast(Y, X []float32, M int, q *QWeight) bool {
	if !hasNEON || (q.Bits != 4 && q.Bits != 8) || M >= qmatmulGemmMinM ||
		q.GroupSize%32 != 0 || (q.ScalesF32 == nil && q.Kind > F16) {
		return false
	}
	K, N, G := q.K, q.N, q.GroupSize
	ng := K / G
	// Σx per group of every activation row: sumx [M, ng].
	sumx := make([]float32, M*ng)
	for i := range sumx {
		var s float32
		for _, v := range X[i*G : (i+1)*G] {
			s += v
		}
		sumx[i] = s
	}
	words := K * q.Bits / 32
	Parallel(N, 16, func(lo, hi int) {
		sbuf, bbuf := make([]float32, ng), make([]float32, ng)
		for n := lo; n < hi; n++ {
			sf, bf := sbuf, bbuf
			if q.ScalesF32 != nil {
				sf, bf = q.ScalesF32[n*ng:(n+1)*ng], q.BiasesF32[n*ng:(n+1)*ng]
			} else {
				halfToF32(sf, q.Scales[n*ng:(n+1)*ng], q.Kind)
				halfToF32(bf, q.Biases[n*ng:(n+1)*ng], q.Kind)
			}
			w := unsafe.Pointer(&q.W[n*words])
			for m := 0; m < M; m++ {
				Y[m*N+n] = qrowNEON(q.Bits, w, &X[m*K], ng, G/32, &sf[0]) + dot4(bf, sumx[m*ng:(m+1)*ng])
			}
		}
	})
	return true
}

// quantAct quantizes activations for the int8 kernels (see prepAct).
func quantAct(x []float32, bits int, xq []int8, dx, bsum []float32) bool {
	quantActGo(x, bits, xq, dx, bsum)
	return false
}

// dequantNEON writes ng groups of 32·iters values of one 4- or 8-bit
// weight row w into dst: s[g]·q + b[g] (neon_q_arm64.s).
//
//go:noescape
func dequantNEON(bits int, w unsafe.Pointer, ng, iters int, s, b, dst *float32)

// dequantFast dequantizes rows [n0, n0+rows) of a 4- or 8-bit W into dst
// with NEON; it reports whether it could.
func dequantFast(q *QWeight, n0, rows int, dst []float32) bool {
	if !hasNEON || (q.Bits != 4 && q.Bits != 8) || q.GroupSize%32 != 0 ||
		(q.ScalesF32 == nil && q.Kind > F16) {
		return false
	}
	K, G := q.K, q.GroupSize
	ng := K / G
	words := K * q.Bits / 32
	_, _ = dst[rows*K-1], q.W[(n0+rows)*words-1]
	sbuf, bbuf := make([]float32, ng), make([]float32, ng)
	for r := 0; r < rows; r++ {
		n := n0 + r
		sf, bf := sbuf, bbuf
		if q.ScalesF32 != nil {
			sf, bf = q.ScalesF32[n*ng:(n+1)*ng], q.BiasesF32[n*ng:(n+1)*ng]
		} else {
			halfToF32(sf, q.Scales[n*ng:(n+1)*ng], q.Kind)
			halfToF32(bf, q.Biases[n*ng:(n+1)*ng], q.Kind)
		}
		dequantNEON(q.Bits, unsafe.Pointer(&q.W[n*words]), ng, G/32, &sf[0], &bf[0], &dst[r*K])
	}
	return true
}

// qmatmulMultiFast: the NEON path runs one weight at a time.
func qmatmulMultiFast(Ys [][]float32, X []float32, M int, qs []*QWeight) bool { return false }
