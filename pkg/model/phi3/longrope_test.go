package phi3

import (
	"math"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
)

// LongRoPE against transformers' _compute_longrope_parameters written out
// in float64: inv_freq_i = 1/(factor_i·θ^(2i/d)) with short factors while
// offset+L ≤ original_max_position_embeddings and long factors beyond,
// cos/sin scaled by √(1 + ln(max/orig)/ln(orig)), partial rotary (the last
// Dh−d features pass through).
func TestLongRoPE(t *testing.T) {
	const Dh, dims, orig, maxPos, theta = 8, 4, 16, 64, 10000.0
	short, long := []float64{1, 1.5}, []float64{2, 7}
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "phi3", "hidden_size": 16, "num_hidden_layers": 1, "intermediate_size": 32,
		"num_attention_heads": 2, "vocab_size": 32, "rms_norm_eps": 1e-5,
		"max_position_embeddings": maxPos, "original_max_position_embeddings": orig, "partial_rotary_factor": 0.5,
		"rope_theta": theta, "rope_scaling": map[string]any{"type": "longrope", "short_factor": short, "long_factor": long},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := m.(*Model).Model.Layers[0].SelfAttn.rope
	mscale := math.Sqrt(1 + math.Log(float64(maxPos)/orig)/math.Log(orig))
	x := make([]float32, 3*Dh)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.7) + 0.1)
	}
	for _, tc := range []struct {
		offset  int
		factors []float64
	}{{0, short}, {13, short}, {14, long}, {40, long}} {
		got, err := r.forward(engine.FromFloat32s(x, 1, 1, 3, Dh), tc.offset).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for l := range 3 {
			p := float64(tc.offset + l)
			row, out := x[l*Dh:(l+1)*Dh], got[l*Dh:(l+1)*Dh]
			want := make([]float64, Dh)
			for i := range dims / 2 {
				a := p / (tc.factors[i] * math.Pow(theta, float64(2*i)/dims))
				x1, x2 := float64(row[i]), float64(row[i+dims/2])
				want[i] = (x1*math.Cos(a) - x2*math.Sin(a)) * mscale
				want[i+dims/2] = (x2*math.Cos(a) + x1*math.Sin(a)) * mscale
			}
			for i := dims; i < Dh; i++ {
				want[i] = float64(row[i])
			}
			for i := range want {
				worst = math.Max(worst, math.Abs(want[i]-float64(out[i])))
			}
		}
		if worst > 1e-5 {
			t.Errorf("offset %d (3 tokens): max abs err %.3g", tc.offset, worst)
		}
	}
}
