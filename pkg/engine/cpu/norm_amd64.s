#include "textflag.h"

// func sumSqF64AVX512(x *float32, n int) float64
// Σ x[i]² with every square and sum in float64 (8 lanes, 2 accumulators).
TEXT ·sumSqF64AVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1

ss16:
	CMPQ CX, $16
	JLT  ss8
	VCVTPS2PD (SI), Z2
	VCVTPS2PD 32(SI), Z3
	VFMADD231PD Z2, Z2, Z0
	VFMADD231PD Z3, Z3, Z1
	ADDQ $64, SI
	SUBQ $16, CX
	JMP  ss16

ss8:
	TESTQ CX, CX
	JZ    ssdone
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	CMPQ  CX, $8
	JLE   sslast
	// 9..15 left: 8 whole, the rest masked
	VCVTPS2PD (SI), Z2
	VFMADD231PD Z2, Z2, Z0
	ADDQ  $32, SI
	SUBQ  $8, CX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1

sslast:
	VMOVUPS.Z (SI), K1, Y2
	VCVTPS2PD Y2, Z2
	VFMADD231PD Z2, Z2, Z1

ssdone:
	VADDPD Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPD Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD X1, X0, X0
	VPERMILPD $1, X0, X1
	VADDSD X1, X0, X0
	VZEROUPPER
	MOVSD X0, ret+16(FP)
	RET

// func scaleF64AVX512(x *float32, n int, r float64)
// x[i] = float32(float64(x[i]) · r), the product in float64.
TEXT ·scaleF64AVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD r+16(FP), Z4

sc8:
	CMPQ CX, $8
	JLT  sctail
	VCVTPS2PD (SI), Z2
	VMULPD Z4, Z2, Z2
	VCVTPD2PS Z2, Y2
	VMOVUPS Y2, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  sc8

sctail:
	TESTQ CX, CX
	JZ    scdone
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Y2
	VCVTPS2PD Y2, Z2
	VMULPD Z4, Z2, Z2
	VCVTPD2PS Z2, Y2
	VMOVUPS Y2, K1, (SI)

scdone:
	VZEROUPPER
	RET

// func mulF32AVX512(x, w *float32, n int)
// x[i] *= w[i].
TEXT ·mulF32AVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ n+16(FP), CX

mu16:
	CMPQ CX, $16
	JLT  mutail
	VMOVUPS (SI), Z2
	VMULPS (DI), Z2, Z2
	VMOVUPS Z2, (SI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  mu16

mutail:
	TESTQ CX, CX
	JZ    mudone
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z2
	VMOVUPS.Z (DI), K1, Z3
	VMULPS Z3, Z2, Z2
	VMOVUPS Z2, K1, (SI)

mudone:
	VZEROUPPER
	RET

// func binF32AVX512(x, y *float32, n, op int)
// x[i] = x[i] op y[i] for op 0 add, 1 sub, 2 mul, 3 div (IEEE, as Go's).
#define BINLOOP(INS, lbl, tail, done) \
lbl: \
	CMPQ CX, $16; \
	JLT  tail; \
	VMOVUPS (SI), Z2; \
	INS (DI), Z2, Z2; \
	VMOVUPS Z2, (SI); \
	ADDQ $64, SI; \
	ADDQ $64, DI; \
	SUBQ $16, CX; \
	JMP  lbl; \
tail: \
	TESTQ CX, CX; \
	JZ    done; \
	MOVL  $1, AX; \
	SHLL  CX, AX; \
	DECL  AX; \
	KMOVW AX, K1; \
	VMOVUPS.Z (SI), K1, Z2; \
	VMOVUPS.Z (DI), K1, Z3; \
	INS Z3, Z2, Z2; \
	VMOVUPS Z2, K1, (SI); \
	JMP done

TEXT ·binF32AVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ op+24(FP), DX
	CMPQ DX, $1
	JEQ  bsub
	CMPQ DX, $2
	JEQ  bmul
	CMPQ DX, $3
	JEQ  bdiv
	BINLOOP(VADDPS, badd, baddt, bdone)
bsub:
	BINLOOP(VSUBPS, bsubl, bsubt, bdone)
bmul:
	BINLOOP(VMULPS, bmull, bmult, bdone)
bdiv:
	BINLOOP(VDIVPS, bdivl, bdivt, bdone)

bdone:
	VZEROUPPER
	RET
