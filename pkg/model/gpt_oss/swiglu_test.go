package gpt_oss

import (
	"math"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// The fixture's activations stay inside ±7, so the clamps are checked here
// against transformers' GptOssExperts formula in float64.
func TestSwigluClamp(t *testing.T) {
	gate := []float32{10, -10, 1, 6.5, -3}
	up := []float32{10, -10, 0.5, -8, 2}
	got, err := swiglu(engine.FromFloat32s(gate, 5), engine.FromFloat32s(up, 5), 7).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for i := range gate {
		g := math.Min(float64(gate[i]), 7)
		u := math.Max(math.Min(float64(up[i]), 7), -7)
		want := g / (1 + math.Exp(-1.702*g)) * (u + 1)
		if math.Abs(float64(got[i])-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("gate %g up %g: got %g, want %g", gate[i], up[i], got[i], want)
		}
	}
}
