#include "textflag.h"

// AVX2 + FMA + F16C paths for CPUs without AVX-512. Lengths are multiples
// of 8 here; the Go wrappers in avx2_amd64.go do the remainders.

// Widen 8 halves at MEM into Y register R: bf16 or f16.
#define W8BF16(MEM, R) VPMOVZXWD MEM, R; VPSLLD $16, R, R
#define W8F16(MEM, R) VCVTPH2PS MEM, R

// Horizontal sum of Y0 into X0's low lane (uses X1).
#define HSUM8 \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0x4e, X0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0xb1, X0, X1; \
	VADDSS X1, X0, X0

// func halfToF32AVX2(dst *float32, src *uint16, n, kind int)
TEXT ·halfToF32AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   a2wdone
	MOVQ kind+24(FP), R11
	TESTQ R11, R11
	JNZ  a2wf16

a2wbf16:
	W8BF16((SI), Y0)
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  a2wbf16
	JMP  a2wdone

a2wf16:
	W8F16((SI), Y0)
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  a2wf16

a2wdone:
	VZEROUPPER
	RET

// func f32ToHalfAVX2(dst *uint16, src *float32, n, kind int)
// bf16: round to nearest even on the bits, NaN -> (bits|0x400000)>>16.
TEXT ·f32ToHalfAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   a2ndone
	MOVQ kind+24(FP), R11
	TESTQ R11, R11
	JNZ  a2nf16
	MOVL $0x400000, AX
	MOVQ AX, X11
	VPBROADCASTD X11, Y11
	MOVL $0x7fff, AX
	MOVQ AX, X12
	VPBROADCASTD X12, Y12
	MOVL $1, AX
	MOVQ AX, X13
	VPBROADCASTD X13, Y13
	MOVL $0x7fffffff, AX
	MOVQ AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x7f800000, AX
	MOVQ AX, X15
	VPBROADCASTD X15, Y15

a2nbf16:
	VMOVDQU (SI), Y0
	VPSRLD $16, Y0, Y1
	VPAND Y13, Y1, Y1
	VPADDD Y12, Y1, Y1
	VPADDD Y0, Y1, Y1
	VPAND Y14, Y0, Y2
	VPCMPGTD Y15, Y2, Y2
	VPOR Y11, Y0, Y3
	VPBLENDVB Y2, Y3, Y1, Y1
	VPSRLD $16, Y1, Y1
	VEXTRACTI128 $1, Y1, X2
	VPACKUSDW X2, X1, X1
	VMOVDQU X1, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	DECQ CX
	JNZ  a2nbf16
	JMP  a2ndone

a2nf16:
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, X1
	VMOVDQU X1, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	DECQ CX
	JNZ  a2nf16

a2ndone:
	VZEROUPPER
	RET

// func hgemvAVX2(rows int, w unsafe.Pointer, K, kind int, x, y *float32)
// y[r] = Σ_{k<K8} widen(w[r·K+k])·x[k], K8 = K rounded down to 8.
TEXT ·hgemvAVX2(SB), NOSPLIT, $0-48
	MOVQ rows+0(FP), R8
	MOVQ w+8(FP), R9
	MOVQ K+16(FP), R10
	MOVQ kind+24(FP), R11
	MOVQ y+40(FP), R12
	TESTQ R8, R8
	JZ   a2hdone

a2hrow:
	MOVQ R9, SI
	MOVQ x+32(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ R10, CX
	SHRQ $5, CX
	JZ   a2h8
	TESTQ R11, R11
	JNZ  a2h32f16

a2h32bf16:
	W8BF16((SI), Y4)
	W8BF16(16(SI), Y5)
	W8BF16(32(SI), Y6)
	W8BF16(48(SI), Y7)
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $64, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  a2h32bf16
	JMP  a2h8

a2h32f16:
	W8F16((SI), Y4)
	W8F16(16(SI), Y5)
	W8F16(32(SI), Y6)
	W8F16(48(SI), Y7)
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $64, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  a2h32f16

a2h8:
	MOVQ R10, CX
	ANDQ $31, CX
	SHRQ $3, CX
	JZ   a2hsum

a2h8loop:
	TESTQ R11, R11
	JNZ  a2h8f16
	W8BF16((SI), Y4)
	JMP  a2h8fma

a2h8f16:
	W8F16((SI), Y4)

a2h8fma:
	VFMADD231PS (DI), Y4, Y0
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  a2h8loop

a2hsum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM8
	VMOVSS X0, (R12)
	ADDQ $4, R12
	MOVQ R10, AX
	SHLQ $1, AX
	ADDQ AX, R9
	DECQ R8
	JNZ  a2hrow

a2hdone:
	VZEROUPPER
	RET

// func sgemvTAVX2(rows int, w *float32, ldw, K int, x, y *float32)
// y[r] = Σ_{k<K8} w[r·ldw+k]·x[k].
TEXT ·sgemvTAVX2(SB), NOSPLIT, $0-48
	MOVQ rows+0(FP), R8
	MOVQ w+8(FP), R9
	MOVQ ldw+16(FP), R11
	SHLQ $2, R11
	MOVQ K+24(FP), R10
	MOVQ y+40(FP), R12
	TESTQ R8, R8
	JZ   a2tdone

a2trow:
	MOVQ R9, SI
	MOVQ x+32(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ R10, CX
	SHRQ $5, CX
	JZ   a2t8

a2t32:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  a2t32

a2t8:
	MOVQ R10, CX
	ANDQ $31, CX
	SHRQ $3, CX
	JZ   a2tsum

a2t8loop:
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  a2t8loop

a2tsum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	HSUM8
	VMOVSS X0, (R12)
	ADDQ $4, R12
	ADDQ R11, R9
	DECQ R8
	JNZ  a2trow

a2tdone:
	VZEROUPPER
	RET

// func sgemvNAVX2(K, n int, a, b *float32, ldb int, y *float32)
// y[j] += Σ_p a[p]·b[p·ldb+j] for j < n (n a multiple of 8).
TEXT ·sgemvNAVX2(SB), NOSPLIT, $0-48
	MOVQ K+0(FP), R8
	MOVQ n+8(FP), R10
	SHRQ $3, R10
	JZ   a2ndone2
	MOVQ a+16(FP), R9
	MOVQ b+24(FP), R11
	MOVQ ldb+32(FP), R13
	SHLQ $2, R13
	MOVQ y+40(FP), R12
	LEAQ (R13)(R13*2), BX

a2np4:
	CMPQ R8, $4
	JLT  a2np1
	VBROADCASTSS (R9), Y0
	VBROADCASTSS 4(R9), Y1
	VBROADCASTSS 8(R9), Y2
	VBROADCASTSS 12(R9), Y3
	MOVQ R11, SI
	MOVQ R12, DI
	MOVQ R10, CX

a2np4loop:
	VMOVUPS (DI), Y4
	VFMADD231PS (SI), Y0, Y4
	VFMADD231PS (SI)(R13*1), Y1, Y4
	VFMADD231PS (SI)(R13*2), Y2, Y4
	VFMADD231PS (SI)(BX*1), Y3, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  a2np4loop
	ADDQ $16, R9
	LEAQ (R11)(R13*4), R11
	SUBQ $4, R8
	JMP  a2np4

a2np1:
	TESTQ R8, R8
	JZ   a2ndone2
	VBROADCASTSS (R9), Y0
	MOVQ R11, SI
	MOVQ R12, DI
	MOVQ R10, CX

a2np1loop:
	VMOVUPS (DI), Y4
	VFMADD231PS (SI), Y0, Y4
	VMOVUPS Y4, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  a2np1loop
	ADDQ $4, R9
	ADDQ R13, R11
	DECQ R8
	JMP  a2np1

a2ndone2:
	VZEROUPPER
	RET

// 4-bit half chunk H (0 or 1) for qgemvAVX2: 32 weight bytes at H*32(SI),
// activations (even at AX, odd at AX+64), lane multipliers at BX, scales
// picked from (DI) by index register IDX, accumulated into ACC.
#define Q4HALF(OFF, XOFF, IDX, ACC) \
	VMOVDQU OFF(SI), Y1; \
	VPSRLW $4, Y1, Y2; \
	VPAND Y15, Y1, Y1; \
	VPAND Y15, Y2, Y2; \
	VPMADDUBSW OFF(AX), Y1, Y3; \
	VPMADDUBSW XOFF(AX), Y2, Y4; \
	VPADDW Y4, Y3, Y3; \
	VPMADDWD Y14, Y3, Y3; \
	VCVTDQ2PS Y3, Y3; \
	VMULPS OFF(BX), Y3, Y3; \
	VPERMPS (DI), IDX, Y5; \
	VFMADD231PS Y5, Y3, ACC

// 8-bit quarter chunk: 32 weight bytes at OFF(SI) = one activation block;
// q = 16·hi + lo keeps VPMADDUBSW from saturating.
#define Q8QUARTER(OFF, DXOFF, IDX, ACC) \
	VMOVDQU OFF(SI), Y1; \
	VPSRLW $4, Y1, Y2; \
	VPAND Y15, Y1, Y1; \
	VPAND Y15, Y2, Y2; \
	VPMADDUBSW OFF(AX), Y1, Y3; \
	VPMADDUBSW OFF(AX), Y2, Y4; \
	VPMADDWD Y14, Y3, Y3; \
	VPMADDWD Y14, Y4, Y4; \
	VPSLLD $4, Y4, Y4; \
	VPADDD Y4, Y3, Y3; \
	VCVTDQ2PS Y3, Y3; \
	VBROADCASTSS DXOFF(BX), Y4; \
	VMULPS Y4, Y3, Y3; \
	VPERMPS (DI), IDX, Y5; \
	VFMADD231PS Y5, Y3, ACC

// func qgemvAVX2(bits, rows int, w unsafe.Pointer, wstride int, sf, bf *float32, ng int, xq, dxl, dx, sumx unsafe.Pointer, nchunk int, idx unsafe.Pointer, sstep int, y *float32)
// Like qgemvVNNI with AVX2 integer dot products (VPMADDUBSW, VPMADDWD);
// scales and biases come as f32 [rows][ng] (padded by 8 floats); K is a
// multiple of 128. idx holds 16 int32 lane indexes (4-bit) or four
// 8-lane broadcasts of each quarter's group offset (8-bit).
TEXT ·qgemvAVX2(SB), NOSPLIT, $0-120
	MOVQ rows+8(FP), R8
	TESTQ R8, R8
	JZ   q2done
	MOVQ w+16(FP), R9
	MOVQ sf+32(FP), R10
	MOVQ bf+40(FP), R11
	MOVQ y+112(FP), R12
	MOVQ sstep+104(FP), R13
	MOVL $0x0f0f0f0f, DX
	MOVQ DX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x00010001, DX
	MOVQ DX, X14
	VPBROADCASTD X14, Y14
	MOVQ idx+96(FP), DX
	MOVQ bits+0(FP), CX
	CMPQ CX, $8
	JEQ  q2bits8
	VMOVDQU (DX), Y13
	VMOVDQU 32(DX), Y12

q2row4:
	MOVQ R9, SI
	MOVQ R10, DI
	MOVQ xq+56(FP), AX
	MOVQ dxl+64(FP), BX
	MOVQ nchunk+88(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y6, Y6, Y6

q2c4:
	Q4HALF(0, 64, Y13, Y0)
	Q4HALF(32, 96, Y12, Y6)
	ADDQ $64, SI
	ADDQ $128, AX
	ADDQ $64, BX
	ADDQ R13, DI
	DECQ CX
	JNZ  q2c4
	JMP  q2bias

q2bits8:
	VMOVDQU (DX), Y8
	VMOVDQU 32(DX), Y9
	VMOVDQU 64(DX), Y10
	VMOVDQU 96(DX), Y11

q2row8:
	MOVQ R9, SI
	MOVQ R10, DI
	MOVQ xq+56(FP), AX
	MOVQ dx+72(FP), BX
	MOVQ nchunk+88(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y6, Y6, Y6

q2c8:
	Q8QUARTER(0, 0, Y8, Y0)
	Q8QUARTER(32, 4, Y9, Y6)
	Q8QUARTER(64, 8, Y10, Y0)
	Q8QUARTER(96, 12, Y11, Y6)
	ADDQ $128, SI
	ADDQ $128, AX
	ADDQ $16, BX
	ADDQ R13, DI
	DECQ CX
	JNZ  q2c8

q2bias:
	MOVQ R11, DI
	MOVQ sumx+80(FP), AX
	MOVQ ng+48(FP), CX
	SHRQ $3, CX
	JZ   q2bsum

q2b8:
	VMOVUPS (DI), Y1
	VFMADD231PS (AX), Y1, Y0
	ADDQ $32, DI
	ADDQ $32, AX
	DECQ CX
	JNZ  q2b8

q2bsum:
	VADDPS Y6, Y0, Y0
	HSUM8
	MOVQ ng+48(FP), CX
	ANDQ $7, CX
	JZ   q2store

q2b1:
	VMOVSS (DI), X1
	VFMADD231SS (AX), X1, X0
	ADDQ $4, DI
	ADDQ $4, AX
	DECQ CX
	JNZ  q2b1

q2store:
	VMOVSS X0, (R12)
	ADDQ $4, R12
	ADDQ wstride+24(FP), R9
	MOVQ ng+48(FP), DX
	LEAQ (R10)(DX*4), R10
	LEAQ (R11)(DX*4), R11
	DECQ R8
	JZ   q2done
	MOVQ bits+0(FP), CX
	CMPQ CX, $8
	JEQ  q2row8
	JMP  q2row4

q2done:
	VZEROUPPER
	RET
