//go:build arm64

#include "textflag.h"

// Instructions Go's assembler lacks are written as WORDs:
//   FADD  Vd.4S, Vn.4S, Vm.4S  0x4E20D400 | Rm<<16 | Rn<<5 | Rd
//   FADDP Vd.4S, Vn.4S, Vm.4S  0x6E20D400 | Rm<<16 | Rn<<5 | Rd
//   FADDP Sd, Vn.2S            0x7E30D800 | Rn<<5 | Rd
//   FCVTL  Vd.4S, Vn.4H        0x0E217800 | Rn<<5 | Rd
//   FCVTL2 Vd.4S, Vn.8H        0x4E217800 | Rn<<5 | Rd
//   FCVTN  Vd.4H, Vn.4S        0x0E216800 | Rn<<5 | Rd
//   FCVTN2 Vd.8H, Vn.4S        0x4E216800 | Rn<<5 | Rd
//   FCMEQ Vd.4S, Vn.4S, Vm.4S  0x4E20E400 | Rm<<16 | Rn<<5 | Rd
// Go's three-register order is Vm, Vn, Vd: VFMLA Vm, Vn, Vd is Vd += Vn·Vm.

// REDUCE4 sums V0..V3 lane-wise and across into F0.
#define REDUCE4 \
	WORD $0x4E21D400 \ // FADD V0.4S, V0.4S, V1.4S
	WORD $0x4E23D442 \ // FADD V2.4S, V2.4S, V3.4S
	WORD $0x4E22D400 \ // FADD V0.4S, V0.4S, V2.4S
	WORD $0x6E20D400 \ // FADDP V0.4S, V0.4S, V0.4S
	WORD $0x7E30D800   // FADDP S0, V0.2S

// func dotNEON(a, b *float32, n int) float32
TEXT ·dotNEON(SB), NOSPLIT, $0-28
	MOVD a+0(FP), R0
	MOVD b+8(FP), R1
	MOVD n+16(FP), R2
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16

dotloop:
	VLD1.P 64(R0), [V4.S4, V5.S4, V6.S4, V7.S4]
	VLD1.P 64(R1), [V16.S4, V17.S4, V18.S4, V19.S4]
	VFMLA  V16.S4, V4.S4, V0.S4
	VFMLA  V17.S4, V5.S4, V1.S4
	VFMLA  V18.S4, V6.S4, V2.S4
	VFMLA  V19.S4, V7.S4, V3.S4
	SUBS   $16, R2, R2
	BNE    dotloop
	REDUCE4
	FMOVS  F0, ret+24(FP)
	RET

// func hdotNEON(w unsafe.Pointer, x *float32, n, kind int) float32
// bf16 widens by interleaving a zero half below each value (ZIP1/ZIP2);
// f16 by FCVTL/FCVTL2.
TEXT ·hdotNEON(SB), NOSPLIT, $0-36
	MOVD w+0(FP), R0
	MOVD x+8(FP), R1
	MOVD n+16(FP), R2
	MOVD kind+24(FP), R3
	VEOR V0.B16, V0.B16, V0.B16
	VEOR V1.B16, V1.B16, V1.B16
	VEOR V2.B16, V2.B16, V2.B16
	VEOR V3.B16, V3.B16, V3.B16
	VEOR V31.B16, V31.B16, V31.B16
	CBNZ R3, hdotf16

hdotbf16:
	VLD1.P 32(R0), [V20.H8, V21.H8]
	VLD1.P 64(R1), [V16.S4, V17.S4, V18.S4, V19.S4]
	VZIP1  V20.H8, V31.H8, V4.H8
	VZIP2  V20.H8, V31.H8, V5.H8
	VZIP1  V21.H8, V31.H8, V6.H8
	VZIP2  V21.H8, V31.H8, V7.H8
	VFMLA  V16.S4, V4.S4, V0.S4
	VFMLA  V17.S4, V5.S4, V1.S4
	VFMLA  V18.S4, V6.S4, V2.S4
	VFMLA  V19.S4, V7.S4, V3.S4
	SUBS   $16, R2, R2
	BNE    hdotbf16
	B      hdotdone

hdotf16:
	VLD1.P 32(R0), [V20.H8, V21.H8]
	VLD1.P 64(R1), [V16.S4, V17.S4, V18.S4, V19.S4]
	WORD   $0x0E217A84 // FCVTL  V4.4S, V20.4H
	WORD   $0x4E217A85 // FCVTL2 V5.4S, V20.8H
	WORD   $0x0E217AA6 // FCVTL  V6.4S, V21.4H
	WORD   $0x4E217AA7 // FCVTL2 V7.4S, V21.8H
	VFMLA  V16.S4, V4.S4, V0.S4
	VFMLA  V17.S4, V5.S4, V1.S4
	VFMLA  V18.S4, V6.S4, V2.S4
	VFMLA  V19.S4, V7.S4, V3.S4
	SUBS   $16, R2, R2
	BNE    hdotf16

hdotdone:
	REDUCE4
	FMOVS F0, ret+32(FP)
	RET

// func halfToF32NEON(dst *float32, src *uint16, n, kind int)
TEXT ·halfToF32NEON(SB), NOSPLIT, $0-32
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	MOVD kind+24(FP), R3
	VEOR V31.B16, V31.B16, V31.B16
	CBNZ R3, widenf16

widenbf16:
	VLD1.P 16(R1), [V20.H8]
	VZIP1  V20.H8, V31.H8, V4.H8
	VZIP2  V20.H8, V31.H8, V5.H8
	VST1.P [V4.S4, V5.S4], 32(R0)
	SUBS   $8, R2, R2
	BNE    widenbf16
	RET

widenf16:
	VLD1.P 16(R1), [V20.H8]
	WORD   $0x0E217A84 // FCVTL  V4.4S, V20.4H
	WORD   $0x4E217A85 // FCVTL2 V5.4S, V20.8H
	VST1.P [V4.S4, V5.S4], 32(R0)
	SUBS   $8, R2, R2
	BNE    widenf16
	RET

// func f32ToHalfNEON(dst *uint16, src *float32, n, kind int)
// bf16: (b + 0x7fff + (b>>16)&1) >> 16, round-to-nearest-even as
// F32ToBF16; NaN lanes (FCMEQ x, x false) take (b | 0x400000) >> 16, a
// quiet NaN. The high halves are gathered with UZP2. f16: FCVTN/FCVTN2
// under the default FPCR (round to nearest even, no flush to zero).
TEXT ·f32ToHalfNEON(SB), NOSPLIT, $0-32
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	MOVD kind+24(FP), R3
	CBNZ R3, narrowf16
	MOVW $1, R4
	VDUP R4, V28.S4      // 1
	MOVW $0x7fff, R4
	VDUP R4, V29.S4      // 0x7fff
	MOVW $0x400000, R4
	VDUP R4, V30.S4      // quiet bit

narrowbf16:
	VLD1.P 32(R1), [V4.S4, V5.S4]
	VUSHR  $16, V4.S4, V6.S4
	VUSHR  $16, V5.S4, V7.S4
	VAND   V28.B16, V6.B16, V6.B16
	VAND   V28.B16, V7.B16, V7.B16
	VADD   V29.S4, V6.S4, V6.S4
	VADD   V29.S4, V7.S4, V7.S4
	VADD   V4.S4, V6.S4, V6.S4
	VADD   V5.S4, V7.S4, V7.S4
	VORR   V30.B16, V4.B16, V16.B16
	VORR   V30.B16, V5.B16, V17.B16
	WORD   $0x4E24E492 // FCMEQ V18.4S, V4.4S, V4.4S
	WORD   $0x4E25E4B3 // FCMEQ V19.4S, V5.4S, V5.4S
	VBIT   V18.B16, V6.B16, V16.B16
	VBIT   V19.B16, V7.B16, V17.B16
	VUZP2  V17.H8, V16.H8, V20.H8
	VST1.P [V20.H8], 16(R0)
	SUBS   $8, R2, R2
	BNE    narrowbf16
	RET

narrowf16:
	VLD1.P 32(R1), [V4.S4, V5.S4]
	WORD   $0x0E216894 // FCVTN  V20.4H, V4.4S
	WORD   $0x4E2168B4 // FCVTN2 V20.8H, V5.4S
	VST1.P [V20.H8], 16(R0)
	SUBS   $8, R2, R2
	BNE    narrowf16
	RET
