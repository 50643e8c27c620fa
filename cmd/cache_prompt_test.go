package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

func TestCachePromptDefaults(t *testing.T) {
	o, err := parseWith(t, "", newCachePromptCmdWith, "--prompt-cache-file", "c.safetensors", "--prompt", "hi")
	if err != nil {
		t.Fatal(err)
	}
	want := &CachePromptOptions{Model: "mlx_model", PromptCacheFile: "c.safetensors", Prompt: "hi", KVGroupSize: 64, QuantizedKVStart: 5000}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", o, want)
	}
}

func TestCachePromptFlags(t *testing.T) {
	o, err := parseWith(t, "", newCachePromptCmdWith,
		"--model", "m", "--adapter-path", "ad", "--trust-remote-code", "--eos-token", "</s>",
		"--ignore-chat-template", "--use-default-chat-template", "--chat-template-config", `{"enable_thinking": false}`,
		"--max-kv-size", "512", "--prompt-cache-file", "c", "--prompt", `a\nb`, "--kv-bits", "4",
		"--kv-group-size", "32", "--quantized-kv-start", "100")
	if err != nil {
		t.Fatal(err)
	}
	// Unlike generate, mlx_lm's cache_prompt keeps "\n" in the prompt as typed.
	want := &CachePromptOptions{Model: "m", AdapterPath: "ad", TrustRemoteCode: true, EOSToken: "</s>",
		IgnoreChatTemplate: true, UseDefaultChatTemplate: true, ChatTemplateConfig: map[string]any{"enable_thinking": false},
		MaxKVSize: 512, PromptCacheFile: "c", Prompt: `a\nb`, KVBits: 4, KVGroupSize: 32, QuantizedKVStart: 100}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("flags\n got %+v\nwant %+v", o, want)
	}
}

func TestCachePromptFromStdin(t *testing.T) {
	o, err := parseWith(t, "from\nstdin", newCachePromptCmdWith, "--prompt-cache-file", "c", "--prompt", "-")
	if err != nil || o.Prompt != "from\nstdin" {
		t.Fatalf("prompt %q, err %v", o.Prompt, err)
	}
}

// TestCachePromptUsageErrors: misused flags print one error line, the
// usage, and exit 2; the run never starts.
func TestCachePromptUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "the following arguments are required: --prompt-cache-file, --prompt"},
		{[]string{"--prompt-cache-file", "c"}, "the following arguments are required: --prompt"},
		{[]string{"--prompt", "p"}, "the following arguments are required: --prompt-cache-file"},
		{[]string{"--prompt", "p", "--prompt-cache-file", ""}, "--prompt-cache-file: expected a file name"},
		{[]string{"--prompt", "p", "--prompt-cache-file", "c", "--kv-bits", "7"}, "--kv-bits must be one of 2, 3, 4, 5, 6, 8; got 7"},
		{[]string{"--prompt", "p", "--prompt-cache-file", "c", "--kv-group-size", "16"}, "--kv-group-size must be one of 32, 64, 128; got 16"},
		{[]string{"--prompt", "p", "--prompt-cache-file", "c", "--max-kv-size", "0"}, "--max-kv-size must be >= 1, got 0"},
		{[]string{"--prompt", "p", "--prompt-cache-file", "c", "--chat-template-config", "[1]"}, "--chat-template-config: expected a JSON object"},
		{[]string{"--prompt", "p", "--prompt-cache-file", "c", "extra"}, `unknown command "extra"`},
	} {
		code, out, errOut := runWith(t, "", append([]string{"cache_prompt"}, tc.args...)...)
		first, _, _ := strings.Cut(errOut, "\n")
		if code != 2 || !strings.HasPrefix(first, "Error: ") || !strings.Contains(first, tc.want) || !strings.Contains(errOut, "Usage:") || out != "" {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

// cachePromptOutRE is what mlx_lm's cache_prompt prints: the progress line
// rewritten with \r, then the peak memory and "Saving...".
var cachePromptOutRE = regexp.MustCompile(`^(\rProcessed +\d+ tokens \( *\d+\.\d\d tok/s\) *)+\nPeak memory: \d+\.\d{3} GB\nSaving\.\.\.\n$`)

var processedRE = regexp.MustCompile(`Processed +(\d+) tokens`)

// checkCachePromptOutput checks the printed lines and that the last
// progress line counts n tokens.
func checkCachePromptOutput(t *testing.T, out string, n int) {
	t.Helper()
	if !cachePromptOutRE.MatchString(out) {
		t.Fatalf("output %q does not look like mlx_lm's", out)
	}
	all := processedRE.FindAllStringSubmatch(out, -1)
	if first, last := all[0][1], all[len(all)-1][1]; first != "0" || last != strconv.Itoa(n) {
		t.Errorf("progress from %s to %s tokens, want 0 to %d: %q", first, last, n, out)
	}
}

// TestCachePromptRoundTrip: cache_prompt then generate --prompt-cache-file
// gives the greedy text of a plain generate over the whole prompt; the
// file records the model and tokenizer_config as mlx_lm's does, and a
// name without .safetensors gets it.
func TestCachePromptRoundTrip(t *testing.T) {
	dir := "../testdata/models/llama-f32"
	path := filepath.Join(t.TempDir(), "prompt")
	code, out, errOut := runWith(t, "", "cache_prompt", "--model", dir, "--prompt-cache-file", path, "--prompt", "Tell me")
	if code != 0 {
		t.Fatalf("cache_prompt: exit %d: %s", code, errOut)
	}
	// "<|user|>Tell me": the template's unfinished user message.
	checkCachePromptOutput(t, out, len("<|user|>Tell me"))
	path += ".safetensors"
	caches, meta, err := generate.LoadPromptCache(path)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := map[string]string{"model": dir, "tokenizer_config": `{"trust_remote_code": false}`}
	if !reflect.DeepEqual(meta, wantMeta) {
		t.Errorf("metadata %v, want %v", meta, wantMeta)
	}
	for i, c := range caches {
		if _, ok := c.(*model.KVCache); !ok || c.Offset() != len("<|user|>Tell me") {
			t.Errorf("layer %d: %T with offset %d", i, c, c.Offset())
		}
	}
	code, got, errOut := runWith(t, "", "generate", "--prompt-cache-file", path, "--prompt", " more", "-m", "12", "--verbose", "F")
	if code != 0 {
		t.Fatalf("generate with the cache: exit %d: %s", code, errOut)
	}
	code, want, errOut := runWith(t, "", "generate", "--model", dir, "--prompt", "Tell me more", "-m", "12", "--verbose", "F")
	if code != 0 || got != want || len(want) < 10 {
		t.Fatalf("with the cache %q, plain %q (exit %d %s)", got, want, code, errOut)
	}
	code, _, errOut = runWith(t, "", "generate", "--model", "../testdata/models/llama-bf16", "--prompt-cache-file", path)
	if wantErr := "Error: providing a different model (../testdata/models/llama-bf16) than that used to create the prompt cache (" + dir + ") is an error\n"; code != 1 || errOut != wantErr {
		t.Errorf("another model: exit %d, %q", code, errOut)
	}

	// --eos-token and --trust-remote-code are recorded; --ignore-chat-template
	// caches the raw text with BOS.
	path2 := filepath.Join(t.TempDir(), "raw.safetensors")
	code, out, errOut = runWith(t, "Tell me", "cache_prompt", "--model", dir, "--prompt-cache-file", path2, "--prompt", "-",
		"--ignore-chat-template", "--eos-token", "<|é|>", "--trust-remote-code")
	if code != 0 {
		t.Fatalf("cache_prompt raw: exit %d: %s", code, errOut)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkCachePromptOutput(t, out, len(tok.Encode("Tell me", true)))
	_, meta, err = generate.LoadPromptCache(path2)
	if err != nil {
		t.Fatal(err)
	}
	if tc := meta["tokenizer_config"]; tc != `{"trust_remote_code": true, "eos_token": "<|\u00e9|>"}` {
		t.Errorf("tokenizer_config %s", tc)
	}
}

// TestCachePromptBadInput: a file that cannot be written fails with one
// line before the model runs; so does a missing model.
func TestCachePromptBadInput(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "1")
	dir := "../testdata/models/llama-f32"
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "d.safetensors"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", dir, "--prompt-cache-file", filepath.Join(tmp, "no", "such", "c")}, "folder " + filepath.Join(tmp, "no", "such") + " does not exist"},
		{[]string{"--model", dir, "--prompt-cache-file", filepath.Join(file, "c")}, file + " is not a folder"},
		{[]string{"--model", dir, "--prompt-cache-file", filepath.Join(tmp, "d")}, "d.safetensors: is a folder"},
		{[]string{"--model", "./no/such/model", "--prompt-cache-file", filepath.Join(tmp, "c")}, `model folder "./no/such/model" does not exist`},
	} {
		code, out, errOut := runWith(t, "", append([]string{"cache_prompt", "--prompt", "hi"}, tc.args...)...)
		if code != 1 || !strings.HasPrefix(errOut, "Error: ") || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and one line containing %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 2 {
		t.Errorf("left files behind: %v", entries)
	}
}

// quantizableModelDir is the llama-f32 fixture read with head dim 32 (2
// query heads, 1 kv head: the projections keep their shapes), since the
// fixtures' 16 is below the smallest --kv-group-size.
func quantizableModelDir(t *testing.T) string {
	t.Helper()
	src := "../testdata/models/llama-f32"
	dir := t.TempDir()
	for _, name := range []string{"model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "config.json"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"] = 32, 2, 1
			if data, err = json.Marshal(cfg); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCachePromptKVBits: cache_prompt --kv-bits writes QuantizedKVCache
// layers, which generate accepts only with matching --kv-bits and
// --kv-group-size (mlx_lm's checks); a standard cache file loaded with
// --kv-bits switches to quantized like mlx_lm's generate_step: the text
// equals a plain --kv-bits run over the whole prompt, which a float cache
// would not give.
func TestCachePromptKVBits(t *testing.T) {
	dir := quantizableModelDir(t)
	tmp := t.TempDir()
	qpath := filepath.Join(tmp, "q.safetensors")
	code, out, errOut := runWith(t, "", "cache_prompt", "--model", dir, "--prompt-cache-file", qpath, "--prompt", "Tell me",
		"--kv-bits", "8", "--kv-group-size", "32", "--quantized-kv-start", "0")
	if code != 0 {
		t.Fatalf("cache_prompt: exit %d: %s", code, errOut)
	}
	checkCachePromptOutput(t, out, len("<|user|>Tell me"))
	caches, _, err := generate.LoadPromptCache(qpath)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range caches {
		if q, ok := c.(*model.QuantizedKVCache); !ok || !q.Quantized() || q.Bits != 8 || q.GroupSize != 32 || c.Offset() != 15 {
			t.Errorf("layer %d: %T offset %d", i, c, c.Offset())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kv-bits", "4", "--kv-group-size", "32"}, "--kv-bits 4 does not match the kv cache loaded from --prompt-cache-file (8 bits)"},
		{nil, "--kv-group-size 64 does not match the kv cache loaded from --prompt-cache-file (group size 32; pass --kv-group-size 32)"},
		{[]string{"--kv-group-size", "32"}, ""},
		{[]string{"--kv-bits", "8", "--kv-group-size", "32"}, ""},
	} {
		code, _, errOut := runWith(t, "", append([]string{"generate", "--prompt-cache-file", qpath, "--prompt", " more", "-m", "4"}, tc.args...)...)
		if tc.want == "" && code != 0 {
			t.Errorf("%v: exit %d: %s", tc.args, code, errOut)
		}
		if tc.want != "" && (code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1) {
			t.Errorf("%v: exit %d, stderr %q; want one line with %q", tc.args, code, errOut, tc.want)
		}
	}

	// --max-kv-size with --kv-bits (mlx_lm refuses it): rotating caches
	// that quantized, in mlxgo's QuantizedRotatingKVCache class.
	rpath := filepath.Join(tmp, "rq.safetensors")
	code, _, errOut = runWith(t, "", "cache_prompt", "--model", dir, "--prompt-cache-file", rpath, "--prompt", "Tell me a story",
		"--max-kv-size", "12", "--kv-bits", "4", "--kv-group-size", "32", "--quantized-kv-start", "0")
	if code != 0 {
		t.Fatalf("cache_prompt --max-kv-size --kv-bits: exit %d: %s", code, errOut)
	}
	if caches, _, err = generate.LoadPromptCache(rpath); err != nil {
		t.Fatal(err)
	}
	for i, c := range caches {
		if r, ok := c.(*model.RotatingKVCache); !ok || !r.Quantized() || r.Bits != 4 || r.MaxSize != 12 || c.Offset() != len("<|user|>Tell me a story") {
			t.Errorf("layer %d: %T offset %d", i, c, c.Offset())
		}
	}
	code, _, errOut = runWith(t, "", "generate", "--prompt-cache-file", rpath, "--prompt", " more", "-m", "4", "--kv-bits", "8", "--kv-group-size", "32")
	if want := "--kv-bits 8 does not match the kv cache loaded from --prompt-cache-file (4 bits)"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("rotating file, --kv-bits 8: exit %d, %q", code, errOut)
	}
	if code, _, errOut = runWith(t, "", "generate", "--prompt-cache-file", rpath, "--prompt", " more", "-m", "4", "--kv-group-size", "32", "--max-kv-size", "12"); code != 0 || errOut != "" {
		t.Errorf("rotating file: exit %d, %q", code, errOut)
	}

	// A float cache file, loaded with --kv-bits: its next update is
	// attended in float, then it converts, as the plain run's caches do
	// after their first prefill chunk.
	fpath := filepath.Join(tmp, "f.safetensors")
	if code, _, errOut := runWith(t, "", "cache_prompt", "--model", dir, "--prompt-cache-file", fpath, "--prompt", "Tell me"); code != 0 {
		t.Fatalf("cache_prompt: exit %d: %s", code, errOut)
	}
	gen := func(args ...string) string {
		t.Helper()
		code, out, errOut := runWith(t, "", append([]string{"generate", "-m", "16", "--verbose", "F"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	kv := []string{"--kv-bits", "2", "--kv-group-size", "32", "--quantized-kv-start", "0"}
	plainFloat := gen("--model", dir, "--prompt", "Tell me more")
	plainQuant := gen(append([]string{"--model", dir, "--prompt", "Tell me more"}, kv...)...)
	if plainFloat == plainQuant {
		t.Fatalf("2-bit kv cache does not change the text (%q); the test cannot tell the caches apart", plainFloat)
	}
	if got := gen("--prompt-cache-file", fpath, "--prompt", " more"); got != plainFloat {
		t.Errorf("float cache: %q, plain run %q", got, plainFloat)
	}
	if got := gen(append([]string{"--prompt-cache-file", fpath, "--prompt", " more"}, kv...)...); got != plainQuant {
		t.Errorf("float cache with --kv-bits 2: %q, plain --kv-bits 2 run %q", got, plainQuant)
	}
}

// TestGeneratePromptCacheMaxKVSize: mlx_lm ignores --max-kv-size for a
// loaded prompt cache; generate says so unless the file's caches are
// rotating ones of that size.
func TestGeneratePromptCacheMaxKVSize(t *testing.T) {
	dir := "../testdata/models/llama-f32"
	tmp := t.TempDir()
	for _, tc := range []struct {
		save, load string
		warn       bool
	}{
		{"", "12", true},
		{"12", "12", false},
		{"12", "20", true},
		{"12", "", false},
	} {
		path := filepath.Join(tmp, fmt.Sprintf("c%s.safetensors", tc.save))
		args := []string{"cache_prompt", "--model", dir, "--prompt-cache-file", path, "--prompt", "Tell me a story"}
		if tc.save != "" {
			args = append(args, "--max-kv-size", tc.save)
		}
		if code, _, errOut := runWith(t, "", args...); code != 0 {
			t.Fatalf("cache_prompt: exit %d: %s", code, errOut)
		}
		args = []string{"generate", "--prompt-cache-file", path, "--prompt", " more", "-m", "3", "--verbose", "F"}
		if tc.load != "" {
			args = append(args, "--max-kv-size", tc.load)
		}
		code, _, errOut := runWith(t, "", args...)
		want := ""
		if tc.warn {
			want = "[WARNING] --max-kv-size " + tc.load + " is ignored with --prompt-cache-file: the caches keep the kind and size they were saved with (make the file with cache_prompt --max-kv-size " + tc.load + ")\n"
		}
		if code != 0 || errOut != want {
			t.Errorf("saved with %q, loaded with %q: exit %d, stderr %q, want %q", tc.save, tc.load, code, errOut, want)
		}
	}
}

// TestAdaptPromptCache: a loaded standard cache becomes a quantizing one
// with --kv-bits (mlx_lm's maybe_quantize_kv_cache in generate_step) and
// stays as it is without.
func TestAdaptPromptCache(t *testing.T) {
	x := engine.Ones([]int{1, 1, 3, 32}, engine.Float32)
	kv := &model.KVCache{}
	kv.Update(x, x)
	var warn bytes.Buffer
	out, err := adaptPromptCache(&warn, []model.Cache{kv}, &GenerateOptions{KVBits: 4, KVGroupSize: 32, QuantizedKVStart: 2})
	if err != nil {
		t.Fatal(err)
	}
	if q, ok := out[0].(*model.QuantizedKVCache); !ok || q.Bits != 4 || q.GroupSize != 32 || q.Start != 2 || q.Offset() != 3 {
		t.Errorf("with --kv-bits: %T", out[0])
	}
	out, err = adaptPromptCache(&warn, []model.Cache{kv}, &GenerateOptions{KVGroupSize: 64, QuantizedKVStart: 2})
	if err != nil || out[0] != kv || warn.Len() != 0 {
		t.Errorf("without --kv-bits: %T, %v, %q", out[0], err, warn.String())
	}
}
