package lora

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// charTok is a stand-in tokenizer: one id per byte, EOS 0; the "chat
// template" writes "<role>:content\n" per message and "A:" as generation prompt.
type charTok struct{}

func (charTok) EOS() int { return 0 }
func (charTok) Encode(s string) ([]int, error) {
	ids := []int{1} // BOS
	for _, c := range []byte(s) {
		ids = append(ids, int(c))
	}
	return ids, nil
}
func (charTok) EncodeChat(msgs, tools json.RawMessage, gen bool) ([]int, error) {
	var list []struct{ Role, Content string }
	if err := json.Unmarshal(msgs, &list); err != nil {
		return nil, err
	}
	var sb strings.Builder
	if tools != nil {
		sb.WriteString("T")
	}
	for _, m := range list {
		sb.WriteString(m.Role[:1] + ":" + m.Content + "\n")
	}
	if gen {
		sb.WriteString("a:")
	}
	var ids []int
	for _, c := range []byte(sb.String()) {
		ids = append(ids, int(c))
	}
	return ids, nil
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFormatsAndTokenization(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		body   string
		format Format
		mask   bool
		want   Example
	}{
		{`{"text": "hi"}`, FormatText, false, Example{Tokens: []int{1, 'h', 'i', 0}}},
		{`{"prompt": "q", "completion": "r", "text": "ignored"}`, FormatCompletions, true,
			Example{Tokens: []int{'u', ':', 'q', '\n', 'a', ':', 'r', '\n'}, Offset: 6}},
		{`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]}`, FormatChat, true,
			Example{Tokens: byte2int("s:s\nu:q\na:r\n"), Offset: 10}},
		{`{"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function"}]}`, FormatChat, false,
			Example{Tokens: byte2int("Tu:q\n")}},
	}
	for i, c := range cases {
		p := writeFile(t, dir, "train.jsonl", c.body+"\n\n")
		ds, err := LoadSplit(p, DataConfig{MaskPrompt: c.mask})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if ds.Format != c.format {
			t.Errorf("case %d: format %v, want %v", i, ds.Format, c.format)
		}
		ex, err := ds.Tokenize(charTok{})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !slices.Equal(ex[0].Tokens, c.want.Tokens) || ex[0].Offset != c.want.Offset {
			t.Errorf("case %d: got %v offset %d, want %v offset %d", i, ex[0].Tokens, ex[0].Offset, c.want.Tokens, c.want.Offset)
		}
	}
}

func byte2int(s string) []int {
	var out []int
	for _, c := range []byte(s) {
		out = append(out, int(c))
	}
	return out
}

func TestCustomFeatureKeys(t *testing.T) {
	p := writeFile(t, t.TempDir(), "train.jsonl", `{"input": "q", "output": "r"}`)
	ds, err := LoadSplit(p, DataConfig{PromptFeature: "input", CompletionFeature: "output"})
	if err != nil || ds.Format != FormatCompletions {
		t.Fatalf("custom keys: %v, %v", ds, err)
	}
}

func TestBadData(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		body, want string
		mask       bool
	}{
		{"{\"text\": \"a\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", "train.jsonl:2: record is in chat format but the first record is in text format", false},
		{"{\"text\": \"a\"}\n{not json}\n", "train.jsonl:2: not a JSON object", false},
		{"{\"foo\": 1}\n", "train.jsonl:1: unsupported record", false},
		{"{\"text\": 3}\n", "train.jsonl:1: \"text\" must be a string", false},
		{"{\"messages\": []}\n", "train.jsonl:1: \"messages\" must be a non-empty list", false},
		{"{\"messages\": [{\"content\": \"x\"}]}\n", "has no \"role\"", false},
		{"{\"text\": \"a\"}\n", "--mask-prompt needs chat or prompt/completion data", true},
	}
	for _, c := range cases {
		p := writeFile(t, dir, "train.jsonl", c.body)
		_, err := LoadSplit(p, DataConfig{MaskPrompt: c.mask})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("body %q: error %v, want it to contain %q", c.body, err, c.want)
		}
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "train.jsonl", `{"text": "a"}`)
	writeFile(t, dir, "valid.jsonl", "")
	s, err := LoadDir(dir, DataConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Train == nil || s.Valid != nil || s.Test != nil {
		t.Fatalf("splits %+v: want train only (empty valid counts as missing)", s)
	}
	if _, err := LoadDir(filepath.Join(dir, "nope"), DataConfig{}); err == nil || !strings.Contains(err.Error(), "--data") {
		t.Fatalf("missing folder: %v", err)
	}
}

func TestBatcher(t *testing.T) {
	var ex []Example
	for n := 2; n < 12; n++ { // lengths 2..11, inserted in reverse
		toks := make([]int, 13-n)
		for i := range toks {
			toks[i] = 100 + i
		}
		ex = append(ex, Example{Tokens: toks, Offset: 1})
	}
	if _, err := NewBatcher(ex, 11, 64, 0); err == nil {
		t.Fatal("batch size above the dataset size accepted")
	}
	var warned string
	b, err := NewBatcher(ex, 2, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.Warn = func(s string) { warned = s }
	// 5 groups of the sorted lengths [2,3] [4,5] [6,7] [8,9] [10,11];
	// numpy: np.random.seed(0); np.random.permutation(5) == [2, 0, 1, 3, 4].
	wantFirst := []int{6, 7, 2, 3, 4, 5, 8, 9, 10, 10}
	var lengths []int
	for {
		batch, ok := b.Next()
		if !ok {
			break
		}
		lengths = append(lengths, batch.Lengths...)
		if batch.T != min(1+32*((slices.Max(batch.Lengths)+31)/32), 10) {
			t.Errorf("padded length %d for lengths %v", batch.T, batch.Lengths)
		}
	}
	if !slices.Equal(lengths, wantFirst) {
		t.Errorf("epoch lengths %v, want %v", lengths, wantFirst)
	}
	if !strings.Contains(warned, "longest sentence 11 will be truncated to 10") {
		t.Errorf("truncation warning %q", warned)
	}
}

func TestLossMask(t *testing.T) {
	b := Batch{B: 2, T: 5, Offsets: []int{0, 2}, Lengths: []int{3, 5}, Tokens: make([]int32, 10)}
	got := b.LossMask()
	// row 0: targets k=0..3 predict tokens 1..4; real tokens end at index 2.
	// row 1: prompt covers tokens 0..1, so targets predicting tokens 2..4.
	want := []bool{true, true, false, false, false, true, true, true}
	if !slices.Equal(got, want) {
		t.Fatalf("mask %v, want %v", got, want)
	}
}
