//go:build arm64

#include "textflag.h"

// Exponentials on NEON, the AVX-512 kernels of exp_amd64.s op for op:
// Cephes' float32 expf (clamp, n = floor(x·log2e + 0.5) with the same fused
// multiply-add and FRINTM as VRNDSCALEPS $9, the same fused range reduction
// and degree-5 Horner polynomial), then 2^n applied by adding n to the
// exponent bits: the clamp keeps every result normal (n ≤ 128 only with
// y < 1, n ≥ −126 only with y > 1), so this is exactly VSCALEFPS. The
// results are bit-identical with the AVX-512 kernels (tests check both
// against one scalar reference). Speed is unmeasured: these were written
// and tested under qemu-aarch64, with no arm64 machine to time them on.
//
// Go's assembler lacks the floating-point vector instructions; the macros
// below encode them (register numbers as plain integers):
//   FADD   Vd.4S, Vn.4S, Vm.4S  0x4E20D400 | m<<16 | n<<5 | d
//   FADD   Vd.2D, Vn.2D, Vm.2D  0x4E60D400 | m<<16 | n<<5 | d
//   FSUB   Vd.4S, Vn.4S, Vm.4S  0x4EA0D400 | m<<16 | n<<5 | d
//   FMUL   Vd.4S, Vn.4S, Vm.4S  0x6E20DC00 | m<<16 | n<<5 | d
//   FDIV   Vd.4S, Vn.4S, Vm.4S  0x6E20FC00 | m<<16 | n<<5 | d
//   FMLA   Vd.4S, Vn.4S, Vm.4S  0x4E20CC00 | m<<16 | n<<5 | d  (d += n·m, fused)
//   FMLS   Vd.4S, Vn.4S, Vm.4S  0x4EA0CC00 | m<<16 | n<<5 | d  (d −= n·m, fused)
//   FMAX   Vd.4S, Vn.4S, Vm.4S  0x4E20F400 | m<<16 | n<<5 | d  (NaN wins)
//   FMIN   Vd.4S, Vn.4S, Vm.4S  0x4EA0F400 | m<<16 | n<<5 | d  (NaN wins)
//   FCMGT  Vd.4S, Vn.4S, Vm.4S  0x6EA0E400 | m<<16 | n<<5 | d  (n > m)
//   FCMEQ  Vd.4S, Vn.4S, Vm.4S  0x4E20E400 | m<<16 | n<<5 | d
//   BIC    Vd.16B, Vn.16B, Vm.16B 0x4E601C00 | m<<16 | n<<5 | d
//   FRINTM Vd.4S, Vn.4S         0x4E219800 | n<<5 | d
//   FCVTZS Vd.4S, Vn.4S         0x4EA1B800 | n<<5 | d
//   FCVTL  Vd.2D, Vn.2S         0x0E617800 | n<<5 | d
//   FCVTL2 Vd.2D, Vn.4S         0x4E617800 | n<<5 | d
//   FCVTN  Vd.4H, Vn.4S         0x0E216800 | n<<5 | d
//   FCVTL  Vd.4S, Vn.4H         0x0E217800 | n<<5 | d
#define FADD4(d, n, m) WORD $(0x4E20D400 | ((m)<<16) | ((n)<<5) | (d))
#define FADD2D(d, n, m) WORD $(0x4E60D400 | ((m)<<16) | ((n)<<5) | (d))
#define FSUB4(d, n, m) WORD $(0x4EA0D400 | ((m)<<16) | ((n)<<5) | (d))
#define FMUL4(d, n, m) WORD $(0x6E20DC00 | ((m)<<16) | ((n)<<5) | (d))
#define FDIV4(d, n, m) WORD $(0x6E20FC00 | ((m)<<16) | ((n)<<5) | (d))
#define FMLA4(d, n, m) WORD $(0x4E20CC00 | ((m)<<16) | ((n)<<5) | (d))
#define FMLS4(d, n, m) WORD $(0x4EA0CC00 | ((m)<<16) | ((n)<<5) | (d))
#define FMAX4(d, n, m) WORD $(0x4E20F400 | ((m)<<16) | ((n)<<5) | (d))
#define FMIN4(d, n, m) WORD $(0x4EA0F400 | ((m)<<16) | ((n)<<5) | (d))
#define FCMGT4(d, n, m) WORD $(0x6EA0E400 | ((m)<<16) | ((n)<<5) | (d))
#define FCMEQ4(d, n, m) WORD $(0x4E20E400 | ((m)<<16) | ((n)<<5) | (d))
#define BIC16(d, n, m) WORD $(0x4E601C00 | ((m)<<16) | ((n)<<5) | (d))
#define FRINTM4(d, n) WORD $(0x4E219800 | ((n)<<5) | (d))
#define FCVTZS4(d, n) WORD $(0x4EA1B800 | ((n)<<5) | (d))
#define FCVTL2D(d, n) WORD $(0x0E617800 | ((n)<<5) | (d))
#define FCVTL22D(d, n) WORD $(0x4E617800 | ((n)<<5) | (d))
#define FCVTN4H(d, n) WORD $(0x0E216800 | ((n)<<5) | (d))
#define FCVTL4S(d, n) WORD $(0x0E217800 | ((n)<<5) | (d))

// CEPHES loads the constants (as exp_amd64.s's CEPHES): V16-V17 the clamp
// [−87.3, 88.7], V18-V21 the range reduction (log2e, 0.5, C1, C2), V22-V26
// the polynomial p0..p4 (p5 = 0.5 is V19), V27 = 1. Uses R4.
#define CEPHES \
	MOVW $0xc2ae999a, R4 \
	VDUP R4, V16.S4      \
	MOVW $0x42b16666, R4 \
	VDUP R4, V17.S4      \
	MOVW $0x3fb8aa3b, R4 \
	VDUP R4, V18.S4      \
	MOVW $0x3f000000, R4 \
	VDUP R4, V19.S4      \
	MOVW $0x3f318000, R4 \
	VDUP R4, V20.S4      \
	MOVW $0xb95e8083, R4 \
	VDUP R4, V21.S4      \
	MOVW $0x39506967, R4 \
	VDUP R4, V22.S4      \
	MOVW $0x3ab743ce, R4 \
	VDUP R4, V23.S4      \
	MOVW $0x3c088908, R4 \
	VDUP R4, V24.S4      \
	MOVW $0x3d2aa9c1, R4 \
	VDUP R4, V25.S4      \
	MOVW $0x3e2aaaaa, R4 \
	VDUP R4, V26.S4      \
	MOVW $0x3f800000, R4 \
	VDUP R4, V27.S4

// EXPCORE sets register x (VX by name) from a clamped x (or NaN) to e^x:
// n = floor(fma(x, log2e, 0.5)); r = x − n·C1 − n·C2 (fused);
// y = 1 + r + r²·P(r) (P by fused Horner steps); the result y·2^n by
// adding n<<23 to y's bits (NaN: n converts to 0). Uses V4-V6.
#define EXPCORE(x, VX) \
	VORR    V19.B16, V19.B16, V4.B16 \
	FMLA4(4, x, 18)                  \
	FRINTM4(4, 4)                    \
	FMLS4(x, 4, 20)                  \
	FMLS4(x, 4, 21)                  \
	VORR    V23.B16, V23.B16, V5.B16 \
	FMLA4(5, 22, x)                  \
	VORR    V24.B16, V24.B16, V6.B16 \
	FMLA4(6, 5, x)                   \
	VORR    V25.B16, V25.B16, V5.B16 \
	FMLA4(5, 6, x)                   \
	VORR    V26.B16, V26.B16, V6.B16 \
	FMLA4(6, 5, x)                   \
	VORR    V19.B16, V19.B16, V5.B16 \
	FMLA4(5, 6, x)                   \
	FMUL4(6, x, x)                   \
	FMLA4(x, 5, 6)                   \
	FADD4(x, x, 27)                  \
	FCVTZS4(4, 4)                    \
	VSHL    $23, V4.S4, V4.S4        \
	VADD    V4.S4, VX.S4, VX.S4

// EXPM sets x to e^(x−m) (m in V29): 0 below −87.3 (−inf included),
// clamped at 88.7, NaN passing (as EXPM on AVX-512). Uses V4-V7.
#define EXPM(x, VX) \
	FSUB4(x, x, 29)   \
	FCMGT4(7, 16, x)  \
	FMAX4(x, x, 16)   \
	FMIN4(x, x, 17)   \
	EXPCORE(x, VX)    \
	BIC16(x, x, 7)

// SIG sets x to 1/(1+e^−x) (V30 = sign bits), as SIG on AVX-512. Uses V4-V6.
#define SIG(x, VX) \
	VEOR V30.B16, VX.B16, VX.B16 \
	FMAX4(x, x, 16)              \
	FMIN4(x, x, 17)              \
	EXPCORE(x, VX)               \
	FADD4(x, x, 27)              \
	FDIV4(x, 27, x)

// HALFCONST loads RBF16's constants: V8 = 1, V9 = 0x7fff, V10 = 0x400000,
// V11 = 0xffff0000. Uses R4.
#define HALFCONST \
	MOVW $1, R4          \
	VDUP R4, V8.S4       \
	MOVW $0x7fff, R4     \
	VDUP R4, V9.S4       \
	MOVW $0x400000, R4   \
	VDUP R4, V10.S4      \
	MOVW $0xffff0000, R4 \
	VDUP R4, V11.S4

// RBF16 rounds x to bf16 precision in place, as kernels.F32ToBF16: add
// 0x7fff plus the kept part's low bit, NaNs get the quiet bit; then clear
// the low half. Uses V13-V15.
#define RBF16(x, VX) \
	VUSHR $16, VX.S4, V13.S4         \
	VAND  V8.B16, V13.B16, V13.B16   \
	VADD  V9.S4, V13.S4, V13.S4      \
	VADD  VX.S4, V13.S4, V13.S4      \
	VORR  V10.B16, VX.B16, V14.B16   \
	FCMEQ4(15, x, x)                 \
	VBIT  V15.B16, V13.B16, V14.B16  \
	VAND  V11.B16, V14.B16, VX.B16

// RF16 rounds x to f16 precision in place (FCVTN, FCVTL; uses V13).
#define RF16(x, VX) \
	FCVTN4H(13, x) \
	FCVTL4S(x, 13)

// func expSubNEON(s *float32, n int, m float32, acc *[16]float32)
// s[i] = e^(s[i]−m) in place, n a positive multiple of 16; element i adds
// to acc[i%16] (the lanes of the AVX-512 kernel's accumulator).
TEXT ·expSubNEON(SB), NOSPLIT, $0-32
	MOVD  s+0(FP), R0
	MOVD  n+8(FP), R1
	FMOVS m+16(FP), F29
	MOVD  acc+24(FP), R2
	VDUP  V29.S[0], V29.S4
	CEPHES
	VLD1  (R2), [V8.S4, V9.S4, V10.S4, V11.S4]

esloop:
	VLD1   (R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	EXPM(0, V0)
	EXPM(1, V1)
	EXPM(2, V2)
	EXPM(3, V3)
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	FADD4(8, 8, 0)
	FADD4(9, 9, 1)
	FADD4(10, 10, 2)
	FADD4(11, 11, 3)
	SUBS   $16, R1, R1
	BNE    esloop
	VST1   [V8.S4, V9.S4, V10.S4, V11.S4], (R2)
	RET

// func expSumNEON(x *float32, n int, m float32, acc *[16]float64)
// acc[i%16] += e^(x[i]−m) in float64 (each term as expSubNEON), x
// unchanged, n a positive multiple of 16.
TEXT ·expSumNEON(SB), NOSPLIT, $0-32
	MOVD  x+0(FP), R0
	MOVD  n+8(FP), R1
	FMOVS m+16(FP), F29
	MOVD  acc+24(FP), R2
	VDUP  V29.S[0], V29.S4
	CEPHES
	VLD1  (R2), [V8.D2, V9.D2, V10.D2, V11.D2]
	ADD   $64, R2, R3
	VLD1  (R3), [V12.D2, V13.D2, V14.D2, V15.D2]

ssloop:
	VLD1.P 64(R0), [V0.S4, V1.S4, V2.S4, V3.S4]
	EXPM(0, V0)
	EXPM(1, V1)
	EXPM(2, V2)
	EXPM(3, V3)
	FCVTL2D(4, 0)
	FCVTL22D(5, 0)
	FCVTL2D(6, 1)
	FCVTL22D(7, 1)
	FADD2D(8, 8, 4)
	FADD2D(9, 9, 5)
	FADD2D(10, 10, 6)
	FADD2D(11, 11, 7)
	FCVTL2D(4, 2)
	FCVTL22D(5, 2)
	FCVTL2D(6, 3)
	FCVTL22D(7, 3)
	FADD2D(12, 12, 4)
	FADD2D(13, 13, 5)
	FADD2D(14, 14, 6)
	FADD2D(15, 15, 7)
	SUBS   $16, R1, R1
	BNE    ssloop
	VST1   [V8.D2, V9.D2, V10.D2, V11.D2], (R2)
	VST1   [V12.D2, V13.D2, V14.D2, V15.D2], (R3)
	RET

// func sigmoidNEON(dst, src *float32, n int)
// dst[i] = 1/(1+e^−src[i]), n a positive multiple of 4.
TEXT ·sigmoidNEON(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	MOVW $0x80000000, R4
	VDUP R4, V30.S4
	CEPHES

sgloop:
	VLD1.P 16(R1), [V0.S4]
	SIG(0, V0)
	VST1.P [V0.S4], 16(R0)
	SUBS   $4, R2, R2
	BNE    sgloop
	RET

// func swigluNEON(x, up *float32, n, kind int)
// As swigluAVX512: x[i] = r(r(x·r(sigmoid(x))))·up[i] with r the rounding
// to kind's precision (0 bf16, 1 f16, 2 none); up nil: r(x·r(sigmoid(x)))
// (the store rounds the rest). n a positive multiple of 4.
TEXT ·swigluNEON(SB), NOSPLIT, $0-32
	MOVD x+0(FP), R0
	MOVD up+8(FP), R1
	MOVD n+16(FP), R2
	MOVD kind+24(FP), R3
	MOVW $0x80000000, R4
	VDUP R4, V30.S4
	CEPHES
	HALFCONST

swloop:
	VLD1   (R0), [V0.S4]
	VORR   V0.B16, V0.B16, V12.B16
	SIG(0, V0)
	CMP    $1, R3
	BEQ    swf16
	BGT    swf32
	RBF16(0, V0)
	FMUL4(0, 12, 0)
	CBZ    R1, swst
	RBF16(0, V0)
	B      swup

swf16:
	RF16(0, V0)
	FMUL4(0, 12, 0)
	CBZ    R1, swst
	RF16(0, V0)
	B      swup

swf32:
	FMUL4(0, 12, 0)
	CBZ    R1, swst

swup:
	VLD1.P 16(R1), [V1.S4]
	FMUL4(0, 0, 1)

swst:
	VST1.P [V0.S4], 16(R0)
	SUBS   $4, R2, R2
	BNE    swloop
	RET

// func roundHalfNEON(x *float32, n, kind int)
// x[i] = float32(half(x[i])) in place: kind 0 bf16 (RBF16), 1 f16 (RF16);
// n a positive multiple of 4.
TEXT ·roundHalfNEON(SB), NOSPLIT, $0-24
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	MOVD kind+16(FP), R2
	CBNZ R2, rhf16
	HALFCONST

rhbf16:
	VLD1   (R0), [V0.S4]
	RBF16(0, V0)
	VST1.P [V0.S4], 16(R0)
	SUBS   $4, R1, R1
	BNE    rhbf16
	RET

rhf16:
	VLD1   (R0), [V0.S4]
	RF16(0, V0)
	VST1.P [V0.S4], 16(R0)
	SUBS   $4, R1, R1
	BNE    rhf16
	RET
