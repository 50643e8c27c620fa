package quant_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"github.com/mlxgo/mlxgo/pkg/quant"
)

// fpInput is rows of 64 values: random normals at scales from 1e-6 to 1e3
// (one row per scale), an all-zero row, and a row of E2M1/E4M3 rounding
// ties at scale 1 (the group maximum 6 or 448 makes the E8M0 scale exactly
// 1 for the first 32, and the nvfp4 E4M3 scale exactly 1 for the first 16).
func fpInput(bits int) ([]float32, int) {
	const cols = 64
	r := rand.New(rand.NewPCG(7, 8))
	var v []float32
	for _, s := range []float64{1e-6, 1e-3, 0.02, 0.1, 1, 30, 1e3} {
		for range cols {
			v = append(v, float32(r.NormFloat64()*s))
		}
	}
	v = append(v, make([]float32, cols)...)
	ties := []float32{6, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5, 0}
	if bits == 8 {
		ties = []float32{448, 1.0625, 1.1875, 17, 19, 208, 240, 432, -1.0625, -17, -208, -432, 0.0068359375, -0.0068359375, 3, 0}
	}
	for range cols / len(ties) {
		v = append(v, ties...)
	}
	return v, cols
}

// TestQuantizeFPMatchesEngine: QuantizeFP's codes and scales decode, with
// the engine's mx.dequantize (DequantizeMode) and with DequantizeFP (bit
// for bit alike), to exactly what MLX's quantize-dequantize gives
// (nn.QuantizeDequantize, built from engine ops).
func TestQuantizeFPMatchesEngine(t *testing.T) {
	for mode, gb := range quant.FPModes {
		t.Run(mode, func(t *testing.T) {
			g, bits := gb[0], gb[1]
			v, cols := fpInput(bits)
			rows := len(v) / cols
			q, s := make([]uint32, len(v)*bits/32), make([]uint8, len(v)/g)
			for i := range q {
				q[i] = 0xdeadbeef // must be overwritten
			}
			if err := quant.QuantizeFP(v, cols, mode, q, s); err != nil {
				t.Fatal(err)
			}
			x := engine.FromFloat32s(v, rows, cols)
			want, err := nn.QuantizeDequantize(x, mode, g, bits).Float32s()
			if err != nil {
				t.Fatal(err)
			}
			got, err := engine.DequantizeMode(engine.FromUint32s(q, rows, cols*bits/32), engine.FromUint8s(s, rows, cols/g), nil, g, bits, mode).Float32s()
			if err != nil {
				t.Fatal(err)
			}
			own := make([]float32, len(v))
			if err := quant.DequantizeFP(q, s, cols, mode, own); err != nil {
				t.Fatal(err)
			}
			for i := range v {
				// bit for bit with the engine; equal to the reference (whose
				// zeros may carry either sign)
				if math.Float32bits(got[i]) != math.Float32bits(own[i]) || got[i] != want[i] {
					t.Fatalf("value %d (%v): engine decodes %v, DequantizeFP %v, quantize-dequantize gives %v", i, v[i], got[i], own[i], want[i])
				}
			}
		})
	}
}

// TestQuantizeFPTies: E2M1 ties go to the even code, as MLX's Metal
// kernel rounds (its portable fallback's argmin takes the smaller
// magnitude instead): at scale 1, 0.75 -> 1, 1.25 -> 1, 1.75 -> 2,
// 2.5 -> 2, 3.5 -> 4, 5 -> 4, 0.25 -> 0.
func TestQuantizeFPTies(t *testing.T) {
	v := make([]float32, 32)
	copy(v, []float32{6, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 0.25, -0.75, -5})
	q, s := make([]uint32, 4), make([]uint8, 1)
	if err := quant.QuantizeFP(v, 32, "mxfp4", q, s); err != nil {
		t.Fatal(err)
	}
	if s[0] != 127 {
		t.Fatalf("scale code %d, want 127 (2^0)", s[0])
	}
	out := make([]float32, 32)
	if err := quant.DequantizeFP(q, s, 32, "mxfp4", out); err != nil {
		t.Fatal(err)
	}
	want := []float32{6, 1, 1, 2, 2, 4, 4, 0, -1, -4}
	if !reflect.DeepEqual(out[:10], want) {
		t.Errorf("decoded %v, want %v", out[:10], want)
	}
}

func TestQuantizeFPBadInput(t *testing.T) {
	v := make([]float32, 64)
	for _, c := range []struct {
		cols, words, scales int
		mode                string
	}{{64, 8, 2, "affine"}, {48, 8, 2, "mxfp4"}, {64, 7, 2, "mxfp4"}, {64, 8, 1, "mxfp4"}, {64, 8, 2, "nvfp4"}} {
		if err := quant.QuantizeFP(v, c.cols, c.mode, make([]uint32, c.words), make([]uint8, c.scales)); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestPlanFloatModes: a float mode's defaults (MLX's _defaults_for_mode),
// its config entry, no other group size or bits, and a predicate's
// explicit 8-bit router entry staying affine.
func TestPlanFloatModes(t *testing.T) {
	for mode, gb := range quant.FPModes {
		p, err := quant.NewPlan(0, 0, mode, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Global != (quant.Settings{GroupSize: gb[0], Bits: gb[1], Mode: mode}) {
			t.Errorf("%s: global %+v", mode, p.Global)
		}
		if want := map[string]any{"group_size": gb[0], "bits": gb[1], "mode": mode}; !reflect.DeepEqual(p.Config(), want) {
			t.Errorf("%s: config %v", mode, p.Config())
		}
		if _, err := quant.NewPlan(gb[0], gb[1], mode, nil, nil); err != nil {
			t.Errorf("%s with its own group size and bits: %v", mode, err)
		}
		if _, err := quant.NewPlan(64, 0, mode, nil, nil); err == nil {
			t.Errorf("%s accepted group size 64", mode)
		}
		if _, err := quant.NewPlan(0, 2, mode, nil, nil); err == nil {
			t.Errorf("%s accepted 2 bits", mode)
		}
	}
	p, err := quant.NewPlan(0, 0, "mxfp4", quant.ModelPredicate("qwen3_moe", nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.Decide(quant.Layer{Path: "model.layers.0.mlp.gate", Kind: quant.Linear, Shape: []int{8, 64}})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Quantize || d.Settings != (quant.Settings{GroupSize: 64, Bits: 8, Mode: "affine"}) {
		t.Errorf("router %+v", d)
	}
	d, err = p.Decide(quant.Layer{Path: "model.layers.0.self_attn.q_proj", Kind: quant.Linear, Shape: []int{64, 32}})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Quantize || d.Settings != p.Global {
		t.Errorf("q_proj %+v", d)
	}
	want := map[string]any{"group_size": 32, "bits": 4, "mode": "mxfp4", "model.layers.0.mlp.gate": map[string]any{"group_size": 64, "bits": 8}}
	if !reflect.DeepEqual(p.Config(), want) {
		t.Errorf("config %v", p.Config())
	}
	if _, err := quant.NewPlan(0, 0, "fp4", nil, nil); err == nil {
		t.Error("unknown mode accepted")
	}
}
