package quant_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/quant"
)

// TestConfigReadBack: the "quantization" object a Plan writes, as JSON,
// reads back through pkg/model's loader rule to the same settings for
// every layer the plan quantized, and to "not quantized" for the others.
func TestConfigReadBack(t *testing.T) {
	pred, err := quant.MixedRecipe("mixed_4_6", 8, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	plans := map[string]quant.Predicate{"mixed_4_6": pred, "qwen3_moe": quant.ModelPredicate("qwen3_moe", nil), "none": nil}
	for name, pred := range plans {
		p, err := quant.NewPlan(32, 3, "affine", pred, nil)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			d     quant.Decision
			layer quant.Layer
		}
		var recs []rec
		for i := 0; i < 8; i++ {
			for _, m := range []string{"self_attn.v_proj", "mlp.down_proj", "mlp.gate", "input_layernorm"} {
				kind := quant.Linear
				if m == "input_layernorm" {
					kind = quant.NotQuantizable
				}
				l := quant.Layer{Path: fmt.Sprintf("model.layers.%d.%s", i, m), Kind: kind, Shape: []int{64, 128}}
				d, err := p.Decide(l)
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, rec{d, l})
			}
		}
		raw, err := json.Marshal(p.Config())
		if err != nil {
			t.Fatal(err)
		}
		q, err := model.ParseQuantization(raw)
		if err != nil {
			t.Fatalf("%s: pkg/model cannot read %s: %v", name, raw, err)
		}
		for _, r := range recs {
			// the converted weights hold <path>.scales iff quantized
			spec, ok := q.For(r.layer.Path, r.d.Quantize)
			if ok != r.d.Quantize || (ok && (spec.Bits != r.d.Bits || spec.GroupSize != r.d.GroupSize || spec.Mode != r.d.Mode)) {
				t.Errorf("%s %s: loader reads %+v %v, plan decided %+v", name, r.layer.Path, spec, ok, r.d)
			}
		}
	}
}
