package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFuseRuns drives `mlxgo fuse` on the tiny 4-bit llama with the
// fixture LoRA adapter (made for the same model in float): exit 0, the
// progress line and the survival summary on stdout, a fused folder with a
// GGUF file inside; bad input gives one error line and exit 1, a misused
// flag exit 2.
func TestFuseRuns(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "fused")
	code, stdout, stderr := runArgs(t, "fuse", "--model", "../testdata/models/llama-q4", "--adapter-path", "../testdata/lora/lora",
		"--save-path", out, "--export-gguf", "--gguf-path", "m.gguf", "--gguf-type", "Q8_0")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	if !strings.HasPrefix(stdout, "Loading pretrained model\n") || !strings.Contains(stdout, "[INFO] Re-quantized 14 adapted layers (4 bits, group size 32)") {
		t.Errorf("stdout %q", stdout)
	}
	for _, f := range []string{"model.safetensors", "config.json", "m.gguf", "README.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}

	code, _, stderr = runArgs(t, "fuse", "--model", "../testdata/models/llama-f32", "--adapter-path", dir, "--save-path", filepath.Join(dir, "x"))
	if code != 1 || !strings.Contains(stderr, "adapter_config.json") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("missing adapter config: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a failed fuse wrote its output folder")
	}
	for _, args := range [][]string{{"--gguf-type", "q5_k", "--export-gguf"}, {"--gguf-type", "f16"}} {
		if code, _, _ := runArgs(t, append([]string{"fuse"}, args...)...); code != 2 {
			t.Errorf("fuse %v: exit %d, want 2", args, code)
		}
	}
}
