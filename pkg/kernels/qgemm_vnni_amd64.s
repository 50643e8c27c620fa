#include "textflag.h"

// Panel GEMM for many activation rows on AVX-512 VNNI (see
// qgemm_vnni_amd64.go). A panel is 16 weight rows unpacked to u8 in the
// VNNI layout [K/4][16 rows][4 bytes]; the micro-kernel runs 8 activation
// rows (tokens) over it, one int32 accumulator per token, one VPDPBUSD per
// token and 4-element step with the token's 4 int8s broadcast from memory.

// func unpack4VNNI(dst, src unsafe.Pointer, n int)
// Widens n packed 4-bit bytes at src (n a multiple of 16; low nibble
// first) to 2n u8 values at dst in natural order.
TEXT ·unpack4VNNI(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x0f0f0f0f, AX
	VPBROADCASTD AX, Z31
	MOVQ CX, DX
	SHRQ $5, CX
	JZ   u4tail

u4loop:
	// word = byte b; (b | b<<4) & 0x0f0f puts b&15 in the low byte and
	// b>>4 in the high one.
	VPMOVZXBW (SI), Z1
	VPSLLW    $4, Z1, Z2
	VPTERNLOGD $0xA8, Z31, Z2, Z1
	VMOVDQU64 Z1, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  u4loop

u4tail:
	TESTQ $16, DX
	JZ   u4done
	VPMOVZXBW (SI), Y1
	VPSLLW    $4, Y1, Y2
	VPTERNLOGD $0xA8, Y31, Y2, Y1
	VMOVDQU Y1, (DI)

u4done:
	VZEROUPPER
	RET

// 16x16 dword transpose: rows in Z0-Z15, dword d of all 16 rows ends in Zd.
// Z16-Z31 are clobbered.
#define TR_S1(A, B, L, H) VPUNPCKLDQ B, A, L; VPUNPCKHDQ B, A, H
#define TR_S2(L0, H0, L1, H1, U0, U1, U2, U3) \
	VPUNPCKLQDQ L1, L0, U0; \
	VPUNPCKHQDQ L1, L0, U1; \
	VPUNPCKLQDQ H1, H0, U2; \
	VPUNPCKHQDQ H1, H0, U3
#define TR_S3(A, B, LO, HI) VSHUFI32X4 $0x44, B, A, LO; VSHUFI32X4 $0xEE, B, A, HI
#define TR_S4(A, B, E, O) VSHUFI32X4 $0x88, B, A, E; VSHUFI32X4 $0xDD, B, A, O

#define TRANSPOSE16 \
	TR_S1(Z0, Z1, Z16, Z17); \
	TR_S1(Z2, Z3, Z18, Z19); \
	TR_S1(Z4, Z5, Z20, Z21); \
	TR_S1(Z6, Z7, Z22, Z23); \
	TR_S1(Z8, Z9, Z24, Z25); \
	TR_S1(Z10, Z11, Z26, Z27); \
	TR_S1(Z12, Z13, Z28, Z29); \
	TR_S1(Z14, Z15, Z30, Z31); \
	TR_S2(Z16, Z17, Z18, Z19, Z0, Z1, Z2, Z3); \
	TR_S2(Z20, Z21, Z22, Z23, Z4, Z5, Z6, Z7); \
	TR_S2(Z24, Z25, Z26, Z27, Z8, Z9, Z10, Z11); \
	TR_S2(Z28, Z29, Z30, Z31, Z12, Z13, Z14, Z15); \
	TR_S3(Z0, Z4, Z16, Z17); \
	TR_S3(Z8, Z12, Z18, Z19); \
	TR_S3(Z1, Z5, Z20, Z21); \
	TR_S3(Z9, Z13, Z22, Z23); \
	TR_S3(Z2, Z6, Z24, Z25); \
	TR_S3(Z10, Z14, Z26, Z27); \
	TR_S3(Z3, Z7, Z28, Z29); \
	TR_S3(Z11, Z15, Z30, Z31); \
	TR_S4(Z16, Z18, Z0, Z4); \
	TR_S4(Z17, Z19, Z8, Z12); \
	TR_S4(Z20, Z22, Z1, Z5); \
	TR_S4(Z21, Z23, Z9, Z13); \
	TR_S4(Z24, Z26, Z2, Z6); \
	TR_S4(Z25, Z27, Z10, Z14); \
	TR_S4(Z28, Z30, Z3, Z7); \
	TR_S4(Z29, Z31, Z11, Z15)

// Row r's 64 bytes of this column (offset offs[r] from SI) into Z register R.
#define LDROW(r, R) MOVQ (8*r)(BX), R8; VMOVDQU64 (SI)(R8*1), R
#define LDROWH(r, R) MOVQ (8*r)(BX), R8; VMOVDQU32.Z (SI)(R8*1), K1, R

// func panelVNNI(dst, src unsafe.Pointer, offs *[16]int, ncol, half int)
// Writes the VNNI layout of 16 rows of u8 (row r at src+offs[r]) to dst:
// for each 4-byte step s, the 16 rows' dwords s (64 bytes). ncol full
// 64-byte columns, then, when half != 0, one of 32 bytes.
TEXT ·panelVNNI(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), BX
	MOVQ ncol+24(FP), CX
	TESTQ CX, CX
	JZ   pvhalf

pvloop:
	LDROW(0, Z0)
	LDROW(1, Z1)
	LDROW(2, Z2)
	LDROW(3, Z3)
	LDROW(4, Z4)
	LDROW(5, Z5)
	LDROW(6, Z6)
	LDROW(7, Z7)
	LDROW(8, Z8)
	LDROW(9, Z9)
	LDROW(10, Z10)
	LDROW(11, Z11)
	LDROW(12, Z12)
	LDROW(13, Z13)
	LDROW(14, Z14)
	LDROW(15, Z15)
	TRANSPOSE16
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VMOVDQU64 Z4, 256(DI)
	VMOVDQU64 Z5, 320(DI)
	VMOVDQU64 Z6, 384(DI)
	VMOVDQU64 Z7, 448(DI)
	VMOVDQU64 Z8, 512(DI)
	VMOVDQU64 Z9, 576(DI)
	VMOVDQU64 Z10, 640(DI)
	VMOVDQU64 Z11, 704(DI)
	VMOVDQU64 Z12, 768(DI)
	VMOVDQU64 Z13, 832(DI)
	VMOVDQU64 Z14, 896(DI)
	VMOVDQU64 Z15, 960(DI)
	ADDQ $64, SI
	ADDQ $1024, DI
	DECQ CX
	JNZ  pvloop

pvhalf:
	CMPQ half+32(FP), $0
	JEQ  pvdone
	MOVL $0xff, AX
	KMOVW AX, K1
	LDROWH(0, Z0)
	LDROWH(1, Z1)
	LDROWH(2, Z2)
	LDROWH(3, Z3)
	LDROWH(4, Z4)
	LDROWH(5, Z5)
	LDROWH(6, Z6)
	LDROWH(7, Z7)
	LDROWH(8, Z8)
	LDROWH(9, Z9)
	LDROWH(10, Z10)
	LDROWH(11, Z11)
	LDROWH(12, Z12)
	LDROWH(13, Z13)
	LDROWH(14, Z14)
	LDROWH(15, Z15)
	TRANSPOSE16
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VMOVDQU64 Z4, 256(DI)
	VMOVDQU64 Z5, 320(DI)
	VMOVDQU64 Z6, 384(DI)
	VMOVDQU64 Z7, 448(DI)

pvdone:
	VZEROUPPER
	RET

// One 4-element step for 8 tokens: the panel's 16 rows of the step (WO
// bytes into the block) against each token's 4 int8s (XO bytes into its
// block). Tokens 0-2 at AX, 3-5 at BX, 6-7 at DX, R8 apart.
#define STEP(WO, XO) \
	VMOVDQU32 WO(SI), Z16; \
	VPDPBUSD.BCST XO(AX), Z16, Z0; \
	VPDPBUSD.BCST XO(AX)(R8*1), Z16, Z1; \
	VPDPBUSD.BCST XO(AX)(R8*2), Z16, Z2; \
	VPDPBUSD.BCST XO(BX), Z16, Z3; \
	VPDPBUSD.BCST XO(BX)(R8*1), Z16, Z4; \
	VPDPBUSD.BCST XO(BX)(R8*2), Z16, Z5; \
	VPDPBUSD.BCST XO(DX), Z16, Z6; \
	VPDPBUSD.BCST XO(DX)(R8*1), Z16, Z7

// End of a 32-element block for one token: its integer sums times the
// token's block scale dx (at DO(R9)), times the group's row scales (Z17),
// into the float accumulator F; the integer accumulator I restarts.
#define BLKEND(I, F, DO) \
	VCVTDQ2PS I, I; \
	VMULPS.BCST DO(R9), I, I; \
	VFMADD231PS Z17, I, F; \
	VPXORD I, I, I

// func qgemmPanelVNNI(w unsafe.Pointer, sb *float32, x unsafe.Pointer, xstride int, dx, sum *float32, ng, bpg int, y *float32, ystride, ntok, rowmask int)
// For 8 tokens (int8 rows xstride bytes apart at x) and a panel of 16
// weight rows (w, VNNI layout; sb: per group 16 scales then 16 biases):
// y[t·ystride + r] = Σ_g Σ_{b∈g} scale[g,r]·dx[b,t]·Σ_{k∈b} q[r,k]·xi[t,k]
// + bias[g,r]·sum[g,t], for the first ntok tokens and the rows in rowmask.
// dx is [K/32][8], sum [ng][8]; groups have bpg blocks of 32.
TEXT ·qgemmPanelVNNI(SB), NOSPLIT, $0-96
	MOVQ w+0(FP), SI
	MOVQ sb+8(FP), R11
	MOVQ x+16(FP), AX
	MOVQ xstride+24(FP), R8
	LEAQ (AX)(R8*2), BX
	ADDQ R8, BX
	LEAQ (BX)(R8*2), DX
	ADDQ R8, DX
	MOVQ dx+32(FP), R9
	MOVQ sum+40(FP), R10
	MOVQ ng+48(FP), R13
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

pgroup:
	VMOVUPS (R11), Z17
	MOVQ bpg+56(FP), CX

pblock:
	STEP(0, 0)
	STEP(64, 4)
	STEP(128, 8)
	STEP(192, 12)
	STEP(256, 16)
	STEP(320, 20)
	STEP(384, 24)
	STEP(448, 28)
	BLKEND(Z0, Z8, 0)
	BLKEND(Z1, Z9, 4)
	BLKEND(Z2, Z10, 8)
	BLKEND(Z3, Z11, 12)
	BLKEND(Z4, Z12, 16)
	BLKEND(Z5, Z13, 20)
	BLKEND(Z6, Z14, 24)
	BLKEND(Z7, Z15, 28)
	ADDQ $512, SI
	ADDQ $32, AX
	ADDQ $32, BX
	ADDQ $32, DX
	ADDQ $32, R9
	DECQ CX
	JNZ  pblock

	// Bias term: the group's 16 row biases times each token's Σx.
	VMOVUPS 64(R11), Z18
	VFMADD231PS.BCST 0(R10), Z18, Z8
	VFMADD231PS.BCST 4(R10), Z18, Z9
	VFMADD231PS.BCST 8(R10), Z18, Z10
	VFMADD231PS.BCST 12(R10), Z18, Z11
	VFMADD231PS.BCST 16(R10), Z18, Z12
	VFMADD231PS.BCST 20(R10), Z18, Z13
	VFMADD231PS.BCST 24(R10), Z18, Z14
	VFMADD231PS.BCST 28(R10), Z18, Z15
	ADDQ $128, R11
	ADDQ $32, R10
	DECQ R13
	JNZ  pgroup

	MOVQ y+64(FP), DI
	MOVQ ystride+72(FP), R8
	MOVQ rowmask+88(FP), AX
	KMOVW AX, K1
	MOVQ ntok+80(FP), CX
	VMOVUPS Z8, K1, (DI)
	DECQ CX
	JLE  pdone
	ADDQ R8, DI
	VMOVUPS Z9, K1, (DI)
	DECQ CX
	JLE  pdone
	ADDQ R8, DI
	VMOVUPS Z10, K1, (DI)
	DECQ CX
	JLE  pdone
	ADDQ R8, DI
	VMOVUPS Z11, K1, (DI)
	DECQ CX
	JLE  pdone
	ADDQ R8, DI
	VMOVUPS Z12, K1, (DI)
	DECQ CX
	JLE  pdone
	ADDQ R8, DI
	VMOVUPS Z13, K1, (DI)
	DECQ CX
	JLE  pdone
	ADDQ R8, DI
	VMOVUPS Z14, K1, (DI)
	DECQ CX
	JLE  pdone
	ADDQ R8, DI
	VMOVUPS Z15, K1, (DI)

pdone:
	VZEROUPPER
	RET
