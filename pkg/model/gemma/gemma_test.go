package gemma_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/gemma"
)

func TestFixtures(t *testing.T) {
	t.Run("gemma-f32", func(t *testing.T) { modeltest.Run(t, "gemma-f32", modeltest.F32) })
	f32 := engine.Float32
	t.Run("gemma-bf16/compute_f32", func(t *testing.T) {
		modeltest.Run(t, "gemma-bf16", modeltest.F32, model.LoadOptions{ComputeDType: &f32})
	})
	t.Run("gemma-bf16", func(t *testing.T) { modeltest.Run(t, "gemma-bf16", modeltest.BF16) })
}
