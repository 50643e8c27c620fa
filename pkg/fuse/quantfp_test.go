package fuse

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/quant"
)

// TestQuantEncoderMatchesFuse: quant.QuantizeFP, the float-mode encoder of
// mlxgo convert, gives the codes and scales of this package's re-encoder
// (fpQuantize) bit for bit, on values from 1e-6 to 1e3, zero groups and
// rounding ties, so a layer fused or converted is encoded alike.
func TestQuantEncoderMatchesFuse(t *testing.T) {
	const cols = 64
	r := rand.New(rand.NewPCG(3, 4))
	var v []float32
	for _, s := range []float64{1e-6, 1e-3, 0.02, 0.1, 1, 30, 1e3} {
		for range cols {
			v = append(v, float32(r.NormFloat64()*s))
		}
	}
	v = append(v, make([]float32, cols)...)
	for range cols / 8 {
		v = append(v, 6, 0.75, 1.25, 2.5, -3.5, 5, 448, -17)
	}
	for mode, gb := range fpModes {
		set := quant.Settings{GroupSize: gb[0], Bits: gb[1], Mode: mode}
		wq, ws, err := fpQuantize(v, cols, set)
		if err != nil {
			t.Fatal(err)
		}
		q, s := make([]uint32, len(wq)), make([]uint8, len(ws))
		if err := quant.QuantizeFP(v, cols, mode, q, s); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(q, wq) || !reflect.DeepEqual(s, ws) {
			t.Errorf("%s: quant.QuantizeFP differs from fpQuantize", mode)
		}
		d, err := fpDequantize(wq, ws, cols, set)
		if err != nil {
			t.Fatal(err)
		}
		own := make([]float32, len(v))
		if err := quant.DequantizeFP(q, s, cols, mode, own); err != nil {
			t.Fatal(err)
		}
		for i := range d {
			if d[i] != own[i] && !(math.IsNaN(float64(d[i])) && math.IsNaN(float64(own[i]))) {
				t.Fatalf("%s: value %d decodes to %v here, %v in quant", mode, i, d[i], own[i])
			}
		}
	}
}
