#include "textflag.h"

// Panel GEMM for many activation rows on AVX-512 VNNI (see
// qgemm_vnni_amd64.go). A panel is 16 weight rows unpacked to u8 in the
// VNNI layout [K/4][16 rows][4 bytes]; the micro-kernel runs 8 activation
// rows (tokens) over it, one int32 accumulator per token, one VPDPBUSD per
// token and 4-element step with the token's 4 int8s broadcast from memory.

// One 4-element step for 8 tokens: the panel's 16 rows of the step (WO
// bytes into the block) against each token's 4 int8s (XO bytes into its
// block). Tokens 0-2 at AX, 3-5 at BX, 6-7 at DX, R8 apart.
#define TOKENS(W, XO) \
	VPDPBUSD.BCST XO(AX), W, Z0; \
	VPDPBUSD.BCST XO(AX)(R8*1), W, Z1; \
	VPDPBUSD.BCST XO(AX)(R8*2), W, Z2; \
	VPDPBUSD.BCST XO(BX), W, Z3; \
	VPDPBUSD.BCST XO(BX)(R8*1), W, Z4; \
	VPDPBUSD.BCST XO(BX)(R8*2), W, Z5; \
	VPDPBUSD.BCST XO(DX), W, Z6; \
	VPDPBUSD.BCST XO(DX)(R8*1), W, Z7

#define STEP(WO, XO) \
	VMOVDQU32 WO(SI), Z16; \
	TOKENS(Z16, XO)

// 8-bit panels: 8 steps of 64 bytes per block of 32.
#define BLOCKSTEPS \
	STEP(0, 0); \
	STEP(64, 4); \
	STEP(128, 8); \
	STEP(192, 12); \
	STEP(256, 16); \
	STEP(320, 20); \
	STEP(384, 24); \
	STEP(448, 28)

#define BLKFIRST(I, G, DO) \
	VCVTDQ2PS I, I; \
	VMULPS.BCST DO(R9), I, G; \
	VPXORD I, I, I

#define BLKNEXT(I, G, DO) \
	VCVTDQ2PS I, I; \
	VFMADD231PS.BCST DO(R9), I, G; \
	VPXORD I, I, I

#define BLKADV(WADV) \
	ADDQ $WADV, SI; \
	ADDQ $32, AX; \
	ADDQ $32, BX; \
	ADDQ $32, DX; \
	ADDQ $32, R9

#define PANELSTART \
	MOVQ w+0(FP), SI; \
	MOVQ s+8(FP), R11; \
	MOVQ b+16(FP), R12; \
	MOVQ x+24(FP), AX; \
	MOVQ xstride+32(FP), R8; \
	LEAQ (AX)(R8*2), BX; \
	ADDQ R8, BX; \
	LEAQ (BX)(R8*2), DX; \
	ADDQ R8, DX; \
	MOVQ dx+40(FP), R9; \
	MOVQ sum+48(FP), R10; \
	MOVQ ng+56(FP), R13; \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; \
	VPXORD Z9, Z9, Z9; \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; \
	VPXORD Z13, Z13, Z13; \
	VPXORD Z14, Z14, Z14; \
	VPXORD Z15, Z15, Z15

// The groups: per block the integer sums, scaled by dx into Z19-Z26; per
// group the row scales times those, and the biases times each token's Σx,
// into Z8-Z15; then the stores.
#define PANELGROUPS(STEPS, WADV, lgroup, lblock, lgend, ldone) \
lgroup: \
	MOVQ bpg+64(FP), CX; \
	STEPS; \
	BLKFIRST(Z0, Z19, 0); \
	BLKFIRST(Z1, Z20, 4); \
	BLKFIRST(Z2, Z21, 8); \
	BLKFIRST(Z3, Z22, 12); \
	BLKFIRST(Z4, Z23, 16); \
	BLKFIRST(Z5, Z24, 20); \
	BLKFIRST(Z6, Z25, 24); \
	BLKFIRST(Z7, Z26, 28); \
	BLKADV(WADV); \
	DECQ CX; \
	JZ   lgend; \
lblock: \
	STEPS; \
	BLKNEXT(Z0, Z19, 0); \
	BLKNEXT(Z1, Z20, 4); \
	BLKNEXT(Z2, Z21, 8); \
	BLKNEXT(Z3, Z22, 12); \
	BLKNEXT(Z4, Z23, 16); \
	BLKNEXT(Z5, Z24, 20); \
	BLKNEXT(Z6, Z25, 24); \
	BLKNEXT(Z7, Z26, 28); \
	BLKADV(WADV); \
	DECQ CX; \
	JNZ  lblock; \
lgend: \
	VMOVUPS (R11), Z17; \
	VMOVUPS (R12), Z18; \
	VFMADD231PS Z17, Z19, Z8; \
	VFMADD231PS Z17, Z20, Z9; \
	VFMADD231PS Z17, Z21, Z10; \
	VFMADD231PS Z17, Z22, Z11; \
	VFMADD231PS Z17, Z23, Z12; \
	VFMADD231PS Z17, Z24, Z13; \
	VFMADD231PS Z17, Z25, Z14; \
	VFMADD231PS Z17, Z26, Z15; \
	VFMADD231PS.BCST 0(R10), Z18, Z8; \
	VFMADD231PS.BCST 4(R10), Z18, Z9; \
	VFMADD231PS.BCST 8(R10), Z18, Z10; \
	VFMADD231PS.BCST 12(R10), Z18, Z11; \
	VFMADD231PS.BCST 16(R10), Z18, Z12; \
	VFMADD231PS.BCST 20(R10), Z18, Z13; \
	VFMADD231PS.BCST 24(R10), Z18, Z14; \
	VFMADD231PS.BCST 28(R10), Z18, Z15; \
	ADDQ $64, R11; \
	ADDQ $64, R12; \
	ADDQ $32, R10; \
	DECQ R13; \
	JNZ  lgroup; \
	MOVQ y+72(FP), DI; \
	MOVQ ystride+80(FP), R8; \
	MOVQ rowmask+96(FP), AX; \
	KMOVW AX, K1; \
	MOVQ ntok+88(FP), CX; \
	VMOVUPS Z8, K1, (DI); \
	DECQ CX; \
	JLE  ldone; \
	ADDQ R8, DI; \
	VMOVUPS Z9, K1, (DI); \
	DECQ CX; \
	JLE  ldone; \
	ADDQ R8, DI; \
	VMOVUPS Z10, K1, (DI); \
	DECQ CX; \
	JLE  ldone; \
	ADDQ R8, DI; \
	VMOVUPS Z11, K1, (DI); \
	DECQ CX; \
	JLE  ldone; \
	ADDQ R8, DI; \
	VMOVUPS Z12, K1, (DI); \
	DECQ CX; \
	JLE  ldone; \
	ADDQ R8, DI; \
	VMOVUPS Z13, K1, (DI); \
	DECQ CX; \
	JLE  ldone; \
	ADDQ R8, DI; \
	VMOVUPS Z14, K1, (DI); \
	DECQ CX; \
	JLE  ldone; \
	ADDQ R8, DI; \
	VMOVUPS Z15, K1, (DI); \
ldone: \
	VZEROUPPER; \
	RET

// func qgemmPanelVNNI(w unsafe.Pointer, s, b *float32, x unsafe.Pointer, xstride int, dx, sum *float32, ng, bpg int, y *float32, ystride, ntok, rowmask int)
// For 8 tokens (int8 rows xstride bytes apart at x) and a panel of 16
// weight rows (w, VNNI layout of u8; s and b: [ng][16] scales and
// biases):
// y[t·ystride + r] = Σ_g scale[g,r]·(Σ_{b∈g} dx[b,t]·Σ_{k∈b} q[r,k]·xi[t,k])
// + bias[g,r]·sum[g,t], for the first ntok tokens and the rows in rowmask.
// dx is [K/32][8], sum [ng][8]; groups have bpg blocks of 32.
// Registers: Z0-Z7 the tokens' integer sums of a block, Z19-Z26 their
// dx-scaled sums over the group, Z8-Z15 the outputs.
TEXT ·qgemmPanelVNNI(SB), NOSPLIT, $0-104
	PANELSTART
	PANELGROUPS(BLOCKSTEPS, 512, pgroup, pblock, pgend, pdone)

// The same for 4 tokens (the last ones of a call: fewer MACs wasted on
// padding rows); Z0-Z3, Z19-Z22 and Z8-Z11 as above.
#define TOKENS4(W, XO) \
	VPDPBUSD.BCST XO(AX), W, Z0; \
	VPDPBUSD.BCST XO(AX)(R8*1), W, Z1; \
	VPDPBUSD.BCST XO(AX)(R8*2), W, Z2; \
	VPDPBUSD.BCST XO(BX), W, Z3

#define STEPT4(WO, XO) \
	VMOVDQU32 WO(SI), Z16; \
	TOKENS4(Z16, XO)

#define BLOCKSTEPST4 \
	STEPT4(0, 0); \
	STEPT4(64, 4); \
	STEPT4(128, 8); \
	STEPT4(192, 12); \
	STEPT4(256, 16); \
	STEPT4(320, 20); \
	STEPT4(384, 24); \
	STEPT4(448, 28)

// func qgemmPanelT4VNNI(w unsafe.Pointer, s, b *float32, x unsafe.Pointer, xstride int, dx, sum *float32, ng, bpg int, y *float32, ystride, ntok, rowmask int)
// qgemmPanelVNNI for at most 4 tokens (dx and sum keep their 8-token
// layout).
TEXT ·qgemmPanelT4VNNI(SB), NOSPLIT, $0-104
	PANELSTART

t4group:
	MOVQ bpg+64(FP), CX
	BLOCKSTEPST4
	BLKFIRST(Z0, Z19, 0)
	BLKFIRST(Z1, Z20, 4)
	BLKFIRST(Z2, Z21, 8)
	BLKFIRST(Z3, Z22, 12)
	BLKADV(512)
	DECQ CX
	JZ   t4gend

t4block:
	BLOCKSTEPST4
	BLKNEXT(Z0, Z19, 0)
	BLKNEXT(Z1, Z20, 4)
	BLKNEXT(Z2, Z21, 8)
	BLKNEXT(Z3, Z22, 12)
	BLKADV(512)
	DECQ CX
	JNZ  t4block

t4gend:
	VMOVUPS (R11), Z17
	VMOVUPS (R12), Z18
	VFMADD231PS Z17, Z19, Z8
	VFMADD231PS Z17, Z20, Z9
	VFMADD231PS Z17, Z21, Z10
	VFMADD231PS Z17, Z22, Z11
	VFMADD231PS.BCST 0(R10), Z18, Z8
	VFMADD231PS.BCST 4(R10), Z18, Z9
	VFMADD231PS.BCST 8(R10), Z18, Z10
	VFMADD231PS.BCST 12(R10), Z18, Z11
	ADDQ $64, R11
	ADDQ $64, R12
	ADDQ $32, R10
	DECQ R13
	JNZ  t4group

	MOVQ y+72(FP), DI
	MOVQ ystride+80(FP), R8
	MOVQ rowmask+96(FP), AX
	KMOVW AX, K1
	MOVQ ntok+88(FP), CX
	VMOVUPS Z8, K1, (DI)
	DECQ CX
	JLE  t4done
	ADDQ R8, DI
	VMOVUPS Z9, K1, (DI)
	DECQ CX
	JLE  t4done
	ADDQ R8, DI
	VMOVUPS Z10, K1, (DI)
	DECQ CX
	JLE  t4done
	ADDQ R8, DI
	VMOVUPS Z11, K1, (DI)

t4done:
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

// Row r's column (at SI + offs[r], offs at BX) into Z register R: 16
// dwords, or the dwords in mask K1.
#define LDROW(r, R) MOVQ (8*r)(BX), R8; VMOVDQU64 (SI)(R8*1), R
#define LDROWM(r, R) MOVQ (8*r)(BX), R8; VMOVDQU32.Z (SI)(R8*1), K1, R
#define LDROWS(LD) \
	LD(0, Z0); LD(1, Z1); LD(2, Z2); LD(3, Z3); \
	LD(4, Z4); LD(5, Z5); LD(6, Z6); LD(7, Z7); \
	LD(8, Z8); LD(9, Z9); LD(10, Z10); LD(11, Z11); \
	LD(12, Z12); LD(13, Z13); LD(14, Z14); LD(15, Z15)

// The 16 transposed dwords (Z0-Z15) to DI, 64 bytes each.
#define STORE16 \
	VMOVDQU64 Z0, (DI); \
	VMOVDQU64 Z1, 64(DI); \
	VMOVDQU64 Z2, 128(DI); \
	VMOVDQU64 Z3, 192(DI); \
	VMOVDQU64 Z4, 256(DI); \
	VMOVDQU64 Z5, 320(DI); \
	VMOVDQU64 Z6, 384(DI); \
	VMOVDQU64 Z7, 448(DI); \
	VMOVDQU64 Z8, 512(DI); \
	VMOVDQU64 Z9, 576(DI); \
	VMOVDQU64 Z10, 640(DI); \
	VMOVDQU64 Z11, 704(DI); \
	VMOVDQU64 Z12, 768(DI); \
	VMOVDQU64 Z13, 832(DI); \
	VMOVDQU64 Z14, 896(DI); \
	VMOVDQU64 Z15, 960(DI)

// func panelVNNI(dst, src unsafe.Pointer, offs *[16]int, ncol, tailmask int)
// Transposes 16 rows of dwords (row r at src+offs[r]) to dst: for each
// dword index d, the 16 rows' dwords d (64 bytes). ncol full columns of 16
// dwords, then, when tailmask != 0, one column of the dwords in tailmask
// (the others zero; dst has room for the whole column).
TEXT ·panelVNNI(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), BX
	MOVQ ncol+24(FP), CX
	TESTQ CX, CX
	JZ   pvtail

pvloop:
	LDROWS(LDROW)
	TRANSPOSE16
	STORE16
	ADDQ $64, SI
	ADDQ $1024, DI
	DECQ CX
	JNZ  pvloop

pvtail:
	MOVQ tailmask+32(FP), AX
	TESTQ AX, AX
	JZ   pvdone
	KMOVW AX, K1
	LDROWS(LDROWM)
	TRANSPOSE16
	STORE16

pvdone:
	VZEROUPPER
	RET

// Transposed dword d (Z register R) of a 4-bit panel, widened to its
// even elements (low nibbles) at (2d)·64 and odd ones (high nibbles) at
// (2d+1)·64 from DI; Z17 holds 0x0f bytes, Z16 is a temporary.
#define XSTORE(R, OFF) \
	VPSRLW $4, R, Z16; \
	VPANDD Z17, R, R; \
	VPANDD Z17, Z16, Z16; \
	VMOVDQU64 R, OFF(DI); \
	VMOVDQU64 Z16, OFF+64(DI)

#define XSTORE16 \
	VPBROADCASTD DX, Z17; \
	XSTORE(Z0, 0); \
	XSTORE(Z1, 128); \
	XSTORE(Z2, 256); \
	XSTORE(Z3, 384); \
	XSTORE(Z4, 512); \
	XSTORE(Z5, 640); \
	XSTORE(Z6, 768); \
	XSTORE(Z7, 896); \
	XSTORE(Z8, 1024); \
	XSTORE(Z9, 1152); \
	XSTORE(Z10, 1280); \
	XSTORE(Z11, 1408); \
	XSTORE(Z12, 1536); \
	XSTORE(Z13, 1664); \
	XSTORE(Z14, 1792); \
	XSTORE(Z15, 1920)

// func panel4VNNI(dst, src unsafe.Pointer, offs *[16]int, ncol, tailmask int)
// panelVNNI for 16 rows of packed 4-bit values (row r at src+offs[r], 8
// a dword, low nibble first): each transposed dword is widened to two
// steps of u8, its 4 low nibbles (the even elements of its 8) then its 4
// high nibbles (the odd ones); the activations are ordered to match (see
// quantPanelAVX512).
TEXT ·panel4VNNI(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ offs+16(FP), BX
	MOVQ ncol+24(FP), CX
	MOVL $0x0f0f0f0f, DX
	TESTQ CX, CX
	JZ   p4tail

p4loop:
	LDROWS(LDROW)
	TRANSPOSE16
	XSTORE16
	ADDQ $64, SI
	ADDQ $2048, DI
	DECQ CX
	JNZ  p4loop

p4tail:
	MOVQ tailmask+32(FP), AX
	TESTQ AX, AX
	JZ   p4done
	KMOVW AX, K1
	LDROWS(LDROWM)
	TRANSPOSE16
	XSTORE16

p4done:
	VZEROUPPER
	RET

// func quantPanelAVX512(x *float32, nblk int, xq *int8, dx, bsum *float32, perm int)
// quantActAVX512 and roundedSums in one pass: per block of 32, dx =
// max|x|/127, xi = round-to-even(x·(127/max)) (0 where max = 0), and
// bsum = dx·Σxi. The int8s go in natural order, or, when perm != 0, in
// the order of the 4-bit panels: per 8, the 4 even ones then the 4 odd
// ones.
TEXT ·quantPanelAVX512(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ nblk+8(FP), CX
	MOVQ xq+16(FP), DI
	MOVQ dx+24(FP), R9
	MOVQ bsum+32(FP), R10
	TESTQ CX, CX
	JZ   qpdone
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	MOVL $0x42fe0000, AX // 127.0
	VMOVD AX, X7
	VXORPS X0, X0, X0
	MOVQ $0x0705030106040200, AX
	VMOVQ AX, X10
	MOVQ $0x0f0d0b090e0c0a08, AX
	VPINSRQ $1, AX, X10, X10
	MOVQ perm+40(FP), R11

qploop:
	VMOVUPS (SI), Z1
	VMOVUPS 64(SI), Z2
	VANDPS Z31, Z1, Z3
	VANDPS Z31, Z2, Z4
	VMAXPS Z4, Z3, Z3
	VEXTRACTF64X4 $1, Z3, Y4
	VMAXPS Y4, Y3, Y3
	VEXTRACTF128 $1, Y3, X4
	VMAXPS X4, X3, X3
	VPERMILPS $0x4e, X3, X4
	VMAXPS X4, X3, X3
	VPERMILPS $0xb1, X3, X4
	VMAXPS X4, X3, X3
	VDIVSS X7, X3, X5 // max/127
	VMOVSS X5, (R9)
	VCMPSS $4, X0, X3, K1 // max != 0
	VDIVSS.Z X3, X7, K1, X6 // 127/max, 0 where max = 0
	VBROADCASTSS X6, Z6
	VMULPS Z6, Z1, Z1
	VMULPS Z6, Z2, Z2
	VCVTPS2DQ Z1, Z1
	VCVTPS2DQ Z2, Z2
	VPADDD Z2, Z1, Z8
	VPMOVSDB Z1, X1
	VPMOVSDB Z2, X2
	TESTQ R11, R11
	JZ   qpstore
	VPSHUFB X10, X1, X1
	VPSHUFB X10, X2, X2

qpstore:
	VMOVDQU X1, (DI)
	VMOVDQU X2, 16(DI)
	VEXTRACTI64X4 $1, Z8, Y9
	VPADDD Y9, Y8, Y8
	VEXTRACTI128 $1, Y8, X9
	VPADDD X9, X8, X8
	VPSHUFD $0x4e, X8, X9
	VPADDD X9, X8, X8
	VPSHUFD $0xb1, X8, X9
	VPADDD X9, X8, X8
	VCVTDQ2PS X8, X8
	VMULSS X5, X8, X8
	VMOVSS X8, (R10)
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $4, R9
	ADDQ $4, R10
	DECQ CX
	JNZ  qploop

qpdone:
	VZEROUPPER
	RET
