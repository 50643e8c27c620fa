package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
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

// TestConvertFloatModeFlags: --q-mode mxfp4|nvfp4|mxfp8 takes the mode's
// group size and bits (MLX's defaults, the only ones it accepts); other
// sizes, a mixed recipe, an unknown mode or a float mode without -q are
// one error line and exit 2.
func TestConvertFloatModeFlags(t *testing.T) {
	for mode, gb := range map[string][2]int{"mxfp4": {32, 4}, "nvfp4": {16, 4}, "mxfp8": {32, 8}} {
		for _, extra := range [][]string{nil, {"--q-group-size", fmt.Sprint(gb[0]), "--q-bits", fmt.Sprint(gb[1])}} {
			o, err := parseWith(t, "", newConvertCmdWith, append([]string{"--hf-path", "h", "-q", "--q-mode", mode}, extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			if o.QMode != mode || o.QGroupSize != gb[0] || o.QBits != gb[1] {
				t.Errorf("%s %v: mode %s group %d bits %d", mode, extra, o.QMode, o.QGroupSize, o.QBits)
			}
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-q", "--q-mode", "mxfp4", "--q-group-size", "64"}, "requires group size 32"},
		{[]string{"-q", "--q-mode", "nvfp4", "--q-group-size", "32"}, "requires group size 16"},
		{[]string{"-q", "--q-mode", "mxfp8", "--q-bits", "4"}, "requires 8 bits"},
		{[]string{"-q", "--q-mode", "mxfp4", "--q-bits", "8"}, "requires 4 bits"},
		{[]string{"-q", "--q-mode", "nvfp4", "--quant-predicate", "mixed_4_6"}, "only supports --q-mode affine"},
		{[]string{"-q", "--q-mode", "fp4"}, "--q-mode \"fp4\": expected one of"},
		{[]string{"--q-mode", "mxfp8"}, "needs -q/--quantize"},
	} {
		code, _, stderr := runArgs(t, append([]string{"convert", "--hf-path", "h"}, c.args...)...)
		first, _, _ := strings.Cut(stderr, "\n")
		if code != 2 || !strings.HasPrefix(first, "Error: ") || !strings.Contains(first, c.want) || strings.Count(stderr, "Error") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one error line with %q", c.args, code, stderr, c.want)
		}
	}
}

// TestConvertFloatModesGenerate: `mlxgo convert -q --q-mode <mode>` of the
// f32 fixtures prints mlx_lm's lines, and greedy `generate --temp 0` on
// the converted folder prints the text (one token a character) of the
// same model over its dequantized weights, with the embedding table held
// in bfloat16 as a float-mode embedding looks up (the decoded values are
// exact in bfloat16).
func TestConvertFloatModesGenerate(t *testing.T) {
	for _, mode := range []string{"mxfp4", "nvfp4", "mxfp8"} {
		for _, fixture := range []string{"llama-f32", "qwen2-f32"} {
			t.Run(mode+"/"+fixture, func(t *testing.T) {
				src := filepath.Join("..", "testdata", "models", fixture)
				out := filepath.Join(t.TempDir(), "q")
				code, stdout, stderr := runArgs(t, "convert", "--hf-path", src, "--mlx-path", out, "-q", "--q-mode", mode)
				if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "[INFO] Loading\n[INFO] Using dtype: float32\n[INFO] Quantizing\n[INFO] Quantized model with ") {
					t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
				}
				m, err := st.OpenModel(out)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				deq := map[string]*engine.Array{}
				for _, n := range m.Names() {
					path, param := strings.TrimSuffix(n, ".weight"), n[strings.LastIndexByte(n, '.')+1:]
					if param == "scales" {
						continue
					}
					x, err := m.Tensor(n)
					if err != nil {
						t.Fatal(err)
					}
					if x.DType == st.F32 {
						f, err := x.Float32s()
						if err != nil {
							t.Fatal(err)
						}
						deq[n] = engine.FromFloat32s(f, x.Shape...)
						continue
					}
					s, err := m.Tensor(path + ".scales")
					if err != nil {
						t.Fatalf("%s %s without scales: %v", n, x.DType, err)
					}
					q, err := x.Uint32s()
					if err != nil {
						t.Fatal(err)
					}
					sc, err := s.Uint8s()
					if err != nil {
						t.Fatal(err)
					}
					d := engine.DequantizeMode(engine.FromUint32s(q, x.Shape...), engine.FromUint8s(sc, s.Shape...), nil, 0, 0, mode)
					if strings.Contains(path, "embed_tokens") {
						d = engine.AsType(d, engine.BFloat16)
					}
					deq[n] = d
				}
				ref := (&modeltest.FPCheckpoint{Deq: deq}).WriteReference(t, src)
				got, want := generateText(t, out), generateText(t, ref)
				if n := len([]rune(want)); n != 12 {
					t.Fatalf("reference printed %d characters (%q), want 12", n, want)
				}
				if got != want {
					t.Errorf("converted %s model printed %q, the dequantized model %q", mode, got, want)
				}
			})
		}
	}
}
