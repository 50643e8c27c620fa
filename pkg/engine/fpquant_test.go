package engine

import (
	"fmt"
	"math"
	"testing"
)

func e2m1(c int) float64 {
	e, m := (c>>1)&3, float64(c&1)
	v := m * 0.5
	if e > 0 {
		v = math.Pow(2, float64(e-1)) * (1 + m/2)
	}
	if c&8 != 0 {
		v = -v
	}
	return v
}

func e4m3(c int) float64 {
	e, m := (c>>3)&15, float64(c&7)
	v := m / 8 * math.Pow(2, -6)
	if e > 0 {
		v = math.Pow(2, float64(e-7)) * (1 + m/8)
	}
	if c&0x80 != 0 {
		v = -v
	}
	return v
}

// fpQuant makes a random float-quantized matrix [rows, cols] in mode and
// its float64 decoding.
func fpQuant(mode string, rows, cols int) (w []uint32, s []uint8, deq tensor) {
	g, bits := fpModes[mode][0], fpModes[mode][1]
	per := 32 / bits
	w = make([]uint32, rows*cols/per)
	s = make([]uint8, rows*cols/g)
	deq = tensor{[]int{rows, cols}, make([]float64, rows*cols)}
	for i := range s {
		if mode == "nvfp4" {
			s[i] = uint8(0x20 + rng.IntN(0x40)) // positive E4M3 scales
		} else {
			s[i] = uint8(124 + rng.IntN(6)) // 2^-3 .. 2^2
		}
	}
	for r := 0; r < rows; r++ {
		for k := 0; k < cols; k++ {
			var c int
			if bits == 4 {
				c = rng.IntN(16)
			} else {
				c = rng.IntN(256)
				if c&0x7f == 0x7f { // NaN code
					c ^= 1
				}
			}
			w[(r*cols+k)/per] |= uint32(c) << (uint((r*cols+k)%per) * uint(bits))
			v := e2m1(c)
			if bits == 8 {
				v = e4m3(c)
			}
			sc := math.Pow(2, float64(s[(r*cols+k)/g])-127)
			if mode == "nvfp4" {
				sc = e4m3(int(s[(r*cols+k)/g]))
			}
			deq.data[r*cols+k] = v * sc
		}
	}
	return w, s, deq
}

func TestFloatQuantModes(t *testing.T) {
	for _, mode := range []string{"mxfp4", "mxfp8", "nvfp4"} {
		N, K := 6, 64
		wq, sq, deq := fpQuant(mode, N, K)
		per := 32 / fpModes[mode][1]
		w, s := FromUint32s(wq, N, K/per), FromUint8s(sq, N, K/fpModes[mode][0])
		near(t, "DequantizeMode/"+mode, DequantizeMode(w, s, nil, 0, 0, mode), deq, 1e-6, 1e-6)
		for _, M := range []int{3, 20} { // row-at-a-time and widen+Sgemm paths
			x := randT(M, K)
			nearF32Sum(t, fmt.Sprintf("QuantizedMatmulMode/%s/M%d", mode, M), QuantizedMatmulMode(x.arr(), w, s, nil, true, 0, 0, mode), x, deq)
		}
		xs := randT(2, N)
		nearF32Sum(t, "QuantizedMatmulMode/noT/"+mode, QuantizedMatmulMode(xs.arr(), w, s, nil, false, 0, 0, mode), xs, deq.permute(1, 0))
		// linear in x with large weights (E4M3 reaches 448): check the exact
		// pullback, finite differences in float32 would be noise
		linearGrad(t, "QuantizedMatmulMode/"+mode, func(x *Array) *Array {
			return QuantizedMatmulMode(x, w, s, nil, true, 0, 0, mode)
		}, randT(2, K), func(R tensor) tensor { return matmulT(R, deq) })
		// experts
		w2, s2, deq2 := fpQuant(mode, N, K)
		we := Stack([]*Array{w, FromUint32s(w2, N, K/per)}, 0)
		se := Stack([]*Array{s, FromUint8s(s2, N, K/fpModes[mode][0])}, 0)
		xe := randT(3, 1, K)
		idx := FromInt32s([]int32{1, 0, 1}, 3)
		got := mustF(t, GatherQMMMode(xe.arr(), we, se, nil, nil, idx, true, 0, 0, mode))
		for i, e := range []int{1, 0, 1} {
			y, sa := qdot(xe.data[i*K:(i+1)*K], []tensor{deq, deq2}[e])
			for j := range y {
				if g := got[i*N+j]; math.Abs(g-y[j]) > 2e-6*sa[j]+1e-5*math.Abs(y[j]) {
					t.Errorf("GatherQMMMode/%s: [%d] = %g, want %g", mode, i*N+j, g, y[j])
				}
			}
		}
	}
	wq, sq, _ := fpQuant("mxfp4", 2, 32)
	if err := QuantizedMatmulMode(randT(1, 32).arr(), FromUint32s(wq, 2, 4), FromUint8s(sq, 2, 1), randT(2, 1).arr(), true, 0, 0, "mxfp4").Err(); err == nil {
		t.Error("mxfp4 with biases did not fail")
	}
	if err := DequantizeMode(FromUint32s(wq, 2, 4), FromUint8s(sq, 2, 1), nil, 64, 4, "mxfp4").Err(); err == nil {
		t.Error("mxfp4 with group 64 did not fail")
	}
	if err := DequantizeMode(FromUint32s(wq, 2, 4), FromUint8s(sq, 2, 1), nil, 0, 0, "int3").Err(); err == nil {
		t.Error("an unknown mode did not fail")
	}
}

// nearF32Sum checks y = x·deqᵀ to float32 summation accuracy: the weights
// reach ~10³ (E4M3 up to 448 times the scale), so the bound scales with
// Σ|x·w| rather than with |y|.
func nearF32Sum(t *testing.T, name string, got *Array, x, deq tensor) {
	t.Helper()
	K := deq.shape[1]
	g := mustF(t, got)
	i := 0
	for r := 0; r < len(x.data)/K; r++ {
		y, sa := qdot(x.data[r*K:(r+1)*K], deq)
		for j := range y {
			if math.Abs(g[i]-y[j]) > 2e-6*sa[j]+1e-5*math.Abs(y[j]) {
				t.Errorf("%s: [%d] = %g, want %g (Σ|x·w| = %g)", name, i, g[i], y[j], sa[j])
				return
			}
			i++
		}
	}
}
