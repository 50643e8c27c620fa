//go:build arm64

#include "textflag.h"

// func sgemmKernelNEON8x8(kc int, a, b, c *float32, ldc int, add bool)
// An 8×8 block of C from a packed A panel [kc][8] and B panel [kc][8]:
// accumulators V0..V15 (row i in V2i, V2i+1), A column in V16/V17, B row
// in V18/V19, FMLA by element (WORD: Go's assembler has only the vector
// form; encoding 0x4F801000 | L<<21 | M<<20 | Rm<<16 | H<<11 | Rn<<5 | Rd).
// With add the accumulators start from C, else from zero. kc >= 1.
TEXT ·sgemmKernelNEON8x8(SB), NOSPLIT, $0-41
	MOVD   kc+0(FP), R0
	MOVD   a+8(FP), R1
	MOVD   b+16(FP), R2
	MOVD   c+24(FP), R3
	MOVD   ldc+32(FP), R5
	MOVBU  add+40(FP), R6
	LSL    $2, R5, R5
	MOVD   R3, R4
	CBZ    R6, zero
	VLD1   (R4), [V0.S4, V1.S4]
	ADD    R5, R4, R4
	VLD1   (R4), [V2.S4, V3.S4]
	ADD    R5, R4, R4
	VLD1   (R4), [V4.S4, V5.S4]
	ADD    R5, R4, R4
	VLD1   (R4), [V6.S4, V7.S4]
	ADD    R5, R4, R4
	VLD1   (R4), [V8.S4, V9.S4]
	ADD    R5, R4, R4
	VLD1   (R4), [V10.S4, V11.S4]
	ADD    R5, R4, R4
	VLD1   (R4), [V12.S4, V13.S4]
	ADD    R5, R4, R4
	VLD1   (R4), [V14.S4, V15.S4]
	ADD    R5, R4, R4
	B      loop

zero:
	VEOR   V0.B16, V0.B16, V0.B16
	VEOR   V1.B16, V1.B16, V1.B16
	VEOR   V2.B16, V2.B16, V2.B16
	VEOR   V3.B16, V3.B16, V3.B16
	VEOR   V4.B16, V4.B16, V4.B16
	VEOR   V5.B16, V5.B16, V5.B16
	VEOR   V6.B16, V6.B16, V6.B16
	VEOR   V7.B16, V7.B16, V7.B16
	VEOR   V8.B16, V8.B16, V8.B16
	VEOR   V9.B16, V9.B16, V9.B16
	VEOR   V10.B16, V10.B16, V10.B16
	VEOR   V11.B16, V11.B16, V11.B16
	VEOR   V12.B16, V12.B16, V12.B16
	VEOR   V13.B16, V13.B16, V13.B16
	VEOR   V14.B16, V14.B16, V14.B16
	VEOR   V15.B16, V15.B16, V15.B16

loop:
	VLD1.P 32(R1), [V16.S4, V17.S4]
	VLD1.P 32(R2), [V18.S4, V19.S4]
	WORD   $0x4F901240 // FMLA V0.4S, V18.4S, V16.S[0]
	WORD   $0x4F901261 // FMLA V1.4S, V19.4S, V16.S[0]
	WORD   $0x4FB01242 // FMLA V2.4S, V18.4S, V16.S[1]
	WORD   $0x4FB01263 // FMLA V3.4S, V19.4S, V16.S[1]
	WORD   $0x4F901A44 // FMLA V4.4S, V18.4S, V16.S[2]
	WORD   $0x4F901A65 // FMLA V5.4S, V19.4S, V16.S[2]
	WORD   $0x4FB01A46 // FMLA V6.4S, V18.4S, V16.S[3]
	WORD   $0x4FB01A67 // FMLA V7.4S, V19.4S, V16.S[3]
	WORD   $0x4F911248 // FMLA V8.4S, V18.4S, V17.S[0]
	WORD   $0x4F911269 // FMLA V9.4S, V19.4S, V17.S[0]
	WORD   $0x4FB1124A // FMLA V10.4S, V18.4S, V17.S[1]
	WORD   $0x4FB1126B // FMLA V11.4S, V19.4S, V17.S[1]
	WORD   $0x4F911A4C // FMLA V12.4S, V18.4S, V17.S[2]
	WORD   $0x4F911A6D // FMLA V13.4S, V19.4S, V17.S[2]
	WORD   $0x4FB11A4E // FMLA V14.4S, V18.4S, V17.S[3]
	WORD   $0x4FB11A6F // FMLA V15.4S, V19.4S, V17.S[3]
	SUBS   $1, R0, R0
	BNE    loop

	MOVD   R3, R4
	VST1   [V0.S4, V1.S4], (R4)
	ADD    R5, R4, R4
	VST1   [V2.S4, V3.S4], (R4)
	ADD    R5, R4, R4
	VST1   [V4.S4, V5.S4], (R4)
	ADD    R5, R4, R4
	VST1   [V6.S4, V7.S4], (R4)
	ADD    R5, R4, R4
	VST1   [V8.S4, V9.S4], (R4)
	ADD    R5, R4, R4
	VST1   [V10.S4, V11.S4], (R4)
	ADD    R5, R4, R4
	VST1   [V12.S4, V13.S4], (R4)
	ADD    R5, R4, R4
	VST1   [V14.S4, V15.S4], (R4)
	ADD    R5, R4, R4
	RET
