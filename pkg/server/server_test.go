package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

const fixture = "../../testdata/models/llama-f32"

var (
	loadOnce sync.Once
	fxModel  model.Model
	fxTok    *tokenizer.Tokenizer
	fxErr    error
)

func loadFixture(t *testing.T) (model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	loadOnce.Do(func() {
		fxModel, _, fxErr = model.Load(fixture)
		if fxErr == nil {
			fxTok, fxErr = tokenizer.Load(fixture)
		}
	})
	if fxErr != nil {
		t.Fatal(fxErr)
	}
	return fxModel, fxTok
}

// newTestServer serves the fixture with mlx_lm's server defaults; edit
// adjusts the options.
func newTestServer(t *testing.T, edit func(*Options)) *Server {
	t.Helper()
	m, tok := loadFixture(t)
	o := Options{Model: m, Tokenizer: tok, ModelID: "/models/llama", ModelAliases: []string{"llama"},
		MaxContext: 256, TopP: 1, MaxTokens: 512, NumDraftTokens: 3, SystemFingerprint: "fp-test",
		Now: func() time.Time { return time.Unix(1700000000, 0) }}
	if edit != nil {
		edit(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func post(t *testing.T, h http.Handler, path, body string) (int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(body)))
	return rec.Code, rec.Body.Bytes()
}

// greedy is what `generate --temp 0` prints for these prompt ids.
func greedy(t *testing.T, ids []int, maxTokens int) (string, []generate.Response) {
	t.Helper()
	m, tok := loadFixture(t)
	g, err := generate.New(m, ids, generate.Options{MaxTokens: maxTokens})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var steps []generate.Response
	if err := generate.Stream(context.Background(), g, tok, func(r generate.Response) error {
		text.WriteString(r.Text)
		r.Logprobs = append([]float32(nil), r.Logprobs...)
		steps = append(steps, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return text.String(), steps
}

func chatIDs(t *testing.T, prompt string) []int {
	t.Helper()
	_, tok := loadFixture(t)
	ids, err := generate.EncodePrompt(tok, generate.PromptOptions{Prompt: prompt})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func textIDs(t *testing.T, prompt string) []int {
	_, tok := loadFixture(t)
	return generate.EncodeRaw(tok, prompt)
}

type reply struct {
	ID                string `json:"id"`
	SystemFingerprint string `json:"system_fingerprint"`
	Object            string `json:"object"`
	Model             string `json:"model"`
	Created           int64  `json:"created"`
	Choices           []struct {
		Index        int     `json:"index"`
		FinishReason *string `json:"finish_reason"`
		Text         *string `json:"text"`
		Message      *struct {
			Role      string  `json:"role"`
			Content   *string `json:"content"`
			Reasoning string  `json:"reasoning"`
		} `json:"message"`
		Delta *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		Logprobs *struct {
			Content []struct {
				ID          int     `json:"id"`
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				TopLogprobs []struct {
					ID      int     `json:"id"`
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		TotalTokens         int `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

func postReply(t *testing.T, h http.Handler, path, body string) reply {
	t.Helper()
	code, b := post(t, h, path, body)
	return decodeReply(t, code, b)
}

func decodeReply(t *testing.T, code int, body []byte) reply {
	t.Helper()
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var r reply
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(r.Choices) != 1 {
		t.Fatalf("want 1 choice: %s", body)
	}
	return r
}

// text is a reply's text: message content, delta content or text.
func (r reply) text() string {
	c := r.Choices[0]
	switch {
	case c.Message != nil && c.Message.Content != nil:
		return *c.Message.Content
	case c.Delta != nil:
		return c.Delta.Content
	case c.Text != nil:
		return *c.Text
	}
	return ""
}

func (r reply) finish() string {
	if f := r.Choices[0].FinishReason; f != nil {
		return *f
	}
	return "<null>"
}

func TestChatCompletionEqualsGenerate(t *testing.T) {
	s := newTestServer(t, nil)
	ids := chatIDs(t, "Hello there")
	want, _ := greedy(t, ids, 12)
	r := postReply(t, s, "/v1/chat/completions", `{"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 12}`)
	if r.text() != want {
		t.Errorf("content %q, want generate's %q", r.text(), want)
	}
	if r.Object != "chat.completion" || !strings.HasPrefix(r.ID, "chatcmpl-") || len(r.ID) != len("chatcmpl-")+36 ||
		r.Model != "default_model" || r.SystemFingerprint != "fp-test" || r.Created != 1700000000 {
		t.Errorf("metadata: %+v", r)
	}
	c := r.Choices[0]
	if c.Message == nil || c.Message.Role != "assistant" || r.finish() != "length" {
		t.Errorf("choice: %+v, finish %s", c, r.finish())
	}
	u := r.Usage
	if u == nil || u.PromptTokens != len(ids) || u.CompletionTokens != 12 || u.TotalTokens != len(ids)+12 {
		t.Errorf("usage %+v, want %d prompt and 12 completion tokens", u, len(ids))
	}
	// /chat/completions is the same endpoint.
	r2 := postReply(t, s, "/chat/completions", `{"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 12, "model": "llama"}`)
	if r2.text() != want || r2.Model != "llama" {
		t.Errorf("/chat/completions: %q model %q", r2.text(), r2.Model)
	}
}

func TestTextCompletionEqualsGenerate(t *testing.T) {
	s := newTestServer(t, nil)
	ids := textIDs(t, "Once upon a time")
	want, _ := greedy(t, ids, 9)
	r := postReply(t, s, "/v1/completions", `{"prompt": "Once upon a time", "max_tokens": 9, "temperature": 0}`)
	if r.text() != want || r.Object != "text_completion" || !strings.HasPrefix(r.ID, "cmpl-") {
		t.Errorf("got %q (%s %s), want %q", r.text(), r.Object, r.ID, want)
	}
	if r.Usage.PromptTokens != len(ids) || r.Usage.CompletionTokens != 9 || r.finish() != "length" {
		t.Errorf("usage %+v finish %s", r.Usage, r.finish())
	}
	// Token ids work as a prompt too.
	b, _ := json.Marshal(map[string]any{"prompt": ids, "max_tokens": 9})
	if r := postReply(t, s, "/v1/completions", string(b)); r.text() != want {
		t.Errorf("prompt as ids: %q, want %q", r.text(), want)
	}
}

// stream posts a streaming request and returns the chunks and the raw body.
func stream(t *testing.T, h http.Handler, path, body string) ([]reply, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(body)))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	raw := rec.Body.String()
	var chunks []reply
	sc := bufio.NewScanner(strings.NewReader(raw))
	done := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, ": keepalive ") {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if done {
			t.Fatalf("data after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var r reply
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		chunks = append(chunks, r)
	}
	if !done {
		t.Fatalf("no data: [DONE] in\n%s", raw)
	}
	return chunks, raw
}

func TestStreamingReassembles(t *testing.T) {
	s := newTestServer(t, nil)
	for _, tc := range []struct{ path, body, object string }{
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10, "stream": %s, "stream_options": {"include_usage": true}}`, "chat.completion.chunk"},
		{"/v1/completions", `{"prompt": "Hi", "max_tokens": 10, "stream": %s}`, "text_completion"},
	} {
		full := postReply(t, s, tc.path, fmt.Sprintf(tc.body, "false"))
		chunks, raw := stream(t, s, tc.path, fmt.Sprintf(tc.body, "true"))
		var text strings.Builder
		var usage int
		for i, c := range chunks {
			if c.Object != tc.object || c.ID != chunks[0].ID {
				t.Errorf("%s chunk %d: object %q id %q", tc.path, i, c.Object, c.ID)
			}
			if c.Usage != nil {
				usage++
				if len(c.Choices) != 0 || c.Usage.CompletionTokens != 10 || c.Usage.PromptTokens != full.Usage.PromptTokens {
					t.Errorf("usage chunk %+v", c)
				}
				continue
			}
			if len(c.Choices) != 1 {
				t.Fatalf("chunk %d: %+v", i, c)
			}
			text.WriteString(c.text())
			last := i == len(chunks)-1 || chunks[i+1].Usage != nil
			if f := c.finish(); last != (f != "<null>") {
				t.Errorf("%s chunk %d: finish_reason %s", tc.path, i, f)
			}
			if d := c.Choices[0].Delta; tc.object == "chat.completion.chunk" && (d == nil || d.Role != "assistant") {
				t.Errorf("chunk %d delta %+v", i, d)
			}
		}
		if text.String() != full.text() {
			t.Errorf("%s: stream reassembles to %q, non-streamed %q\n%s", tc.path, text.String(), full.text(), raw)
		}
		if chunks[len(chunks)-1-usage].finish() != "length" {
			t.Errorf("%s: last finish_reason %s", tc.path, chunks[len(chunks)-1-usage].finish())
		}
		if wantUsage := strings.Contains(tc.body, "include_usage"); (usage == 1) != wantUsage {
			t.Errorf("%s: %d usage chunks", tc.path, usage)
		}
	}
}

func TestStopSequences(t *testing.T) {
	s := newTestServer(t, nil)
	ids := chatIDs(t, "Tell me")
	want, steps := greedy(t, ids, 20)
	// A stop word from the middle of the reply, two characters long.
	runes := []rune(want)
	stop := string(runes[6:8])
	cut := strings.Index(want, stop)
	// Tokens up to the one completing the stop word (the fixture's
	// tokenizer maps characters to tokens one to one).
	var n, length int
	for n = range steps {
		length += len(steps[n].Text)
		if length >= cut+len(stop) {
			break
		}
	}
	for _, body := range []string{
		`{"messages": [{"role": "user", "content": "Tell me"}], "max_tokens": 20, "stop": %q}`,
		`{"messages": [{"role": "user", "content": "Tell me"}], "max_tokens": 20, "stop": ["zzz-never", %q]}`,
	} {
		body = fmt.Sprintf(body, stop)
		r := postReply(t, s, "/v1/chat/completions", body)
		if r.text() != want[:cut] || r.finish() != "stop" {
			t.Errorf("stop %q: %q (finish %s), want %q", stop, r.text(), r.finish(), want[:cut])
		}
		if r.Usage.CompletionTokens != n+1 {
			t.Errorf("completion_tokens %d, want %d", r.Usage.CompletionTokens, n+1)
		}
		chunks, _ := stream(t, s, "/v1/chat/completions", strings.Replace(body, "{", `{"stream": true, `, 1))
		var text strings.Builder
		for _, c := range chunks {
			text.WriteString(c.text())
		}
		if text.String() != want[:cut] || chunks[len(chunks)-1].finish() != "stop" {
			t.Errorf("streamed with stop %q: %q, want %q", stop, text.String(), want[:cut])
		}
	}
}

func TestEOSAndMaxTokens(t *testing.T) {
	s := newTestServer(t, nil)
	_, tok := loadFixture(t)
	eos := tok.EOSTokenIDs()[0]
	// A logit bias makes EOS the first token: finish "stop", no content.
	r := postReply(t, s, "/v1/chat/completions", fmt.Sprintf(`{"messages": [{"role": "user", "content": "x"}], "logit_bias": {"%d": 1000}}`, eos))
	if r.finish() != "stop" || r.Choices[0].Message.Content != nil || r.Usage.CompletionTokens != 1 {
		t.Errorf("EOS first: finish %s, content %v, %d tokens", r.finish(), r.Choices[0].Message.Content, r.Usage.CompletionTokens)
	}
	// max_completion_tokens wins over max_tokens.
	r = postReply(t, s, "/v1/completions", `{"prompt": "ab", "max_tokens": 9, "max_completion_tokens": 3}`)
	if r.finish() != "length" || r.Usage.CompletionTokens != 3 {
		t.Errorf("max_completion_tokens 3: finish %s, %d tokens", r.finish(), r.Usage.CompletionTokens)
	}
	// The server's --max-tokens is the default.
	s = newTestServer(t, func(o *Options) { o.MaxTokens = 4 })
	r = postReply(t, s, "/v1/completions", `{"prompt": "ab"}`)
	if r.finish() != "length" || r.Usage.CompletionTokens != 4 {
		t.Errorf("default max tokens 4: finish %s, %d tokens", r.finish(), r.Usage.CompletionTokens)
	}
}

func TestLogprobs(t *testing.T) {
	s := newTestServer(t, nil)
	_, tok := loadFixture(t)
	_, steps := greedy(t, textIDs(t, "abc"), 5)
	r := postReply(t, s, "/v1/completions", `{"prompt": "abc", "max_tokens": 5, "logprobs": true, "top_logprobs": 3}`)
	lp := r.Choices[0].Logprobs
	if lp == nil || len(lp.Content) != 5 {
		t.Fatalf("logprobs %+v", lp)
	}
	for i, e := range lp.Content {
		st := steps[i]
		name, _ := tok.IDToToken(st.Token)
		if e.ID != st.Token || e.Token != name || float32(e.Logprob) != st.Logprobs[st.Token] {
			t.Errorf("token %d: %+v, want id %d %q logprob %g", i, e, st.Token, name, st.Logprobs[st.Token])
		}
		if len(e.TopLogprobs) != 3 || e.TopLogprobs[0].ID != st.Token {
			t.Fatalf("token %d top_logprobs %+v (greedy: the first is the chosen token)", i, e.TopLogprobs)
		}
		for j := 1; j < 3; j++ {
			if e.TopLogprobs[j].Logprob > e.TopLogprobs[j-1].Logprob {
				t.Errorf("token %d: top_logprobs not sorted: %+v", i, e.TopLogprobs)
			}
		}
	}
	// Without logprobs there is no logprobs member.
	code, body := post(t, s, "/v1/completions", `{"prompt": "abc", "max_tokens": 2}`)
	if code != 200 || bytes.Contains(body, []byte("logprobs")) {
		t.Errorf("logprobs not asked for: %s", body)
	}
}

func TestSamplingParameters(t *testing.T) {
	s := newTestServer(t, nil)
	body := `{"prompt": "abc", "max_tokens": 8, "temperature": 0.9, "top_p": 0.95, "top_k": 50, "min_p": 0.01, "seed": 7,
		"repetition_penalty": 1.3, "presence_penalty": 0.2, "frequency_penalty": 0.1, "xtc_probability": 0.1}`
	a := postReply(t, s, "/v1/completions", body)
	b := postReply(t, s, "/v1/completions", body)
	if a.text() != b.text() {
		t.Errorf("same seed, different text: %q vs %q", a.text(), b.text())
	}
	greedyText := postReply(t, s, "/v1/completions", `{"prompt": "abc", "max_tokens": 8}`).text()
	// A bias against the greedy first token changes the reply.
	_, steps := greedy(t, textIDs(t, "abc"), 1)
	biased := postReply(t, s, "/v1/completions", fmt.Sprintf(`{"prompt": "abc", "max_tokens": 8, "logit_bias": {"%d": -100}}`, steps[0].Token))
	if biased.text() == greedyText {
		t.Errorf("logit_bias had no effect: %q", biased.text())
	}
}

func TestBadRequests(t *testing.T) {
	s := newTestServer(t, nil)
	chat := func(extra string) string {
		return `{"messages": [{"role": "user", "content": "hi"}]` + extra + `}`
	}
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/chat/completions", `{"messages": [`, "Invalid JSON in request body"},
		{"/v1/chat/completions", `[1, 2]`, "Request should be a JSON dictionary"},
		{"/v1/chat/completions", `{}`, "Request did not contain messages"},
		{"/v1/completions", `{"max_tokens": 3}`, "Request did not contain a prompt"},
		{"/v1/completions", `{"prompt": 5}`, "prompt must be a string"},
		{"/v1/chat/completions", `{"messages": "hi"}`, "messages must be a list"},
		{"/v1/chat/completions", `{"messages": [{"content": "hi"}]}`, "messages[0].role must be a string"},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}`, "messages[0].content[0]: Only 'text' content type is supported."},
		{"/v1/chat/completions", `{"messages": [{"role": "user", "content": 3}]}`, "messages[0].content must be"},
		{"/v1/chat/completions", chat(`, "stream": "yes"`), "stream must be a boolean"},
		{"/v1/chat/completions", chat(`, "max_tokens": "10"`), "max_tokens must be an integer"},
		{"/v1/chat/completions", chat(`, "max_tokens": 1.5`), "max_tokens must be an integer"},
		{"/v1/chat/completions", chat(`, "max_tokens": -1`), "max_tokens must be at least 0"},
		{"/v1/chat/completions", chat(`, "max_completion_tokens": "x"`), "max_completion_tokens must be an integer"},
		{"/v1/chat/completions", chat(`, "temperature": "hot"`), "temperature must be a number"},
		{"/v1/chat/completions", chat(`, "temperature": -1`), "temperature must be at least 0"},
		{"/v1/chat/completions", chat(`, "top_p": 1.5`), "top_p must be at most 1"},
		{"/v1/chat/completions", chat(`, "top_k": -2`), "top_k must be at least 0"},
		{"/v1/chat/completions", chat(`, "min_p": true`), "min_p must be a number"},
		{"/v1/chat/completions", chat(`, "repetition_penalty": -1`), "repetition_penalty must be at least 0"},
		{"/v1/chat/completions", chat(`, "repetition_context_size": 2.5`), "repetition_context_size must be an integer"},
		{"/v1/chat/completions", chat(`, "presence_penalty": "a"`), "presence_penalty must be a number"},
		{"/v1/chat/completions", chat(`, "frequency_penalty": []`), "frequency_penalty must be a number"},
		{"/v1/chat/completions", chat(`, "logprobs": 1`), "logprobs must be a boolean"},
		{"/v1/chat/completions", chat(`, "top_logprobs": 12`), "top_logprobs must be at most 11"},
		{"/v1/chat/completions", chat(`, "seed": "1"`), "seed must be an integer"},
		{"/v1/chat/completions", chat(`, "logit_bias": {"a": 1}`), "logit_bias must be a dict of int to float"},
		{"/v1/chat/completions", chat(`, "logit_bias": [1]`), "logit_bias must be a dict of int to float"},
		{"/v1/chat/completions", chat(`, "stop": 3`), "stop must be a string or a list of strings"},
		{"/v1/chat/completions", chat(`, "stream_options": {"include_usage": "y"}`), "stream_options.include_usage must be a boolean"},
		{"/v1/chat/completions", chat(`, "tools": {}`), "tools must be a list"},
		{"/v1/chat/completions", chat(`, "chat_template_kwargs": 1`), "chat_template_kwargs must be an object"},
		{"/v1/chat/completions", chat(`, "xtc_threshold": 0.9`), "xtc_threshold must be at most 0.5"},
		{"/v1/chat/completions", chat(`, "num_draft_tokens": 0`), "num_draft_tokens must be at least 1"},
		{"/v1/completions", `{"prompt": [1, 99999]}`, "prompt[1]: token id 99999 is outside the vocabulary"},
		{"/v1/completions", `{"prompt": "` + strings.Repeat("a", 300) + `"}`, "more than the model's context of 256"},
	} {
		code, body := post(t, s, tc.path, tc.body)
		var e struct {
			Error string `json:"error"`
		}
		if code != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s: status %d body %s, want 400 with %q", tc.path, tc.body, code, body, tc.want)
		}
	}
	// Other models, adapters or draft models than the loaded ones: 404, as
	// mlx_lm answers a model it cannot load.
	for _, extra := range []string{`, "model": "other/model"`, `, "adapters": "other"`, `, "draft_model": "other"`} {
		if code, body := post(t, s, "/v1/chat/completions", chat(extra)); code != http.StatusNotFound || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("%s: status %d %s, want 404", extra, code, body)
		}
	}
}

func TestNullFieldsTakeDefaults(t *testing.T) {
	s := newTestServer(t, func(o *Options) { o.MaxTokens = 3 })
	r := postReply(t, s, "/v1/chat/completions", `{"messages": [{"role": "user", "content": null}], "max_tokens": null, "temperature": null, "stop": null, "tools": []}`)
	if r.Usage.CompletionTokens != 3 {
		t.Errorf("null max_tokens: %d tokens, want the default 3", r.Usage.CompletionTokens)
	}
}

func TestModelsHealthAndRoutes(t *testing.T) {
	s := newTestServer(t, nil)
	get := func(path string) (int, string, http.Header) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String(), rec.Header()
	}
	if code, body, _ := get("/health"); code != 200 || body != `{"status": "ok"}` {
		t.Errorf("/health: %d %s", code, body)
	}
	want := `{"data":[{"id":"/models/llama","object":"model","created":1700000000}],"object":"list"}`
	for _, p := range []string{"/v1/models", "/v1/models/llama", "/v1/models//models/llama"} {
		if code, body, h := get(p); code != 200 || body != want || h.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	if code, body, _ := get("/v1/models/other/repo"); code != 200 || body != `{"data":[],"object":"list"}` {
		t.Errorf("/v1/models/other/repo: %d %s", code, body)
	}
	if code, body, _ := get("/nope"); code != 404 || body != "Not Found" {
		t.Errorf("/nope: %d %s", code, body)
	}
	if code, _ := post(t, s, "/v1/embeddings", `{}`); code != 404 {
		t.Errorf("POST /v1/embeddings: %d", code)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("OPTIONS", "/v1/chat/completions", nil))
	if rec.Code != 204 || rec.Header().Get("Access-Control-Allow-Methods") != "*" {
		t.Errorf("OPTIONS: %d %v", rec.Code, rec.Header())
	}
	// Listed origins only.
	s = newTestServer(t, func(o *Options) { o.AllowedOrigins = []string{"http://a.example"} })
	for origin, allowed := range map[string]string{"http://a.example": "http://a.example", "http://b.example": ""} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/health", nil)
		req.Header.Set("Origin", origin)
		s.ServeHTTP(rec, req)
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != allowed {
			t.Errorf("origin %s: Access-Control-Allow-Origin %q, want %q", origin, got, allowed)
		}
	}
}

func TestChatMessagesAndTemplate(t *testing.T) {
	// A template that shows everything it is given.
	tmpl := `{% if tools %}TOOLS:{{ tools | tojson }}
{% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% if m.tool_calls %}{% for c in m.tool_calls %}[{{ c.function.name }} {{ c.function.arguments | tojson }}]{% endfor %}{% endif %}
{% endfor %}{% if flag %}FLAG={{ flag }}{% endif %}{% if add_generation_prompt %}<assistant>{% endif %}`
	s := newTestServer(t, func(o *Options) {
		o.ChatTemplate = tmpl
		o.ChatTemplateArgs = map[string]json.RawMessage{"flag": json.RawMessage(`"server"`)}
	})
	_, tok := loadFixture(t)
	body := `{"messages": [
		{"role": "system", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
		{"role": "user", "content": "hi"},
		{"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"b\": 1, \"a\": 2}"}}]},
		{"role": "tool", "content": "ok"}],
		"tools": [{"type": "function", "function": {"name": "f"}}],
		"chat_template_kwargs": {"flag": "request"}}`
	rq, err := parseRequest([]byte(body), true, &s.o)
	if err != nil {
		t.Fatal(err)
	}
	ids, _, err := encode(s.cur, rq, &s.o)
	if err != nil {
		t.Fatal(err)
	}
	// (transformers renders templates with trim_blocks: no newline after a tag)
	want := `TOOLS:[{"type": "function", "function": {"name": "f"}}]
<system>be brief<user>hi<assistant>[f {"b": 1, "a": 2}]<tool>okFLAG=request<assistant>`
	if got := tok.Decode(ids, false); got != want {
		t.Errorf("rendered prompt\n%s\nwant\n%s", got, want)
	}
}

func TestConvertChatWithoutTemplate(t *testing.T) {
	msgs := json.RawMessage(`[{"role": "system", "content": "rules"}, {"role": "user", "content": "hi"}]`)
	got, err := convertChat(msgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "ASSISTANT's RULE: rules\nUSER: hi\nASSISTANT:"; got != want {
		t.Errorf("convert_chat %q, want %q", got, want)
	}
	got, _ = convertChat(msgs, map[string]string{"user": "U:", "stop": "|", "assistant": "A: "})
	if want := "rules|U:hi|A:"; got != want {
		t.Errorf("with role_mapping %q, want %q", got, want)
	}
}

func TestSplitter(t *testing.T) {
	join := func(ps []piece) string {
		var sb strings.Builder
		for _, p := range ps {
			fmt.Fprintf(&sb, "%s:%s|", p.state, p.text)
		}
		return sb.String()
	}
	sp := newSplitter([]string{"STOP", "##"})
	var got strings.Builder
	for _, seg := range []string{"ab", "S", "T", "x#", "y", "ST", "O"} {
		ps, stopped := sp.step(seg)
		got.WriteString(join(ps))
		if stopped {
			t.Fatalf("stopped early at %q", seg)
		}
	}
	ps, stopped := sp.step("P tail")
	got.WriteString(join(ps))
	if !stopped || got.String() != "normal:ab|normal:STx|normal:#y|" {
		t.Errorf("pieces %q stopped %v", got.String(), stopped)
	}
	// Held-back text is flushed at the end.
	sp = newSplitter([]string{"STOP"})
	ps, _ = sp.step("abST")
	if join(ps) != "normal:ab|" || join(sp.flush()) != "normal:ST|" {
		t.Errorf("flush: %q", join(ps))
	}
	// Thinking: reasoning and content apart, markers removed.
	sp = newSplitter([]string{"END"})
	sp.addThinking()
	got.Reset()
	for _, seg := range []string{"<th", "ink>why", "</think>", "so", " E", "ND"} {
		ps, _ := sp.step(seg)
		got.WriteString(join(ps))
	}
	if got.String() != "reasoning:why|normal:so|normal: |" {
		t.Errorf("thinking pieces %q", got.String())
	}
}

func TestPromptCacheReuse(t *testing.T) {
	s := newTestServer(t, func(o *Options) { o.PromptCacheSize = 1 })
	body := `{"messages": [{"role": "user", "content": "The cache %s"}], "max_tokens": 6}`
	first := postReply(t, s, "/v1/chat/completions", fmt.Sprintf(body, "test"))
	if first.Usage.PromptTokensDetails.CachedTokens != 0 {
		t.Errorf("first request: cached_tokens %d", first.Usage.PromptTokensDetails.CachedTokens)
	}
	// Same prompt again: all but the last prompt token come from the cache.
	again := postReply(t, s, "/v1/chat/completions", fmt.Sprintf(body, "test"))
	if got := again.Usage.PromptTokensDetails.CachedTokens; got != again.Usage.PromptTokens-1 {
		t.Errorf("repeat: cached_tokens %d, want %d", got, again.Usage.PromptTokens-1)
	}
	if again.text() != first.text() {
		t.Errorf("repeat with cache: %q, want %q", again.text(), first.text())
	}
	// A different ending shares the prefix "<|user|>The cache ".
	other := postReply(t, s, "/v1/chat/completions", fmt.Sprintf(body, "other"))
	want, _ := greedy(t, chatIDs(t, "The cache other"), 6)
	if other.text() != want {
		t.Errorf("shared prefix: %q, want %q", other.text(), want)
	}
	if got := other.Usage.PromptTokensDetails.CachedTokens; got != len("<|user|>The cache ") {
		t.Errorf("shared prefix: cached_tokens %d, want %d", got, len("<|user|>The cache "))
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestClientDisconnectStopsGeneration(t *testing.T) {
	logs := &syncBuffer{}
	s := newTestServer(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	ts := httptest.NewServer(s)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/completions",
		strings.NewReader(`{"prompt": "a", "max_tokens": 100000, "stream": true, "logit_bias": {"2": -1000}}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	cancel()
	resp.Body.Close()
	// The generation stops and the next request is served.
	r, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "a", "max_tokens": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	decodeReply(t, r.StatusCode, b)
	if !strings.Contains(logs.String(), "client disconnected: generation stopped") {
		t.Errorf("no disconnect in the log:\n%s", logs.String())
	}
}

func TestConcurrentRequestsAreServed(t *testing.T) {
	s := newTestServer(t, nil)
	ts := httptest.NewServer(s)
	defer ts.Close()
	want := postReply(t, s, "/v1/completions", `{"prompt": "xyz", "max_tokens": 8}`).text()
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "xyz", "max_tokens": 8}`))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer r.Body.Close()
			var rep reply
			if json.NewDecoder(r.Body).Decode(&rep) != nil || len(rep.Choices) != 1 || rep.text() != want {
				errs <- fmt.Sprintf("status %d, text %q", r.StatusCode, rep.text())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent request: %s, want %q", e, want)
	}
}

func TestInferToolParser(t *testing.T) {
	for tmpl, want := range map[string]string{
		`{% for tool_call in message.tool_calls %}<tool_call>{"name": "{{ tool_call.name }}"}</tool_call>{% endfor %}`: "json_tools",
		`<tool_call>\n<function={{ name }}>`: "qwen3_coder",
		`[TOOL_CALLS]`:                       "mistral",
		`{{ messages }}`:                     "",
	} {
		if got := InferToolParser(tmpl); got != want {
			t.Errorf("InferToolParser(%q) = %q, want %q", tmpl, got, want)
		}
	}
	for _, name := range []string{"json_tools", "qwen3_coder", "mistral", "pythonic", "function_gemma", "gemma4", "kimi_k2", "minimax_m2", "longcat", "glm47"} {
		if !ToolParserSupported(name) {
			t.Errorf("%s is not parsed", name)
		}
	}
	if ToolParserSupported("") || ToolParserSupported("hermes") {
		t.Error("unknown formats are not parsed")
	}
}

// replyFor feeds text segments through a chat completion's text handling
// (a thinking model with json_tools tool calls) and returns the response
// body.
func replyFor(t *testing.T, stream bool, finish string, segments ...string) string {
	t.Helper()
	s := newTestServer(t, func(o *Options) { o.ToolParser = "json_tools" })
	rec := httptest.NewRecorder()
	c := &completion{s: s, lm: s.cur, rq: &request{chat: true, stream: stream}, w: rec, meta: completionResponse{ID: "chatcmpl-x", Object: "chat.completion"}}
	if stream {
		c.meta.Object = "chat.completion.chunk"
	}
	c.split = newSplitter(nil)
	c.split.addThinking()
	c.split.addTools(toolMarkers("json_tools"))
	for i, seg := range segments {
		if _, err := c.feed(seg, i == len(segments)-1); err != nil {
			t.Fatal(err)
		}
	}
	c.finishBy = finish
	c.finish()
	return rec.Body.String()
}

func TestToolCallsAndReasoning(t *testing.T) {
	got := replyFor(t, false, "stop", "<think>plan", "</think>Sure.", "<tool_", `call>{"name": "get", "arguments": {"city": "Paris", "n": 1.0}, "id": "abc"}</tool_call>`)
	want := `{"id":"chatcmpl-x","system_fingerprint":"","object":"chat.completion","model":"","created":0,"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"Sure.","reasoning":"plan","tool_calls":[{"function":{"name":"get","arguments":"{\"city\": \"Paris\", \"n\": 1.0}"},"type":"function","id":"abc"}]}}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":0}}}`
	if got != want {
		t.Errorf("non-streamed\n got %s\nwant %s", got, want)
	}
	// A call cut off by max_tokens is still parsed when complete JSON;
	// finish_reason stays "length".
	got = replyFor(t, false, "length", `<tool_call>{"name": "f", "arguments": {}}`)
	if !strings.Contains(got, `"finish_reason":"length"`) || !strings.Contains(got, `"arguments":"{}"`) || !strings.Contains(got, `"content":null`) {
		t.Errorf("truncated call: %s", got)
	}
	// A call that does not parse is dropped, as mlx_lm does (its finish
	// reason is still "tool_calls").
	got = replyFor(t, false, "stop", `Hi<tool_call>{"name": `)
	if !strings.Contains(got, `"content":"Hi"`) || strings.Contains(got, `"tool_calls":[`) || !strings.Contains(got, `"finish_reason":"tool_calls"`) {
		t.Errorf("broken call: %s", got)
	}

	// Streamed: reasoning and content in deltas, the call in its own chunk
	// with an index, nothing of the call's text as content.
	raw := replyFor(t, true, "stop", "<think>a", "b</think>x", `<tool_call>{"name": "g", "arguments": {"k": "v"}}</tool_call>`)
	var deltas []string
	for _, line := range strings.Split(raw, "\n\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var r struct {
			Choices []struct {
				FinishReason *string        `json:"finish_reason"`
				Delta        map[string]any `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatal(err)
		}
		d := r.Choices[0].Delta
		delete(d, "role")
		b, _ := json.Marshal(d)
		if f := r.Choices[0].FinishReason; f != nil {
			b = append(b, " finish="+*f...)
		}
		if calls, ok := d["tool_calls"].([]any); ok && len(calls) == 1 {
			b = bytes.Replace(b, []byte(fmt.Sprint(calls[0].(map[string]any)["id"])), []byte("ID"), 1)
		}
		deltas = append(deltas, string(b))
	}
	wantDeltas := []string{`{"reasoning":"a"}`, `{"content":"x","reasoning":"b"}`,
		`{"tool_calls":[{"function":{"arguments":"{\"k\": \"v\"}","name":"g"},"id":"ID","index":0,"type":"function"}]}`, `{} finish=tool_calls`}
	if strings.Join(deltas, "\n") != strings.Join(wantDeltas, "\n") {
		t.Errorf("stream deltas\n%s\nwant\n%s", strings.Join(deltas, "\n"), strings.Join(wantDeltas, "\n"))
	}
}

func TestModelSwitching(t *testing.T) {
	var loads []ModelKey
	load := func(_ context.Context, k ModelKey) (*Loaded, error) {
		loads = append(loads, k)
		if k.Model == "" {
			return nil, fmt.Errorf("no model given")
		}
		dir := "../../testdata/models/" + k.Model
		m, _, err := model.Load(dir)
		if err != nil {
			return nil, err
		}
		tok, err := tokenizer.Load(dir)
		if err != nil {
			return nil, err
		}
		return &Loaded{Model: m, Tokenizer: tok}, nil
	}
	// Started without a model, as mlx_lm.server without --model.
	m, tok := loadFixture(t)
	s, err := New(Options{Load: load, ListModels: func() []string { return []string{"qwen2-f32", "llama-f32"} }, TopP: 1, MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post(t, s, "/v1/completions", `{"prompt": "hi"}`); code != 404 || !strings.Contains(string(body), "no model given") {
		t.Errorf("no model: %d %s", code, body)
	}
	ask := func(name string) string {
		r := postReply(t, s, "/v1/completions", `{"prompt": "hi", "model": "`+name+`"}`)
		if r.Model != name {
			t.Errorf("model %q in the reply, want %q", r.Model, name)
		}
		return r.text()
	}
	ids := generate.EncodeRaw(tok, "hi")
	g, err := generate.New(m, ids, generate.Options{MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	generate.Stream(context.Background(), g, tok, func(r generate.Response) error { want.WriteString(r.Text); return nil })
	if got := ask("llama-f32"); got != want.String() {
		t.Errorf("llama-f32: %q, want %q", got, want.String())
	}
	ask("llama-f32")
	ask("qwen2-f32")
	if got := ask("llama-f32"); got != want.String() {
		t.Errorf("llama-f32 again: %q, want %q", got, want.String())
	}
	// A model that does not load leaves the loaded one in place.
	if code, body := post(t, s, "/v1/completions", `{"prompt": "hi", "model": "no-such-model"}`); code != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("missing model: %d %s", code, body)
	}
	ask("llama-f32")
	wantLoads := []ModelKey{{}, {Model: "llama-f32"}, {Model: "qwen2-f32"}, {Model: "llama-f32"}, {Model: "no-such-model"}}
	if fmt.Sprint(loads) != fmt.Sprint(wantLoads) {
		t.Errorf("loads %v, want %v (a model is loaded when a request names another)", loads, wantLoads)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/models", nil))
	if !strings.Contains(rec.Body.String(), `"id":"qwen2-f32"`) || !strings.Contains(rec.Body.String(), `"id":"llama-f32"`) {
		t.Errorf("/v1/models: %s", rec.Body.String())
	}
}

func TestPromptCacheLRU(t *testing.T) {
	// Two conversations take turns: with room for two caches each finds
	// its own; with one, each finds only the other's.
	cached := func(size int) []int {
		s := newTestServer(t, func(o *Options) { o.PromptCacheSize = size })
		var got []int
		texts := map[string]string{}
		for _, who := range []string{"alpha", "omega", "alpha", "omega"} {
			r := postReply(t, s, "/v1/chat/completions", `{"messages": [{"role": "user", "content": "I am `+who+`, hello"}], "max_tokens": 8}`)
			got = append(got, r.Usage.PromptTokensDetails.CachedTokens)
			// A cache continued by another conversation is a copy: the
			// reply from the kept one is unchanged.
			if want, ok := texts[who]; ok && r.text() != want {
				t.Errorf("size %d: %s's reply from the cache %q, want %q", size, who, r.text(), want)
			}
			texts[who] = r.text()
		}
		return got
	}
	shared := len("<|user|>I am ")
	full := len("<|user|>I am alpha, hello\n<|assistant|>") - 1
	if got, want := cached(2), []int{0, shared, full, full}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("size 2: cached_tokens %v, want %v", got, want)
	}
	if got, want := cached(1), []int{0, shared, shared, shared}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("size 1: cached_tokens %v, want %v", got, want)
	}
	if got, want := cached(0), []int{0, 0, 0, 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("size 0: cached_tokens %v, want %v", got, want)
	}
	// A byte bound smaller than one cache keeps none.
	s := newTestServer(t, func(o *Options) { o.PromptCacheSize = 10; o.PromptCacheBytes = 1 })
	for range 2 {
		r := postReply(t, s, "/v1/chat/completions", `{"messages": [{"role": "user", "content": "bytes"}], "max_tokens": 3}`)
		if r.Usage.PromptTokensDetails.CachedTokens != 0 {
			t.Errorf("1-byte bound: cached_tokens %d", r.Usage.PromptTokensDetails.CachedTokens)
		}
	}
}

func TestSpeculativeDecoding(t *testing.T) {
	m, _ := loadFixture(t)
	// The model as its own draft: every draft token is accepted and the
	// greedy text is unchanged.
	s := newTestServer(t, func(o *Options) { o.Draft, o.DraftID = m, "self"; o.PromptCacheSize = 10 })
	want, _ := greedy(t, chatIDs(t, "draft"), 10)
	for _, body := range []string{
		`{"messages": [{"role": "user", "content": "draft"}], "max_tokens": 10}`,
		`{"messages": [{"role": "user", "content": "draft"}], "max_tokens": 10, "num_draft_tokens": 4, "draft_model": "self"}`,
	} {
		r := postReply(t, s, "/v1/chat/completions", body)
		if r.text() != want || r.Usage.CompletionTokens != 10 || r.Usage.PromptTokensDetails.CachedTokens != 0 {
			t.Errorf("%s: %q (%+v), want %q", body, r.text(), r.Usage, want)
		}
	}
}
