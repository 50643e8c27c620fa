#include "textflag.h"

// ZERO16 clears the 16 accumulators Z0-Z15.
#define ZERO16 \
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

// Few-query attention kernels (sdpaSmall): scores for blocks of 16 keys
// with one transpose-add tree per query row, and P·V with the output rows
// held in registers across all keys.

// QKFMA8 accumulates q (Z16) times 8 key rows at base B (rows 0..7 at
// B, B+s, B+2s, B+3s, B+4s, B+5s, B+6s, B+7s; s in R10, 3s in R14, 5s in
// AX, 7s in R12) into a0..a7.
#define QKFMA8(B, a0, a1, a2, a3, a4, a5, a6, a7) \
	VFMADD231PS (B), Z16, a0          \
	VFMADD231PS (B)(R10*1), Z16, a1   \
	VFMADD231PS (B)(R10*2), Z16, a2   \
	VFMADD231PS (B)(R14*1), Z16, a3   \
	VFMADD231PS (B)(R10*4), Z16, a4   \
	VFMADD231PS (B)(AX*1), Z16, a5    \
	VFMADD231PS (B)(R14*2), Z16, a6   \
	VFMADD231PS (B)(R12*1), Z16, a7

// Tree steps: each leaves in a the pairwise sums of a and b's partials.
// F4LO: a = [a.L0+a.L2, a.L1+a.L3, b.L0+b.L2, b.L1+b.L3] (128-bit lanes).
#define F4LO(b, a) \
	VSHUFF32X4 $0x44, b, a, Z17 \
	VSHUFF32X4 $0xee, b, a, a   \
	VADDPS     Z17, a, a

// F4HI: a = [a.L0+a.L1, a.L2+a.L3, b.L0+b.L1, b.L2+b.L3].
#define F4HI(b, a) \
	VSHUFF32X4 $0x88, b, a, Z17 \
	VSHUFF32X4 $0xdd, b, a, a   \
	VADDPS     Z17, a, a

// PSLO: within each lane, a = [a0+a2, a1+a3, b0+b2, b1+b3].
#define PSLO(b, a) \
	VSHUFPS $0x44, b, a, Z17 \
	VSHUFPS $0xee, b, a, a   \
	VADDPS  Z17, a, a

// PSHI: within each lane, a = [a0+a1, a2+a3, b0+b1, b2+b3].
#define PSHI(b, a) \
	VSHUFPS $0x88, b, a, Z17 \
	VSHUFPS $0xdd, b, a, a   \
	VADDPS  Z17, a, a

// FOLD16STORE folds accumulators Z0-Z15 (accumulator j: key j's 16
// partial sums) so that lane j of Z0 is key j's score, and stores the
// lanes under K1 at DX.
#define FOLD16STORE \
	F4LO(Z4, Z0); \
	F4LO(Z5, Z1); \
	F4LO(Z6, Z2); \
	F4LO(Z7, Z3); \
	F4LO(Z12, Z8); \
	F4LO(Z13, Z9); \
	F4LO(Z14, Z10); \
	F4LO(Z15, Z11); \
	F4HI(Z8, Z0); \
	F4HI(Z9, Z1); \
	F4HI(Z10, Z2); \
	F4HI(Z11, Z3); \
	PSLO(Z1, Z0); \
	PSLO(Z3, Z2); \
	PSHI(Z2, Z0); \
	VMOVUPS Z0, K1, (DX)

// func qkBlocksAVX512(q *float32, qnext, rows int, k *float32, ldk, nv, n int, s *float32, lds int)
// s[r·lds+j] = Σ_i q[r·(d+qnext/4)+i]·k[j·ldk+i] for r < rows, j < n;
// d = 16·nv; qnext is the byte gap from the end of a query row to the
// next; k must hold ⌈n/16⌉·16 rows (the rows past n are read, their lanes
// never stored).
TEXT ·qkBlocksAVX512(SB), NOSPLIT, $0-72
	MOVQ k+24(FP), DI
	MOVQ ldk+32(FP), R10
	MOVQ n+48(FP), R15
	SHLQ $2, R10             // key row stride in bytes
	LEAQ (R10)(R10*2), R14   // 3s
	LEAQ (R10)(R10*4), AX    // 5s
	LEAQ (R14)(R10*4), R12   // 7s
	MOVQ qnext+8(FP), R8
	MOVQ lds+64(FP), R11
	SHLQ $2, R11

qblock:
	TESTQ R15, R15
	JLE   qdone
	MOVL  $0xffff, BX
	CMPQ  R15, $16
	JGE   qmask
	MOVQ  R15, CX
	MOVL  $1, BX
	SHLL  CX, BX
	DECL  BX

qmask:
	KMOVW BX, K1
	MOVQ  q+0(FP), SI
	MOVQ  s+56(FP), DX
	MOVQ  rows+16(FP), R9

qrow:
	ZERO16
	MOVQ   DI, BX
	LEAQ   (DI)(R10*8), R13
	MOVQ   nv+40(FP), CX

qvec:
	VMOVUPS (SI), Z16
	QKFMA8(BX, Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7)
	QKFMA8(R13, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15)
	ADDQ    $64, SI
	ADDQ    $64, BX
	ADDQ    $64, R13
	DECQ    CX
	JNZ     qvec

	FOLD16STORE

	ADDQ R8, SI
	ADDQ R11, DX
	DECQ R9
	JNZ  qrow

	MOVQ R10, BX
	SHLQ $4, BX
	ADDQ BX, DI
	ADDQ $64, s+56(FP)
	SUBQ $16, R15
	JMP  qblock

qdone:
	VZEROUPPER
	RET


// VDPBF16PS Z18 or Z19 (the key), Z16 (the query), Za (accumulator a),
// which the Go assembler does not know: DPBF(p1, modrm) emits the EVEX
// form (p1: 0xb2 for Z0..Z7, 0x32 for Z8..Z15; modrm 0xc2+8·(a mod 8),
// +1 for Z19).
#define DPBF(p1, modrm) BYTE $0x62; BYTE $p1; BYTE $0x7e; BYTE $0x40; BYTE $0x52; BYTE $modrm

// func qkBF16AVX512(q *uint16, qnext, rows int, k *uint16, ldk, nv, n int, s *float32, lds int)
// s[r·lds+j] = Σ_i q[r·(d+qnext/2)+i]·k[j·ldk+i] for r < rows, j < n, in
// bfloat16 pairs (VDPBF16PS: exact products, float32 sums; subnormal
// inputs count as 0). d = 32·nv; qnext is the byte gap from the end of a
// query row to the next; k must hold ⌈n/16⌉·16 rows (the rows past n are
// read, their lanes never stored).
TEXT ·qkBF16AVX512(SB), NOSPLIT, $0-72
	MOVQ k+24(FP), DI
	MOVQ ldk+32(FP), R10
	MOVQ n+48(FP), R15
	SHLQ $1, R10             // key row stride in bytes
	LEAQ (R10)(R10*2), R14   // 3s
	LEAQ (R10)(R10*4), AX    // 5s
	LEAQ (R14)(R10*4), R12   // 7s
	MOVQ qnext+8(FP), R8
	MOVQ lds+64(FP), R11
	SHLQ $2, R11

bblock:
	TESTQ R15, R15
	JLE   bdone
	MOVL  $0xffff, BX
	CMPQ  R15, $16
	JGE   bmask
	MOVQ  R15, CX
	MOVL  $1, BX
	SHLL  CX, BX
	DECL  BX

bmask:
	KMOVW BX, K1
	MOVQ  q+0(FP), SI
	MOVQ  s+56(FP), DX
	MOVQ  rows+16(FP), R9

brow:
	ZERO16
	MOVQ   DI, BX
	LEAQ   (DI)(R10*8), R13
	MOVQ   nv+40(FP), CX

bvec:
	VMOVDQU32 (SI), Z16
	VMOVDQU32 (BX), Z18
	DPBF(0xb2, 0xc2)
	VMOVDQU32 (BX)(R10*1), Z19
	DPBF(0xb2, 0xcb)
	VMOVDQU32 (BX)(R10*2), Z18
	DPBF(0xb2, 0xd2)
	VMOVDQU32 (BX)(R14*1), Z19
	DPBF(0xb2, 0xdb)
	VMOVDQU32 (BX)(R10*4), Z18
	DPBF(0xb2, 0xe2)
	VMOVDQU32 (BX)(AX*1), Z19
	DPBF(0xb2, 0xeb)
	VMOVDQU32 (BX)(R14*2), Z18
	DPBF(0xb2, 0xf2)
	VMOVDQU32 (BX)(R12*1), Z19
	DPBF(0xb2, 0xfb)
	VMOVDQU32 (R13), Z18
	DPBF(0x32, 0xc2)
	VMOVDQU32 (R13)(R10*1), Z19
	DPBF(0x32, 0xcb)
	VMOVDQU32 (R13)(R10*2), Z18
	DPBF(0x32, 0xd2)
	VMOVDQU32 (R13)(R14*1), Z19
	DPBF(0x32, 0xdb)
	VMOVDQU32 (R13)(R10*4), Z18
	DPBF(0x32, 0xe2)
	VMOVDQU32 (R13)(AX*1), Z19
	DPBF(0x32, 0xeb)
	VMOVDQU32 (R13)(R14*2), Z18
	DPBF(0x32, 0xf2)
	VMOVDQU32 (R13)(R12*1), Z19
	DPBF(0x32, 0xfb)
	ADDQ    $64, SI
	ADDQ    $64, BX
	ADDQ    $64, R13
	DECQ    CX
	JNZ     bvec

	FOLD16STORE

	ADDQ R8, SI
	ADDQ R11, DX
	DECQ R9
	JNZ  brow

	MOVQ R10, BX
	SHLQ $4, BX
	ADDQ BX, DI
	ADDQ $64, s+56(FP)
	SUBQ $16, R15
	JMP  bblock

bdone:
	VZEROUPPER
	RET

// PVROWB adds p (broadcast from addr) times the value vectors Z28..Z31
// to the row accumulators a0..a3.
#define PVROWB(addr, a0, a1, a2, a3) \
	VFMADD231PS.BCST addr, Z28, a0 \
	VFMADD231PS.BCST addr, Z29, a1 \
	VFMADD231PS.BCST addr, Z30, a2 \
	VFMADD231PS.BCST addr, Z31, a3

// VLDBF16 widens the 64 bfloat16 columns at SI (under K1..K4) into
// Z28..Z31.
#define VLDBF16 \
	VPMOVZXWD.Z (SI), K1, Z28   \
	VPMOVZXWD.Z 32(SI), K2, Z29 \
	VPMOVZXWD.Z 64(SI), K3, Z30 \
	VPMOVZXWD.Z 96(SI), K4, Z31 \
	VPSLLD $16, Z28, Z28        \
	VPSLLD $16, Z29, Z29        \
	VPSLLD $16, Z30, Z30        \
	VPSLLD $16, Z31, Z31

// VLDF16 widens the 64 float16 columns at SI (under K1..K4) into
// Z28..Z31.
#define VLDF16 \
	VCVTPH2PS.Z (SI), K1, Z28   \
	VCVTPH2PS.Z 32(SI), K2, Z29 \
	VCVTPH2PS.Z 64(SI), K3, Z30 \
	VCVTPH2PS.Z 96(SI), K4, Z31

// LDROW / STROW move one output row (64 columns under masks K1..K4).
#define LDROW(addr, a0, a1, a2, a3) \
	VMOVUPS.Z addr, K1, a0 \
	VMOVUPS.Z 64 addr, K2, a1 \
	VMOVUPS.Z 128 addr, K3, a2 \
	VMOVUPS.Z 192 addr, K4, a3

#define STROW(addr, a0, a1, a2, a3) \
	VMOVUPS a0, K1, addr \
	VMOVUPS a1, K2, 64 addr \
	VMOVUPS a2, K3, 128 addr \
	VMOVUPS a3, K4, 192 addr

// func pvAVX512(o *float32, ldo, rows int, p *float32, ldp int, v unsafe.Pointer, ldv, n int, m uint64, kind int)
// o[r·ldo+i] += Σ_{j<n} p[r·ldp+j]·v[j·ldv+i] for r < rows (1..7) and the
// columns i < 64 that the masks m (four 16-bit lane masks, one per 16
// columns) select. v holds float32 (kind 0), or bfloat16 (1) or float16
// (2) widened here; ldv is in bytes.
TEXT ·pvAVX512(SB), NOSPLIT, $0-80
	MOVQ o+0(FP), DI
	MOVQ ldo+8(FP), R8
	MOVQ rows+16(FP), R9
	MOVQ p+24(FP), DX
	MOVQ ldp+32(FP), R11
	MOVQ v+40(FP), SI
	MOVQ ldv+48(FP), R10
	MOVQ n+56(FP), CX
	MOVQ m+64(FP), AX
	KMOVW AX, K1
	SHRQ  $16, AX
	KMOVW AX, K2
	SHRQ  $16, AX
	KMOVW AX, K3
	SHRQ  $16, AX
	KMOVW AX, K4
	SHLQ $2, R8
	SHLQ $2, R11
	LEAQ (R11)(R11*2), R12  // 3·ldp
	LEAQ (R11)(R11*4), R13  // 5·ldp
	LEAQ (R8)(R8*2), R14    // 3·ldo
	LEAQ (R8)(R8*4), R15    // 5·ldo

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
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27

	LDROW((DI), Z0, Z1, Z2, Z3)
	CMPQ R9, $2
	JLT  pvld
	LDROW((DI)(R8*1), Z4, Z5, Z6, Z7)
	CMPQ R9, $3
	JLT  pvld
	LDROW((DI)(R8*2), Z8, Z9, Z10, Z11)
	CMPQ R9, $4
	JLT  pvld
	LDROW((DI)(R14*1), Z12, Z13, Z14, Z15)
	CMPQ R9, $5
	JLT  pvld
	LDROW((DI)(R8*4), Z16, Z17, Z18, Z19)
	CMPQ R9, $6
	JLT  pvld
	LDROW((DI)(R15*1), Z20, Z21, Z22, Z23)
	CMPQ R9, $7
	JLT  pvld
	LDROW((DI)(R14*2), Z24, Z25, Z26, Z27)

pvld:
	TESTQ CX, CX
	JZ    pvstore
	MOVQ  kind+72(FP), AX
	CMPQ  AX, $1
	JEQ   pvbf
	CMPQ  AX, $2
	JEQ   pvhf
	CMPQ  R9, $7
	JEQ   pvkey7

pvkey:
	VMOVUPS.Z (SI), K1, Z28
	VMOVUPS.Z 64(SI), K2, Z29
	VMOVUPS.Z 128(SI), K3, Z30
	VMOVUPS.Z 192(SI), K4, Z31
	PVROWB((DX), Z0, Z1, Z2, Z3)
	CMPQ R9, $2
	JLT  pvnext
	PVROWB((DX)(R11*1), Z4, Z5, Z6, Z7)
	CMPQ R9, $3
	JLT  pvnext
	PVROWB((DX)(R11*2), Z8, Z9, Z10, Z11)
	CMPQ R9, $4
	JLT  pvnext
	PVROWB((DX)(R12*1), Z12, Z13, Z14, Z15)
	CMPQ R9, $5
	JLT  pvnext
	PVROWB((DX)(R11*4), Z16, Z17, Z18, Z19)
	CMPQ R9, $6
	JLT  pvnext
	PVROWB((DX)(R13*1), Z20, Z21, Z22, Z23)

pvnext:
	ADDQ $4, DX
	ADDQ R10, SI
	DECQ CX
	JNZ  pvkey
	JMP  pvstore

	// seven rows: straight-line
pvkey7:
	VMOVUPS.Z (SI), K1, Z28
	VMOVUPS.Z 64(SI), K2, Z29
	VMOVUPS.Z 128(SI), K3, Z30
	VMOVUPS.Z 192(SI), K4, Z31
	PVROWB((DX), Z0, Z1, Z2, Z3)
	PVROWB((DX)(R11*1), Z4, Z5, Z6, Z7)
	PVROWB((DX)(R11*2), Z8, Z9, Z10, Z11)
	PVROWB((DX)(R12*1), Z12, Z13, Z14, Z15)
	PVROWB((DX)(R11*4), Z16, Z17, Z18, Z19)
	PVROWB((DX)(R13*1), Z20, Z21, Z22, Z23)
	PVROWB((DX)(R12*2), Z24, Z25, Z26, Z27)
	ADDQ $4, DX
	ADDQ R10, SI
	DECQ CX
	JNZ  pvkey7
	JMP  pvstore

pvbf:
	CMPQ R9, $7
	JEQ  pvbkey7

pvbkey:
	VLDBF16
	PVROWB((DX), Z0, Z1, Z2, Z3)
	CMPQ R9, $2
	JLT  pvbnext
	PVROWB((DX)(R11*1), Z4, Z5, Z6, Z7)
	CMPQ R9, $3
	JLT  pvbnext
	PVROWB((DX)(R11*2), Z8, Z9, Z10, Z11)
	CMPQ R9, $4
	JLT  pvbnext
	PVROWB((DX)(R12*1), Z12, Z13, Z14, Z15)
	CMPQ R9, $5
	JLT  pvbnext
	PVROWB((DX)(R11*4), Z16, Z17, Z18, Z19)
	CMPQ R9, $6
	JLT  pvbnext
	PVROWB((DX)(R13*1), Z20, Z21, Z22, Z23)

pvbnext:
	ADDQ $4, DX
	ADDQ R10, SI
	DECQ CX
	JNZ  pvbkey
	JMP  pvstore

pvbkey7:
	VLDBF16
	PVROWB((DX), Z0, Z1, Z2, Z3)
	PVROWB((DX)(R11*1), Z4, Z5, Z6, Z7)
	PVROWB((DX)(R11*2), Z8, Z9, Z10, Z11)
	PVROWB((DX)(R12*1), Z12, Z13, Z14, Z15)
	PVROWB((DX)(R11*4), Z16, Z17, Z18, Z19)
	PVROWB((DX)(R13*1), Z20, Z21, Z22, Z23)
	PVROWB((DX)(R12*2), Z24, Z25, Z26, Z27)
	ADDQ $4, DX
	ADDQ R10, SI
	DECQ CX
	JNZ  pvbkey7
	JMP  pvstore

pvhf:
	CMPQ R9, $7
	JEQ  pvhkey7

pvhkey:
	VLDF16
	PVROWB((DX), Z0, Z1, Z2, Z3)
	CMPQ R9, $2
	JLT  pvhnext
	PVROWB((DX)(R11*1), Z4, Z5, Z6, Z7)
	CMPQ R9, $3
	JLT  pvhnext
	PVROWB((DX)(R11*2), Z8, Z9, Z10, Z11)
	CMPQ R9, $4
	JLT  pvhnext
	PVROWB((DX)(R12*1), Z12, Z13, Z14, Z15)
	CMPQ R9, $5
	JLT  pvhnext
	PVROWB((DX)(R11*4), Z16, Z17, Z18, Z19)
	CMPQ R9, $6
	JLT  pvhnext
	PVROWB((DX)(R13*1), Z20, Z21, Z22, Z23)

pvhnext:
	ADDQ $4, DX
	ADDQ R10, SI
	DECQ CX
	JNZ  pvhkey
	JMP  pvstore

pvhkey7:
	VLDF16
	PVROWB((DX), Z0, Z1, Z2, Z3)
	PVROWB((DX)(R11*1), Z4, Z5, Z6, Z7)
	PVROWB((DX)(R11*2), Z8, Z9, Z10, Z11)
	PVROWB((DX)(R12*1), Z12, Z13, Z14, Z15)
	PVROWB((DX)(R11*4), Z16, Z17, Z18, Z19)
	PVROWB((DX)(R13*1), Z20, Z21, Z22, Z23)
	PVROWB((DX)(R12*2), Z24, Z25, Z26, Z27)
	ADDQ $4, DX
	ADDQ R10, SI
	DECQ CX
	JNZ  pvhkey7

pvstore:
	STROW((DI), Z0, Z1, Z2, Z3)
	CMPQ R9, $2
	JLT  pvdone
	STROW((DI)(R8*1), Z4, Z5, Z6, Z7)
	CMPQ R9, $3
	JLT  pvdone
	STROW((DI)(R8*2), Z8, Z9, Z10, Z11)
	CMPQ R9, $4
	JLT  pvdone
	STROW((DI)(R14*1), Z12, Z13, Z14, Z15)
	CMPQ R9, $5
	JLT  pvdone
	STROW((DI)(R8*4), Z16, Z17, Z18, Z19)
	CMPQ R9, $6
	JLT  pvdone
	STROW((DI)(R15*1), Z20, Z21, Z22, Z23)
	CMPQ R9, $7
	JLT  pvdone
	STROW((DI)(R14*2), Z24, Z25, Z26, Z27)

pvdone:
	VZEROUPPER
	RET

// func scaleMaxAVX512(s *float32, n int, sc float32) float32
// s[i] *= sc; returns the largest result (−inf when n is 0; NaNs are
// skipped, as a scalar x > m loop skips them).
TEXT ·scaleMaxAVX512(SB), NOSPLIT, $0-28
	MOVQ s+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS sc+16(FP), Z1
	MOVL $0xff800000, AX
	VPBROADCASTD AX, Z2
	VMOVAPS Z2, Z3

smloop:
	CMPQ CX, $32
	JLT  smone
	VMULPS (SI), Z1, Z4
	VMULPS 64(SI), Z1, Z5
	VMOVUPS Z4, (SI)
	VMOVUPS Z5, 64(SI)
	VMAXPS Z2, Z4, Z2
	VMAXPS Z3, Z5, Z3
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  smloop

smone:
	CMPQ CX, $16
	JLT  smtail
	VMULPS (SI), Z1, Z4
	VMOVUPS Z4, (SI)
	VMAXPS Z2, Z4, Z2
	ADDQ $64, SI
	SUBQ $16, CX

smtail:
	TESTQ CX, CX
	JZ    smdone
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z4
	VMULPS Z4, Z1, Z4
	VMOVUPS Z4, K1, (SI)
	VMAXPS Z2, Z4, K1, Z2

smdone:
	VMAXPS Z3, Z2, Z2
	VEXTRACTF32X8 $1, Z2, Y1
	VMAXPS Y1, Y2, Y2
	VEXTRACTF128 $1, Y2, X1
	VMAXPS X1, X2, X2
	VPERMILPS $0x4e, X2, X1
	VMAXPS X1, X2, X2
	VPERMILPS $0xb1, X2, X1
	VMAXSS X1, X2, X2
	VZEROUPPER
	MOVSS X2, ret+24(FP)
	RET

// func scaleAVX512(s *float32, n int, a float32)
// s[i] *= a.
TEXT ·scaleAVX512(SB), NOSPLIT, $0-20
	MOVQ s+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS a+16(FP), Z1

scloop:
	CMPQ CX, $32
	JLT  scone
	VMULPS (SI), Z1, Z4
	VMULPS 64(SI), Z1, Z5
	VMOVUPS Z4, (SI)
	VMOVUPS Z5, 64(SI)
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  scloop

scone:
	CMPQ CX, $16
	JLT  sctail
	VMULPS (SI), Z1, Z4
	VMOVUPS Z4, (SI)
	ADDQ $64, SI
	SUBQ $16, CX

sctail:
	TESTQ CX, CX
	JZ    scdone
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z4
	VMULPS Z4, Z1, Z4
	VMOVUPS Z4, K1, (SI)

scdone:
	VZEROUPPER
	RET
