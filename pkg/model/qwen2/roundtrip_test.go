package qwen2_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/model/qwen2"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// TestQuantizedBF16Folder writes a random mlx-community-style checkpoint
// (4-bit group 64, bf16 weights, scales and biases, tied quantized
// embedding, no lm_head) to a folder, loads it back with model.Load and
// checks the logits equal the in-memory model's.
func TestQuantizedBF16Folder(t *testing.T) {
	keys := map[string]any{
		"model_type": "qwen2", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
		"num_key_value_heads": 2, "intermediate_size": 256, "vocab_size": 300, "rms_norm_eps": 1e-6,
		"rope_theta": 1000000.0, "tie_word_embeddings": true,
		"quantization": map[string]any{"group_size": 64, "bits": 4},
	}
	cfg, err := model.NewConfig(keys)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.BFloat16, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var data []safetensors.Data
	for _, p := range m.(model.Trainable).Parameters() {
		a := *p.Ptr
		b, err := a.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		dt := map[engine.DType]safetensors.DType{engine.BFloat16: safetensors.BF16, engine.Uint32: safetensors.U32}[a.DType()]
		data = append(data, safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: p.Name, DType: dt, Shape: a.Shape()}, Bytes: b})
	}
	if err := safetensors.Save(filepath.Join(dir, "model.safetensors"), data, map[string]string{"format": "mlx"}); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(keys)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range loaded.(model.Trainable).Linears() {
		if _, ok := (*l.Layer).(*nn.QuantizedLinear); !ok {
			t.Errorf("%s is %T, want *nn.QuantizedLinear", l.Path, *l.Layer)
		}
	}
	if e := loaded.(*qwen2.Model).Model.EmbedTokens; e == nil {
		t.Fatal("no embedding")
	} else if _, ok := e.(*nn.QuantizedEmbedding); !ok {
		t.Errorf("embedding is %T, want *nn.QuantizedEmbedding (tied output projection)", e)
	}
	ids := []int{5, 17, 299, 0, 42, 42, 7}
	want := modeltest.Logits(t, m, nil, ids)
	got := modeltest.Logits(t, loaded, nil, ids)
	if e := modeltest.RelErr(got, want); e != 0 {
		t.Errorf("loaded folder logits differ: rel err %.3g", e)
	}
	// embedding (3) + per layer 7 quantized linears × 3, q/k/v biases, 2
	// norms + the final norm; no lm_head.
	if n := len(data); n != 3+2*(7*3+3+2)+1 {
		t.Errorf("%d tensors written, want 56", n)
	}
}
