package glm4_moe_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/glm4_moe"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "glm4_moe")
}

func TestSanitize(t *testing.T) {
	cfg := modeltest.StackedExperts(t, modeltest.ExpertLayout{Arch: "glm4_moe", Variant: "glm4_moe-f32", Block: "mlp", Down: "down_proj", Up: "up_proj", SparseLayers: []int{1}}) // layer 0 is dense
	// Multi-token-prediction layers (index num_hidden_layers) are dropped.
	mtp := map[string]model.TensorMeta{"model.layers.2.eh_proj.weight": {DType: "F32", Shape: []int{64, 128}}, "model.norm.weight": {DType: "F32", Shape: []int{64}}}
	if plan, err := model.SanitizePlan("glm4_moe", cfg, mtp); err != nil || len(plan) != 1 || plan[0].Name != "model.norm.weight" {
		t.Errorf("mtp layer: plan %+v, err %v", plan, err)
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
