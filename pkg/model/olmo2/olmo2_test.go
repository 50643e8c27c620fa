package olmo2_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/olmo2"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "olmo2")
}

// Without tie_word_embeddings (transformers' Olmo2Config defaults to
// untied, mlx_lm's to tied) the checkpoint decides: olmo2-f32 has an
// lm_head, so it must be used.
func TestTieDefaultFromCheckpoint(t *testing.T) {
	src := modeltest.Dir("olmo2-f32")
	dir := t.TempDir()
	var cfg map[string]any
	data, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "tie_word_embeddings")
	data, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "model.safetensors"), filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	m, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := modeltest.ReadReference(src)
	if err != nil {
		t.Fatal(err)
	}
	f := modeltest.Logits(t, m, nil, ref.InputIDs)
	var got []float32
	for _, p := range ref.LogitsPositions {
		got = append(got, f[p*ref.V:(p+1)*ref.V]...)
	}
	if e := modeltest.RelErr(got, ref.Logits); e > modeltest.F32.Logits {
		t.Errorf("logits rel err %.3g", e)
	}
}

// TestQuantizedInMemory builds a small olmo2 with every linear layer (and
// the embedding) 4-bit quantized (random codes; head dim 32, so the KV
// cache can be quantized too) and checks an 8-bit quantized KV cache
// against the full forward (exact before the quantized start).
func TestQuantizedInMemory(t *testing.T) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "olmo2", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256, "rms_norm_eps": 1e-5,
		"quantization":        map[string]any{"group_size": 32, "bits": 4},
		"tie_word_embeddings": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 11, model.LoadOptions{ExactQuantized: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 40)
	for i := range ids {
		ids[i] = (i*37 + 11) % 256
	}
	tol := modeltest.F32
	tol.QuantizedCache = 1e-2
	modeltest.QuantizedCache(t, m, ids, tol)
}

// TestSanitize: rotary inv_freq buffers are dropped; lm_head is dropped
// when tie_word_embeddings is true, kept when false, and kept when the
// key is absent.
func TestSanitize(t *testing.T) { modeltest.TiedLMHead(t, "olmo2", true) }
