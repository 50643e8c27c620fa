package glm4_moe_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/convert"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/glm4_moe"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// TestConvert converts the HF fixture (per-expert tensors) to an MLX
// folder with mlxgo convert — the sanitize plan stacks the experts — and
// loads it back: float32 gives the reference logits, and 8-bit group-32
// quantization (experts as QuantizedSwitchLinear) stays close to them.
func TestConvert(t *testing.T) {
	src := modeltest.Dir("glm4_moe-f32")
	ref, err := modeltest.ReadReference(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    convert.Options
		tol  float64
	}{
		{"f32", convert.Options{Dtype: "float32"}, 1e-4},
		// 8-bit codes put each weight within half a step (its group's
		// range/255/2, ~1e-3 here) of the float one; through two layers and
		// the routers the logits move by 1.1e-2 of their scale (measured;
		// llama-q8's reference differs from llama-f32's by 1.9e-2).
		// A wrong expert order or layout moves them by O(1).
		{"q8", convert.Options{Dtype: "float32", Quantize: true, Bits: 8, GroupSize: 32}, 3e-2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.HFPath, o.MLXPath = src, filepath.Join(t.TempDir(), "mlx")
			if _, err := convert.Convert(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			// The router (mlx_lm's MoEGate, not a Linear) stays in float.
			stm, err := safetensors.OpenModel(o.MLXPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range stm.Entries() {
				if strings.HasSuffix(e.Name, "mlp.gate.scales") {
					t.Errorf("convert quantized the router: %s", e.Name)
				}
			}
			stm.Close()
			modeltest.CheckConverted(t, o.MLXPath, ref, o.Quantize, tc.tol, func(m model.Model) nn.SwitchLayer {
				return m.(*glm4_moe.Model).Model.Layers[1].MLP.(*glm4_moe.MoE).SwitchMLP.DownProj
			})
		})
	}
}
