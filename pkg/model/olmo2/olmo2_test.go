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
	t.Run("olmo2-f32", func(t *testing.T) { modeltest.Run(t, "olmo2-f32", modeltest.F32) })
	f32 := engine.Float32
	t.Run("olmo2-bf16/compute_f32", func(t *testing.T) {
		modeltest.Run(t, "olmo2-bf16", modeltest.F32, model.LoadOptions{ComputeDType: &f32})
	})
	t.Run("olmo2-bf16", func(t *testing.T) { modeltest.Run(t, "olmo2-bf16", modeltest.BF16) })
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
