//go:build arm64

#include "textflag.h"

// WORD encodings (Go's assembler lacks these):
//   UCVTF Vd.4S, Vn.4S         0x6E21D800 | Rn<<5 | Rd
//   FADD  Vd.4S, Vn.4S, Vm.4S  0x4E20D400 | Rm<<16 | Rn<<5 | Rd
//   FADDP Vd.4S, Vn.4S, Vm.4S  0x6E20D400 | Rm<<16 | Rn<<5 | Rd
//   FADDP Sd, Vn.2S            0x7E30D800 | Rn<<5 | Rd
// Go's three-register order is Vm, Vn, Vd: VFMLA Vm, Vn, Vd is Vd += Vn·Vm.

// QWIDEN widens 32 q values, bytes in V23 (q0..q15) and V24 (q16..q31), to
// f32 in V8..V15.
#define QWIDEN \
	VUXTL  V23.B8, V4.H8 \
	VUXTL2 V23.B16, V5.H8 \
	VUXTL  V24.B8, V6.H8 \
	VUXTL2 V24.B16, V7.H8 \
	VUXTL  V4.H4, V8.S4 \
	VUXTL2 V4.H8, V9.S4 \
	VUXTL  V5.H4, V10.S4 \
	VUXTL2 V5.H8, V11.S4 \
	VUXTL  V6.H4, V12.S4 \
	VUXTL2 V6.H8, V13.S4 \
	VUXTL  V7.H4, V14.S4 \
	VUXTL2 V7.H8, V15.S4 \
	WORD   $0x6E21D908 \
	WORD   $0x6E21D929 \
	WORD   $0x6E21D94A \
	WORD   $0x6E21D96B \
	WORD   $0x6E21D98C \
	WORD   $0x6E21D9AD \
	WORD   $0x6E21D9CE \
	WORD   $0x6E21D9EF

// QFMA adds V8..V15 times the next 32 x (R1, advanced) into V0..V3.
#define QFMA \
	VLD1.P 64(R1), [V16.S4, V17.S4, V18.S4, V19.S4] \
	VFMLA  V16.S4, V8.S4, V0.S4 \
	VFMLA  V17.S4, V9.S4, V1.S4 \
	VFMLA  V18.S4, V10.S4, V2.S4 \
	VFMLA  V19.S4, V11.S4, V3.S4 \
	VLD1.P 64(R1), [V16.S4, V17.S4, V18.S4, V19.S4] \
	VFMLA  V16.S4, V12.S4, V0.S4 \
	VFMLA  V17.S4, V13.S4, V1.S4 \
	VFMLA  V18.S4, V14.S4, V2.S4 \
	VFMLA  V19.S4, V15.S4, V3.S4

// QGROUPEND folds V0..V3 (FADD V0=V0+V1, V2=V2+V3, V0=V0+V2) and adds them,
// times the group's scale (R4, advanced), into V28.
#define QGROUPEND \
	WORD   $0x4E21D400 \
	WORD   $0x4E23D442 \
	WORD   $0x4E22D400 \
	VLD1R.P 4(R4), [V29.S4] \
	VFMLA  V29.S4, V0.S4, V28.S4

#define ZERO4 \
	VEOR V0.B16, V0.B16, V0.B16 \
	VEOR V1.B16, V1.B16, V1.B16 \
	VEOR V2.B16, V2.B16, V2.B16 \
	VEOR V3.B16, V3.B16, V3.B16

// func qrowNEON(bits int, w unsafe.Pointer, x *float32, ng, iters int, s *float32) float32
// 4-bit: 16 bytes give 32 nibbles, low nibble first (AND 0x0F, USHR 4,
// ZIP1/ZIP2 to restore the order); 8-bit: 32 bytes.
TEXT ·qrowNEON(SB), NOSPLIT, $0-52
	MOVD bits+0(FP), R6
	MOVD w+8(FP), R0
	MOVD x+16(FP), R1
	MOVD ng+24(FP), R2
	MOVD iters+32(FP), R3
	MOVD s+40(FP), R4
	VMOVI $15, V30.B16
	VEOR  V28.B16, V28.B16, V28.B16
	CMP   $8, R6
	BEQ   q8group

q4group:
	ZERO4
	MOVD R3, R5

q4loop:
	VLD1.P 16(R0), [V20.B16]
	VAND   V30.B16, V20.B16, V21.B16
	VUSHR  $4, V20.B16, V22.B16
	VZIP1  V22.B16, V21.B16, V23.B16
	VZIP2  V22.B16, V21.B16, V24.B16
	QWIDEN
	QFMA
	SUBS   $1, R5, R5
	BNE    q4loop
	QGROUPEND
	SUBS   $1, R2, R2
	BNE    q4group
	B      qdone

q8group:
	ZERO4
	MOVD R3, R5

q8loop:
	VLD1.P 32(R0), [V23.B16, V24.B16]
	QWIDEN
	QFMA
	SUBS   $1, R5, R5
	BNE    q8loop
	QGROUPEND
	SUBS   $1, R2, R2
	BNE    q8group

qdone:
	WORD  $0x6E3CD780 // FADDP V0.4S, V28.4S, V28.4S
	WORD  $0x7E30D800 // FADDP S0, V0.2S
	FMOVS F0, ret+48(FP)
	RET

// DQOUT writes b + s·q (V27 = b, V29 = s, q in V8..V15) for 32 values to
// R1, advanced.
#define DQOUT \
	VMOV   V27.B16, V16.B16 \
	VMOV   V27.B16, V17.B16 \
	VMOV   V27.B16, V18.B16 \
	VMOV   V27.B16, V19.B16 \
	VFMLA  V29.S4, V8.S4, V16.S4 \
	VFMLA  V29.S4, V9.S4, V17.S4 \
	VFMLA  V29.S4, V10.S4, V18.S4 \
	VFMLA  V29.S4, V11.S4, V19.S4 \
	VST1.P [V16.S4, V17.S4, V18.S4, V19.S4], 64(R1) \
	VMOV   V27.B16, V16.B16 \
	VMOV   V27.B16, V17.B16 \
	VMOV   V27.B16, V18.B16 \
	VMOV   V27.B16, V19.B16 \
	VFMLA  V29.S4, V12.S4, V16.S4 \
	VFMLA  V29.S4, V13.S4, V17.S4 \
	VFMLA  V29.S4, V14.S4, V18.S4 \
	VFMLA  V29.S4, V15.S4, V19.S4 \
	VST1.P [V16.S4, V17.S4, V18.S4, V19.S4], 64(R1)

// func dequantNEON(bits int, w unsafe.Pointer, ng, iters int, s, b, dst *float32)
// Writes ng groups of 32·iters values of one 4- or 8-bit row: s[g]·q + b[g].
TEXT ·dequantNEON(SB), NOSPLIT, $0-56
	MOVD bits+0(FP), R6
	MOVD w+8(FP), R0
	MOVD ng+16(FP), R2
	MOVD iters+24(FP), R3
	MOVD s+32(FP), R4
	MOVD b+40(FP), R7
	MOVD dst+48(FP), R1
	VMOVI $15, V30.B16
	CMP   $8, R6
	BEQ   dq8group

dq4group:
	VLD1R.P 4(R4), [V29.S4]
	VLD1R.P 4(R7), [V27.S4]
	MOVD    R3, R5

dq4loop:
	VLD1.P 16(R0), [V20.B16]
	VAND   V30.B16, V20.B16, V21.B16
	VUSHR  $4, V20.B16, V22.B16
	VZIP1  V22.B16, V21.B16, V23.B16
	VZIP2  V22.B16, V21.B16, V24.B16
	QWIDEN
	DQOUT
	SUBS   $1, R5, R5
	BNE    dq4loop
	SUBS   $1, R2, R2
	BNE    dq4group
	RET

dq8group:
	VLD1R.P 4(R4), [V29.S4]
	VLD1R.P 4(R7), [V27.S4]
	MOVD    R3, R5

dq8loop:
	VLD1.P 32(R0), [V23.B16, V24.B16]
	QWIDEN
	DQOUT
	SUBS   $1, R5, R5
	BNE    dq8loop
	SUBS   $1, R2, R2
	BNE    dq8group
	RET
