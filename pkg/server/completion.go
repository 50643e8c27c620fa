package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/sample"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// maxBody bounds a request body.
const maxBody = 64 << 20

// Response shapes, with mlx_lm's member order.
type completionResponse struct {
	ID                string   `json:"id"`
	SystemFingerprint string   `json:"system_fingerprint"`
	Object            string   `json:"object"`
	Model             string   `json:"model"`
	Created           int64    `json:"created"`
	Choices           []choice `json:"choices"`
	Usage             *usage   `json:"usage,omitempty"`
}

type choice struct {
	Index        int          `json:"index"`
	FinishReason *string      `json:"finish_reason"`
	Logprobs     *logprobList `json:"logprobs,omitempty"`
	Message      *message     `json:"message,omitempty"`
	Delta        *delta       `json:"delta,omitempty"`
	Text         *string      `json:"text,omitempty"`
}

// message is a non-streamed chat reply: content is null when empty.
type message struct {
	Role      string            `json:"role"`
	Content   *string           `json:"content"`
	Reasoning string            `json:"reasoning,omitempty"`
	ToolCalls []json.RawMessage `json:"tool_calls,omitempty"`
}

// delta is a streamed chat chunk: content is left out when empty.
type delta struct {
	Role      string            `json:"role"`
	Content   string            `json:"content,omitempty"`
	Reasoning string            `json:"reasoning,omitempty"`
	ToolCalls []json.RawMessage `json:"tool_calls,omitempty"`
}

type usage struct {
	PromptTokens        int            `json:"prompt_tokens"`
	CompletionTokens    int            `json:"completion_tokens"`
	TotalTokens         int            `json:"total_tokens"`
	PromptTokensDetails *promptDetails `json:"prompt_tokens_details,omitempty"`
}

type promptDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type logprobList struct {
	Content []tokenLogprob `json:"content"`
}

type tokenLogprob struct {
	ID          int          `json:"id"`
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type topLogprob struct {
	ID      int     `json:"id"`
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
}

// errStopWord ends a stream when a stop sequence was generated.
var errStopWord = errors.New("stop sequence")

// errClientGone ends a stream whose client went away.
var errClientGone = errors.New("client disconnected")

func (s *Server) handleCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("reading the request body: %v", err))
		return
	}
	rq, err := parseRequest(body, chat, &s.o)
	if err != nil {
		s.log.Warn("bad request", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// One generation at a time; a client that leaves while waiting is
	// dropped.
	ctx := r.Context()
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.busy }()

	lm, err := s.use(ctx, s.keyFor(rq))
	if err != nil {
		// mlx_lm answers a model it cannot load with a 404.
		s.log.Error("loading the model failed", "error", err)
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	prompt, reasoning, err := encode(lm, rq, &s.o)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(prompt) == 0 {
		writeError(w, http.StatusBadRequest, "the prompt is empty: it encodes to no tokens")
		return
	}
	if lm.MaxContext > 0 && len(prompt) > lm.MaxContext {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the prompt has %d tokens, more than the model's context of %d (max_position_embeddings)", len(prompt), lm.MaxContext))
		return
	}
	sampler, procs, err := samplers(lm, rq)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	c := &completion{
		s: s, lm: lm, rq: rq, w: w, prompt: prompt,
		meta: completionResponse{
			SystemFingerprint: s.o.SystemFingerprint,
			Model:             rq.model,
			Created:           s.o.Now().Unix(),
		},
	}
	switch {
	case !chat:
		c.meta.ID, c.meta.Object = "cmpl-"+uuid4(), "text_completion"
	case rq.stream:
		c.meta.ID, c.meta.Object = "chatcmpl-"+uuid4(), "chat.completion.chunk"
	default:
		c.meta.ID, c.meta.Object = "chatcmpl-"+uuid4(), "chat.completion"
	}
	c.split = newSplitter(rq.stop)
	if chat && lm.Tokenizer.HasThinking() {
		c.split.addThinking()
		if reasoning {
			c.split.state = stateReasoning
		}
	}
	if chat && ToolParserSupported(lm.ToolParser) {
		c.split.addTools(toolMarkers(lm.ToolParser))
	}
	if rq.stream {
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		c.flush()
	}
	if err := c.run(ctx, sampler, procs); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, errClientGone) {
			s.log.Info("client disconnected: generation stopped", "id", c.meta.ID, "tokens", len(c.tokens))
			return
		}
		s.log.Error("generation failed", "id", c.meta.ID, "error", err)
		if !rq.stream {
			writeError(w, http.StatusInternalServerError, err.Error())
		}
		return
	}
	c.finish()
}

// encode turns the request into prompt tokens as mlx_lm's _tokenize does,
// and reports whether the prompt ends inside an unfinished <think> block.
func encode(lm *Loaded, rq *request, o *Options) ([]int, bool, error) {
	tok := lm.Tokenizer
	if !rq.chat {
		if rq.promptIDs != nil {
			for i, id := range rq.promptIDs {
				if id < 0 || id >= tok.VocabSize() {
					return nil, false, badf("prompt[%d]: token id %d is outside the vocabulary of %d", i, id, tok.VocabSize())
				}
			}
			return rq.promptIDs, false, nil
		}
		return generate.EncodeRaw(tok, rq.prompt), false, nil
	}
	if !tok.HasChatTemplate() && o.ChatTemplate == "" {
		text, err := convertChat(rq.messages, rq.roleMapping)
		if err != nil {
			return nil, false, err
		}
		return generate.EncodeRaw(tok, text), false, nil
	}
	kw := map[string]json.RawMessage{}
	for k, v := range o.ChatTemplateArgs {
		kw[k] = v
	}
	for k, v := range rq.templateKwargs {
		kw[k] = v
	}
	if _, ok := kw["enable_thinking"]; !ok {
		kw["enable_thinking"] = json.RawMessage(fmt.Sprint(tok.HasThinking()))
	}
	text, err := tok.ApplyChatTemplate(rq.messages, tokenizer.ChatOptions{
		Tools:               rq.tools,
		AddGenerationPrompt: true,
		Template:            o.ChatTemplate,
		Kwargs:              kw,
	})
	if err != nil {
		return nil, false, badf("applying the chat template to messages: %v", err)
	}
	ids := tok.Encode(text, false)
	reasoning := false
	if tok.HasThinking() {
		start, _ := tok.TokenToID("<think>")
		end, _ := tok.TokenToID("</think>")
		reasoning = lastIndex(ids, start) > lastIndex(ids, end)
	}
	return ids, reasoning, nil
}

func lastIndex(ids []int, id int) int {
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i] == id {
			return i
		}
	}
	return -1
}

// convertChat is mlx_lm's prompt for a tokenizer without a chat template:
// each message as <role prefix><content><stop>, then the assistant prefix.
func convertChat(messages json.RawMessage, roleMapping map[string]string) (string, error) {
	if roleMapping == nil {
		roleMapping = map[string]string{
			"system_prompt": "A chat between a curious user and an artificial intelligence assistant. The assistant follows the given rules no matter what.",
			"system":        "ASSISTANT's RULE: ",
			"user":          "USER: ",
			"assistant":     "ASSISTANT: ",
			"stop":          "\n",
		}
	}
	var msgs []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	if err := json.Unmarshal(messages, &msgs); err != nil {
		return "", badf("messages: %v", err)
	}
	var sb strings.Builder
	for _, m := range msgs {
		sb.WriteString(roleMapping[m.Role])
		sb.WriteString(m.Content)
		sb.WriteString(roleMapping["stop"])
	}
	sb.WriteString(roleMapping["assistant"])
	return strings.TrimRightFunc(sb.String(), isPySpace), nil
}

// isPySpace is Python's str.isspace for rstrip().
func isPySpace(r rune) bool {
	return strings.ContainsRune(" \t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000", r)
}

// samplers builds the request's sampler and logits processors as mlx_lm's
// _make_sampler and _make_logits_processors do.
func samplers(lm *Loaded, rq *request) (*sample.Sampler, []sample.Processor, error) {
	tok := lm.Tokenizer
	sampler, err := sample.New(sample.Options{
		Temp: rq.temp, TopP: rq.topP, MinP: rq.minP, TopK: rq.topK, MinTokensToKeep: 1,
		XTCProbability: rq.xtcProbability, XTCThreshold: rq.xtcThresh,
		XTCSpecialTokens: append(tok.Encode("\n", false), tok.EOSTokenIDs()...),
		Seed:             rq.seed,
	})
	if err != nil {
		return nil, nil, badf("%v", err)
	}
	procs, err := sample.NewProcessors(sample.ProcessorOptions{
		LogitBias:         rq.logitBias,
		RepetitionPenalty: rq.repetitionPenalty, RepetitionContextSize: rq.repetitionContext,
		PresencePenalty: rq.presencePenalty, PresenceContextSize: rq.presenceContext,
		FrequencyPenalty: rq.frequencyPenalty, FrequencyContextSize: rq.frequencyContext,
	})
	if err != nil {
		return nil, nil, badf("%v", err)
	}
	return sampler, procs, nil
}

// completion is one request being generated.
type completion struct {
	s      *Server
	lm     *Loaded
	rq     *request
	w      http.ResponseWriter
	meta   completionResponse
	prompt []int
	split  *splitter

	cached    int // prompt tokens found in the prompt cache
	tokens    []int
	logprobs  []tokenLogprob
	content   strings.Builder
	reasoning strings.Builder
	toolText  strings.Builder // the tool call being generated
	toolCalls []json.RawMessage
	madeCall  bool
	toolIndex int
	// tools is the request's tools as pyjson values, for the parsers that
	// read argument types from them (decoded on the first tool call).
	tools        any
	toolsDecoded bool
	finishBy     string
	writeErr     error
}

func (c *completion) flush() {
	if f, ok := c.w.(http.Flusher); ok {
		f.Flush()
	}
}

// run generates the reply, streaming it or collecting it.
func (c *completion) run(ctx context.Context, sampler *sample.Sampler, procs []sample.Processor) error {
	s, rq := c.s, c.rq
	s.mu.Lock()
	defer s.mu.Unlock()
	caches, rest := s.takeCache(c.lm, c.prompt)
	c.cached = len(c.prompt) - len(rest)
	opts := generate.Options{
		MaxTokens: rq.maxTokens, Sampler: sampler, Processors: procs,
		PrefillStepSize: s.o.PrefillStepSize, Caches: caches,
		PromptProgress: func(done, total int) {
			s.log.Info(fmt.Sprintf("Prompt processing progress: %d/%d", done, total))
			if rq.stream && c.writeErr == nil {
				_, c.writeErr = fmt.Fprintf(c.w, ": keepalive %d/%d\n\n", done, total)
				c.flush()
			}
		},
	}
	if c.lm.Draft != nil {
		opts.Draft, opts.NumDraftTokens = c.lm.Draft, rq.numDraft
	}
	g, err := generate.New(c.lm.Model, rest, opts)
	if err != nil {
		return err
	}
	start := time.Now()
	var last generate.Response
	err = generate.Stream(ctx, g, c.lm.Tokenizer, func(r generate.Response) error {
		last = r
		if r.Token >= 0 && r.GenerationTokens > len(c.tokens) {
			c.tokens = append(c.tokens, r.Token)
			if rq.logprobs || rq.topLogprobs > 0 {
				c.logprobs = append(c.logprobs, c.tokenLogprob(r.Token, r.Logprobs))
			}
		}
		stopped, err := c.feed(r.Text, r.FinishReason != "")
		if err != nil {
			return err
		}
		if stopped {
			return errStopWord
		}
		c.finishBy = r.FinishReason
		return nil
	})
	if errors.Is(err, errStopWord) {
		err, c.finishBy = nil, generate.FinishStop
	}
	// Keep the caches for the next request unless generation failed.
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, errClientGone) {
		s.keepCache(c.lm, append(append([]int(nil), c.prompt...), c.tokens...), g.Caches())
	}
	if err != nil {
		return err
	}
	if c.finishBy == generate.FinishInterrupted {
		return context.Canceled
	}
	s.log.Info("completion", "id", c.meta.ID, "prompt_tokens", len(c.prompt), "cached_tokens", c.cached,
		"completion_tokens", len(c.tokens), "finish_reason", c.finishBy,
		"prompt_tps", fmt.Sprintf("%.3f", last.PromptTPS), "generation_tps", fmt.Sprintf("%.3f", last.GenerationTPS),
		"seconds", fmt.Sprintf("%.3f", time.Since(start).Seconds()))
	return nil
}

// feed takes the next text segment (final: the reply ends with it) and
// reports whether a stop sequence ended the reply.
func (c *completion) feed(text string, final bool) (bool, error) {
	pieces, stopped := c.split.step(text)
	if final && !stopped {
		pieces = append(pieces, c.split.flush()...)
	}
	return stopped, c.emit(pieces, stopped || final)
}

// emit sends text pieces as stream chunks, or collects them; last says
// the reply ends with them.
func (c *completion) emit(pieces []piece, last bool) error {
	var content, reasoning strings.Builder
	var calls []string
	for _, p := range pieces {
		switch p.state {
		case stateReasoning:
			reasoning.WriteString(p.text)
		case stateTool:
			c.toolText.WriteString(p.text)
		case toolEnd:
			calls = append(calls, c.toolText.String())
			c.toolText.Reset()
		default:
			content.WriteString(p.text)
		}
	}
	if last && c.toolText.Len() > 0 {
		calls = append(calls, c.toolText.String())
		c.toolText.Reset()
	}
	formatted := c.formatToolCalls(calls)
	// As mlx_lm's made_tool_call: a finished tool text counts, parsed or not.
	c.madeCall = c.madeCall || len(calls) > 0
	if !c.rq.stream {
		c.content.WriteString(content.String())
		c.reasoning.WriteString(reasoning.String())
		c.toolCalls = append(c.toolCalls, formatted...)
		return nil
	}
	if content.Len() == 0 && reasoning.Len() == 0 && len(formatted) == 0 {
		return nil
	}
	r := c.response(nil, content.String(), reasoning.String())
	if len(formatted) > 0 {
		r.Choices[0].Delta.ToolCalls = formatted
	}
	return c.send(r)
}

// send writes one server-sent event.
func (c *completion) send(v any) error {
	if c.writeErr != nil {
		return errClientGone
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c.w, "data: %s\n\n", b); err != nil {
		c.writeErr = err
		return errClientGone
	}
	c.flush()
	return nil
}

// response builds a completion object (a stream chunk when finish is nil
// or the request streams).
func (c *completion) response(finish *string, content, reasoning string) *completionResponse {
	r := c.meta
	ch := choice{FinishReason: finish}
	switch {
	case !c.rq.chat:
		ch.Text = &content
	case c.rq.stream:
		ch.Delta = &delta{Role: "assistant", Content: content, Reasoning: reasoning}
	default:
		m := &message{Role: "assistant", Reasoning: reasoning}
		if content != "" {
			m.Content = &content
		}
		ch.Message = m
	}
	r.Choices = []choice{ch}
	return &r
}

func (c *completion) usage() *usage {
	return &usage{
		PromptTokens:        len(c.prompt),
		CompletionTokens:    len(c.tokens),
		TotalTokens:         len(c.prompt) + len(c.tokens),
		PromptTokensDetails: &promptDetails{CachedTokens: c.cached},
	}
}

// finish sends the last chunk, usage and [DONE], or the whole response.
func (c *completion) finish() {
	reason := c.finishBy
	if reason == "" {
		reason = generate.FinishStop
	}
	if reason == generate.FinishStop && c.madeCall {
		reason = "tool_calls"
	}
	if c.rq.stream {
		if c.send(c.response(&reason, "", "")) != nil {
			return
		}
		if c.rq.includeUsage {
			u := c.meta
			u.Choices = []choice{}
			u.Usage = c.usage()
			if c.send(u) != nil {
				return
			}
		}
		if _, err := fmt.Fprint(c.w, "data: [DONE]\n\n"); err == nil {
			c.flush()
		}
		return
	}
	r := c.response(&reason, c.content.String(), c.reasoning.String())
	if len(c.toolCalls) > 0 {
		r.Choices[0].Message.ToolCalls = c.toolCalls
	}
	if c.logprobs != nil {
		r.Choices[0].Logprobs = &logprobList{Content: c.logprobs}
	}
	r.Usage = c.usage()
	writeJSON(c.w, http.StatusOK, r)
}

// tokenLogprob is the sampled token's log-probability and, with
// top_logprobs > 0, the most likely tokens', highest first.
func (c *completion) tokenLogprob(id int, lp []float32) tokenLogprob {
	tok := c.lm.Tokenizer
	text := func(id int) string {
		s, _ := tok.IDToToken(id)
		return s
	}
	e := tokenLogprob{ID: id, Token: text(id), TopLogprobs: []topLogprob{}}
	if id < len(lp) {
		e.Logprob = finite(lp[id])
	}
	if n := min(c.rq.topLogprobs, len(lp)); n > 0 {
		idx := make([]int, len(lp))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return lp[idx[a]] > lp[idx[b]] })
		for _, i := range idx[:n] {
			e.TopLogprobs = append(e.TopLogprobs, topLogprob{ID: i, Token: text(i), Logprob: finite(lp[i])})
		}
	}
	return e
}

// finite maps -Inf (a token masked out) to OpenAI's -9999 so the JSON stays
// valid.
func finite(x float32) float64 {
	if math.IsInf(float64(x), -1) || math.IsNaN(float64(x)) {
		return -9999
	}
	return float64(x)
}

// promptCache is a kept KV cache and the tokens it was built from (the
// cache holds the first Offset() of them).
type promptCache struct {
	tokens []int
	caches []model.Cache
	nbytes int64
}

// usable is how many leading tokens of prompt c can give: the common
// prefix, less one so that a prompt token is left to process, or 0 when
// the cache cannot be cut back to it.
func (c *promptCache) usable(prompt []int) int {
	if len(c.caches) == 0 {
		return 0
	}
	off := c.caches[0].Offset()
	if off > len(c.tokens) {
		return 0
	}
	p := 0
	for p < off && p < len(prompt) && c.tokens[p] == prompt[p] {
		p++
	}
	if p == len(prompt) {
		p--
	}
	for _, kv := range c.caches {
		if kv.Offset() != off || p < off && !kv.Trimmable() {
			return 0
		}
	}
	return max(p, 0)
}

// takeCache takes out of the prompt cache the entry that gives the longest
// prefix of prompt (mlx_lm's LRUPromptCache.fetch_nearest_cache), cut back
// to that prefix, and returns its caches and the rest of the prompt; nil
// caches and the whole prompt when no entry shares a prefix.
func (s *Server) takeCache(lm *Loaded, prompt []int) ([]model.Cache, []int) {
	if s.o.PromptCacheSize <= 0 || lm.Draft != nil {
		return nil, prompt
	}
	best, bestP := -1, 0
	for i, c := range s.cache {
		if p := c.usable(prompt); p > bestP {
			best, bestP = i, p
		}
	}
	if best < 0 {
		return nil, prompt
	}
	c := s.cache[best]
	s.cache = append(s.cache[:best], s.cache[best+1:]...)
	off := c.caches[0].Offset()
	caches := c.caches
	if off > bestP {
		// The entry goes on beyond the shared prefix (another conversation,
		// or a reply this prompt changes): keep it for its own
		// conversation and continue from a copy, as mlx_lm does.
		if cp, err := copyCaches(c.caches); err == nil {
			caches = cp
			s.cache = append(s.cache, c) // most recently used
		} else {
			s.log.Debug("prompt cache: copying failed, the entry is used up", "error", err)
		}
	}
	for _, kv := range caches {
		if off > bestP && kv.Trim(off-bestP) != off-bestP {
			return nil, prompt
		}
	}
	return caches, prompt[bestP:]
}

// copyCaches copies caches through their prompt-cache form, evaluated so
// that the copies share no buffer with the originals.
func copyCaches(cs []model.Cache) ([]model.Cache, error) {
	out := make([]model.Cache, len(cs))
	var arrays []*engine.Array
	for i, c := range cs {
		saved, err := model.SaveCache(c)
		if err != nil {
			return nil, err
		}
		if out[i], err = model.LoadCache(saved); err != nil {
			return nil, err
		}
		arrays = append(arrays, out[i].State()...)
	}
	if err := engine.Eval(arrays...); err != nil {
		return nil, err
	}
	return out, nil
}

func trimmable(cs []model.Cache) bool {
	for _, c := range cs {
		if !c.Trimmable() {
			return false
		}
	}
	return len(cs) > 0
}

// keepCache puts caches into the prompt cache as its most recent entry and
// drops the least recently used ones beyond PromptCacheSize entries or
// PromptCacheBytes bytes.
func (s *Server) keepCache(lm *Loaded, tokens []int, caches []model.Cache) {
	if s.o.PromptCacheSize <= 0 || lm.Draft != nil {
		return
	}
	c := &promptCache{tokens: tokens, caches: caches}
	for _, kv := range caches {
		for _, a := range kv.State() {
			if a != nil {
				c.nbytes += int64(a.NBytes())
			}
		}
	}
	// Entries the new one extends are dropped: it gives all they gave.
	if trimmable(caches) {
		known := tokens[:min(caches[0].Offset(), len(tokens))]
		kept := s.cache[:0]
		for _, e := range s.cache {
			if len(e.caches) == 0 {
				continue
			}
			if off := e.caches[0].Offset(); off > len(e.tokens) || off > len(known) || !slices.Equal(e.tokens[:off], known[:off]) {
				kept = append(kept, e)
			}
		}
		s.cache = kept
	}
	s.cache = append(s.cache, c)
	total := int64(0)
	for _, e := range s.cache {
		total += e.nbytes
	}
	for len(s.cache) > 0 && (len(s.cache) > s.o.PromptCacheSize || s.o.PromptCacheBytes > 0 && total > s.o.PromptCacheBytes) {
		total -= s.cache[0].nbytes
		s.cache = s.cache[1:]
	}
}
