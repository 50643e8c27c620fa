#include "textflag.h"

// func dotAVX512(a, b *float32, n int) float32
TEXT ·dotAVX512(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1

loop32:
	CMPQ CX, $32
	JLT  loop16
	VMOVUPS (SI), Z2
	VMOVUPS 64(SI), Z3
	VFMADD231PS (DI), Z2, Z0
	VFMADD231PS 64(DI), Z3, Z1
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  loop32

loop16:
	CMPQ CX, $16
	JLT  tail
	VMOVUPS (SI), Z2
	VFMADD231PS (DI), Z2, Z0
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX

tail:
	TESTQ CX, CX
	JZ    done
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z2
	VMOVUPS.Z (DI), K1, Z3
	VFMADD231PS Z3, Z2, Z1

done:
	VADDPS Z1, Z0, Z0
	VEXTRACTF32X8 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func axpyAVX512(y *float32, a float32, x *float32, n int)
TEXT ·axpyAVX512(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	VBROADCASTSS a+8(FP), Z0
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX

loop16:
	CMPQ CX, $16
	JLT  tail
	VMOVUPS (DI), Z1
	VFMADD231PS (SI), Z0, Z1
	VMOVUPS Z1, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  loop16

tail:
	TESTQ CX, CX
	JZ    done
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (DI), K1, Z1
	VMOVUPS.Z (SI), K1, Z2
	VFMADD231PS Z2, Z0, Z1
	VMOVUPS Z1, K1, (DI)

done:
	VZEROUPPER
	RET

// func dotRowsAVX512(q *float32, ldq, rows int, k *float32, d int, s *float32, lds int)
// s[r·lds] = Σ_i q[r·ldq+i]·k[i] for r < rows; d is a positive multiple of 16.
TEXT ·dotRowsAVX512(SB), NOSPLIT, $0-56
	MOVQ q+0(FP), SI
	MOVQ ldq+8(FP), R8
	MOVQ rows+16(FP), R9
	MOVQ k+24(FP), DI
	MOVQ d+32(FP), R10
	MOVQ s+40(FP), DX
	MOVQ lds+48(FP), R11
	SHLQ $2, R8
	SHLQ $2, R11

drow:
	TESTQ R9, R9
	JZ    ddone
	VPXORD Z0, Z0, Z0
	XORQ  AX, AX
	MOVQ  R10, CX

dcol:
	VMOVUPS (SI)(AX*1), Z1
	VFMADD231PS (DI)(AX*1), Z1, Z0
	ADDQ $64, AX
	SUBQ $16, CX
	JNZ  dcol
	VEXTRACTF32X8 $1, Z0, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VADDPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, (DX)
	ADDQ R8, SI
	ADDQ R11, DX
	DECQ R9
	JMP  drow

ddone:
	VZEROUPPER
	RET

// func axpyRowsAVX512(o *float32, ldo, rows int, p *float32, ldp int, v *float32, d int)
// o[r·ldo+i] += p[r·ldp]·v[i] for r < rows; d is a positive multiple of 16.
TEXT ·axpyRowsAVX512(SB), NOSPLIT, $0-56
	MOVQ o+0(FP), DI
	MOVQ ldo+8(FP), R8
	MOVQ rows+16(FP), R9
	MOVQ p+24(FP), DX
	MOVQ ldp+32(FP), R11
	MOVQ v+40(FP), SI
	MOVQ d+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R11

arow:
	TESTQ R9, R9
	JZ    adone
	VBROADCASTSS (DX), Z0
	XORQ AX, AX
	MOVQ R10, CX

acol:
	VMOVUPS (DI)(AX*1), Z1
	VFMADD231PS (SI)(AX*1), Z0, Z1
	VMOVUPS Z1, (DI)(AX*1)
	ADDQ $64, AX
	SUBQ $16, CX
	JNZ  acol
	ADDQ R8, DI
	ADDQ R11, DX
	DECQ R9
	JMP  arow

adone:
	VZEROUPPER
	RET
