package mixtral_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/mixtral"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "mixtral")
}

func TestSanitize(t *testing.T) {
	modeltest.StackedExperts(t, modeltest.ExpertLayout{Arch: "mixtral", Variant: "mixtral-f32", Block: "block_sparse_moe", Down: "w2", Up: "w3", SparseLayers: []int{0, 1}})
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
