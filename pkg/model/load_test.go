package model_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/safetensors"

	_ "github.com/mlxgo/mlxgo/pkg/model/llama"
)

// copyFixture copies a fixture folder to a temp dir, editing config.json
// with edit (may be nil) and keeping only the tensors keep accepts.
func copyFixture(t *testing.T, variant string, edit func(map[string]any), keep func(string) bool) string {
	t.Helper()
	src, dst := modeltest.Dir(variant), t.TempDir()
	data, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	data, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dst, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.OpenModel(src)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []safetensors.Data
	for _, name := range st.Names() {
		if keep != nil && !keep(name) {
			continue
		}
		tt, err := st.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: name, DType: tt.DType, Shape: tt.Shape}, Bytes: tt.Bytes()})
	}
	if err := safetensors.Save(filepath.Join(dst, "model.safetensors"), out, nil); err != nil {
		t.Fatal(err)
	}
	return dst
}

func loadErr(t *testing.T, dir string, want ...string) {
	t.Helper()
	_, _, err := model.Load(dir)
	if err == nil {
		t.Fatalf("Load succeeded, want an error mentioning %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestLoadBadInput(t *testing.T) {
	t.Run("missing_key", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", func(c map[string]any) { delete(c, "hidden_size"); delete(c, "vocab_size") }, nil)
		loadErr(t, dir, "config.json", `missing keys "hidden_size", "vocab_size"`)
	})
	t.Run("no_model_type", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", func(c map[string]any) { delete(c, "model_type") }, nil)
		loadErr(t, dir, `missing key "model_type"`)
	})
	t.Run("unknown_model_type", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", func(c map[string]any) { c["model_type"] = "frobnicator" }, nil)
		loadErr(t, dir, `"frobnicator" not supported`, "llama", "mistral")
	})
	t.Run("model_file", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", func(c map[string]any) { c["model_file"] = "modeling.py" }, nil)
		loadErr(t, dir, "model_file", "custom Python")
	})
	t.Run("shape_mismatch", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", func(c map[string]any) { c["intermediate_size"] = 128 }, nil)
		loadErr(t, dir, `"model.layers.0.mlp.gate_proj.weight"`, "expected shape [128 64]", "found [96 64]")
	})
	t.Run("missing_tensor", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", nil, func(n string) bool { return n != "model.norm.weight" })
		loadErr(t, dir, `missing tensor "model.norm.weight"`)
	})
	t.Run("unused_tensor", func(t *testing.T) {
		// A tied config drops lm_head in sanitize; an untied one must use it.
		dir := copyFixture(t, "llama3-f32", func(c map[string]any) { c["tie_word_embeddings"] = false }, nil)
		loadErr(t, dir, `missing tensor "lm_head.weight"`)
	})
	t.Run("quantized_without_scales", func(t *testing.T) {
		dir := copyFixture(t, "llama-q4", nil, func(n string) bool {
			return !strings.HasPrefix(n, "model.layers.1.mlp.up_proj.") || n == "model.layers.1.mlp.up_proj.weight"
		})
		loadErr(t, dir, `"model.layers.1.mlp.up_proj.weight"`, "uint32 (packed)", `"model.layers.1.mlp.up_proj.scales" is missing`)
	})
	t.Run("config_quantizes_without_scales", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", func(c map[string]any) {
			c["quantization"] = map[string]any{"group_size": 32, "bits": 4, "model.layers.0.mlp.up_proj": map[string]any{"bits": 8, "group_size": 32}}
		}, nil)
		loadErr(t, dir, "model.layers.0.mlp.up_proj", "no \"model.layers.0.mlp.up_proj.scales\"")
	})
	t.Run("truncated_safetensors", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", nil, nil)
		p := filepath.Join(dir, "model.safetensors")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		loadErr(t, dir, "model.safetensors")
	})
	t.Run("no_weights", func(t *testing.T) {
		dir := copyFixture(t, "llama-f32", nil, nil)
		os.Remove(filepath.Join(dir, "model.safetensors"))
		loadErr(t, dir, "load weights")
	})
}

func TestLoadConfig(t *testing.T) {
	_, cfg, err := model.Load(modeltest.Dir("llama-q4"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Quantization == nil || cfg.Quantization.Default.Bits != 4 || cfg.Quantization.Default.GroupSize != 32 {
		t.Errorf("quantization %+v", cfg.Quantization)
	}
	if len(cfg.EOSTokenIDs) != 1 || cfg.EOSTokenIDs[0] != 2 {
		t.Errorf("eos ids %v, want [2]", cfg.EOSTokenIDs)
	}
	if n := cfg.ContextLength(); n != 256 {
		t.Errorf("context length %d, want 256", n)
	}
	// generation_config.json's eos list replaces config.json's.
	dir := copyFixture(t, "llama-f32", nil, nil)
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": [2, 7]}`), 0o644)
	m, cfg, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.EOSTokenIDs) != 2 || cfg.EOSTokenIDs[1] != 7 {
		t.Errorf("eos ids %v, want [2 7]", cfg.EOSTokenIDs)
	}
	tr, ok := m.(model.Trainable)
	if !ok {
		t.Fatalf("%T is not model.Trainable", m)
	}
	// 2 layers × (7 linears + 2 norms) + embed + norm + lm_head.
	if n := len(tr.Parameters()); n != 21 {
		t.Errorf("%d parameters, want 21", n)
	}
	if n := len(tr.Linears()); n != 15 {
		t.Errorf("%d linears, want 15", n)
	}
	if p := tr.Parameters()[0]; p.Name != "model.embed_tokens.weight" || (*p.Ptr).Dim(0) != 512 {
		t.Errorf("first parameter %s %v", p.Name, (*p.Ptr).Shape())
	}
}

func TestLoadProgress(t *testing.T) {
	var buf strings.Builder
	if _, _, err := model.Load(modeltest.Dir("llama-f32"), model.LoadOptions{Progress: &buf}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Loading") || !strings.Contains(buf.String(), "100%") {
		t.Errorf("progress output %q", buf.String())
	}
}
