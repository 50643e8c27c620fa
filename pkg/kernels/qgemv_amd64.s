#include "textflag.h"

// Quantized GEMV on int8 activations, AVX-512 VNNI. See qgemv.go for the
// data layouts. Per 128-weight chunk the integer dot products land in 16
// int32 lanes; each lane is scaled by its activation block's dx (dxl) and by
// its weight group's scale, gathered per lane with VPERMPS. The bias term
// Σ_g bias[g]·Σx[g] is a plain f32 dot product after the chunks.

// Software prefetch distances: PFD bytes ahead in a row's packed weights
// (4-bit chunks), PFS bytes ahead in the scales and biases at each row
// start. The hardware prefetcher alone left the small per-layer matrices
// of a decode step (896×896, 128×896) well below the read bandwidth.
#define PFD 1024
#define PFS 256

// Scale loads: 128/G scales of this chunk at DI, masked by M, widened into
// Z4 as f32.
// 4-bit: into Z4, lane l = scale of lane l's group (Z30: dword indexes).
// bf16 goes straight from words with VPERMW (Z25: word indexes, K7 zeroes
// the low word of each lane), which is the widening too.
#define LS4_BF16(M) VMOVDQU16.Z (DI), M, Y4; VPERMW.Z Z4, Z25, K7, Z4
#define LS4_F16(M) VMOVDQU16.Z (DI), M, Y4; VCVTPH2PS Y4, Z4; VPERMPS Z4, Z30, Z4
#define LS4_F32(M) VMOVUPS.Z (DI), M, Z4; VPERMPS Z4, Z30, Z4

// 8-bit: Z7 and Z8 get the lane scales of the chunk's two halves.
#define LS8_BF16(M) VMOVDQU16.Z (DI), M, Y4; VPERMW.Z Z4, Z25, K7, Z7; VPERMW.Z Z4, Z24, K7, Z8
#define LS8_F16(M) VMOVDQU16.Z (DI), M, Y4; VCVTPH2PS Y4, Z4; VPERMPS Z4, Z30, Z7; VPERMPS Z4, Z29, Z8
#define LS8_F32(M) VMOVUPS.Z (DI), M, Z4; VPERMPS Z4, Z30, Z7; VPERMPS Z4, Z29, Z8

// Bias loads: 16 biases at DI under mask register M into Z5 as f32.
#define LB_BF16(M) VMOVDQU16.Z (DI), M, Y5; VPMOVZXWD Y5, Z5; VPSLLD $16, Z5, Z5
#define LB_F16(M) VMOVDQU16.Z (DI), M, Y5; VCVTPH2PS Y5, Z5
#define LB_F32(M) VMOVUPS.Z (DI), M, Z5

// 4-bit chunk: 64 bytes of packed weights at SI (low nibbles are the even
// elements, high nibbles the odd ones); activations at AX: 64 even then 64
// odd int8s; 16 lane multipliers at BX.
#define CHUNK4(LS) \
	VMOVDQU64 (SI), Z1; \
	PREFETCHT0 PFD(SI); \
	CHUNK4REST(LS, K1)

// The tail chunk of a row whose K is not a multiple of 128: masked loads
// (K4: weight bytes, K6: scales); the activations are zero-padded.
#define CHUNK4T(LS) \
	VMOVDQU8.Z (SI), K4, Z1; \
	CHUNK4REST(LS, K6)

#define CHUNK4REST(LS, M) \
	VPSRLW $4, Z1, Z2; \
	VPANDD Z31, Z1, Z1; \
	VPANDD Z31, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPDPBUSD (AX), Z1, Z3; \
	VPDPBUSD 64(AX), Z2, Z3; \
	VCVTDQ2PS Z3, Z3; \
	VMULPS (BX), Z3, Z3; \
	LS(M); \
	VFMADD231PS Z4, Z3, Z0; \
	ADDQ $64, SI; \
	ADDQ $128, AX; \
	ADDQ $64, BX; \
	ADDQ R13, DI

// 8-bit chunk: 128 weight bytes at SI, 128 int8 activations at AX, 32 lane
// multipliers at BX (16 per half); Z30/Z29 pick each half's scale lanes.
#define CHUNK8(LS) \
	VMOVDQU64 (SI), Z1; \
	VMOVDQU64 64(SI), Z2; \
	CHUNK8REST(LS, K1)

#define CHUNK8T(LS) \
	VMOVDQU8.Z (SI), K4, Z1; \
	VMOVDQU8.Z 64(SI), K5, Z2; \
	CHUNK8REST(LS, K6)

#define CHUNK8REST(LS, M) \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z6, Z6, Z6; \
	VPDPBUSD (AX), Z1, Z3; \
	VPDPBUSD 64(AX), Z2, Z6; \
	VCVTDQ2PS Z3, Z3; \
	VCVTDQ2PS Z6, Z6; \
	VMULPS (BX), Z3, Z3; \
	VMULPS 64(BX), Z6, Z6; \
	LS(M); \
	VFMADD231PS Z7, Z3, Z0; \
	VFMADD231PS Z8, Z6, Z16; \
	ADDQ $128, SI; \
	ADDQ $128, AX; \
	ADDQ $128, BX; \
	ADDQ R13, DI

// Bias loop over the row's groups: biases at DI, Σx at AX, 16 at a time,
// then the masked tail (K2).
#define BIAS(LB, ESZ, lloop, ltail) \
	MOVQ ngroups+96(FP), CX; \
	SHRQ $4, CX; \
	JZ   ltail; \
lloop: \
	LB(K3); \
	VFMADD231PS (AX), Z5, Z0; \
	ADDQ $(16*ESZ), DI; \
	ADDQ $64, AX; \
	DECQ CX; \
	JNZ  lloop; \
ltail: \
	LB(K2); \
	VMOVUPS.Z (AX), K2, Z6; \
	VFMADD231PS Z6, Z5, Z0

// Horizontal sum of Z0 into (R12), then advance to the next row.
#define STOREROW \
	VADDPS Z16, Z0, Z0; \
	VEXTRACTF64X4 $1, Z0, Y1; \
	VADDPS Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0x4e, X0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0xb1, X0, X1; \
	VADDSS X1, X0, X0; \
	VMOVSS X0, (R12); \
	ADDQ $4, R12; \
	ADDQ wstride+24(FP), R9; \
	ADDQ sbstride+48(FP), R10; \
	ADDQ sbstride+48(FP), R11

// Row prologue: chunk pointers and accumulators.
#define ROWSTART \
	PREFETCHT0 PFS(R10); \
	PREFETCHT0 PFS(R11); \
	MOVQ R9, SI; \
	MOVQ R10, DI; \
	MOVQ xq+64(FP), AX; \
	MOVQ dxl+72(FP), BX; \
	MOVQ nchunk+88(FP), CX; \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z16, Z16, Z16

// Bias prologue.
#define BIASSTART \
	MOVQ R11, DI; \
	MOVQ sumx+80(FP), AX

// func qgemvVNNI(bits, rows int, w unsafe.Pointer, wstride int, s, b unsafe.Pointer, sbstride, kind int, xq, dxl, sumx unsafe.Pointer, nchunk, ngroups int, idx unsafe.Pointer, smask, sstep, bmask int, y *float32, tail, wm1, wm2, tsmask int, widx unsafe.Pointer)
// nchunk counts the full 128-weight chunks of a row; tail != 0 adds one
// partial chunk with weight-byte masks wm1, wm2 and scale mask tsmask.
TEXT ·qgemvVNNI(SB), NOSPLIT, $0-184
	MOVQ rows+8(FP), R8
	TESTQ R8, R8
	JZ   done
	MOVQ w+16(FP), R9
	MOVQ s+32(FP), R10
	MOVQ b+40(FP), R11
	MOVQ y+136(FP), R12
	MOVQ sstep+120(FP), R13
	MOVL $0x0f0f0f0f, DX
	VPBROADCASTD DX, Z31
	MOVQ idx+104(FP), DX
	VMOVDQU32 (DX), Z30
	VMOVDQU32 64(DX), Z29
	MOVQ smask+112(FP), DX
	KMOVW DX, K1
	MOVQ bmask+128(FP), DX
	KMOVW DX, K2
	MOVL $0xffff, DX
	KMOVW DX, K3
	MOVQ wm1+152(FP), DX
	KMOVQ DX, K4
	MOVQ wm2+160(FP), DX
	KMOVQ DX, K5
	MOVQ tsmask+168(FP), DX
	KMOVW DX, K6
	MOVQ widx+176(FP), DX
	VMOVDQU16 (DX), Z25
	VMOVDQU16 64(DX), Z24
	MOVL $0xaaaaaaaa, DX
	KMOVD DX, K7
	MOVQ kind+56(FP), DX
	MOVQ bits+0(FP), CX
	CMPQ CX, $8
	JEQ  bits8
	CMPQ DX, $1
	JEQ  r4f16
	JGT  r4f32

r4bf16:
	ROWSTART
	TESTQ CX, CX
	JZ   t4bf16
c4bf16:
	CHUNK4(LS4_BF16)
	DECQ CX
	JNZ  c4bf16
t4bf16:
	CMPQ tail+144(FP), $0
	JEQ  e4bf16
	CHUNK4T(LS4_BF16)
e4bf16:
	BIASSTART
	BIAS(LB_BF16, 2, b4bf16l, b4bf16t)
	STOREROW
	DECQ R8
	JNZ  r4bf16
	JMP  done

r4f16:
	ROWSTART
	TESTQ CX, CX
	JZ   t4f16
c4f16:
	CHUNK4(LS4_F16)
	DECQ CX
	JNZ  c4f16
t4f16:
	CMPQ tail+144(FP), $0
	JEQ  e4f16
	CHUNK4T(LS4_F16)
e4f16:
	BIASSTART
	BIAS(LB_F16, 2, b4f16l, b4f16t)
	STOREROW
	DECQ R8
	JNZ  r4f16
	JMP  done

r4f32:
	ROWSTART
	TESTQ CX, CX
	JZ   t4f32
c4f32:
	CHUNK4(LS4_F32)
	DECQ CX
	JNZ  c4f32
t4f32:
	CMPQ tail+144(FP), $0
	JEQ  e4f32
	CHUNK4T(LS4_F32)
e4f32:
	BIASSTART
	BIAS(LB_F32, 4, b4f32l, b4f32t)
	STOREROW
	DECQ R8
	JNZ  r4f32
	JMP  done

bits8:
	CMPQ DX, $1
	JEQ  r8f16
	JGT  r8f32

r8bf16:
	ROWSTART
	TESTQ CX, CX
	JZ   t8bf16
c8bf16:
	CHUNK8(LS8_BF16)
	DECQ CX
	JNZ  c8bf16
t8bf16:
	CMPQ tail+144(FP), $0
	JEQ  e8bf16
	CHUNK8T(LS8_BF16)
e8bf16:
	BIASSTART
	BIAS(LB_BF16, 2, b8bf16l, b8bf16t)
	STOREROW
	DECQ R8
	JNZ  r8bf16
	JMP  done

r8f16:
	ROWSTART
	TESTQ CX, CX
	JZ   t8f16
c8f16:
	CHUNK8(LS8_F16)
	DECQ CX
	JNZ  c8f16
t8f16:
	CMPQ tail+144(FP), $0
	JEQ  e8f16
	CHUNK8T(LS8_F16)
e8f16:
	BIASSTART
	BIAS(LB_F16, 2, b8f16l, b8f16t)
	STOREROW
	DECQ R8
	JNZ  r8f16
	JMP  done

r8f32:
	ROWSTART
	TESTQ CX, CX
	JZ   t8f32
c8f32:
	CHUNK8(LS8_F32)
	DECQ CX
	JNZ  c8f32
t8f32:
	CMPQ tail+144(FP), $0
	JEQ  e8f32
	CHUNK8T(LS8_F32)
e8f32:
	BIASSTART
	BIAS(LB_F32, 4, b8f32l, b8f32t)
	STOREROW
	DECQ R8
	JNZ  r8f32

done:
	VZEROUPPER
	RET

// Multi-row tile: qgemmTile4VNNI runs the qgemvVNNI arithmetic for 4
// activation rows at once, loading (and unpacking) each weight chunk and its
// scales once for all 4. Per activation row the operations and their order
// are those of qgemvVNNI, so the results are bit-identical. The activations
// are interleaved per chunk: xq holds, per 128-chunk, the 4 rows' 128 int8s
// one after the other; dxl the 4 rows' lane multipliers (16 or 32 f32 each);
// sumx, per 16 groups, the 4 rows' 16 Σx. y gets [rows, 4].
// Accumulators: Z16-Z19 (first half), Z20-Z23 (8-bit second half).

#define T4ROW(XA, XB, LO, T, A) \
	VPXORD T, T, T; \
	VPDPBUSD XA(AX), Z1, T; \
	VPDPBUSD XB(AX), Z2, T; \
	VCVTDQ2PS T, T; \
	VMULPS LO(BX), T, T; \
	VFMADD231PS Z4, T, A

#define TCHUNK4REST(LS, M) \
	VPSRLW $4, Z1, Z2; \
	VPANDD Z31, Z1, Z1; \
	VPANDD Z31, Z2, Z2; \
	LS(M); \
	T4ROW(0, 64, 0, Z10, Z16); \
	T4ROW(128, 192, 64, Z11, Z17); \
	T4ROW(256, 320, 128, Z12, Z18); \
	T4ROW(384, 448, 192, Z13, Z19); \
	ADDQ $64, SI; \
	ADDQ $512, AX; \
	ADDQ $256, BX; \
	ADDQ R13, DI

#define TCHUNK4(LS) \
	VMOVDQU64 (SI), Z1; \
	TCHUNK4REST(LS, K1)

#define TCHUNK4T(LS) \
	VMOVDQU8.Z (SI), K4, Z1; \
	TCHUNK4REST(LS, K6)

#define T8ROW(XA, XB, T, U, A, B) \
	VPXORD T, T, T; \
	VPXORD U, U, U; \
	VPDPBUSD XA(AX), Z1, T; \
	VPDPBUSD XB(AX), Z2, U; \
	VCVTDQ2PS T, T; \
	VCVTDQ2PS U, U; \
	VMULPS XA(BX), T, T; \
	VMULPS XB(BX), U, U; \
	VFMADD231PS Z7, T, A; \
	VFMADD231PS Z8, U, B

#define TCHUNK8REST(LS, M) \
	LS(M); \
	T8ROW(0, 64, Z10, Z3, Z16, Z20); \
	T8ROW(128, 192, Z11, Z6, Z17, Z21); \
	T8ROW(256, 320, Z12, Z9, Z18, Z22); \
	T8ROW(384, 448, Z13, Z14, Z19, Z23); \
	ADDQ $128, SI; \
	ADDQ $512, AX; \
	ADDQ $512, BX; \
	ADDQ R13, DI

#define TCHUNK8(LS) \
	VMOVDQU64 (SI), Z1; \
	VMOVDQU64 64(SI), Z2; \
	TCHUNK8REST(LS, K1)

#define TCHUNK8T(LS) \
	VMOVDQU8.Z (SI), K4, Z1; \
	VMOVDQU8.Z 64(SI), K5, Z2; \
	TCHUNK8REST(LS, K6)

#define TBIAS(LB, ESZ, lloop, ltail) \
	MOVQ ngroups+96(FP), CX; \
	SHRQ $4, CX; \
	JZ   ltail; \
lloop: \
	LB(K3); \
	VFMADD231PS (AX), Z5, Z16; \
	VFMADD231PS 64(AX), Z5, Z17; \
	VFMADD231PS 128(AX), Z5, Z18; \
	VFMADD231PS 192(AX), Z5, Z19; \
	ADDQ $(16*ESZ), DI; \
	ADDQ $256, AX; \
	DECQ CX; \
	JNZ  lloop; \
ltail: \
	LB(K2); \
	VMOVUPS.Z (AX), K2, Z6; \
	VFMADD231PS Z6, Z5, Z16; \
	VMOVUPS.Z 64(AX), K2, Z6; \
	VFMADD231PS Z6, Z5, Z17; \
	VMOVUPS.Z 128(AX), K2, Z6; \
	VFMADD231PS Z6, Z5, Z18; \
	VMOVUPS.Z 192(AX), K2, Z6; \
	VFMADD231PS Z6, Z5, Z19

// Horizontal sum of A + B into OFF(R12) (as STOREROW).
#define THSUM(A, B, OFF) \
	VADDPS B, A, Z0; \
	VEXTRACTF64X4 $1, Z0, Y1; \
	VADDPS Y1, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0x4e, X0, X1; \
	VADDPS X1, X0, X0; \
	VPERMILPS $0xb1, X0, X1; \
	VADDSS X1, X0, X0; \
	VMOVSS X0, OFF(R12)

#define TSTORE \
	THSUM(Z16, Z20, 0); \
	THSUM(Z17, Z21, 4); \
	THSUM(Z18, Z22, 8); \
	THSUM(Z19, Z23, 12); \
	ADDQ $16, R12; \
	ADDQ wstride+24(FP), R9; \
	ADDQ sbstride+48(FP), R10; \
	ADDQ sbstride+48(FP), R11

#define TSTART \
	MOVQ R9, SI; \
	MOVQ R10, DI; \
	MOVQ xq+64(FP), AX; \
	MOVQ dxl+72(FP), BX; \
	MOVQ nchunk+88(FP), CX; \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23

#define TROWS(CH, CHT, LS, LB, ESZ, lrow, lc, lt, le, lbl, lbt) \
lrow: \
	TSTART; \
	TESTQ CX, CX; \
	JZ   lt; \
lc: \
	CH(LS); \
	DECQ CX; \
	JNZ  lc; \
lt: \
	CMPQ tail+144(FP), $0; \
	JEQ  le; \
	CHT(LS); \
le: \
	BIASSTART; \
	TBIAS(LB, ESZ, lbl, lbt); \
	TSTORE; \
	DECQ R8; \
	JNZ  lrow; \
	JMP  tdone

// func qgemmTile4VNNI(bits, rows int, w unsafe.Pointer, wstride int, s, b unsafe.Pointer, sbstride, kind int, xq, dxl, sumx unsafe.Pointer, nchunk, ngroups int, idx unsafe.Pointer, smask, sstep, bmask int, y *float32, tail, wm1, wm2, tsmask int, widx unsafe.Pointer)
TEXT ·qgemmTile4VNNI(SB), NOSPLIT, $0-184
	MOVQ rows+8(FP), R8
	TESTQ R8, R8
	JZ   tdone
	MOVQ w+16(FP), R9
	MOVQ s+32(FP), R10
	MOVQ b+40(FP), R11
	MOVQ y+136(FP), R12
	MOVQ sstep+120(FP), R13
	MOVL $0x0f0f0f0f, DX
	VPBROADCASTD DX, Z31
	MOVQ idx+104(FP), DX
	VMOVDQU32 (DX), Z30
	VMOVDQU32 64(DX), Z29
	MOVQ smask+112(FP), DX
	KMOVW DX, K1
	MOVQ bmask+128(FP), DX
	KMOVW DX, K2
	MOVL $0xffff, DX
	KMOVW DX, K3
	MOVQ wm1+152(FP), DX
	KMOVQ DX, K4
	MOVQ wm2+160(FP), DX
	KMOVQ DX, K5
	MOVQ tsmask+168(FP), DX
	KMOVW DX, K6
	MOVQ widx+176(FP), DX
	VMOVDQU16 (DX), Z25
	VMOVDQU16 64(DX), Z24
	MOVL $0xaaaaaaaa, DX
	KMOVD DX, K7
	MOVQ kind+56(FP), DX
	MOVQ bits+0(FP), CX
	CMPQ CX, $8
	JEQ  tbits8
	CMPQ DX, $1
	JEQ  t4f16
	JGT  t4f32
	TROWS(TCHUNK4, TCHUNK4T, LS4_BF16, LB_BF16, 2, t4bf16, t4bf16c, t4bf16t, t4bf16e, t4bf16bl, t4bf16bt)
t4f16:
	TROWS(TCHUNK4, TCHUNK4T, LS4_F16, LB_F16, 2, t4f16r, t4f16c, t4f16t, t4f16e, t4f16bl, t4f16bt)
t4f32:
	TROWS(TCHUNK4, TCHUNK4T, LS4_F32, LB_F32, 4, t4f32r, t4f32c, t4f32t, t4f32e, t4f32bl, t4f32bt)
tbits8:
	CMPQ DX, $1
	JEQ  t8f16
	JGT  t8f32
	TROWS(TCHUNK8, TCHUNK8T, LS8_BF16, LB_BF16, 2, t8bf16, t8bf16c, t8bf16t, t8bf16e, t8bf16bl, t8bf16bt)
t8f16:
	TROWS(TCHUNK8, TCHUNK8T, LS8_F16, LB_F16, 2, t8f16r, t8f16c, t8f16t, t8f16e, t8f16bl, t8f16bt)
t8f32:
	TROWS(TCHUNK8, TCHUNK8T, LS8_F32, LB_F32, 4, t8f32r, t8f32c, t8f32t, t8f32e, t8f32bl, t8f32bt)

tdone:
	VZEROUPPER
	RET

// Horizontal max (OP=VMAXPS) or sum (VADDPS) of Z register R (destroyed,
// temp T) into the low lane of X register R.
#define HRED(OP, R, RY, RX, T, TY, TX) \
	VEXTRACTF64X4 $1, R, TY; \
	OP TY, RY, RY; \
	VEXTRACTF128 $1, RY, TX; \
	OP TX, RX, RX; \
	VPERMILPS $0x4e, RX, TX; \
	OP TX, RX, RX; \
	VPERMILPS $0xb1, RX, TX; \
	OP TX, RX, RX

// func quantActAVX512(x *float32, nblk int, bits int, xq *int8, dx, bsum *float32)
// Quantizes nblk blocks of 32 floats to int8 with dx = max|x|/127 and
// xi = round-to-even(x·127/max), storing dx and dx·Σxi per block (the
// rounded sums of roundedSums). The int8s go
// in natural order (bits 8) or, per 128-chunk, even elements then odd
// elements (bits 4; nblk a multiple of 4).
TEXT ·quantActAVX512(SB), NOSPLIT, $0-48
	MOVQ x+0(FP), SI
	MOVQ nblk+8(FP), CX
	MOVQ bits+16(FP), R8
	MOVQ xq+24(FP), DI
	MOVQ dx+32(FP), R9
	MOVQ bsum+40(FP), R10
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z31
	MOVL $0x42fe0000, AX // 127.0
	VPBROADCASTD AX, Z30
	XORQ DX, DX // block index within the 128-chunk
	TESTQ CX, CX
	JZ   qadone

qaloop:
	VMOVUPS (SI), Z1
	VMOVUPS 64(SI), Z2
	VANDPS Z31, Z1, Z3
	VANDPS Z31, Z2, Z4
	VMAXPS Z4, Z3, Z3
	HRED(VMAXPS, Z3, Y3, X3, Z4, Y4, X4)
	VBROADCASTSS X3, Z3
	VDIVPS Z30, Z3, Z5 // max/127
	VMOVSS X5, (R9)
	VXORPS Z6, Z6, Z6
	VCMPPS $4, Z6, Z3, K1 // max != 0
	VDIVPS.Z Z3, Z30, K1, Z5 // 127/max, 0 where max = 0
	VMULPS Z5, Z1, Z1
	VMULPS Z5, Z2, Z2
	VCVTPS2DQ Z1, Z1
	VCVTPS2DQ Z2, Z2
	// the block's sum of its rounded values, times dx (roundedSums)
	VPADDD Z2, Z1, Z6
	HRED(VPADDD, Z6, Y6, X6, Z7, Y7, X7)
	VCVTDQ2PS X6, X6
	VMULSS (R9), X6, X6
	VMOVSS X6, (R10)
	VPMOVSDB Z1, X1
	VPMOVSDB Z2, X2
	CMPQ R8, $8
	JNE  qa4
	VMOVDQU X1, (DI)
	VMOVDQU X2, 16(DI)
	ADDQ $32, DI
	JMP  qanext

qa4:
	VINSERTI128 $1, X2, Y1, Y1
	VPMOVWB Y1, X3
	VPSRLW $8, Y1, Y1
	VPMOVWB Y1, X4
	MOVQ DX, AX
	SHLQ $4, AX
	VMOVDQU X3, (DI)(AX*1)
	VMOVDQU X4, 64(DI)(AX*1)
	INCQ DX
	CMPQ DX, $4
	JNE  qanext
	XORQ DX, DX
	ADDQ $128, DI

qanext:
	ADDQ $128, SI
	ADDQ $4, R9
	ADDQ $4, R10
	DECQ CX
	JNZ  qaloop

qadone:
	VZEROUPPER
	RET

// Load the scale (or bias) at MEM as f32, broadcast into Z register R,
// for kind in R11 (0 bf16, 1 f16, 2 f32). Uses AX and Y register RY.
#define BCASTSB(MEM, R, RY, L1, L2, L3) \
	CMPQ R11, $1; \
	JEQ  L1; \
	JGT  L2; \
	MOVWLZX MEM, AX; \
	SHLL $16, AX; \
	VPBROADCASTD AX, R; \
	JMP  L3; \
L1: \
	VPBROADCASTW MEM, RY; \
	VCVTPH2PS RY, R; \
	JMP  L3; \
L2: \
	VBROADCASTSS MEM, R; \
L3:

// func dequantAVX512(bits, rows int, w unsafe.Pointer, K int, s, b unsafe.Pointer, kind, G int, dst *float32)
// dst[r·K+k] = scale·q + bias for rows r of a 4- or 8-bit weight (K a
// multiple of G; scales and biases [rows, K/G] of kind).
TEXT ·dequantAVX512(SB), NOSPLIT, $0-72
	MOVQ w+16(FP), SI
	MOVQ s+32(FP), R8
	MOVQ b+40(FP), R9
	MOVQ kind+48(FP), R11
	MOVQ dst+64(FP), DI
	MOVQ rows+8(FP), R12
	IMULQ K+24(FP), R12
	MOVQ G+56(FP), R13
	SHRQ $5, R13 // 32-weight steps per group
	MOVQ R12, R10
	SHRQ $5, R10 // 32-weight steps in all
	TESTQ R10, R10
	JZ   dqdone
	MOVL $0x000f000f, AX
	VPBROADCASTD AX, Y30
	MOVL $0x0f000f00, AX
	VPBROADCASTD AX, Y29
	MOVQ bits+0(FP), CX
	CMPQ CX, $8
	JEQ  dq8

dq4g:
	BCASTSB((R8), Z28, Y28, dq4a, dq4b, dq4c)
	BCASTSB((R9), Z27, Y27, dq4d, dq4e, dq4f)
	MOVQ R13, CX

dq4:
	VPMOVZXBW (SI), Y1
	VPSLLW $4, Y1, Y2
	VPANDD Y30, Y1, Y1
	VPANDD Y29, Y2, Y2
	VPOR Y2, Y1, Y1
	VPMOVZXBD X1, Z3
	VEXTRACTI128 $1, Y1, X4
	VPMOVZXBD X4, Z4
	VCVTDQ2PS Z3, Z3
	VCVTDQ2PS Z4, Z4
	VMULPS Z28, Z3, Z3
	VMULPS Z28, Z4, Z4
	VADDPS Z27, Z3, Z3
	VADDPS Z27, Z4, Z4
	VMOVUPS Z3, (DI)
	VMOVUPS Z4, 64(DI)
	ADDQ $16, SI
	ADDQ $128, DI
	DECQ R10
	JZ   dqdone
	DECQ CX
	JNZ  dq4
	MOVQ R11, AX
	CMPQ AX, $2
	JEQ  dq4s4
	ADDQ $2, R8
	ADDQ $2, R9
	JMP  dq4g

dq4s4:
	ADDQ $4, R8
	ADDQ $4, R9
	JMP  dq4g

dq8:
dq8g:
	BCASTSB((R8), Z28, Y28, dq8a, dq8b, dq8c)
	BCASTSB((R9), Z27, Y27, dq8d, dq8e, dq8f)
	MOVQ R13, CX

dq8l:
	VPMOVZXBD (SI), Z3
	VPMOVZXBD 16(SI), Z4
	VCVTDQ2PS Z3, Z3
	VCVTDQ2PS Z4, Z4
	VMULPS Z28, Z3, Z3
	VMULPS Z28, Z4, Z4
	VADDPS Z27, Z3, Z3
	VADDPS Z27, Z4, Z4
	VMOVUPS Z3, (DI)
	VMOVUPS Z4, 64(DI)
	ADDQ $32, SI
	ADDQ $128, DI
	DECQ R10
	JZ   dqdone
	DECQ CX
	JNZ  dq8l
	MOVQ R11, AX
	CMPQ AX, $2
	JEQ  dq8s4
	ADDQ $2, R8
	ADDQ $2, R9
	JMP  dq8g

dq8s4:
	ADDQ $4, R8
	ADDQ $4, R9
	JMP  dq8g

dqdone:
	VZEROUPPER
	RET

