package qwen2_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/qwen2"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "qwen2")
	t.Run("qwen2-q4/exact", func(t *testing.T) {
		modeltest.Run(t, "qwen2-q4", modeltest.F32, model.LoadOptions{ExactQuantized: true})
	})
	t.Run("qwen2-q4", func(t *testing.T) { modeltest.Run(t, "qwen2-q4", modeltest.QuantKernels) })
}
