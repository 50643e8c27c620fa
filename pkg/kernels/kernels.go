// Package kernels holds the CPU compute kernels the engine's cpu backend calls
// on plain slices: f32 GEMM, quantized (MLX affine) and half-precision
// matrix products, and dtype conversions. It knows nothing about arrays or
// graphs. Every exported function has a pure-Go path; faster assembly paths
// are chosen at run time where the CPU has them. All matrices are row-major.
//
// Paths on amd64 (golang.org/x/sys/cpu decides at start-up):
//
//   - Sgemm: packed, cache-blocked GEMM around a 6×32 AVX-512 or 6×16 AVX2
//     micro-kernel (4×4 Go elsewhere); M <= 4 runs GEMVs instead.
//   - QMatmul (4- and 8-bit): activations quantized to int8 per block of 32
//     and integer dot products (AVX-512 VNNI VPDPBUSD, or AVX2 VPMADDUBSW),
//     MLX's affine form split as scale·Σq·x + bias·Σx per group; other
//     bit widths dequantize (AVX-512 for 4/8 bits) and use f32.
//   - HGemm: AVX-512 or AVX2/F16C widening dot products for few rows,
//     widen + Sgemm for many.
//   - HalfToF32Slice / F32ToHalfSlice: AVX-512 or AVX2/F16C, bit-exact
//     with the scalar round-to-nearest-even conversions.
//
// Paths on arm64 (NEON, part of every ARMv8-A core, so always on):
//
//   - Sgemm: the same packed, cache-blocked GEMM around an 8×8 NEON
//     micro-kernel (FMLA by element, 16 accumulator registers).
//   - Sgemm's GEMV path for M <= 4: FMLA dot products of rows when B is
//     transposed, LD1R + FMLA sums of 16-wide row slices when it is not.
//   - HGemm's few-row path: FMLA dot products, bf16 widened by
//     interleaving zero halves (ZIP1/ZIP2), f16 by FCVTL.
//   - HalfToF32Slice / F32ToHalfSlice: bf16 by shifts and integer
//     round-to-nearest-even exactly as F32ToBF16, f16 by FCVTL/FCVTN.
//   - QMatmul, 4- and 8-bit weights, M < 32: f32 rows (nibbles split by
//     AND/USHR, widened, UCVTF, FMLA), the affine form split as
//     scale·Σq·x + bias·Σx per group; no int8 (SDOT) path.
//   - Dequantization of 4- and 8-bit rows (DequantizeRow, and QMatmul's
//     dequantize + Sgemm path for M >= 32): the same unpacking, b + s·q
//     by FMLA.
//
// The arm64 paths are verified against the pure-Go ones only under qemu
// user-mode emulation (scripts/test-kernels-arm64.sh, run by .ci/run);
// nothing is known of their speed on real hardware (the 8×8 tile and block
// sizes are not tuned for any core). The other quantized bit widths run
// pure Go on arm64; other architectures run the pure-Go paths throughout.
package kernels

// HalfKind says how a []uint16 holds floats.
type HalfKind uint8

const (
	BF16 HalfKind = iota // bfloat16: the top half of a float32
	F16                  // IEEE 754 binary16
)

// QWeight is an MLX affine-quantized weight W [N, K] (N outputs, K inputs):
// W[n, k] = scale[n, k/G]·q[n, k] + bias[n, k/G], q packed LSB-first into
// uint32 words, a row of K·Bits/32 words per output.
type QWeight struct {
	N, K      int
	Bits      int // 2, 3, 4, 5, 6 or 8
	GroupSize int // 32, 64 or 128
	W         []uint32
	// Scales and biases [N, K/GroupSize]: either as halves (Kind says which)
	// or, when ScalesF32 is non-nil, as float32.
	Scales, Biases       []uint16
	Kind                 HalfKind
	ScalesF32, BiasesF32 []float32
}

// scaleBias returns the scale and bias of group g of row n.
func (q *QWeight) scaleBias(n, g int) (float32, float32) {
	i := n*(q.K/q.GroupSize) + g
	if q.ScalesF32 != nil {
		return q.ScalesF32[i], q.BiasesF32[i]
	}
	return HalfToF32(q.Scales[i], q.Kind), HalfToF32(q.Biases[i], q.Kind)
}

// unpack returns the k-th q value of row n.
func (q *QWeight) unpack(n, k int) uint32 {
	words := q.K * q.Bits / 32
	row := q.W[n*words : (n+1)*words]
	bit := k * q.Bits
	w, off := bit/32, uint(bit%32)
	v := row[w] >> off
	if int(off)+q.Bits > 32 {
		v |= row[w+1] << (32 - off)
	}
	return v & (1<<uint(q.Bits) - 1)
}
