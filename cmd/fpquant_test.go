package cmd

import (
	"context"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// notEmbed quantizes every module but the embedding in mode (a float-mode
// embedding would compute in bfloat16, as mlx_lm does, and the float32
// reference would not match token for token).
func notEmbed(mode string) func(string) string {
	return func(p string) string {
		if strings.Contains(p, "embed_tokens") {
			return ""
		}
		return mode
	}
}

func generateText(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	args := append([]string{"generate", "--model", dir, "--ignore-chat-template", "--temp", "0",
		"--prompt", "Once upon a time, ", "-m", "12", "--verbose", "F"}, extra...)
	code, out, errOut := runWith(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	return strings.TrimSuffix(out, "\n")
}

// TestGenerateFloatModes: generate --temp 0 on a checkpoint quantized in
// each float mode prints the greedy text of the same model over its
// dequantized weights.
func TestGenerateFloatModes(t *testing.T) {
	for _, mode := range []string{"mxfp4", "nvfp4", "mxfp8"} {
		for _, fixture := range []string{"llama-f32", "gpt_oss-f32"} {
			t.Run(mode+"/"+fixture, func(t *testing.T) {
				src := modeltest.Dir(fixture)
				ck := modeltest.WriteFPQuantized(t, src, mode, notEmbed(mode), nil)
				got := generateText(t, ck.Dir)
				want := generateText(t, ck.WriteReference(t, src))
				if n := len([]rune(want)); n != 12 {
					t.Fatalf("reference printed %d characters (%q), want 12", n, want)
				}
				if got != want {
					t.Errorf("%s text %q, dequantized model %q", mode, got, want)
				}
			})
		}
	}
}

// TestGenerateQuantizeActivations: -qa makes the nvfp4/mxfp8 linear layers
// round their inputs (the text is the greedy text of the model with
// model.QuantizeActivations applied); other modes and biased layers fail
// in one line naming the layer, as in mlx_lm; a float model is unchanged.
func TestGenerateQuantizeActivations(t *testing.T) {
	src := modeltest.Dir("llama-f32")
	for _, mode := range []string{"nvfp4", "mxfp8"} {
		t.Run(mode, func(t *testing.T) {
			ck := modeltest.WriteFPQuantized(t, src, mode, notEmbed(mode), nil)
			got := generateText(t, ck.Dir, "-qa")
			m, _, err := model.Load(ck.Dir)
			if err != nil {
				t.Fatal(err)
			}
			before := modeltest.Logits(t, m, nil, []int{53, 84, 73, 75})
			if err := model.QuantizeActivations(m); err != nil {
				t.Fatal(err)
			}
			if e := modeltest.RelErr(modeltest.Logits(t, m, nil, []int{53, 84, 73, 75}), before); e == 0 {
				t.Error("QuantizeActivations left the logits unchanged")
			}
			tok, err := tokenizer.Load(ck.Dir)
			if err != nil {
				t.Fatal(err)
			}
			ids, err := generate.EncodePrompt(tok, generate.PromptOptions{Prompt: "Once upon a time, ", IgnoreChatTemplate: true})
			if err != nil {
				t.Fatal(err)
			}
			g, err := generate.New(m, ids, generate.Options{MaxTokens: 12})
			if err != nil {
				t.Fatal(err)
			}
			var want strings.Builder
			if err := generate.Stream(context.Background(), g, tok, func(r generate.Response) error { want.WriteString(r.Text); return nil }); err != nil {
				t.Fatal(err)
			}
			if got != want.String() {
				t.Errorf("-qa text %q, want %q", got, want.String())
			}
		})
	}
	if got, want := generateText(t, src, "-qa"), generateText(t, src); got != want {
		t.Errorf("-qa changed a float model's text: %q, want %q", got, want)
	}
	for _, c := range []struct {
		name, dir, want string
	}{
		{"mxfp4", modeltest.WriteFPQuantized(t, src, "mxfp4", notEmbed("mxfp4"), nil).Dir, "mode mxfp4 does not support activation quantization"},
		{"affine", "../testdata/models/llama-q4", "mode affine does not support activation quantization"},
		{"bias", modeltest.WriteFPQuantized(t, modeltest.Dir("gpt_oss-f32"), "nvfp4", notEmbed("nvfp4"), nil).Dir, "with a bias does not support activation quantization"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runWith(t, "", "generate", "--model", c.dir, "--prompt", "hi", "-m", "2", "-qa")
			if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "--quantize-activations") {
				t.Errorf("exit %d, stderr %q; want exit 1 and one line with %q", code, errOut, c.want)
			}
		})
	}
}

// TestBenchmarkQuantizeActivations: benchmark -qa applies the same rule
// (an mxfp4 model is refused in one line before any timing).
func TestBenchmarkQuantizeActivations(t *testing.T) {
	dir := modeltest.WriteFPQuantized(t, modeltest.Dir("llama-f32"), "mxfp4", notEmbed("mxfp4"), nil).Dir
	code, out, errOut := runWith(t, "", "benchmark", "--model", dir, "-qa", "-p", "4", "-g", "2", "-n", "1")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "mode mxfp4 does not support activation quantization") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
