package qwen3_moe_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/qwen3_moe"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "qwen3_moe")
}

func TestSanitize(t *testing.T) {
	cfg, metas := modeltest.FixtureMeta(t, "qwen3_moe-f32")
	plan, err := model.SanitizePlan("qwen3_moe", cfg, metas)
	if err != nil {
		t.Fatal(err)
	}
	got := modeltest.ApplyPlan(t, plan, metas)
	want := map[string][]int{"gate_proj": {4, 32, 64}, "up_proj": {4, 32, 64}, "down_proj": {4, 64, 32}}
	for l := range 2 {
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
	if len(got) != len(metas)-2*(3*4-3) {
		t.Errorf("%d tensors after sanitize, want %d", len(got), len(metas)-2*9)
	}
	// Idempotent: the stacked (MLX) layout is copied through.
	again, err := model.SanitizePlan("qwen3_moe", cfg, got)
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
	plan, err = model.SanitizePlan("qwen3_moe", cfg, q)
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

	// A missing expert is named.
	delete(metas, "model.layers.1.mlp.experts.2.up_proj.weight")
	if _, err := model.SanitizePlan("qwen3_moe", cfg, metas); err == nil || !strings.Contains(err.Error(), "experts.2.up_proj.weight") {
		t.Errorf("missing expert: err = %v", err)
	}
}

// TestConfigErrors: a bad config.json names the key and what was expected.
func TestConfigErrors(t *testing.T) {
	modeltest.ConfigErrors(t, "qwen3_moe-f32", []modeltest.ConfigCase{
		{Key: "moe_intermediate_size", Val: nil, Want: `missing key "moe_intermediate_size"`},
		{Key: "num_experts_per_tok", Val: 5, Want: "num_experts_per_tok 5 must be in 1..num_experts (4)"},
		{Key: "num_key_value_heads", Val: 3, Want: "multiple of num_key_value_heads 3"},
		{Key: "decoder_sparse_step", Val: -1, Want: "decoder_sparse_step -1 must be positive"},
	})
}

// TestDenseLayers: mlp_only_layers and decoder_sparse_step give dense
// MLP blocks (intermediate_size) where transformers puts them.
func TestDenseLayers(t *testing.T) {
	cfg, _ := modeltest.FixtureMeta(t, "qwen3_moe-f32")
	cfg["num_hidden_layers"], cfg["mlp_only_layers"], cfg["decoder_sparse_step"] = 4, []int{0}, 2
	c, err := model.NewConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(c, engine.Float32, 5)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, p := range m.(model.Trainable).Parameters() {
		names[p.Name] = true
	}
	// Sparse where (i+1) % 2 == 0 and i not in mlp_only_layers: layers 1 and 3.
	for i, sparse := range []bool{false, true, false, true} {
		n := "model.layers." + string(rune('0'+i)) + ".mlp."
		if names[n+"switch_mlp.gate_proj.weight"] != sparse || names[n+"gate_proj.weight"] == sparse {
			t.Errorf("layer %d: sparse %v expected; has switch_mlp %v, dense gate_proj %v", i, sparse, names[n+"switch_mlp.gate_proj.weight"], names[n+"gate_proj.weight"])
		}
	}
	// Cached one-token decode equals the full forward.
	ids := []int{5, 9, 33, 7, 100, 42}
	full := modeltest.Logits(t, m, nil, ids)
	caches := m.NewCaches(model.CacheOptions{})
	var got []float32
	for _, id := range ids {
		got = append(got, modeltest.Logits(t, m, caches, []int{id})...)
	}
	if e := modeltest.RelErr(got, full); e > 1e-5 {
		t.Errorf("cached decode rel err %.3g", e)
	}
}
