package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeDir writes files (name -> content; non-strings are JSON-encoded) into
// a temporary model directory.
func writeDir(t *testing.T, files map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range files {
		var b []byte
		if s, ok := v.(string); ok {
			b = []byte(s)
		} else {
			var err error
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoadJSON(t *testing.T, tj map[string]any) *Tokenizer {
	t.Helper()
	tk, err := Load(writeDir(t, map[string]any{"tokenizer.json": tj}))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestUnigram(t *testing.T) {
	vocab := [][]any{{"<unk>", 0.0}, {"▁", -1.0}, {"a", -1.0}, {"b", -2.0}, {"ab", -1.5}, {"▁ab", -1.0}, {"<0x63>", -5.0}}
	tj := map[string]any{
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
		"decoder":       map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
		"model":         map[string]any{"type": "Unigram", "unk_id": 0, "vocab": vocab},
	}
	tk := mustLoadJSON(t, tj)
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"ab", []int{5}},        // "▁ab" beats "▁"+"ab" (-1 vs -2.5)
		{"ba", []int{1, 3, 2}},  // "▁" "b" "a"
		{"abzz", []int{5, 0}},   // unknown run fused into one <unk>
		{"ab ab", []int{5, 5}},  // Metaspace splits before each ▁
		{"zab", []int{1, 0, 4}}, // "▁" <unk> "ab"
		{"", nil},
	} {
		if got := tk.Encode(c.in, true); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := tk.Decode([]int{5, 5}, false); got != "ab ab" {
		t.Errorf("Decode = %q", got)
	}
	// With byte_fallback an unknown character becomes its bytes when all
	// byte pieces exist, and <unk> otherwise.
	tj["model"].(map[string]any)["byte_fallback"] = true
	tk = mustLoadJSON(t, tj)
	if got := tk.Encode("abc", false); !slices.Equal(got, []int{5, 6}) {
		t.Errorf("byte fallback: %v", got)
	}
	if got := tk.Encode("abd", false); !slices.Equal(got, []int{5, 0}) {
		t.Errorf("byte fallback without the byte piece: %v", got)
	}
}

func TestWordLevelAndWordPiece(t *testing.T) {
	wl := mustLoadJSON(t, map[string]any{
		"normalizer":     map[string]any{"type": "Lowercase"},
		"pre_tokenizer":  map[string]any{"type": "Whitespace"},
		"post_processor": map[string]any{"type": "BertProcessing", "cls": []any{"[CLS]", 1}, "sep": []any{"[SEP]", 2}},
		"model":          map[string]any{"type": "WordLevel", "unk_token": "[UNK]", "vocab": map[string]int{"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hello": 3, "world": 4, "!": 5}},
	})
	if got := wl.Encode("Hello, World!", true); !slices.Equal(got, []int{1, 3, 0, 4, 5, 2}) {
		t.Errorf("WordLevel: %v", got)
	}
	if got := wl.Decode([]int{3, 4}, false); got != "hello world" {
		t.Errorf("no decoder joins with spaces: %q", got)
	}
	wp := mustLoadJSON(t, map[string]any{
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"decoder":       map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model":         map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": map[string]int{"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, ".": 4}},
	})
	if got := wp.Encode("unaffable. unx", false); !slices.Equal(got, []int{1, 2, 3, 4, 0}) {
		t.Errorf("WordPiece: %v", got)
	}
	if got := wp.Decode([]int{1, 2, 3, 4}, false); got != "unaffable." {
		t.Errorf("WordPiece decode: %q", got)
	}
}

func TestPreTokenizerPieces(t *testing.T) {
	pieces := func(p preTokenizer, s string) []string {
		var out []string
		for _, x := range p.preTokenize([]piece{{s: s, first: true}}) {
			out = append(out, x.s)
		}
		return out
	}
	for _, c := range []struct {
		raw  string
		in   string
		want []string
	}{
		{`{"type":"Digits","individual_digits":true}`, "a12b3", []string{"a", "1", "2", "b", "3"}},
		{`{"type":"Digits","individual_digits":false}`, "a12b3", []string{"a", "12", "b", "3"}},
		{`{"type":"WhitespaceSplit"}`, " a \u00a0b\t", []string{"a", "b"}},
		{`{"type":"Punctuation","behavior":"Isolated"}`, "a,b!?", []string{"a", ",", "b", "!", "?"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithPrevious","invert":false}`, "a-b--c", []string{"a-", "b-", "-", "c"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithNext","invert":false}`, "a-b--c", []string{"a", "-b", "-", "-c"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"Contiguous","invert":false}`, "a-b--c", []string{"a", "-", "b", "--", "c"}},
		{`{"type":"Split","pattern":{"String":"-"},"behavior":"Removed","invert":false}`, "a-b--c", []string{"a", "b", "c"}},
		{`{"type":"Split","pattern":{"Regex":"\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false}`, "a   b  ", []string{"a", "  ", " ", "b", "  "}},
		{`{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}`, "a b", []string{"▁a▁b"}},
		{`{"type":"ByteLevel","add_prefix_space":true,"use_regex":true}`, "Hi there", []string{"ĠHi", "Ġthere"}},
	} {
		p, err := buildPreTokenizer(json.RawMessage(c.raw), "pre_tokenizer")
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		if got := pieces(p, c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s on %q: %q, want %q", c.raw, c.in, got, c.want)
		}
	}
}

func TestRegexTranslation(t *testing.T) {
	// \s must be Unicode-aware like Oniguruma's (Go's is ASCII only).
	rs, err := compileOnigPattern(`\s+|\S+`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	s := "a\u00a0\u3000b"
	for _, m := range rs.matches(s) {
		got = append(got, s[m[0]:m[1]])
	}
	if want := []string{"a", "\u00a0\u3000", "b"}; !slices.Equal(got, want) {
		t.Errorf("matches %q, want %q", got, want)
	}
	if _, err := compileOnigPattern(`a(?=b)`); err == nil || !strings.Contains(err.Error(), "look-around") {
		t.Errorf("look-ahead: %v", err)
	}
	// A long run crosses the matcher's window and must stay one match.
	long := strings.Repeat("x", 5000)
	if ms := rs.matches(long); len(ms) != 1 || ms[0] != [2]int{0, 5000} {
		t.Errorf("long word: %v", ms)
	}
}

func TestAddedTokenFlags(t *testing.T) {
	vocab := map[string]int{}
	for c := 32; c < 127; c++ {
		vocab[string(rune(c))] = c
	}
	tk := mustLoadJSON(t, map[string]any{
		"added_tokens": []map[string]any{
			{"id": 1, "content": "<mask>", "lstrip": true, "rstrip": true, "special": true},
			{"id": 2, "content": "cat", "single_word": true},
			{"id": 3, "content": "<m", "special": false},
		},
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
	})
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"a <mask> b", []int{'a', 1, 'b'}}, // lstrip/rstrip eat the spaces
		{"cat concat cats", []int{2, ' ', 'c', 'o', 'n', 'c', 'a', 't', ' ', 'c', 'a', 't', 's'}}, // single_word
		{"<mx<mask>", []int{3, 'x', 1}}, // leftmost-longest
	} {
		if got := tk.Encode(c.in, false); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := tk.Decode([]int{'a', 1, 'b'}, true); got != "a b" {
		t.Errorf("skip special: %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	okModel := map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{}}
	for _, c := range []struct {
		name  string
		files map[string]any
		want  []string
	}{
		{"missing", map[string]any{}, []string{"no tokenizer.json"}},
		{"malformed", map[string]any{"tokenizer.json": "{not json"}, []string{"tokenizer.json", "malformed JSON"}},
		{"unknown model", map[string]any{"tokenizer.json": map[string]any{"model": map[string]any{"type": "Magic"}}}, []string{"tokenizer.json", "model", `"Magic"`, "BPE"}},
		{"unknown pre", map[string]any{"tokenizer.json": map[string]any{"model": okModel, "pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{map[string]any{"type": "UnicodeScripts"}}}}},
			[]string{"tokenizer.json", "pre_tokenizer.pretokenizers[0]", `"UnicodeScripts"`}},
		{"unknown normalizer", map[string]any{"tokenizer.json": map[string]any{"model": okModel, "normalizer": map[string]any{"type": "Nope"}}}, []string{"normalizer", `"Nope"`}},
		{"unknown decoder", map[string]any{"tokenizer.json": map[string]any{"model": okModel, "decoder": map[string]any{"type": "CTC"}}}, []string{"decoder", `"CTC"`}},
		{"unknown post", map[string]any{"tokenizer.json": map[string]any{"model": okModel, "post_processor": map[string]any{"type": "X"}}}, []string{"post_processor", `"X"`}},
		{"bad merge", map[string]any{"tokenizer.json": map[string]any{"model": map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{"a b"}}}}, []string{"merges[0]", "not in model.vocab"}},
		{"bad regex", map[string]any{"tokenizer.json": map[string]any{"model": okModel, "pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": "(?<=a)b"}, "behavior": "Isolated"}}}, []string{"pre_tokenizer (Split)", "look-around"}},
		{"bad config", map[string]any{"tokenizer.json": map[string]any{"model": okModel}, "tokenizer_config.json": "{"}, []string{"tokenizer_config.json", "malformed"}},
		{"bad eos", map[string]any{"tokenizer.json": map[string]any{"model": okModel}, "generation_config.json": map[string]any{"eos_token_id": "x"}}, []string{"generation_config.json", "eos_token_id"}},
		{"bad template list", map[string]any{"tokenizer.json": map[string]any{"model": okModel}, "tokenizer_config.json": map[string]any{"chat_template": []any{map[string]any{"name": "x"}}}}, []string{"chat_template", "[0]"}},
	} {
		_, err := Load(writeDir(t, c.files))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

func TestEOSSet(t *testing.T) {
	base := map[string]any{
		"tokenizer.json": map[string]any{
			"added_tokens": []map[string]any{{"id": 5, "content": "</s>", "special": true}, {"id": 6, "content": "<eot>", "special": true}},
			"model":        map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{}},
		},
		"tokenizer_config.json": map[string]any{"eos_token": map[string]any{"content": "</s>"}},
	}
	tk, err := Load(writeDir(t, base))
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.EOSTokenIDs(); !slices.Equal(got, []int{5}) {
		t.Errorf("tokenizer eos: %v", got)
	}
	base["config.json"] = map[string]any{"eos_token_id": 7}
	base["generation_config.json"] = map[string]any{"eos_token_id": []int{6, 9}}
	tk, err = Load(writeDir(t, base))
	if err != nil {
		t.Fatal(err)
	}
	// generation_config's list replaces both config.json's and the tokenizer's.
	if got := tk.EOSTokenIDs(); !slices.Equal(got, []int{6, 9}) {
		t.Errorf("generation_config eos: %v", got)
	}
	if err := tk.AddEOSToken("</s>"); err != nil {
		t.Fatal(err)
	}
	if err := tk.AddEOSToken("12"); err != nil {
		t.Fatal(err)
	}
	if got := tk.EOSTokenIDs(); !slices.Equal(got, []int{5, 6, 9, 12}) || !tk.IsEOS(12) || tk.IsEOS(0) {
		t.Errorf("after AddEOSToken: %v", got)
	}
	if err := tk.AddEOSToken("<nope>"); err == nil {
		t.Error("unknown extra EOS token accepted")
	}
	delete(base, "generation_config.json")
	tk, _ = Load(writeDir(t, base))
	if got := tk.EOSTokenIDs(); !slices.Equal(got, []int{7}) {
		t.Errorf("config.json eos: %v", got)
	}
}

func TestChatTemplateSelectionAndErrors(t *testing.T) {
	model := map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{}}
	dir := writeDir(t, map[string]any{
		"tokenizer.json": map[string]any{"model": model},
		"tokenizer_config.json": map[string]any{"bos_token": "<s>", "chat_template": []any{
			map[string]any{"name": "default", "template": "D{{ bos_token }}{{ messages[0].content }}"},
			map[string]any{"name": "tool_use", "template": "T{{ tools[0].name }}"},
			map[string]any{"name": "rag", "template": "{{ raise_exception('no documents') }}"},
			map[string]any{"name": "date", "template": "{{ strftime_now('%d %b %Y %H:%M') }}|{{ enable_thinking }}"},
			map[string]any{"name": "bad", "template": "{% if %}"},
		}},
	})
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	msgs := json.RawMessage(`[{"role": "user", "content": "hi"}]`)
	render := func(o ChatOptions) (string, error) { return tk.ApplyChatTemplate(msgs, o) }
	if got, err := render(ChatOptions{}); err != nil || got != "D<s>hi" {
		t.Errorf("default: %q %v", got, err)
	}
	if got, err := render(ChatOptions{Tools: json.RawMessage(`[{"name": "f"}]`)}); err != nil || got != "Tf" {
		t.Errorf("tools pick tool_use: %q %v", got, err)
	}
	now := func() time.Time { return time.Date(2024, 7, 26, 9, 5, 0, 0, time.UTC) }
	if got, err := render(ChatOptions{TemplateName: "date", Now: now, Kwargs: map[string]json.RawMessage{"enable_thinking": json.RawMessage("false")}}); err != nil || got != "26 Jul 2024 09:05|False" {
		t.Errorf("strftime_now and kwargs: %q %v", got, err)
	}
	for _, c := range []struct {
		o    ChatOptions
		want string
	}{
		{ChatOptions{TemplateName: "rag"}, "no documents"},
		{ChatOptions{TemplateName: "bad"}, `chat_template["bad"]`},
		{ChatOptions{TemplateName: "missing"}, `no template named "missing"`},
		{ChatOptions{AddGenerationPrompt: true, ContinueFinalMessage: true}, "not compatible"},
	} {
		if _, err := render(c.o); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokenizer") {
			t.Errorf("%+v: error %v, want one mentioning %q", c.o, err, c.want)
		}
	}
	if _, err := tk.ApplyChatTemplate(json.RawMessage(`{"role": "user"}`), ChatOptions{}); err == nil {
		t.Error("messages that are not a list accepted")
	}
	noTmpl := mustLoadJSON(t, map[string]any{"model": model})
	if _, err := noTmpl.ApplyChatTemplate(msgs, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "no chat template") {
		t.Errorf("no template: %v", err)
	}
}

func TestTojsonIndentMatchesPython(t *testing.T) {
	// Expected strings are Python's json.dumps(x, indent=4, ensure_ascii=False).
	src := `{% for t in tools %}{{ t | tojson(indent=4) }}{% endfor %}|{{ tools[0]["function"] | tojson(indent=2) }}|{{ {"b": 1} | tojson }}`
	tools := json.RawMessage(`[{"type": "function", "function": {"name": "f", "description": "<Zürich> & \"q\"\n", "parameters": {"z": [], "a": {}, "n": [1, 2.5, 1.0, null, true]}}}]`)
	got, err := RenderChatTemplate(src, "test", json.RawMessage(`[]`), nil, ChatOptions{Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	want := `{
    "type": "function",
    "function": {
        "name": "f",
        "description": "<Zürich> & \"q\"\n",
        "parameters": {
            "z": [],
            "a": {},
            "n": [
                1,
                2.5,
                1.0,
                null,
                true
            ]
        }
    }
}|{
  "name": "f",
  "description": "<Zürich> & \"q\"\n",
  "parameters": {
    "z": [],
    "a": {},
    "n": [
      1,
      2.5,
      1.0,
      null,
      true
    ]
  }
}|{"b": 1}`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestContinueFinalMessage(t *testing.T) {
	src := "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>\n{% endfor %}"
	msgs := json.RawMessage(`[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Sure, "}]`)
	got, err := RenderChatTemplate(src, "test", msgs, nil, ChatOptions{ContinueFinalMessage: true})
	if err != nil || got != "<user>hi</user>\n<assistant>Sure," {
		t.Errorf("got %q, %v", got, err)
	}
	msgs = json.RawMessage(`[{"role": "assistant", "content": "gone"}]`)
	if _, err := RenderChatTemplate("x", "test", msgs, nil, ChatOptions{ContinueFinalMessage: true}); err == nil {
		t.Error("final message missing from the render accepted")
	}
}

func TestChatTemplateFiles(t *testing.T) {
	model := map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{}}
	dir := writeDir(t, map[string]any{
		"tokenizer.json":        map[string]any{"model": model},
		"tokenizer_config.json": map[string]any{"chat_template": "old"},
		"chat_template.jinja":   "new {{ messages | length }}\n",
	})
	if err := os.Mkdir(filepath.Join(dir, "additional_chat_templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "additional_chat_templates", "tool_use.jinja"), []byte("tools!"), 0o644)
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	msgs := json.RawMessage(`[{"role": "user", "content": "x"}]`)
	// chat_template.jinja wins over tokenizer_config.json; jinja2 drops the
	// trailing newline; a named template comes from additional_chat_templates.
	if got, err := tk.ApplyChatTemplate(msgs, ChatOptions{}); err != nil || got != "new 1" {
		t.Errorf("default: %q %v", got, err)
	}
	if got, err := tk.ApplyChatTemplate(msgs, ChatOptions{Tools: json.RawMessage(`[]`)}); err != nil || got != "tools!" {
		t.Errorf("tool_use: %q %v", got, err)
	}
	if !tk.HasChatTemplate() || tk.HasThinking() {
		t.Error("HasChatTemplate/HasThinking")
	}
}

func TestEncodePromptAndNaiveDetokenizer(t *testing.T) {
	tk := realTokenizer(t, "llama2")
	if got := tk.EncodePrompt("<s> hi"); got[0] != 1 || got[1] == 1 {
		t.Errorf("prompt starting with BOS got a second BOS: %v", got)
	}
	if got := tk.EncodePrompt("hi"); got[0] != 1 {
		t.Errorf("BOS missing: %v", got)
	}
	// The naive detokenizer on decoders it is the only choice for.
	vocab := [][]any{{"<unk>", 0.0}, {"▁", -1.0}, {"a", -1.0}, {"b", -2.0}, {"ab", -1.5}, {"▁ab", -1.0}}
	uni := mustLoadJSON(t, map[string]any{
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
		"decoder":       map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
		"model":         map[string]any{"type": "Unigram", "unk_id": 0, "vocab": vocab},
	})
	wp := mustLoadJSON(t, map[string]any{
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"decoder":       map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model":         map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "vocab": map[string]int{"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, ".": 4, "'": 5, "s": 6}},
	})
	for _, c := range []struct {
		tk   *Tokenizer
		text string
	}{{uni, "ab ba  ab b"}, {wp, "unaffable. un's unaff."}} {
		ids := c.tk.Encode(c.text, false)
		d := c.tk.NewDetokenizer()
		if _, ok := d.(*naiveDetok); !ok {
			t.Fatalf("%T, want the naive detokenizer", d)
		}
		if got, _ := streamAll(d, ids); got != c.tk.Decode(ids, false) {
			t.Errorf("streamed %q, full decode %q", got, c.tk.Decode(ids, false))
		}
	}
}

func TestMoreNormalizersAndDecoders(t *testing.T) {
	for _, c := range []struct{ raw, in, want string }{
		{`{"type":"Nmt"}`, "a\x01b\tc\u200bd", "ab c d"},
		{`{"type":"ByteLevel"}`, "a é", "aĠÃ©"},
		{`{"type":"Sequence","normalizers":[{"type":"NFKD"},{"type":"StripAccents"},{"type":"Lowercase"}]}`, "Ångström ﬁ", "angstrom fi"},
		{`{"type":"Strip","strip_left":true,"strip_right":false}`, " \t x ", "x "},
		{`{"type":"Replace","pattern":{"Regex":"\\s+"},"content":" "}`, "a \t\n b", "a b"},
		{`{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}`, "Héllo\x00中", "hello 中 "},
	} {
		n, err := buildNormalizer(json.RawMessage(c.raw), "normalizer")
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		if got := n.normalize(c.in); got != c.want {
			t.Errorf("%s(%q) = %q, want %q", c.raw, c.in, got, c.want)
		}
	}
	for _, c := range []struct {
		raw  string
		toks []string
		want string
	}{
		{`{"type":"Replace","pattern":{"Regex":"_+"},"content":" "}`, []string{"a__b", "_c"}, "a b c"},
		{`{"type":"Strip","content":" ","start":1,"stop":1}`, []string{" a ", "  b  "}, "a b "},
		{`{"type":"BPEDecoder","suffix":"</w>"}`, []string{"hel", "lo</w>", "world</w>"}, "hello world"},
		{`{"type":"Sequence","decoders":[{"type":"ByteFallback"},{"type":"Fuse"}]}`, []string{"<0xE4>", "<0xBD>", "<0xA0>", "x", "<0xE4>", "y"}, "你x\uFFFDy"},
	} {
		d, err := buildDecoder(json.RawMessage(c.raw), "decoder")
		if err != nil {
			t.Fatalf("%s: %v", c.raw, err)
		}
		if got := strings.Join(d.decodeChain(c.toks), ""); got != c.want {
			t.Errorf("%s(%q) = %q, want %q", c.raw, c.toks, got, c.want)
		}
	}
}

func TestCleanUpSpaces(t *testing.T) {
	// transformers' clean_up_tokenization applies its replacements in order.
	if got := CleanUpSpaces("Hi , I 'm here . Do n't ' quote ' ok ?"); got != "Hi, I'm here. Don't'quote'ok?" {
		t.Errorf("got %q", got)
	}
	if !realTokenizer(t, "llama3").CleanUpTokenizationSpaces() || realTokenizer(t, "qwen3").CleanUpTokenizationSpaces() {
		t.Error("clean_up_tokenization_spaces flag not read (llama3: true, qwen3: false)")
	}
}
