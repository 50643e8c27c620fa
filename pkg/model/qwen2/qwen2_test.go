package qwen2_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/qwen2"
)

func TestFixtures(t *testing.T) {
	t.Run("qwen2-f32", func(t *testing.T) { modeltest.Run(t, "qwen2-f32", modeltest.F32) })
	f32 := engine.Float32
	t.Run("qwen2-bf16/compute_f32", func(t *testing.T) {
		modeltest.Run(t, "qwen2-bf16", modeltest.F32, model.LoadOptions{ComputeDType: &f32})
	})
	t.Run("qwen2-bf16", func(t *testing.T) { modeltest.Run(t, "qwen2-bf16", modeltest.BF16) })
	t.Run("qwen2-q4/exact", func(t *testing.T) {
		modeltest.Run(t, "qwen2-q4", modeltest.F32, model.LoadOptions{ExactQuantized: true})
	})
	t.Run("qwen2-q4", func(t *testing.T) { modeltest.Run(t, "qwen2-q4", modeltest.QuantKernels) })
}
