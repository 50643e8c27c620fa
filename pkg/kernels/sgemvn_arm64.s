//go:build arm64

#include "textflag.h"

// func sgemvNNEON(K, n int, a, b *float32, ldb int, y *float32)
// y[j] += Σ_p a[p]·b[p·ldb+j] for j < n (n % 16 == 0, K > 0): per block of
// 16 outputs held in V0..V3, every p broadcasts a[p] (LD1R) and FMLAs a
// 16-wide slice of row p of b.
TEXT ·sgemvNNEON(SB), NOSPLIT, $0-48
	MOVD K+0(FP), R0
	MOVD n+8(FP), R1
	MOVD a+16(FP), R2
	MOVD b+24(FP), R3
	MOVD ldb+32(FP), R4
	MOVD y+40(FP), R5
	LSL  $2, R4, R4 // row stride in bytes

nblock:
	VLD1 (R5), [V0.S4, V1.S4, V2.S4, V3.S4]
	MOVD R2, R6 // a
	MOVD R3, R7 // b[0, j]
	MOVD R0, R8

ploop:
	VLD1R.P 4(R6), [V16.S4]
	VLD1    (R7), [V4.S4, V5.S4, V6.S4, V7.S4]
	ADD     R4, R7, R7
	VFMLA   V16.S4, V4.S4, V0.S4
	VFMLA   V16.S4, V5.S4, V1.S4
	VFMLA   V16.S4, V6.S4, V2.S4
	VFMLA   V16.S4, V7.S4, V3.S4
	SUBS    $1, R8, R8
	BNE     ploop
	VST1.P  [V0.S4, V1.S4, V2.S4, V3.S4], 64(R5)
	ADD     $64, R3, R3
	SUBS    $16, R1, R1
	BNE     nblock
	RET
