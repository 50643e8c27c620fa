package lora

import (
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/optim"
)

// LoRA and DoRA on a float-quantized base (mxfp4, nvfp4, mxfp8, every
// linear layer and the embedding): the base stays packed, lora_a has the
// unpacked input size, the parameter count unpacks the weights as for
// affine layers, and training lowers the loss.
func TestLoRAFloatModes(t *testing.T) {
	src := modeltest.Dir("llama-f32")
	dense, err := Apply(loadModel(t, src), ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 8, Scale: 20}})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"mxfp4", "nvfp4", "mxfp8"} {
		t.Run(mode, func(t *testing.T) {
			ck := modeltest.WriteFPQuantized(t, src, mode, func(string) string { return mode }, nil)
			m := loadModel(t, ck.Dir)
			tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 8, Scale: 20}})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tuned.Params {
				if strings.HasSuffix(p.Name, "q_proj.lora_a") {
					if s := (*p.Ptr).Shape(); s[0] != 64 || s[1] != 8 {
						t.Errorf("%s %v, want [64 8]", p.Name, s)
					}
				}
			}
			if tuned.TotalParams != dense.TotalParams {
				t.Errorf("total parameters %d, the float model has %d", tuned.TotalParams, dense.TotalParams)
			}
			opt, _ := optim.New("adam", optim.Constant(1e-3), nil)
			b, err := NewBatcher(mapping(4), 4, 64, 0)
			if err != nil {
				t.Fatal(err)
			}
			batch, _ := b.Next()
			first, _, err := Step(m, tuned, opt, batch, MaskStrict)
			if err != nil {
				t.Fatal(err)
			}
			var last float64
			for range 15 {
				if last, _, err = Step(m, tuned, opt, batch, MaskStrict); err != nil {
					t.Fatal(err)
				}
			}
			if !(last < 0.8*first) {
				t.Errorf("loss %.3f -> %.3f", first, last)
			}
			// DoRA on the linear layers and the quantized embedding (its
			// dense table is the dequantized one)
			md := loadModel(t, ck.Dir)
			if _, err := Apply(md, ApplyOptions{FineTuneType: "dora", NumLayers: 1, Parameters: Parameters{Rank: 4, Scale: 2, Keys: []string{"model.embed_tokens", "self_attn.q_proj", "mlp.down_proj"}}}); err != nil {
				t.Fatalf("dora: %v", err)
			}
			for _, v := range forward(t, md, []int32{1, 5, 9}) {
				if v != v {
					t.Fatal("dora: NaN logits")
				}
			}
		})
	}
}
