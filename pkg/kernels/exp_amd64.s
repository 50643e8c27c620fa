#include "textflag.h"

// Exponentials on AVX-512, all through Cephes' float32 expf: sigmoid (and
// the SwiGLU blocks built on it) for the engine's activations, e^(x−m)
// for softmax rows, and the float64-summed Σ e^(x−m) of the sampler's
// log-softmax over the vocabulary.

// CEPHES loads the constants of SIG and EXPM: Z17-Z18 the clamp, Z19-Z22
// the range reduction, Z23-Z28 the polynomial, Z29 = 1. Uses AX.
#define CEPHES \
	MOVL $0xc2ae999a, AX; \
	VPBROADCASTD AX, Z17; \
	MOVL $0x42b16666, AX; \
	VPBROADCASTD AX, Z18; \
	MOVL $0x3fb8aa3b, AX; \
	VPBROADCASTD AX, Z19; \
	MOVL $0x3f000000, AX; \
	VPBROADCASTD AX, Z20; \
	MOVL $0x3f318000, AX; \
	VPBROADCASTD AX, Z21; \
	MOVL $0xb95e8083, AX; \
	VPBROADCASTD AX, Z22; \
	MOVL $0x39506967, AX; \
	VPBROADCASTD AX, Z23; \
	MOVL $0x3ab743ce, AX; \
	VPBROADCASTD AX, Z24; \
	MOVL $0x3c088908, AX; \
	VPBROADCASTD AX, Z25; \
	MOVL $0x3d2aa9c1, AX; \
	VPBROADCASTD AX, Z26; \
	MOVL $0x3e2aaaaa, AX; \
	VPBROADCASTD AX, Z27; \
	MOVL $0x3f000000, AX; \
	VPBROADCASTD AX, Z28; \
	MOVL $0x3f800000, AX; \
	VPBROADCASTD AX, Z29

// SIG turns 16 floats in Z0 into 1/(1+e^−x): Cephes' expf of −x clamped to
// [−87.3, 88.7] (NaN passes through), scaled by 2^n with VSCALEFPS.
#define SIG \
	VXORPS       Z16, Z0, Z1  \
	VMAXPS       Z1, Z17, Z1  \
	VMINPS       Z1, Z18, Z1  \
	VMOVAPS      Z1, Z2       \
	VFMADD213PS  Z20, Z19, Z2 \
	VRNDSCALEPS  $9, Z2, Z2   \
	VFNMADD231PS Z21, Z2, Z1  \
	VFNMADD231PS Z22, Z2, Z1  \
	VMOVAPS      Z23, Z3      \
	VFMADD213PS  Z24, Z1, Z3  \
	VFMADD213PS  Z25, Z1, Z3  \
	VFMADD213PS  Z26, Z1, Z3  \
	VFMADD213PS  Z27, Z1, Z3  \
	VFMADD213PS  Z28, Z1, Z3  \
	VMULPS       Z1, Z1, Z4   \
	VFMADD213PS  Z1, Z4, Z3   \
	VADDPS       Z29, Z3, Z3  \
	VSCALEFPS    Z2, Z3, Z3   \
	VADDPS       Z29, Z3, Z3  \
	VDIVPS       Z3, Z29, Z0

// EXPM turns 16 floats x in Z0 into e^(x−m) (m broadcast in Z30), Cephes'
// expf: 0 below −87.3 (−inf included, as expf), clamped at 88.7, NaN passes.
#define EXPM \
	VSUBPS       Z30, Z0, Z1  \
	VCMPPS       $5, Z17, Z1, K2 \
	VMAXPS       Z1, Z17, Z1  \
	VMINPS       Z1, Z18, Z1  \
	VMOVAPS      Z1, Z2       \
	VFMADD213PS  Z20, Z19, Z2 \
	VRNDSCALEPS  $9, Z2, Z2   \
	VFNMADD231PS Z21, Z2, Z1  \
	VFNMADD231PS Z22, Z2, Z1  \
	VMOVAPS      Z23, Z3      \
	VFMADD213PS  Z24, Z1, Z3  \
	VFMADD213PS  Z25, Z1, Z3  \
	VFMADD213PS  Z26, Z1, Z3  \
	VFMADD213PS  Z27, Z1, Z3  \
	VFMADD213PS  Z28, Z1, Z3  \
	VMULPS       Z1, Z1, Z4   \
	VFMADD213PS  Z1, Z4, Z3   \
	VADDPS       Z29, Z3, Z3  \
	VSCALEFPS.Z  Z2, Z3, K2, Z0

// RBF16 rounds the 16 floats in R to bf16 precision in place (round to
// nearest even, NaNs quiet; as kernels.F32ToBF16). Uses Z11, Z12, K3;
// Z5 = 0x400000, Z6 = 0x7fff, Z7 = 1, Z8 = 0x7fffffff, Z9 = 0x7f800000,
// Z10 = 0xffff0000.
#define RBF16(R) \
	VPSRLD $16, R, Z11; \
	VPANDD Z7, Z11, Z11; \
	VPADDD Z6, Z11, Z11; \
	VPADDD R, Z11, Z11; \
	VPANDD Z8, R, Z12; \
	VPCMPUD $6, Z9, Z12, K3; \
	VPORD Z5, R, K3, Z11; \
	VPANDD Z10, Z11, R

// RF16 rounds R to f16 precision in place (uses Y11).
#define RF16(R) \
	VCVTPS2PH $0, R, Y11; \
	VCVTPH2PS Y11, R

// func sigmoidAVX512(dst, src *float32, n int)
TEXT ·sigmoidAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z16
	CEPHES

loop:
	CMPQ CX, $16
	JLT  tail
	VMOVUPS (SI), Z0
	SIG
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  loop

tail:
	TESTQ CX, CX
	JZ    done
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z0
	SIG
	VMOVUPS Z0, K1, (DI)

done:
	VZEROUPPER
	RET

// func swigluAVX512(x, up *float32, n, kind int)
// x[i] = r(r(x·r(sigmoid(x))))·up[i] with r the rounding to the output
// dtype (kind 0 bf16, 1 f16, 2 f32: none); up nil: x[i] = r(x·r(sigmoid(x)))
// without the last rounding (the store rounds). As the unfused ops.
TEXT ·swigluAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), DI
	MOVQ up+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ kind+24(FP), DX
	MOVL $0x80000000, AX
	VPBROADCASTD AX, Z16
	CEPHES
	MOVL $0x400000, AX
	VPBROADCASTD AX, Z5
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z6
	MOVL $1, AX
	VPBROADCASTD AX, Z7
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z8
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z9
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z10
	MOVL $0xffff, AX
	KMOVW AX, K1

swloop:
	TESTQ CX, CX
	JZ    swdone
	CMPQ  CX, $16
	JGE   swfull
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	MOVQ  $16, CX

swfull:
	VMOVUPS.Z (DI), K1, Z0
	VMOVAPS Z0, Z13
	SIG
	// Z0 = sigmoid(x), Z13 = x
	CMPQ DX, $1
	JEQ  swf16a
	JGT  swf32a
	RBF16(Z0)
	VMULPS Z0, Z13, Z0
	TESTQ SI, SI
	JZ   swst
	RBF16(Z0)
	JMP  swup

swf16a:
	RF16(Z0)
	VMULPS Z0, Z13, Z0
	TESTQ SI, SI
	JZ   swst
	RF16(Z0)
	JMP  swup

swf32a:
	VMULPS Z0, Z13, Z0
	TESTQ SI, SI
	JZ   swst

swup:
	VMOVUPS.Z (SI), K1, Z14
	VMULPS Z14, Z0, Z0
	ADDQ $64, SI

swst:
	VMOVUPS Z0, K1, (DI)
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  swloop

swdone:
	VZEROUPPER
	RET

// func expSubAVX512(s *float32, n int, m float32) float32
// s[i] = e^(s[i]−m) in place; returns the sum of the results.
TEXT ·expSubAVX512(SB), NOSPLIT, $0-28
	MOVQ s+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Z30
	CEPHES
	VPXORD Z5, Z5, Z5

eloop:
	CMPQ CX, $16
	JLT  etail
	VMOVUPS (SI), Z0
	EXPM
	VMOVUPS Z0, (SI)
	VADDPS Z0, Z5, Z5
	ADDQ $64, SI
	SUBQ $16, CX
	JMP  eloop

etail:
	TESTQ CX, CX
	JZ    edone
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z0
	EXPM
	VMOVUPS Z0, K1, (SI)
	VADDPS Z0, Z5, K1, Z5

edone:
	VEXTRACTF32X8 $1, Z5, Y1
	VADDPS Y1, Y5, Y5
	VEXTRACTF128 $1, Y5, X1
	VADDPS X1, X5, X5
	VPERMILPS $0x4e, X5, X1
	VADDPS X1, X5, X5
	VPERMILPS $0xb1, X5, X1
	VADDSS X1, X5, X5
	VZEROUPPER
	MOVSS X5, ret+24(FP)
	RET


// func expSumAVX512(x *float32, n int, m float32) float64
// Σ e^(x[i]−m), x unchanged: each e^ in float32 as expSubAVX512, the sum
// in float64 (two accumulators of 8 lanes).
TEXT ·expSumAVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Z30
	CEPHES
	VXORPD Z5, Z5, Z5
	VXORPD Z6, Z6, Z6

sloop:
	CMPQ CX, $16
	JLT  stail
	VMOVUPS (SI), Z0
	EXPM
	VCVTPS2PD Y0, Z7
	VEXTRACTF32X8 $1, Z0, Y8
	VCVTPS2PD Y8, Z8
	VADDPD Z7, Z5, Z5
	VADDPD Z8, Z6, Z6
	ADDQ $64, SI
	SUBQ $16, CX
	JMP  sloop

stail:
	TESTQ CX, CX
	JZ    sdone
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	VMOVUPS.Z (SI), K1, Z0
	EXPM
	VMOVAPS.Z Z0, K1, Z0
	VCVTPS2PD Y0, Z7
	VEXTRACTF32X8 $1, Z0, Y8
	VCVTPS2PD Y8, Z8
	VADDPD Z7, Z5, Z5
	VADDPD Z8, Z6, Z6

sdone:
	VADDPD Z6, Z5, Z5
	VEXTRACTF64X4 $1, Z5, Y1
	VADDPD Y1, Y5, Y5
	VEXTRACTF128 $1, Y5, X1
	VADDPD X1, X5, X5
	VPERMILPD $1, X5, X1
	VADDSD X1, X5, X5
	VZEROUPPER
	MOVSD X5, ret+24(FP)
	RET

// func roundHalfAVX512(x *float32, n, kind int)
// x[i] = float32(half(x[i])) in place: kind 0 bf16 (RBF16: round to
// nearest even, NaNs quiet, as F32ToBF16), 1 f16 (RF16).
TEXT ·roundHalfAVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ kind+16(FP), DX
	MOVL $0x400000, AX
	VPBROADCASTD AX, Z5
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z6
	MOVL $1, AX
	VPBROADCASTD AX, Z7
	MOVL $0x7fffffff, AX
	VPBROADCASTD AX, Z8
	MOVL $0x7f800000, AX
	VPBROADCASTD AX, Z9
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z10
	MOVL $0xffff, AX
	KMOVW AX, K1

rhloop:
	TESTQ CX, CX
	JZ    rhdone
	CMPQ  CX, $16
	JGE   rhfull
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1
	MOVQ  $16, CX

rhfull:
	VMOVUPS.Z (SI), K1, Z0
	TESTQ DX, DX
	JNZ   rhf16
	RBF16(Z0)
	JMP   rhst

rhf16:
	RF16(Z0)

rhst:
	VMOVUPS Z0, K1, (SI)
	ADDQ  $64, SI
	SUBQ  $16, CX
	JMP   rhloop

rhdone:
	VZEROUPPER
	RET
