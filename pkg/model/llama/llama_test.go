package llama_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/llama"
)

func TestFixtures(t *testing.T) {
	for _, v := range []string{"llama-f32", "llama3-f32", "mistral-f32"} {
		t.Run(v, func(t *testing.T) { modeltest.Run(t, v, modeltest.F32) })
	}
	f32 := engine.Float32
	for _, v := range []string{"llama-bf16", "llama3-bf16", "mistral-bf16"} {
		// bf16 weights computed in float32: the reference is exactly this.
		t.Run(v+"/compute_f32", func(t *testing.T) { modeltest.Run(t, v, modeltest.F32, model.LoadOptions{ComputeDType: &f32}) })
		// bf16 activations, as mlx_lm runs a bf16 checkpoint.
		t.Run(v, func(t *testing.T) { modeltest.Run(t, v, modeltest.BF16) })
	}
	for _, v := range []string{"llama-q4", "llama-q8"} {
		// Through the dequantized weights: the reference's own arithmetic.
		t.Run(v+"/exact", func(t *testing.T) { modeltest.Run(t, v, modeltest.F32, model.LoadOptions{ExactQuantized: true}) })
		// Through the quantized kernels (int8 activations on AVX-512 VNNI).
		t.Run(v, func(t *testing.T) { modeltest.Run(t, v, modeltest.QuantKernels) })
	}
}
