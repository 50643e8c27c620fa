package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvertRuns drives `mlxgo convert` on a tiny checkpoint: mlx_lm's
// printed lines, exit 0, an MLX folder; a second run into the same folder
// fails with one error line and exit 1.
func TestConvertRuns(t *testing.T) {
	out := filepath.Join(t.TempDir(), "q4")
	args := []string{"convert", "--hf-path", "../testdata/models/llama-f32", "--mlx-path", out, "-q", "--q-group-size", "32"}
	code, stdout, stderr := runArgs(t, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q (no progress bar when stderr is not a terminal)", code, stderr)
	}
	want := "[INFO] Loading\n[INFO] Using dtype: float32\n[INFO] Quantizing\n[INFO] Quantized model with 6.065 bits per weight.\n"
	if stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if _, err := os.Stat(filepath.Join(out, "model.safetensors")); err != nil {
		t.Error(err)
	}
	code, _, stderr = runArgs(t, args...)
	if code != 1 || !strings.Contains(stderr, "already exists") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("second run: exit %d, stderr %q", code, stderr)
	}
}

// TestConvertMixedGroupDefault: with a mixed recipe and no --q-group-size
// the group size stays unset (mlx_lm writes null per layer).
func TestConvertMixedGroupDefault(t *testing.T) {
	o, err := parseWith(t, "", newConvertCmdWith, "--hf-path", "h", "-q", "--quant-predicate", "mixed_4_6")
	if err != nil {
		t.Fatal(err)
	}
	if o.QGroupSize != 0 || o.QBits != 4 {
		t.Errorf("group %d bits %d", o.QGroupSize, o.QBits)
	}
}
