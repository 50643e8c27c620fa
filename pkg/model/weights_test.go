package model

import (
	"slices"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// TestRandomQuantizedSwitchLinear: with a quantization config, RandomModel's
// weights make MoE experts packed uint32 codes with [E, ...] scales and
// biases, as a quantized checkpoint stores them; a float tensor in a
// quantized slot is refused.
func TestRandomQuantizedSwitchLinear(t *testing.T) {
	q := &Quantization{Default: QuantSpec{GroupSize: 32, Bits: 4}, Layers: map[string]*QuantSpec{}}
	w := NewWeights(map[string]*engine.Array{}, q)
	w.random = &randomGen{dt: engine.Float32, key: engine.NewKey(1), w: w}
	var s nn.SwitchLayer
	w.SwitchLinear(&s, "mlp.switch_mlp.up_proj", 4, 64, 16, true)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	qs, ok := s.(*nn.QuantizedSwitchLinear)
	if !ok {
		t.Fatalf("SwitchLinear made %T, want *nn.QuantizedSwitchLinear", s)
	}
	if qs.Weight.DType() != engine.Uint32 || !slices.Equal(qs.Weight.Shape(), []int{4, 16, 8}) {
		t.Errorf("weight %v %v, want uint32 [4 16 8]", qs.Weight.DType(), qs.Weight.Shape())
	}
	for name, a := range map[string]*engine.Array{"scales": qs.Scales, "biases": qs.Biases} {
		if !slices.Equal(a.Shape(), []int{4, 16, 2}) {
			t.Errorf("%s shape %v, want [4 16 2]", name, a.Shape())
		}
	}
	if !slices.Equal(qs.Bias.Shape(), []int{4, 16}) {
		t.Errorf("bias shape %v, want [4 16]", qs.Bias.Shape())
	}

	// A float expert weight where the config quantizes is an error.
	w = NewWeights(map[string]*engine.Array{
		"e.weight": engine.Zeros([]int{4, 16, 64}, engine.Float32),
		"e.scales": engine.Zeros([]int{4, 16, 2}, engine.Float32),
		"e.biases": engine.Zeros([]int{4, 16, 2}, engine.Float32),
	}, q)
	w.SwitchLinear(&s, "e", 4, 64, 16, false)
	if err := w.Err(); err == nil {
		t.Error("float expert weight accepted as quantized")
	}
}
