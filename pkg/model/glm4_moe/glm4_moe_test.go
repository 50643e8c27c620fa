package glm4_moe_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/glm4_moe"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "glm4_moe")
}

func TestSanitize(t *testing.T) {
	cfg, metas := modeltest.FixtureMeta(t, "glm4_moe-f32")
	plan, err := model.SanitizePlan("glm4_moe", cfg, metas)
	if err != nil {
		t.Fatal(err)
	}
	got := modeltest.ApplyPlan(t, plan, metas)
	want := map[string][]int{"gate_proj": {4, 32, 64}, "up_proj": {4, 32, 64}, "down_proj": {4, 64, 32}}
	for l := 1; l < 2; l++ { // layer 0 is dense
		for proj, shape := range want {
			n := "model.layers." + string(rune('0'+l)) + ".mlp.switch_mlp." + proj + ".weight"
			if m, ok := got[n]; !ok || !slices.Equal(m.Shape, shape) || m.DType != "F32" {
				t.Errorf("%s: got %+v (present %v), want F32 %v", n, m, ok, shape)
			}
		}
	}
	for n := range got {
		if strings.Contains(n, ".experts.") {
			t.Errorf("per-expert tensor %q left after sanitize", n)
		}
	}
	if len(got) != len(metas)-(3*4-3) {
		t.Errorf("%d tensors after sanitize, want %d", len(got), len(metas)-9)
	}
	// Idempotent: the stacked (MLX) layout is copied through.
	again, err := model.SanitizePlan("glm4_moe", cfg, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(got) {
		t.Fatalf("second sanitize: %d tensors, want %d", len(again), len(got))
	}
	for _, p := range again {
		if p.Op != model.OpCopy || p.Sources[0] != p.Name {
			t.Errorf("second sanitize changes %q: %+v", p.Name, p)
		}
	}

	// MLX-quantized per-expert tensors stack weight, scales and biases.
	q := map[string]model.TensorMeta{}
	for e := range 4 {
		for _, k := range []string{"weight", "scales", "biases"} {
			q["model.layers.0.mlp.experts."+string(rune('0'+e))+".down_proj."+k] = model.TensorMeta{DType: "U32", Shape: []int{64, 4}}
		}
	}
	plan, err = model.SanitizePlan("glm4_moe", cfg, q)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range plan {
		names = append(names, p.Name)
	}
	wantNames := []string{"model.layers.0.mlp.switch_mlp.down_proj.biases", "model.layers.0.mlp.switch_mlp.down_proj.scales", "model.layers.0.mlp.switch_mlp.down_proj.weight"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("quantized plan names %v, want %v", names, wantNames)
	}

	// Multi-token-prediction layers (index num_hidden_layers) are dropped.
	mtp := map[string]model.TensorMeta{"model.layers.2.eh_proj.weight": {DType: "F32", Shape: []int{64, 128}}, "model.norm.weight": {DType: "F32", Shape: []int{64}}}
	if plan, err := model.SanitizePlan("glm4_moe", cfg, mtp); err != nil || len(plan) != 1 || plan[0].Name != "model.norm.weight" {
		t.Errorf("mtp layer: plan %+v, err %v", plan, err)
	}
	// A missing expert is named.
	delete(metas, "model.layers.1.mlp.experts.2.up_proj.weight")
	if _, err := model.SanitizePlan("glm4_moe", cfg, metas); err == nil || !strings.Contains(err.Error(), "experts.2.up_proj.weight") {
		t.Errorf("missing expert: err = %v", err)
	}
}

// TestConfigErrors: a bad config.json names the key and what was expected.
func TestConfigErrors(t *testing.T) {
	modeltest.ConfigErrors(t, "glm4_moe-f32", []modeltest.ConfigCase{
		{Key: "hidden_size", Val: nil, Want: `missing key "hidden_size"`},
		{Key: "num_experts_per_tok", Val: 5, Want: "num_experts_per_tok 5 must be in 1..n_routed_experts (4)"},
		{Key: "partial_rotary_factor", Val: 0.1, Want: "partial_rotary_factor 0.1 gives 1 rotary dims"},
		{Key: "scoring_func", Val: "softmax", Want: `scoring_func "softmax"`},
	})
}
