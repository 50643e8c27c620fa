package deepseek_v3_test

import (
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/deepseek_v3"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "deepseek_v3")
}

func TestSanitize(t *testing.T) {
	cfg := modeltest.StackedExperts(t, modeltest.ExpertLayout{Arch: "deepseek_v3", Variant: "deepseek_v3-f32", Block: "mlp", Down: "down_proj", Up: "up_proj", SparseLayers: []int{1}}) // layer 0 is dense
	// Multi-token-prediction layers (index num_hidden_layers) are dropped.
	mtp := map[string]model.TensorMeta{"model.layers.2.eh_proj.weight": {DType: "F32", Shape: []int{64, 128}}, "model.norm.weight": {DType: "F32", Shape: []int{64}}}
	if plan, err := model.SanitizePlan("deepseek_v3", cfg, mtp); err != nil || len(plan) != 1 || plan[0].Name != "model.norm.weight" {
		t.Errorf("mtp layer: plan %+v, err %v", plan, err)
	}
	// FP8 checkpoints are refused by name.
	fp8 := map[string]model.TensorMeta{"model.layers.0.mlp.up_proj.weight_scale_inv": {DType: "F32", Shape: []int{1, 1}}}
	if _, err := model.SanitizePlan("deepseek_v3", cfg, fp8); err == nil || !strings.Contains(err.Error(), "weight_scale_inv") {
		t.Errorf("fp8: err = %v", err)
	}
}

// TestConfigErrors: a bad config.json names the key and what was expected.
func TestConfigErrors(t *testing.T) {
	modeltest.ConfigErrors(t, "deepseek_v3-f32", []modeltest.ConfigCase{
		{Key: "kv_lora_rank", Val: nil, Want: `missing key "kv_lora_rank"`},
		{Key: "num_experts_per_tok", Val: 5, Want: "num_experts_per_tok 5 must be in 1..n_routed_experts (4)"},
		{Key: "n_group", Val: 3, Want: "n_routed_experts 4 must split into n_group 3 groups"},
		{Key: "topk_group", Val: 3, Want: "topk_group 3 exceeds n_group 2"},
		{Key: "topk_method", Val: "greedy", Want: `topk_method "greedy"`},
		{Key: "qk_rope_head_dim", Val: 7, Want: "qk_rope_head_dim 7 must be positive and even"},
	})
}
