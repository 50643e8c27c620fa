package cpu

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// MLX's float quantization modes: 4- or 8-bit float codes packed LSB-first
// in uint32 words, one uint8 scale per group, no biases.

var (
	e2m1LUT [16]float32  // FP4 E2M1 codes
	e4m3LUT [256]float32 // FP8 E4M3 (fn: no infinities, 0x7f/0xff NaN)
	e8m0LUT [256]float32 // E8M0 scales: 2^(e−127), 0xff NaN
)

func init() {
	for c := range e2m1LUT {
		e, m := (c>>1)&3, c&1
		v := float32(m) * 0.5 // subnormal: m·2^-1
		if e > 0 {
			v = float32(math.Ldexp(1+float64(m)/2, e-1))
		}
		if c&8 != 0 {
			v = -v
		}
		e2m1LUT[c] = v
	}
	for c := range e4m3LUT {
		e, m := (c>>3)&15, c&7
		var v float64
		switch {
		case e == 15 && m == 7:
			v = math.NaN()
		case e == 0:
			v = math.Ldexp(float64(m)/8, -6)
		default:
			v = math.Ldexp(1+float64(m)/8, e-7)
		}
		if c&0x80 != 0 {
			v = -v
		}
		e4m3LUT[c] = float32(v)
	}
	for c := range e8m0LUT {
		if c == 255 {
			e8m0LUT[c] = float32(math.NaN())
			continue
		}
		e8m0LUT[c] = float32(math.Ldexp(1, c-127))
	}
}

func isFP(q backend.Quant) bool {
	return q.Mode == "mxfp4" || q.Mode == "mxfp8" || q.Mode == "nvfp4"
}

func checkFP(q backend.Quant) error {
	want := map[string][2]int{"mxfp4": {32, 4}, "mxfp8": {32, 8}, "nvfp4": {16, 4}}[q.Mode]
	if q.GroupSize != want[0] || q.Bits != want[1] {
		return fmt.Errorf("cpu: mode %s needs group size %d and %d bits, got %d and %d", q.Mode, want[0], want[1], q.GroupSize, q.Bits)
	}
	return nil
}

// fpMat is one float-quantized matrix [rows, cols].
type fpMat struct {
	rows, cols, bits, group int
	w                       []uint32
	s                       []byte
	codes, scales           []float32
}

func newFPMat(q backend.Quant, w, s backend.View, wOff, sOff, rows, cols int) *fpMat {
	words := cols * q.Bits / 32
	m := &fpMat{rows: rows, cols: cols, bits: q.Bits, group: q.GroupSize,
		w: u32s(bytesOf(w))[wOff : wOff+rows*words],
		s: bytesOf(s)[sOff : sOff+rows*cols/q.GroupSize]}
	m.codes, m.scales = e2m1LUT[:], e8m0LUT[:]
	if q.Bits == 8 {
		m.codes = e4m3LUT[:]
	}
	if q.Mode == "nvfp4" {
		m.scales = e4m3LUT[:]
	}
	return m
}

func (m *fpMat) dims() (int, int) { return m.rows, m.cols }

// DequantizeRow widens row r into dst [cols].
func (m *fpMat) DequantizeRow(r int, dst []float32) {
	per := 32 / m.bits
	mask := uint32(1)<<m.bits - 1
	row := m.w[r*m.cols/per : (r+1)*m.cols/per]
	sc := m.s[r*m.cols/m.group : (r+1)*m.cols/m.group]
	for k := range dst[:m.cols] {
		code := row[k/per] >> (uint(k%per) * uint(m.bits)) & mask
		dst[k] = m.codes[code] * m.scales[sc[k/m.group]]
	}
}
