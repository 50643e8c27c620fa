// Package quant implements MLX's affine quantization bit for bit, its float
// modes mxfp4, nvfp4 and mxfp8 (fp.go: QuantizeFP, DequantizeFP), and the
// rules mlx_lm uses to choose which layers to quantize and how.
//
// # Encoding
//
// A weight W [.., cols] is split along its last axis into groups of
// GroupSize (32, 64 or 128) consecutive values; each group gets one scale s
// and one bias b, and each value an unsigned Bits-wide code q (Bits 2, 3, 4,
// 5, 6 or 8) with W ≈ s·q + b. The encoder is the one MLX's CPU backend runs
// (mlx/backend/cpu/quantized.cpp), all in float32:
//
//	n     = 2^bits − 1
//	s     = max((max − min)/n, 1e-7)
//	edge  = min if |min| > |max| (s kept positive), else max (s negated)
//	q0    = rint(edge/s)
//	if q0 ≠ 0: s = edge/q0, b = edge   else: b = 0
//	q     = clamp(rint((w − b)/s), 0, n)
//
// so zero is exactly representable when the group spans it, scales can be
// negative (q = 0 then decodes to the group maximum), and rint rounds half to
// even. Inputs in bfloat16 or float16 are widened to float32 first; scales
// and biases are rounded back to the input dtype (round to nearest even) as
// MLX's static_cast does. The "max" and "min" above use C++ std::max/min
// semantics, which matter for non-finite input:
//
//   - NaN inputs are ignored by max/min (a comparison with NaN is false) and
//     a NaN value's code is NaN, which MLX converts to integer 0: NaN
//     elements encode as q = 0. An all-NaN group gets s = NaN, b = −inf.
//   - A group holding +inf or −inf gets s = NaN and b = that infinity (the
//     edge), and every code is 0, so the whole group decodes to NaN.
//   - A group so large that max − min overflows float32 gets s = ±inf,
//     b = 0 and codes 0 (decodes to NaN); an all-equal group of huge values
//     gets s = −0 and b = the value, and decodes exactly.
//
// NaN scales and biases are written as the canonical quiet NaN of the
// output dtype (MLX's bfloat16 conversion does the same). Go's builtin
// min/max propagate NaN and are deliberately not used.
//
// MLX's Metal kernel (what mlx_lm uses on a Mac GPU) differs in two ways:
// it rounds halves away from zero and starts its running maximum at 0, so a
// group of all-negative values is encoded as if its max were 0. Set
// Options.Metal to reproduce that encoder instead (for finite input only:
// Metal's NaN and infinity handling is not reproduced). Files from either
// encoder decode the same way everywhere.
//
// # Choosing layers
//
// Plan reproduces mlx_lm's quantize_model: a module is quantized iff it is a
// Linear, Embedding or SwitchLinear, its last dimension is a multiple of
// the group size and the predicate (a mixed recipe from MixedRecipe, else
// the model's own from ModelPredicate) does not skip it; Plan.Config is the
// "quantization" (and "quantization_config") object of config.json with
// the per-layer entries mlx_lm writes.
//
// # Packing
//
// Each row of codes is a little-endian, least-significant-bit-first bit
// stream: code j occupies bits [j·bits, (j+1)·bits) of the row, stored as
// uint32 words, so a row of cols values takes cols·bits/32 words and codes
// of 3, 5 and 6 bits may straddle two words. Every group starts on a word
// boundary because GroupSize·bits is a multiple of 32.
package quant

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// Mode defaults, as MLX's _defaults_for_mode for "affine".
const (
	DefaultGroupSize = 64
	DefaultBits      = 4
	eps              = float32(1e-7)
)

// Options says how to encode.
type Options struct {
	Bits      int // 2, 3, 4, 5, 6 or 8 (0 means 4)
	GroupSize int // 32, 64 or 128 (0 means 64)
	// Metal reproduces MLX's Metal kernel (round half away from zero,
	// running max started at 0) instead of its CPU encoder.
	Metal bool
}

func (o Options) resolved() Options {
	if o.Bits == 0 {
		o.Bits = DefaultBits
	}
	if o.GroupSize == 0 {
		o.GroupSize = DefaultGroupSize
	}
	return o
}

// Validate checks bits and group size as MLX's affine_quantize does.
func Validate(bits, groupSize int) error {
	if groupSize != 32 && groupSize != 64 && groupSize != 128 {
		return fmt.Errorf("quant: group size %d is not supported; the supported group sizes are 32, 64 and 128", groupSize)
	}
	if bits < 2 || bits > 8 || bits == 7 {
		return fmt.Errorf("quant: %d bits is not supported; the supported bits are 2, 3, 4, 5, 6 and 8", bits)
	}
	return nil
}

// PackedCols is the number of uint32 words a row of cols codes takes.
func PackedCols(cols, bits int) int { return cols * bits / 32 }

// check validates the shapes of a quantize or dequantize call.
func check(n, cols int, o Options, words, scales, biases int) error {
	if err := Validate(o.Bits, o.GroupSize); err != nil {
		return err
	}
	if cols <= 0 || cols%o.GroupSize != 0 {
		return fmt.Errorf("quant: last dimension %d is not a multiple of the group size %d", cols, o.GroupSize)
	}
	if n%cols != 0 {
		return fmt.Errorf("quant: %d values do not make whole rows of %d", n, cols)
	}
	rows := n / cols
	if want := rows * PackedCols(cols, o.Bits); words != want {
		return fmt.Errorf("quant: packed buffer has %d words, want %d for [%d, %d] at %d bits", words, want, rows, cols, o.Bits)
	}
	groups := n / o.GroupSize
	if scales != groups || biases != groups {
		return fmt.Errorf("quant: scales/biases have %d/%d entries, want %d (one per group of %d)", scales, biases, groups, o.GroupSize)
	}
	return nil
}

// rint rounds half to even, as C's rint in the default rounding mode.
func rint(x float32) float32 { return float32(math.RoundToEven(float64(x))) }

// roundAway rounds half away from zero, as Metal's round.
func roundAway(x float32) float32 { return float32(math.Round(float64(x))) }

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

// encoder holds what is fixed for one call.
type encoder struct {
	bits  int
	nBins float32
	metal bool
	// metalMin is the Metal kernel's initial running min, the largest
	// finite value of the input dtype.
	metalMin float32
}

func newEncoder(o Options, maxFinite float32) encoder {
	return encoder{bits: o.Bits, nBins: float32(int(1)<<o.Bits - 1), metal: o.Metal, metalMin: maxFinite}
}

// group encodes one group of float32 values w into out (len(w)·bits/32
// words) and returns its scale and bias in float32.
func (e *encoder) group(w []float32, out []uint32) (scale, bias float32) {
	wMax, wMin := minMax(w)
	if wMax != wMax || wMin != wMin {
		wMax, wMin = minMaxCpp(w)
	}
	if e.metal {
		wMax, wMin = max(wMax, 0), min(wMin, e.metalMin)
	}
	rnd := rint
	if e.metal {
		rnd = roundAway
	}
	n := e.nBins
	scale = (wMax - wMin) / n
	if scale < eps {
		scale = eps
	}
	mask := abs32(wMin) > abs32(wMax)
	edge := wMin
	if !mask {
		scale = -scale
		edge = wMax
	}
	q0 := rnd(edge / scale)
	if q0 != 0 {
		scale = edge / q0
		bias = edge
	}
	if e.metal {
		e.codesMetal(w, scale, bias, out)
	} else {
		e.codes(w, scale, bias, out)
	}
	return scale, bias
}

// minMax is the group's max and min with Go's builtin max/min, four
// lanes at a time (len(w) is a multiple of 32); NaN if any value is NaN.
func minMax(w []float32) (hi, lo float32) {
	h0, h1, h2, h3 := w[0], w[1], w[2], w[3]
	l0, l1, l2, l3 := h0, h1, h2, h3
	for i := 4; i+3 < len(w); i += 4 {
		x := w[i : i+4 : i+4]
		h0, h1, h2, h3 = max(h0, x[0]), max(h1, x[1]), max(h2, x[2]), max(h3, x[3])
		l0, l1, l2, l3 = min(l0, x[0]), min(l1, x[1]), min(l2, x[2]), min(l3, x[3])
	}
	return max(h0, h1, h2, h3), min(l0, l1, l2, l3)
}

// minMaxCpp is the max and min as MLX's loop computes them with std::max
// and std::min, which skip NaN: (a < b) ? b : a and (b < a) ? b : a from
// ∓inf. (The sign of a zero result can differ from minMax's, which does
// not change any output.)
func minMaxCpp(w []float32) (hi, lo float32) {
	hi, lo = float32(math.Inf(-1)), float32(math.Inf(1))
	for _, x := range w {
		if hi < x {
			hi = x
		}
		if x < lo {
			lo = x
		}
	}
	return hi, lo
}

// magic is 1.5·2^23: for |v| < 2^22, (v + magic) − magic is v rounded to
// an integer in the current (nearest-even) mode, exactly rint(v). Larger
// |v|, ±inf and NaN come out large, infinite or NaN with the right sign, so
// the clamp to [0, n] that follows gives what rint would.
const magic = float32(12582912)

// code turns the scaled value v into a code: rint, clamp to [0, n], and
// NaN to 0 (MLX's float-to-integer cast of NaN).
func code(v, n float32) uint32 {
	v = (v + magic) - magic
	if v < 0 {
		v = 0
	}
	if n < v {
		v = n
	}
	if v != v {
		return 0
	}
	return uint32(v)
}

// codes is the CPU encoder's inner loop, with packing specialised per
// width.
func (e *encoder) codes(w []float32, scale, bias float32, out []uint32) {
	n := e.nBins
	switch e.bits {
	case 2, 4, 8:
		bits := uint(e.bits)
		per := 32 / e.bits
		for o := range out {
			x := w[o*per : (o+1)*per]
			var word uint32
			for j, xv := range x {
				word |= code((xv-bias)/scale, n) << (uint(j) * bits)
			}
			out[o] = word
		}
	default:
		// 3, 5 and 6 bits: 8, 8 and 4 codes fill 3, 5 and 3 whole
		// bytes; stream through a 64-bit accumulator.
		bits := uint(e.bits)
		var acc uint64
		var nb uint
		o := 0
		for _, xv := range w {
			acc |= uint64(code((xv-bias)/scale, n)) << nb
			nb += bits
			if nb >= 32 {
				out[o] = uint32(acc)
				o++
				acc >>= 32
				nb -= 32
			}
		}
	}
}

// codesMetal is the Metal kernel's inner loop: round half away from zero.
func (e *encoder) codesMetal(w []float32, scale, bias float32, out []uint32) {
	n := e.nBins
	codes := make([]uint32, len(w))
	for k, xv := range w {
		v := roundAway((xv - bias) / scale)
		if v < 0 {
			v = 0
		}
		if n < v {
			v = n
		}
		if v == v {
			codes[k] = uint32(v)
		}
	}
	Pack(codes, e.bits, out)
}

// grain is the number of groups a worker takes at least.
const grain = 256

// QuantizeF32 encodes w (rows of cols float32 values) into q (rows of
// PackedCols(cols, bits) words) and one float32 scale and bias per group.
func QuantizeF32(w []float32, cols int, o Options, q []uint32, scales, biases []float32) error {
	o = o.resolved()
	if err := check(len(w), cols, o, len(q), len(scales), len(biases)); err != nil {
		return err
	}
	e := newEncoder(o, math.MaxFloat32)
	g := o.GroupSize
	wpg := g * o.Bits / 32 // words per group
	kernels.Parallel(len(w)/g, grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s, b := e.group(w[i*g:(i+1)*g], q[i*wpg:(i+1)*wpg])
			scales[i], biases[i] = canonF32(s), canonF32(b)
		}
	})
	return nil
}

// QuantizeHalf encodes bfloat16 or float16 values (kind says which) like
// QuantizeF32, writing scales and biases in the same half format.
func QuantizeHalf(w []uint16, kind kernels.HalfKind, cols int, o Options, q []uint32, scales, biases []uint16) error {
	o = o.resolved()
	if err := check(len(w), cols, o, len(q), len(scales), len(biases)); err != nil {
		return err
	}
	maxFinite := float32(65504)
	if kind == kernels.BF16 {
		maxFinite = kernels.BF16ToF32(0x7f7f)
	}
	e := newEncoder(o, maxFinite)
	g := o.GroupSize
	wpg := g * o.Bits / 32
	kernels.Parallel(len(w)/g, grain, func(lo, hi int) {
		var buf [128]float32
		f := buf[:g]
		for i := lo; i < hi; i++ {
			kernels.HalfToF32Slice(f, w[i*g:(i+1)*g], kind)
			s, b := e.group(f, q[i*wpg:(i+1)*wpg])
			scales[i], biases[i] = toHalf(s, kind), toHalf(b, kind)
		}
	})
	return nil
}

// Canonical quiet NaNs written for NaN scales and biases.
const (
	nanF32  = 0x7fc00000
	nanBF16 = 0x7fc0
	nanF16  = 0x7e00
)

func canonF32(x float32) float32 {
	if x != x {
		return math.Float32frombits(nanF32)
	}
	return x
}

func toHalf(x float32, kind kernels.HalfKind) uint16 {
	if x != x {
		if kind == kernels.BF16 {
			return nanBF16
		}
		return nanF16
	}
	if kind == kernels.BF16 {
		return kernels.F32ToBF16(x)
	}
	return kernels.F32ToF16(x)
}

// Unpack returns the k-th code of a packed row.
func Unpack(row []uint32, k, bits int) uint32 {
	bit := k * bits
	w, off := bit/32, uint(bit%32)
	v := row[w] >> off
	if int(off)+bits > 32 {
		v |= row[w+1] << (32 - off)
	}
	return v & (1<<uint(bits) - 1)
}

// Pack writes codes (each < 2^bits) as one packed bit stream into out
// (len(codes)·bits/32 words; len(codes)·bits must be a multiple of 32).
func Pack(codes []uint32, bits int, out []uint32) {
	var acc uint64
	var nb uint
	o := 0
	for _, c := range codes {
		acc |= uint64(c&(1<<uint(bits)-1)) << nb
		nb += uint(bits)
		if nb >= 32 {
			out[o] = uint32(acc)
			o++
			acc >>= 32
			nb -= 32
		}
	}
}

// dequantGroups decodes group by group: out[k] = s·q + b in float32,
// the product rounded before the sum (no fused multiply-add).
func dequantGroups(q []uint32, cols int, o Options, out []float32, sb func(i int) (float32, float32)) {
	g := o.GroupSize
	wpg := g * o.Bits / 32
	kernels.Parallel(len(out)/g, grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s, b := sb(i)
			words := q[i*wpg : (i+1)*wpg]
			dst := out[i*g : (i+1)*g]
			for k := range dst {
				dst[k] = float32(s*float32(Unpack(words, k, o.Bits))) + b
			}
		}
	})
}

// DequantizeF32 decodes into out (rows of cols float32 values).
func DequantizeF32(q []uint32, scales, biases []float32, cols int, o Options, out []float32) error {
	o = o.resolved()
	if err := check(len(out), cols, o, len(q), len(scales), len(biases)); err != nil {
		return err
	}
	dequantGroups(q, cols, o, out, func(i int) (float32, float32) { return scales[i], biases[i] })
	return nil
}

// DequantizeHalf decodes with half-precision scales and biases into float32
// (narrow with kernels.F32ToHalfSlice to get MLX's dequantized dtype).
func DequantizeHalf(q []uint32, scales, biases []uint16, kind kernels.HalfKind, cols int, o Options, out []float32) error {
	o = o.resolved()
	if err := check(len(out), cols, o, len(q), len(scales), len(biases)); err != nil {
		return err
	}
	dequantGroups(q, cols, o, out, func(i int) (float32, float32) {
		return kernels.HalfToF32(scales[i], kind), kernels.HalfToF32(biases[i], kind)
	})
	return nil
}

// DequantizeHalfTo decodes into the half format of the scales, as MLX's CPU
// mx.dequantize does for bfloat16/float16 weights (what `convert -d`
// writes): the code is cast to the half type, the product s·q is rounded to
// it, then the sum with the bias is rounded again. (Rounding s·q + b once,
// as DequantizeHalf followed by a narrowing cast does, can differ in the
// last bit.)
func DequantizeHalfTo(q []uint32, scales, biases []uint16, kind kernels.HalfKind, cols int, o Options, out []uint16) error {
	o = o.resolved()
	if err := check(len(out), cols, o, len(q), len(scales), len(biases)); err != nil {
		return err
	}
	g := o.GroupSize
	wpg := g * o.Bits / 32
	kernels.Parallel(len(out)/g, grain, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s, b := kernels.HalfToF32(scales[i], kind), kernels.HalfToF32(biases[i], kind)
			words := q[i*wpg : (i+1)*wpg]
			dst := out[i*g : (i+1)*g]
			for k := range dst {
				// codes ≤ 255 are exact in both half formats, and so is
				// their product with a half scale in float32
				p := kernels.HalfToF32(toHalf(s*float32(Unpack(words, k, o.Bits)), kind), kind)
				dst[k] = toHalf(p+b, kind)
			}
		}
	})
	return nil
}
