package kernels

import "math"

// BF16ToF32 widens one bfloat16.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 narrows with round-to-nearest-even; NaN stays a quiet NaN.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// F16ToF32 widens one IEEE binary16.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// subnormal: normalise
	e := uint32(113)
	for man&0x400 == 0 {
		man <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
}

// F32ToF16 narrows with round-to-nearest-even, overflowing to ±inf.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		rest := man & (1<<shift - 1)
		v := man >> shift
		if rest > half || (rest == half && v&1 == 1) {
			v++
		}
		return sign | uint16(v)
	}
	v := uint32(e)<<10 | man>>13
	rest := man & 0x1fff
	if rest > 0x1000 || (rest == 0x1000 && v&1 == 1) {
		v++ // may carry into the exponent, which is right (up to inf)
	}
	return sign | uint16(v)
}

// HalfToF32 widens one half of the given kind.
func HalfToF32(h uint16, kind HalfKind) float32 {
	if kind == BF16 {
		return BF16ToF32(h)
	}
	return F16ToF32(h)
}

// convGrain is the slice length from which conversions split over cores.
const convGrain = 1 << 16

// HalfToF32Slice widens src into dst (len(dst) >= len(src)): AVX-512 where
// the CPU has it, parallel for long slices.
func HalfToF32Slice(dst []float32, src []uint16, kind HalfKind) {
	if len(src) < 2*convGrain {
		halfToF32(dst, src, kind)
		return
	}
	Parallel(len(src), convGrain, func(lo, hi int) { halfToF32(dst[lo:hi], src[lo:hi], kind) })
}

// F32ToHalfSlice narrows src into dst with round-to-nearest-even, exactly
// as F32ToBF16 / F32ToF16 do (NaN payloads may differ; they stay NaN).
func F32ToHalfSlice(dst []uint16, src []float32, kind HalfKind) {
	if len(src) < 2*convGrain {
		f32ToHalf(dst, src, kind)
		return
	}
	Parallel(len(src), convGrain, func(lo, hi int) { f32ToHalf(dst[lo:hi], src[lo:hi], kind) })
}

// halfToF32Go is the portable widening loop.
func halfToF32Go(dst []float32, src []uint16, kind HalfKind) {
	dst = dst[:len(src)]
	if kind == BF16 {
		for i, h := range src {
			dst[i] = math.Float32frombits(uint32(h) << 16)
		}
		return
	}
	for i, h := range src {
		dst[i] = F16ToF32(h)
	}
}

// f32ToHalfGo is the portable narrowing loop.
func f32ToHalfGo(dst []uint16, src []float32, kind HalfKind) {
	dst = dst[:len(src)]
	if kind == BF16 {
		for i, f := range src {
			dst[i] = F32ToBF16(f)
		}
		return
	}
	for i, f := range src {
		dst[i] = F32ToF16(f)
	}
}

// RoundHalf rounds each x[i] in place to the nearest value of kind's
// precision (as F32ToBF16 / F32ToF16 then widening back) on AVX-512 or
// NEON; false without them.
func RoundHalf(x []float32, kind HalfKind) bool {
	if len(x) == 0 {
		return true
	}
	return roundHalf(x, kind)
}
