package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// Encode appends the encoding of src as type t to dst and returns it.
// len(src) must be a multiple of the block size of t (32 for Q8_0 and Q4_0).
// Large inputs are encoded by GOMAXPROCS goroutines, block-aligned; the
// bytes do not depend on the split.
func Encode(dst []byte, t Type, src []float32) ([]byte, error) {
	n, err := t.RowSize(len(src))
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = grow(dst, n)
	out := dst[start:]
	inPer := len(src) / (n / t.typeSize()) // values per encoded unit (block or element)
	if n == 0 {
		return dst, nil
	}
	parallel(n/t.typeSize(), func(lo, hi int) {
		encodeRange(out[lo*t.typeSize():hi*t.typeSize()], t, src[lo*inPer:hi*inPer])
	})
	return dst, nil
}

// parallel splits [0, units) into contiguous ranges over GOMAXPROCS
// goroutines when the work is large enough to pay for them.
func parallel(units int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if units < 1<<15 || workers < 2 {
		fn(0, units)
		return
	}
	var wg sync.WaitGroup
	per := (units + workers - 1) / workers
	for lo := 0; lo < units; lo += per {
		hi := min(lo+per, units)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func encodeRange(out []byte, t Type, src []float32) {
	switch t {
	case F32:
		if littleEndian {
			copy(out, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(src))), 4*len(src)))
			return
		}
		for i, v := range src {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case F16, BF16:
		kind := kernels.F16
		if t == BF16 {
			kind = kernels.BF16
		}
		var h [256]uint16
		for i := 0; i < len(src); i += len(h) {
			chunk := src[i:min(i+len(h), len(src))]
			kernels.F32ToHalfSlice(h[:len(chunk)], chunk, kind)
			for j, v := range h[:len(chunk)] {
				binary.LittleEndian.PutUint16(out[2*(i+j):], v)
			}
		}
	case Q8_0:
		QuantizeQ8_0(out, src)
	case Q4_0:
		QuantizeQ4_0(out, src)
	}
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n)
	copy(nb, b)
	return nb
}

// QuantizeQ8_0 is ggml's quantize_row_q8_0_ref: per block of 32 values,
// d = amax/127 stored as f16, q = round(x/d) (half away from zero) as int8.
// len(src) must be a multiple of 32 and len(dst) >= len(src)/32*34.
func QuantizeQ8_0(dst []byte, src []float32) {
	for b := 0; b < len(src)/QK; b++ {
		x := src[b*QK : (b+1)*QK]
		y := dst[b*34 : (b+1)*34]
		var amax float32
		for _, v := range x {
			amax = max(amax, abs32(v))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, kernels.F32ToF16(d))
		for j, v := range x {
			// float32(...) rounds the product to single precision as C does
			// and keeps the compiler from fusing it with anything.
			y[2+j] = uint8(roundAway(float32(v * id)))
		}
	}
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// roundAway is C's roundf (half away from zero) for |v| < 2^23: in float64,
// |v| + 0.5 is exact for a float32 v, and the conversion truncates.
func roundAway(v float32) int8 {
	b := math.Float32bits(v)
	r := int32(float64(math.Float32frombits(b&^(1<<31))) + 0.5)
	s := int32(b >> 31) // 1 when negative: negate branch-free
	return int8((r ^ -s) + s)
}

// QuantizeQ4_0 is ggml's quantize_row_q4_0_ref: per block of 32 values,
// d = m/-8 where m is the value of largest magnitude (sign kept), stored as
// f16; q = min(15, trunc(x/d + 8.5)); byte j holds q[j] in its low nibble and
// q[j+16] in its high nibble. len(src) must be a multiple of 32 and
// len(dst) >= len(src)/32*18.
func QuantizeQ4_0(dst []byte, src []float32) {
	for b := 0; b < len(src)/QK; b++ {
		x := src[b*QK : (b+1)*QK]
		y := dst[b*18 : (b+1)*18]
		var amax, m float32
		for _, v := range x {
			if a := abs32(v); amax < a {
				amax, m = a, v
			}
		}
		d := m / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, kernels.F32ToF16(d))
		for j := 0; j < QK/2; j++ {
			x0 := float32(x[j] * id)
			x1 := float32(x[j+QK/2] * id)
			q0 := min(15, int8(float32(x0+8.5)))
			q1 := min(15, int8(float32(x1+8.5)))
			y[2+j] = uint8(q0) | uint8(q1)<<4
		}
	}
}

// Decode widens n values of type t from data to float32 (ggml's
// dequantize_row_* for Q8_0 and Q4_0).
func Decode(t Type, data []byte, n int) ([]float32, error) {
	size, err := t.RowSize(n)
	if err != nil {
		return nil, err
	}
	if len(data) < size {
		return nil, fmt.Errorf("gguf: %d values of %v need %d bytes, got %d", n, t, size, len(data))
	}
	out := make([]float32, n)
	switch t {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case F16, BF16:
		kind := kernels.F16
		if t == BF16 {
			kind = kernels.BF16
		}
		h := make([]uint16, n)
		for i := range h {
			h[i] = binary.LittleEndian.Uint16(data[2*i:])
		}
		kernels.HalfToF32Slice(out, h, kind)
	case Q8_0:
		for b := 0; b < n/QK; b++ {
			y := data[b*34:]
			d := kernels.F16ToF32(binary.LittleEndian.Uint16(y))
			for j := 0; j < QK; j++ {
				out[b*QK+j] = float32(int8(y[2+j])) * d
			}
		}
	case Q4_0:
		for b := 0; b < n/QK; b++ {
			y := data[b*18:]
			d := kernels.F16ToF32(binary.LittleEndian.Uint16(y))
			for j := 0; j < QK/2; j++ {
				out[b*QK+j] = float32(int(y[2+j]&0x0f)-8) * d
				out[b*QK+j+QK/2] = float32(int(y[2+j]>>4)-8) * d
			}
		}
	}
	return out, nil
}
