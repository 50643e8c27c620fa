package qwen3_moe_test

import (
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
	modeltest.StackedExperts(t, modeltest.ExpertLayout{Arch: "qwen3_moe", Variant: "qwen3_moe-f32", Block: "mlp", Down: "down_proj", Up: "up_proj", SparseLayers: []int{0, 1}})
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
