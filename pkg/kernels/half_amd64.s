#include "textflag.h"

// Widen 16 halves from memory operand MEM (under mask M, zeroing) into Z
// register R as f32.
#define WBF16(MEM, M, R, RY) VMOVDQU16.Z MEM, M, RY; VPMOVZXWD RY, R; VPSLLD $16, R, R
#define WF16(MEM, M, R, RY) VMOVDQU16.Z MEM, M, RY; VCVTPH2PS RY, R

// Unmasked forms for full vectors.
#define FBF16(MEM, R) VPMOVZXWD MEM, R; VPSLLD $16, R, R
#define FF16(MEM, R) VCVTPH2PS MEM, R

// func hgemvAVX512(rows int, w unsafe.Pointer, K, kind int, x, y *float32)
// y[r] = Σ_k widen(w[r·K+k])·x[k] for r < rows; kind 0 = bf16, 1 = f16.
TEXT ·hgemvAVX512(SB), NOSPLIT, $0-48
	MOVQ rows+0(FP), R8
	MOVQ w+8(FP), R9
	MOVQ K+16(FP), R10
	MOVQ kind+24(FP), R11
	MOVQ y+40(FP), R12
	// K1: all 16; K2: the tail of K mod 16.
	MOVL $0xffff, AX
	KMOVW AX, K1
	MOVQ R10, CX
	ANDQ $15, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K2
	TESTQ R8, R8
	JZ   hdone

hrow:
	MOVQ R9, SI
	MOVQ x+32(FP), DI
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ R10, CX
	SHRQ $6, CX
	JZ   h16
	TESTQ R11, R11
	JNZ  h64f16

h64bf16:
	FBF16((SI), Z4)
	FBF16(32(SI), Z5)
	FBF16(64(SI), Z6)
	FBF16(96(SI), Z7)
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, DI
	DECQ CX
	JNZ  h64bf16
	JMP  h16

h64f16:
	FF16((SI), Z4)
	FF16(32(SI), Z5)
	FF16(64(SI), Z6)
	FF16(96(SI), Z7)
	VFMADD231PS (DI), Z4, Z0
	VFMADD231PS 64(DI), Z5, Z1
	VFMADD231PS 128(DI), Z6, Z2
	VFMADD231PS 192(DI), Z7, Z3
	ADDQ $128, SI
	ADDQ $256, DI
	DECQ CX
	JNZ  h64f16

h16:
	MOVQ R10, CX
	ANDQ $63, CX
	SHRQ $4, CX
	JZ   htail

h16loop:
	TESTQ R11, R11
	JNZ  h16f16
	FBF16((SI), Z4)
	JMP  h16fma

h16f16:
	FF16((SI), Z4)

h16fma:
	VFMADD231PS (DI), Z4, Z0
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  h16loop

htail:
	TESTQ R11, R11
	JNZ  htf16
	WBF16((SI), K2, Z4, Y4)
	JMP  htfma

htf16:
	WF16((SI), K2, Z4, Y4)

htfma:
	VMOVUPS.Z (DI), K2, Z5
	VFMADD231PS Z5, Z4, Z0
	VADDPS Z1, Z0, Z0
	VADDPS Z3, Z2, Z2
	VADDPS Z2, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDSS X1, X0, X0
	VMOVSS X0, (R12)
	ADDQ $4, R12
	MOVQ R10, AX
	SHLQ $1, AX
	ADDQ AX, R9
	DECQ R8
	JNZ  hrow

hdone:
	VZEROUPPER
	RET

// func halfToF32AVX512(dst *float32, src *uint16, n, kind int)
TEXT ·halfToF32AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ kind+24(FP), R11
	MOVL $0xffff, AX
	KMOVW AX, K1

wloop:
	CMPQ CX, $16
	JLT  wtail
	TESTQ R11, R11
	JNZ  wf16
	FBF16((SI), Z0)
	JMP  wst

wf16:
	FF16((SI), Z0)

wst:
	VMOVUPS Z0, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  wloop

wtail:
	TESTQ CX, CX
	JZ   wdone
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K2
	TESTQ R11, R11
	JNZ  wtf16
	WBF16((SI), K2, Z0, Y0)
	JMP  wtst

wtf16:
	WF16((SI), K2, Z0, Y0)

wtst:
	VMOVUPS Z0, K2, (DI)

wdone:
	VZEROUPPER
	RET

// Narrow Z0 (16 f32) to bf16 in Y0 with round-to-nearest-even; NaNs become
// quiet ((bits | 0x400000) >> 16) like F32ToBF16. Uses Z1, Z2, K3;
// Z27 = 0x400000, Z28 = 0x7fff, Z29 = 1, Z30 = 0x7fffffff, Z31 = 0x7f800000.
#define NBF16 \
	VPSRLD $16, Z0, Z1; \
	VPANDD Z29, Z1, Z1; \
	VPADDD Z28, Z1, Z1; \
	VPADDD Z0, Z1, Z1; \
	VPANDD Z30, Z0, Z2; \
	VPCMPUD $6, Z31, Z2, K3; \
	VPORD Z27, Z0, K3, Z1; \
	VPSRLD $16, Z1, Z1; \
	VPMOVDW Z1, Y0

// func f32ToHalfAVX512(dst *uint16, src *float32, n, kind int)
TEXT ·f32ToHalfAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ kind+24(FP), R11
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z28
	MOVL $1, AX
	VPBROADCASTD AX, Z29
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z30
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z31
	MOVL $0x400000, AX
	VPBROADCASTD AX, Z27
	MOVL $0xffff, AX
	KMOVW AX, K1

nloop:
	CMPQ CX, $16
	JLT  ntail
	VMOVUPS (SI), Z0
	TESTQ R11, R11
	JNZ  nf16
	NBF16
	JMP  nst

nf16:
	VCVTPS2PH $0, Z0, Y0

nst:
	VMOVDQU Y0, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	SUBQ $16, CX
	JMP  nloop

ntail:
	TESTQ CX, CX
	JZ   ndone
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K2
	VMOVUPS.Z (SI), K2, Z0
	TESTQ R11, R11
	JNZ  ntf16
	NBF16
	JMP  ntst

ntf16:
	VCVTPS2PH $0, Z0, Y0

ntst:
	VMOVDQU16 Y0, K2, (DI)

ndone:
	VZEROUPPER
	RET
