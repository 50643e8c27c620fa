package generate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/generate/gentest"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/sample"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

const fixture = "../../testdata/models/llama-f32"

func prompt(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = 4 + (i*37)%500
	}
	return p
}

func collect(t *testing.T, g *Generator) []Token {
	t.Helper()
	var out []Token
	for tok, err := range g.All() {
		if err != nil {
			t.Fatal(err)
		}
		tok.Logprobs = slices.Clone(tok.Logprobs) // valid until the next token
		out = append(out, tok)
	}
	return out
}

func ids(ts []Token) []int {
	out := make([]int, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// fullForwardLogits runs the whole sequence without a cache and returns the
// last position's logits.
func fullForwardLogits(t *testing.T, m model.Model, seq []int) []float32 {
	t.Helper()
	l := len(seq)
	logits := engine.SliceAxis(m.Forward(tokenArray(seq), nil), 1, l-1, l)
	x, err := logits.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestGreedyEqualsFullForwardArgmax(t *testing.T) {
	m := gentest.New(512, 16, 1)
	p := prompt(9)
	g, err := New(m, p, Options{MaxTokens: 12})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(collect(t, g))
	seq := slices.Clone(p)
	var want []int
	for range 12 {
		id := sample.Argmax(fullForwardLogits(t, m, seq))
		want = append(want, id)
		seq = append(seq, id)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("cached greedy %v, full-forward argmax %v", got, want)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(got)))) < 3 {
		t.Fatalf("degenerate continuation %v: the test would not notice cache mistakes", got)
	}
}

func TestPrefillChunkingEqualsUnchunked(t *testing.T) {
	m := gentest.New(512, 16, 2)
	p := prompt(11)
	var progress [][2]int
	g1, _ := New(m, p, Options{MaxTokens: 6})
	a := collect(t, g1)
	m.Calls = nil
	g2, _ := New(m, p, Options{MaxTokens: 6, PrefillStepSize: 4, PromptProgress: func(d, n int) { progress = append(progress, [2]int{d, n}) }})
	b := collect(t, g2)
	if want := []int{4, 4, 2, 1, 1, 1, 1, 1, 1}; !slices.Equal(m.Calls, want) {
		t.Errorf("forward call lengths %v, want %v", m.Calls, want)
	}
	if want := [][2]int{{0, 11}, {4, 11}, {8, 11}, {10, 11}}; !slices.Equal(progress, want) {
		t.Errorf("progress %v, want %v", progress, want)
	}
	if !slices.Equal(ids(a), ids(b)) {
		t.Fatalf("chunked %v != unchunked %v", ids(b), ids(a))
	}
	for i := range a {
		for j := range a[i].Logprobs {
			if d := math.Abs(float64(a[i].Logprobs[j] - b[i].Logprobs[j])); d > 1e-4 {
				t.Fatalf("step %d logprob %d differs by %g", i, j, d)
			}
		}
	}
}

func TestLogprobsAreNormalised(t *testing.T) {
	m := gentest.New(512, 16, 3)
	g, _ := New(m, prompt(5), Options{MaxTokens: 4})
	for i, tok := range collect(t, g) {
		var s float64
		for _, lp := range tok.Logprobs {
			s += math.Exp(float64(lp))
		}
		if math.Abs(s-1) > 1e-4 {
			t.Errorf("step %d: sum of exp(logprobs) = %g", i, s)
		}
		if sample.Argmax(tok.Logprobs) != tok.ID {
			t.Errorf("step %d: greedy token %d is not the argmax of its logprobs", i, tok.ID)
		}
	}
}

func TestProcessorsSeeRawLogitsAndHistory(t *testing.T) {
	m := gentest.New(512, 16, 4)
	p := prompt(6)
	plain, _ := New(m, p, Options{MaxTokens: 5})
	want := collect(t, plain)
	banned := want[1].ID

	var histories [][]int
	var firstRaw []float32
	proc := func(h []int, logits []float32) {
		histories = append(histories, slices.Clone(h))
		if firstRaw == nil {
			firstRaw = slices.Clone(logits)
		}
		logits[banned] = float32(math.Inf(-1))
	}
	shift := func(h []int, logits []float32) { // must not change logprobs
		for i := range logits {
			logits[i] += 100
		}
	}
	g, _ := New(m, p, Options{MaxTokens: 5, Processors: []sample.Processor{proc, shift}})
	got := collect(t, g)
	raw := fullForwardLogits(t, m, p)
	for i := range raw {
		if math.Abs(float64(raw[i]-firstRaw[i])) > 1e-4 {
			t.Fatalf("processor saw %g at %d, raw logit is %g (not raw logits?)", firstRaw[i], i, raw[i])
		}
	}
	for i, tok := range got {
		if tok.ID == banned {
			t.Fatalf("step %d produced the banned token", i)
		}
		wantH := append(slices.Clone(p), ids(got[:i])...)
		if !slices.Equal(histories[i], wantH) {
			t.Fatalf("step %d: processor history %v, want prompt+generated %v", i, histories[i], wantH)
		}
	}
	banOnly, _ := New(m, p, Options{MaxTokens: 1, Processors: []sample.Processor{func(h []int, l []float32) { l[banned] = float32(math.Inf(-1)) }}})
	ref := collect(t, banOnly)[0]
	for i := range ref.Logprobs {
		if d := math.Abs(float64(got[0].Logprobs[i] - ref.Logprobs[i])); d > 1e-3 {
			t.Fatalf("adding a constant to the logits changed logprob %d by %g (not normalised after the processors?)", i, d)
		}
	}
}

func TestSamplerChain(t *testing.T) {
	m := gentest.New(512, 16, 5)
	p := prompt(7)
	greedy, _ := New(m, p, Options{MaxTokens: 8})
	want := ids(collect(t, greedy))
	seed := uint64(9)
	s, err := sample.New(sample.Options{Temp: 1, TopK: 1, Seed: &seed})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := New(m, p, Options{MaxTokens: 8, Sampler: s})
	if got := ids(collect(t, g)); !slices.Equal(got, want) {
		t.Fatalf("top-k 1 at temp 1 gave %v, greedy %v", got, want)
	}
	run := func(seed uint64) []int {
		s, _ := sample.New(sample.Options{Temp: 5, Seed: &seed})
		g, _ := New(m, p, Options{MaxTokens: 8, Sampler: s})
		return ids(collect(t, g))
	}
	a, b := run(1), run(1)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different tokens: %v %v", a, b)
	}
	if slices.Equal(a, want) && slices.Equal(run(2), want) {
		t.Fatalf("temp 5 sampling always equals greedy: the sampler is not used")
	}
}

func TestMaxTokensAndCommit(t *testing.T) {
	m := gentest.New(512, 16, 6)
	p := prompt(5)
	g, _ := New(m, p, Options{MaxTokens: 3})
	got := collect(t, g)
	if len(got) != 3 {
		t.Fatalf("got %d tokens, want 3", len(got))
	}
	if _, err := g.Next(); err != io.EOF {
		t.Fatalf("Next after MaxTokens: %v, want io.EOF", err)
	}
	if off := g.Caches()[0].Offset(); off != len(p)+2 {
		t.Fatalf("cache offset %d before Commit, want %d", off, len(p)+2)
	}
	if err := g.Commit(); err != nil {
		t.Fatal(err)
	}
	if off := g.Caches()[0].Offset(); off != len(p)+3 {
		t.Fatalf("cache offset %d after Commit, want %d", off, len(p)+3)
	}
	if _, err := g.Next(); err == nil {
		t.Fatal("Next after Commit did not fail")
	}
	// A second turn on the same caches equals one run over the whole text.
	p2 := prompt(4)
	g2, _ := New(m, p2, Options{MaxTokens: 3, Caches: g.Caches()})
	cont := ids(collect(t, g2))
	whole := append(append(slices.Clone(p), ids(got)...), p2...)
	g3, _ := New(m, whole, Options{MaxTokens: 3})
	if want := ids(collect(t, g3)); !slices.Equal(cont, want) {
		t.Fatalf("continuing on committed caches gave %v, a fresh run over the whole text %v", cont, want)
	}
}

func TestBadPrompt(t *testing.T) {
	m := gentest.New(512, 16, 1)
	if _, err := New(m, nil, Options{}); err == nil {
		t.Error("empty prompt accepted")
	}
	if _, err := New(m, []int{5, 512}, Options{}); err == nil || !strings.Contains(err.Error(), "position 1") {
		t.Errorf("out-of-vocabulary token: %v", err)
	}
}

func TestSpeculativeEqualsPlainGreedy(t *testing.T) {
	m := gentest.New(512, 16, 7)
	p := prompt(10)
	for _, tc := range []struct {
		name  string
		draft *gentest.Model
		k     int
		procs bool
	}{
		{"same model", m.Perturbed(0, 1), 3, false},
		{"perturbed draft", m.Perturbed(0.3, 1), 3, false},
		{"unrelated draft", gentest.New(512, 16, 99), 2, false},
		{"perturbed with penalties", m.Perturbed(0.3, 2), 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var procs []sample.Processor
			if tc.procs {
				var err error
				procs, err = sample.NewProcessors(sample.ProcessorOptions{RepetitionPenalty: 1.5, PresencePenalty: 0.5})
				if err != nil {
					t.Fatal(err)
				}
			}
			plain, _ := New(m, p, Options{MaxTokens: 30, Processors: procs})
			want := collect(t, plain)
			g, err := New(m, p, Options{MaxTokens: 30, Draft: tc.draft, NumDraftTokens: tc.k, Processors: procs})
			if err != nil {
				t.Fatal(err)
			}
			got := collect(t, g)
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("speculative %v\nplain       %v", ids(got), ids(want))
			}
			accepted := 0
			for i := range got {
				if got[i].FromDraft {
					accepted++
				}
				for j := range got[i].Logprobs {
					if d := math.Abs(float64(got[i].Logprobs[j] - want[i].Logprobs[j])); d > 1e-3 {
						t.Fatalf("token %d: logprob %d differs by %g", i, j, d)
					}
				}
			}
			switch tc.name {
			case "same model":
				// Every round accepts all k drafts and adds the main model's token.
				want := 30/(tc.k+1)*tc.k + min(tc.k, 30%(tc.k+1))
				if accepted != want {
					t.Errorf("same model as draft: %d of 30 tokens from the draft, want %d", accepted, want)
				}
			case "perturbed draft", "perturbed with penalties":
				if accepted == 0 || accepted == 30 {
					t.Errorf("%d of 30 tokens from the draft: the test does not exercise both paths", accepted)
				}
			}
			// The main cache holds the prompt and the accepted tokens (the
			// last one too when the final round ended on a draft token).
			if off := g.Caches()[0].Offset(); off > len(p)+30 || off < len(p)+29 {
				t.Errorf("main cache offset %d after 30 tokens of a %d-token prompt", off, len(p))
			}
		})
	}
}

func TestSpeculativeNeedsTrimmableCaches(t *testing.T) {
	m := gentest.New(512, 16, 7)
	_, err := New(m, prompt(3), Options{Draft: m, Caches: []model.Cache{untrimmable{&gentest.Cache{}}}})
	if err == nil || !strings.Contains(err.Error(), "trimmable") {
		t.Fatalf("untrimmable cache: %v", err)
	}
}

type untrimmable struct{ *gentest.Cache }

func (untrimmable) Trimmable() bool { return false }

func loadTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type eosAt struct {
	TextTokenizer
	id int
}

func (e eosAt) IsEOS(id int) bool { return id == e.id }

func TestStream(t *testing.T) {
	tok := loadTokenizer(t)
	m := gentest.New(512, 16, 8)
	p := tok.Encode("Once upon a time", false)
	g, _ := New(m, p, Options{MaxTokens: 10})
	all := ids(collect(t, g))

	run := func(tt TextTokenizer, max int) (string, []Response) {
		g, _ := New(m, p, Options{MaxTokens: max})
		var text strings.Builder
		var rs []Response
		err := Stream(context.Background(), g, tt, func(r Response) error {
			text.WriteString(r.Text)
			rs = append(rs, r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return text.String(), rs
	}

	text, rs := run(tok, 10)
	last := rs[len(rs)-1]
	if last.FinishReason != FinishLength || last.GenerationTokens != 10 || last.PromptTokens != len(p) {
		t.Fatalf("last response %+v", last)
	}
	if want := tok.Decode(all, false); text != want {
		t.Fatalf("streamed %q, decode %q", text, want)
	}
	for _, r := range rs[:len(rs)-1] {
		if r.FinishReason != "" {
			t.Fatalf("finish reason %q before the end", r.FinishReason)
		}
	}
	if last.PromptTPS <= 0 || last.GenerationTPS <= 0 || last.PeakMemory < 0 {
		t.Fatalf("timing %+v", last)
	}

	// EOS: the first token not seen earlier in the continuation.
	k := 2
	for slices.Contains(all[:k], all[k]) {
		k++
	}
	text, rs = run(eosAt{tok, all[k]}, 10)
	last = rs[len(rs)-1]
	if last.FinishReason != FinishStop || last.GenerationTokens != k+1 || last.Token != all[k] {
		t.Fatalf("EOS at step %d: last response %+v", k, last)
	}
	if want := tok.Decode(all[:k], false); text != want {
		t.Fatalf("EOS stream text %q, want %q (EOS not decoded)", text, want)
	}

	// NoEOS never stops early.
	if _, rs = run(NoEOS{eosAt{tok, all[0]}}, 5); rs[len(rs)-1].GenerationTokens != 5 {
		t.Fatalf("NoEOS stopped after %d tokens", rs[len(rs)-1].GenerationTokens)
	}
}

func TestStreamInterrupted(t *testing.T) {
	tok := loadTokenizer(t)
	m := gentest.New(512, 16, 8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, _ := New(m, []int{10, 11, 12}, Options{MaxTokens: 100})
	var rs []Response
	err := Stream(ctx, g, NoEOS{tok}, func(r Response) error {
		rs = append(rs, r)
		if len(rs) == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if last := rs[len(rs)-1]; last.FinishReason != FinishInterrupted || last.GenerationTokens != 3 {
		t.Fatalf("last response %+v", last)
	}
}

func TestEncodePrompt(t *testing.T) {
	tok := loadTokenizer(t)
	dec := func(o PromptOptions) string {
		ids, err := EncodePrompt(tok, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Decode(ids, false)
	}
	for _, tc := range []struct {
		o    PromptOptions
		want string
	}{
		{PromptOptions{Prompt: "hi"}, "<|user|>hi\n<|assistant|>"},
		{PromptOptions{Prompt: "hi", SystemPrompt: "be brief"}, "<|system|>be brief\n<|user|>hi\n<|assistant|>"},
		{PromptOptions{Prompt: "hi", PrefillResponse: "Sure"}, "<|user|>hi\n<|assistant|>Sure"},
		{PromptOptions{Prompt: "hi", IgnoreChatTemplate: true}, "hi"},
		{PromptOptions{Prompt: "<s>hi", IgnoreChatTemplate: true}, "<s>hi"},
	} {
		if got := dec(tc.o); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.o, got, tc.want)
		}
	}
	ids, _ := EncodePrompt(tok, PromptOptions{Prompt: "<s>hi", IgnoreChatTemplate: true})
	if ids[0] != tok.BOSID() {
		t.Errorf("<s> not encoded as the BOS id: %v", ids)
	}
	turn, err := ChatTurn(tok, "", "hello")
	if err != nil || tok.Decode(turn, false) != "<|user|>hello\n<|assistant|>" {
		t.Errorf("chat turn %q %v", tok.Decode(turn, false), err)
	}
}

func TestGenerateBatchEqualsSingle(t *testing.T) {
	m := gentest.New(512, 16, 10)
	prompts := [][]int{prompt(9), prompt(9)[1:], append([]int{7}, prompt(8)...)}
	prompts[1] = append(prompts[1], 300)
	got, st, err := GenerateBatch(context.Background(), m, prompts, 6, 3, nil, model.CacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for r, p := range prompts {
		g, _ := New(m, p, Options{MaxTokens: 6})
		if want := ids(collect(t, g)); !slices.Equal(got[r], want) {
			t.Errorf("row %d: batch %v, single %v", r, got[r], want)
		}
	}
	if st.PromptTokens != 27 || st.GenerationTokens != 18 || st.PromptTPS <= 0 || st.GenerationTPS <= 0 {
		t.Errorf("stats %+v", st)
	}
	if _, _, err := GenerateBatch(context.Background(), m, [][]int{{1, 2}, {3}}, 2, 0, nil, model.CacheOptions{}); err == nil {
		t.Error("unequal prompt lengths accepted")
	}
}

// TestEnableThinkingDefault: like mlx_lm's TokenizerWrapper, templates get
// enable_thinking = whether the vocabulary has <think> and </think>, unless
// the caller sets it (--chat-template-config).
func TestEnableThinkingDefault(t *testing.T) {
	dir := t.TempDir()
	tj, err := os.ReadFile(filepath.Join(fixture, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	think := `"added_tokens": [{"id": 512, "content": "<think>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}, {"id": 513, "content": "</think>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}, `
	tj = bytes.Replace(tj, []byte(`"added_tokens": [`), []byte(think), 1)
	cfg := `{"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ messages[0]['content'] }}|{{ enable_thinking }}"}`
	for name, data := range map[string][]byte{"tokenizer.json": tj, "tokenizer_config.json": []byte(cfg)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kw   map[string]json.RawMessage
		want string
	}{
		{nil, "hi|True"},
		{map[string]json.RawMessage{"enable_thinking": json.RawMessage("false")}, "hi|False"},
	} {
		ids, err := EncodePrompt(tok, PromptOptions{Prompt: "hi", TemplateKwargs: tc.kw})
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Decode(ids, false); got != tc.want {
			t.Errorf("kwargs %s: %q, want %q", tc.kw, got, tc.want)
		}
	}
	plain := loadTokenizer(t)
	text, err := ApplyChatTemplate(plain, []tokenizer.Message{{Role: "user", Content: "x"}}, false, false, nil)
	if err != nil || text != "<|user|>x\n" {
		t.Errorf("fixture template %q %v", text, err)
	}
}

// TestLogitsRowReused checks that plain decoding reads each step's logits
// into the same row (no 600 KB allocation per token at a 150k vocabulary):
// consecutive tokens' Logprobs share their array, and each is still the
// normalised distribution its token was drawn from when it is returned.
func TestLogitsRowReused(t *testing.T) {
	m := gentest.New(512, 16, 6)
	g, _ := New(m, prompt(5), Options{MaxTokens: 3})
	var first *float32
	for i := range 3 {
		tok, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if sample.Argmax(tok.Logprobs) != tok.ID {
			t.Fatalf("token %d: greedy id %d is not the argmax of its logprobs", i, tok.ID)
		}
		if i == 0 {
			first = &tok.Logprobs[0]
		} else if &tok.Logprobs[0] != first {
			t.Fatalf("token %d: logits read into a new array", i)
		}
	}
}
