package cmd

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// parseWith runs a command built by mk with args (normalised as the root
// does) and returns the options its run function received.
func parseWith[O any](t *testing.T, stdin string, mk func(*Factory, func(context.Context, *Factory, *O) error) *cobra.Command, args ...string) (*O, error) {
	t.Helper()
	var got *O
	f := &Factory{In: strings.NewReader(stdin), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	c := mk(f, func(_ context.Context, _ *Factory, o *O) error { got = o; return nil })
	c.SetArgs(normalizeArgs(args))
	c.SetOut(&bytes.Buffer{})
	c.SetErr(&bytes.Buffer{})
	c.SilenceUsage = true
	err := c.Execute()
	return got, err
}

func u64(v uint64) *uint64 { return &v }

func TestGenerateDefaults(t *testing.T) {
	o, err := parseWith(t, "", newGenerateCmdWith)
	if err != nil {
		t.Fatal(err)
	}
	want := &GenerateOptions{Model: DefaultModel, Prompt: "hello", MaxTokens: 100, Verbose: true,
		Sampling:    SamplingOptions{TopP: 1, XTCThreshold: 0.1, MinTokensToKeep: 1, RepetitionContextSize: 20},
		KVGroupSize: 64, QuantizedKVStart: 5000, NumDraftTokens: 3}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", o, want)
	}
}

func TestGenerateFlags(t *testing.T) {
	o, err := parseWith(t, "", newGenerateCmdWith,
		"--model", "m", "--trust-remote-code", "--adapter-path", "ad", "--extra-eos-token", "<a>", "7",
		"--system-prompt", "sys", "-p", `line1\nline2\tx`, "--prefill-response", "pre", "-m", "12",
		"--temp", "0.7", "--top-p", "0.9", "--min-p", "0.05", "--top-k", "40", "--xtc-probability", "0.5",
		"--xtc-threshold", "0.2", "--min-tokens-to-keep", "3", "--seed", "42", "--ignore-chat-template",
		"--use-default-chat-template", "--chat-template-config", `{"enable_thinking": false}`, "--verbose", "F",
		"--max-kv-size", "512", "--prompt-cache-file", "c.safetensors", "-qa", "--kv-bits", "8",
		"--kv-group-size", "32", "--quantized-kv-start", "100", "--draft-model", "d", "--num-draft-tokens", "4",
		"--repetition-penalty", "1.1", "--repetition-context-size", "30", "--presence-penalty", "0.5",
		"--frequency-penalty", "0.25", "--logit-bias", `{"13": -100}`)
	if err != nil {
		t.Fatal(err)
	}
	want := &GenerateOptions{Model: "m", TrustRemoteCode: true, AdapterPath: "ad", ExtraEOSTokens: []string{"<a>", "7"},
		SystemPrompt: "sys", Prompt: "line1\nline2\tx", PrefillResponse: "pre", MaxTokens: 12,
		Sampling: SamplingOptions{Temp: 0.7, TopP: 0.9, MinP: 0.05, TopK: 40, XTCProbability: 0.5, XTCThreshold: 0.2,
			MinTokensToKeep: 3, Seed: u64(42), seed: 42, RepetitionPenalty: 1.1, RepetitionContextSize: 30,
			PresencePenalty: 0.5, FrequencyPenalty: 0.25, LogitBias: map[int]float32{13: -100}, logitBiasJSON: `{"13": -100}`},
		IgnoreChatTemplate: true, UseDefaultChatTemplate: true, ChatTemplateConfig: map[string]any{"enable_thinking": false},
		Verbose: false, MaxKVSize: 512, PromptCacheFile: "c.safetensors", QuantizeActivations: true, KVBits: 8,
		KVGroupSize: 32, QuantizedKVStart: 100, DraftModel: "d", NumDraftTokens: 4}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("flags\n got %+v\nwant %+v", o, want)
	}
	if _, err := o.Sampling.Sampler(nil); err != nil {
		t.Errorf("sampler from flags: %v", err)
	}
	if ps, err := o.Sampling.Processors(); err != nil || len(ps) != 4 {
		t.Errorf("processors from flags: %d, %v", len(ps), err)
	}
}

func TestGeneratePromptFromStdin(t *testing.T) {
	o, err := parseWith(t, "from stdin", newGenerateCmdWith, "--prompt", "-")
	if err != nil || o.Prompt != "from stdin" {
		t.Fatalf("prompt %q, err %v", o.Prompt, err)
	}
}

func TestBadGenerateFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--temp", "-1"}, {"--top-p", "2"}, {"--xtc-threshold", "0.7"}, {"--kv-bits", "7"},
		{"--kv-group-size", "48"}, {"--chat-template-config", "[1]"}, {"--logit-bias", `{"x": 1}`},
		{"--max-kv-size", "0"}, {"--num-draft-tokens", "0"}, {"--min-tokens-to-keep", "0"},
	} {
		code, _, errOut := runArgs(t, append([]string{"generate"}, args...)...)
		if code != 2 || !strings.Contains(errOut, args[0]) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming the flag", args, code, errOut)
		}
	}
}

func TestChatFlags(t *testing.T) {
	o, err := parseWith(t, "", newChatCmdWith)
	if err != nil {
		t.Fatal(err)
	}
	if o.Model != DefaultModel || o.MaxTokens != 256 || o.Sampling.Seed == nil || *o.Sampling.Seed != 0 || o.Sampling.TopP != 1 || o.Sampling.XTCThreshold != 0.1 {
		t.Errorf("chat defaults %+v", o)
	}
	o, err = parseWith(t, "", newChatCmdWith, "--model", "m", "--adapter-path", "a", "--temp", "0.5", "--top-p", "0.8",
		"--xtc-probability", "0.1", "--xtc-threshold", "0.3", "--seed", "3", "--max-kv-size", "64", "-m", "9",
		"--system-prompt", "s", "--pipeline", "--trust-remote-code")
	if err != nil {
		t.Fatal(err)
	}
	if o.Model != "m" || o.AdapterPath != "a" || o.Sampling.Temp != 0.5 || o.Sampling.TopP != 0.8 || o.Sampling.XTCProbability != 0.1 ||
		o.Sampling.XTCThreshold != 0.3 || *o.Sampling.Seed != 3 || o.MaxKVSize != 64 || o.MaxTokens != 9 || o.SystemPrompt != "s" || !o.Pipeline || !o.TrustRemoteCode {
		t.Errorf("chat flags %+v", o)
	}
}

func TestBenchmarkFlags(t *testing.T) {
	o, err := parseWith(t, "", newBenchmarkCmdWith)
	if err != nil {
		t.Fatal(err)
	}
	want := &BenchmarkOptions{Model: DefaultModel, PromptTokens: 512, GenerationTokens: 1024, BatchSize: 1, NumTrials: 5, PrefillStepSize: 2048}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseWith(t, "", newBenchmarkCmdWith, "--model", "m", "-p", "128", "-g", "64", "-b", "2", "-n", "3", "--pipeline", "-qa", "--prefill-step-size", "256", "--delay", "0.5", "--trust-remote-code")
	if err != nil {
		t.Fatal(err)
	}
	want = &BenchmarkOptions{Model: "m", PromptTokens: 128, GenerationTokens: 64, BatchSize: 2, NumTrials: 3, Pipeline: true, QuantizeActivations: true, PrefillStepSize: 256, Delay: 0.5, TrustRemoteCode: true}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("flags %+v", o)
	}
	if code, _, errOut := runArgs(t, "benchmark", "-n", "0"); code != 2 || !strings.Contains(errOut, "--num-trials") {
		t.Errorf("-n 0: exit %d, %q", code, errOut)
	}
}

func TestConvertFlags(t *testing.T) {
	o, err := parseWith(t, "", newConvertCmdWith, "--hf-path", "h", "-q")
	if err != nil {
		t.Fatal(err)
	}
	want := &ConvertOptions{HFPath: "h", MLXPath: "mlx_model", Quantize: true, QBits: 4, QGroupSize: 64, QMode: "affine"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseWith(t, "", newConvertCmdWith, "--model", "h", "--mlx-path", "out", "--quantize", "--q-bits", "8", "--q-group-size", "32",
		"--q-mode", "affine", "--quant-predicate", "mixed_3_6", "--dtype", "bfloat16", "--upload-repo", "me/x", "--trust-remote-code")
	if err != nil {
		t.Fatal(err)
	}
	want = &ConvertOptions{HFPath: "h", MLXPath: "out", Quantize: true, QBits: 8, QGroupSize: 32, QMode: "affine", QuantPredicate: "mixed_3_6", Dtype: "bfloat16", UploadRepo: "me/x", TrustRemoteCode: true}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("flags %+v", o)
	}
	for _, args := range [][]string{
		{"--mlx-path", "x"}, {"--hf-path", "h", "-q", "-d"}, {"--hf-path", "h", "--q-mode", "mxfp4"},
		{"--hf-path", "h", "-q", "--q-bits", "7"}, {"--hf-path", "h", "-q", "--q-group-size", "16"},
		{"--hf-path", "h", "-q", "--quant-predicate", "mixed_9_9"}, {"--hf-path", "h", "--quant-predicate", "mixed_2_6"},
		{"--hf-path", "h", "--dtype", "float64"},
	} {
		if code, _, errOut := runArgs(t, append([]string{"convert"}, args...)...); code != 2 {
			t.Errorf("convert %v: exit %d, stderr %q; want 2", args, code, errOut)
		}
	}
}

func TestFuseFlags(t *testing.T) {
	o, err := parseWith(t, "", newFuseCmdWith)
	if err != nil {
		t.Fatal(err)
	}
	want := &FuseOptions{Model: "mlx_model", SavePath: "fused_model", AdapterPath: "adapters", GGUFPath: "ggml-model-f16.gguf"}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseWith(t, "", newFuseCmdWith, "--model", "m", "--save-path", "s", "--adapter-path", "a", "--upload-repo", "me/x",
		"--de-quantize", "--export-gguf", "--gguf-path", "g.gguf", "--trust-remote-code")
	if err != nil {
		t.Fatal(err)
	}
	want = &FuseOptions{Model: "m", SavePath: "s", AdapterPath: "a", UploadRepo: "me/x", Dequantize: true, ExportGGUF: true, GGUFPath: "g.gguf", TrustRemoteCode: true}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("flags %+v", o)
	}
	o, err = parseWith(t, "", newFuseCmdWith, "--q-bits", "8", "--q-group-size", "32")
	if err != nil || o.QBits != 8 || o.QGroupSize != 32 {
		t.Errorf("re-quantize flags %+v, %v", o, err)
	}
	for _, args := range [][]string{{"--q-bits", "1"}, {"--dequantize", "--q-bits", "8"}, {"--q-group-size", "100"}} {
		if code, _, _ := runArgs(t, append([]string{"fuse"}, args...)...); code != 2 {
			t.Errorf("fuse %v: exit %d, want 2", args, code)
		}
	}
}

func TestNormalizeArgs(t *testing.T) {
	got := normalizeArgs([]string{"generate", "--extra-eos-token", "a", "b", "-qa", "--", "-qa"})
	want := []string{"generate", "--extra-eos-token", "a", "--extra-eos-token", "b", "--quantize-activations", "--", "-qa"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalizeArgs = %v, want %v", got, want)
	}
}
