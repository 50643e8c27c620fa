package mixtral_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/mixtral"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "mixtral")
}

func TestSanitize(t *testing.T) {
	cfg, metas := modeltest.FixtureMeta(t, "mixtral-f32")
	plan, err := model.SanitizePlan("mixtral", cfg, metas)
	if err != nil {
		t.Fatal(err)
	}
	got := modeltest.ApplyPlan(t, plan, metas)
	want := map[string][]int{"gate_proj": {4, 32, 64}, "up_proj": {4, 32, 64}, "down_proj": {4, 64, 32}}
	for l := range 2 {
		for proj, shape := range want {
			n := "model.layers." + string(rune('0'+l)) + ".block_sparse_moe.switch_mlp." + proj + ".weight"
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
	if len(got) != len(metas)-2*(3*4-3) {
		t.Errorf("%d tensors after sanitize, want %d", len(got), len(metas)-2*9)
	}
	// Idempotent: the stacked (MLX) layout is copied through.
	again, err := model.SanitizePlan("mixtral", cfg, got)
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
			q["model.layers.0.block_sparse_moe.experts."+string(rune('0'+e))+".w2."+k] = model.TensorMeta{DType: "U32", Shape: []int{64, 4}}
		}
	}
	plan, err = model.SanitizePlan("mixtral", cfg, q)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range plan {
		names = append(names, p.Name)
	}
	wantNames := []string{"model.layers.0.block_sparse_moe.switch_mlp.down_proj.biases", "model.layers.0.block_sparse_moe.switch_mlp.down_proj.scales", "model.layers.0.block_sparse_moe.switch_mlp.down_proj.weight"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("quantized plan names %v, want %v", names, wantNames)
	}

	// A missing expert is named.
	delete(metas, "model.layers.1.block_sparse_moe.experts.2.w3.weight")
	if _, err := model.SanitizePlan("mixtral", cfg, metas); err == nil || !strings.Contains(err.Error(), "experts.2.w3.weight") {
		t.Errorf("missing expert: err = %v", err)
	}
}

// TestConfigErrors: a bad config.json names the key and what was expected.
func TestConfigErrors(t *testing.T) {
	modeltest.ConfigErrors(t, "mixtral-f32", []modeltest.ConfigCase{
		{Key: "num_local_experts", Val: nil, Want: `missing key "num_local_experts"`},
		{Key: "num_experts_per_tok", Val: 5, Want: "num_experts_per_tok 5 must be in 1..num_local_experts (4)"},
		{Key: "num_key_value_heads", Val: 3, Want: "multiple of num_key_value_heads 3"},
		{Key: "hidden_act", Val: "gelu", Want: `hidden_act "gelu"`},
	})
}
