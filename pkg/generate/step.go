// Package generate runs a language model token by token, as mlx_lm's
// generate.py does: Generator (mlx_lm's generate_step and
// speculative_generate_step) yields one token and its log-probabilities at a
// time; Stream (stream_generate) turns those into text segments with timing
// and a finish reason; EncodePrompt applies mlx_lm's prompt handling (chat
// template, prefill response, BOS).
//
// The pipeline for one token: the model's logits for the last position [V]
// go through the logits processors (given the token history, prompt
// included), are normalised to log-probabilities logits - logsumexp(logits),
// and the sampler draws the token from them.
package generate

import (
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/sample"
)

// DefaultPrefillStepSize is mlx_lm's prefill_step_size.
const DefaultPrefillStepSize = 2048

// DefaultDraftPrefillStepSize is mlx_lm's prefill step for speculative decoding.
const DefaultDraftPrefillStepSize = 512

// DefaultNumDraftTokens is mlx_lm's speculative_generate_step default.
const DefaultNumDraftTokens = 2

// Options configure a Generator.
type Options struct {
	// MaxTokens is the number of tokens to generate; < 0 means no limit.
	MaxTokens int
	// Sampler draws each token from the log-probabilities; nil is argmax.
	Sampler *sample.Sampler
	// Processors edit the raw logits, given the prompt and generated tokens.
	Processors []sample.Processor
	// PrefillStepSize is the prompt chunk size; 0 means 2048 (512 with a
	// draft model).
	PrefillStepSize int
	// Caches continue an earlier conversation or a loaded prompt cache; nil
	// makes fresh ones with CacheOptions. They are updated in place.
	Caches       []model.Cache
	CacheOptions model.CacheOptions
	// Draft turns on speculative decoding with this model; DraftCaches are
	// its caches (nil: fresh ones) and NumDraftTokens the tokens it proposes
	// per step (0: 2).
	Draft          model.Model
	DraftCaches    []model.Cache
	NumDraftTokens int
	// PromptProgress, when set, is called with the prompt tokens processed
	// so far and the total, after each prefill chunk.
	PromptProgress func(processed, total int)
}

// Token is one generated token.
type Token struct {
	ID int
	// Logprobs are the log-probabilities [V] the token was drawn from
	// (after the logits processors, before the sampler's filters). They
	// are valid until the next token is generated (the row is reused);
	// copy them to keep them.
	Logprobs []float32
	// FromDraft is true when speculative decoding accepted the draft
	// model's token.
	FromDraft bool
}

// Generator yields the tokens a model generates after a prompt.
type Generator struct {
	m         model.Model
	o         Options
	caches    []model.Cache
	prompt    int   // prompt tokens
	history   []int // prompt and generated tokens, for the processors
	pending   []int // tokens the model has not consumed yet
	n         int   // tokens returned
	started   bool
	committed bool

	// speculative decoding
	logits []float32 // the last token's row, reused from step to step

	draftCaches  []model.Cache
	draftPending []int
	queue        []Token
}

// New prepares generation of prompt (token ids, at least one) with m. No
// work is done until the first Next.
func New(m model.Model, prompt []int, o Options) (*Generator, error) {
	if len(prompt) == 0 {
		return nil, errors.New("generate: the prompt has no tokens")
	}
	v := m.VocabSize()
	for i, id := range prompt {
		if id < 0 || id >= v {
			return nil, fmt.Errorf("generate: prompt token %d at position %d is outside the vocabulary [0, %d)", id, i, v)
		}
	}
	if o.PrefillStepSize < 0 {
		return nil, fmt.Errorf("generate: prefill step size must be >= 1, got %d", o.PrefillStepSize)
	}
	if o.PrefillStepSize == 0 {
		o.PrefillStepSize = DefaultPrefillStepSize
		if o.Draft != nil {
			o.PrefillStepSize = DefaultDraftPrefillStepSize
		}
	}
	g := &Generator{m: m, o: o, caches: o.Caches, prompt: len(prompt)}
	if g.caches == nil {
		g.caches = m.NewCaches(o.CacheOptions)
	}
	g.history = append(make([]int, 0, len(prompt)+max(o.MaxTokens, 0)+1), prompt...)
	g.pending = append([]int(nil), prompt...)
	if o.Draft != nil {
		if g.o.NumDraftTokens == 0 {
			g.o.NumDraftTokens = DefaultNumDraftTokens
		}
		if g.o.NumDraftTokens < 0 {
			return nil, fmt.Errorf("generate: number of draft tokens must be >= 1, got %d", o.NumDraftTokens)
		}
		for _, c := range g.caches {
			if !c.Trimmable() {
				return nil, fmt.Errorf("generate: speculative decoding requires a trimmable prompt cache (got %T)", c)
			}
		}
		g.draftCaches = o.DraftCaches
		if g.draftCaches == nil {
			g.draftCaches = o.Draft.NewCaches(model.CacheOptions{})
		}
		for _, c := range g.draftCaches {
			if !c.Trimmable() {
				return nil, fmt.Errorf("generate: speculative decoding requires a trimmable draft cache (got %T)", c)
			}
		}
		g.draftPending = append([]int(nil), prompt...)
	}
	return g, nil
}

// PromptTokens is the number of prompt tokens.
func (g *Generator) PromptTokens() int { return g.prompt }

// MaxTokens is the generation limit (< 0: none).
func (g *Generator) MaxTokens() int { return g.o.MaxTokens }

// Caches are the model's caches, holding the prompt and the generated
// tokens the model has consumed (all but the last; see Commit).
func (g *Generator) Caches() []model.Cache { return g.caches }

// Next returns the next token, or io.EOF once MaxTokens were returned.
func (g *Generator) Next() (Token, error) {
	if g.committed {
		return Token{}, errors.New("generate: Next after Commit")
	}
	if g.o.MaxTokens >= 0 && g.n >= g.o.MaxTokens {
		return Token{}, io.EOF
	}
	var t Token
	var err error
	if g.o.Draft != nil {
		t, err = g.nextSpeculative()
	} else {
		t, err = g.next()
	}
	if err != nil {
		return Token{}, err
	}
	g.n++
	g.history = append(g.history, t.ID)
	return t, nil
}

// All iterates over the remaining tokens; it stops after the first error.
func (g *Generator) All() iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		for {
			t, err := g.Next()
			if err == io.EOF {
				return
			}
			if !yield(t, err) || err != nil {
				return
			}
		}
	}
}

// Commit feeds the tokens the model has not consumed yet (the last returned
// token, or the whole prompt before the first Next) into the caches, so they
// hold the whole conversation, as mlx_lm's look-ahead leaves them. Chat calls
// it at the end of each reply; Next must not be called after it.
func (g *Generator) Commit() error {
	if g.o.Draft != nil {
		return errors.New("generate: Commit is not supported with speculative decoding")
	}
	g.started, g.committed = true, true
	return g.prefill(g.m, g.caches, &g.pending, 0)
}

func (g *Generator) next() (Token, error) {
	if !g.started {
		g.started = true
		if err := g.prefill(g.m, g.caches, &g.pending, 1); err != nil {
			return Token{}, err
		}
	}
	rows, err := forwardRows(g.m, g.caches, g.pending, 1, &g.logits)
	if err != nil {
		return Token{}, err
	}
	t, err := g.sample(rows[0], g.history)
	if err != nil {
		return Token{}, err
	}
	g.pending = append(g.pending[:0], t.ID)
	return t, nil
}

// sample runs processors, log-softmax and the sampler on one row of logits.
func (g *Generator) sample(logits []float32, history []int) (Token, error) {
	for _, p := range g.o.Processors {
		p(history, logits)
	}
	sample.LogSoftmax(logits)
	var id int
	if g.o.Sampler == nil {
		id = sample.Argmax(logits)
	} else {
		var err error
		if id, err = g.o.Sampler.Sample(logits); err != nil {
			return Token{}, fmt.Errorf("generate: sampling: %w", err)
		}
	}
	return Token{ID: id, Logprobs: logits}, nil
}

// prefill feeds *pending through m in chunks of the prefill step size,
// leaving keep tokens unconsumed.
func (g *Generator) prefill(m model.Model, caches []model.Cache, pending *[]int, keep int) error {
	total, done := len(*pending), 0
	step := g.o.PrefillStepSize
	if g.o.PromptProgress != nil && m == g.m {
		g.o.PromptProgress(0, total)
	}
	for len(*pending)-keep > 0 {
		n := min(step, len(*pending)-keep)
		out := m.Forward(tokenArray((*pending)[:n]), caches)
		if err := out.Err(); err != nil {
			return fmt.Errorf("generate: prefilling the prompt (tokens %d-%d of %d): %w", done, done+n, total, err)
		}
		if err := evalStates(caches); err != nil {
			return fmt.Errorf("generate: prefilling the prompt (tokens %d-%d of %d): %w", done, done+n, total, err)
		}
		*pending = (*pending)[n:]
		done += n
		if g.o.PromptProgress != nil && m == g.m {
			g.o.PromptProgress(done, total)
		}
	}
	return nil
}

// forwardRows runs tokens through m and returns the logits [V] of the last
// n positions, read into *buf's array when buf is given (the plain decode
// step reuses one row: 600 KB of garbage less per token at a 150k
// vocabulary, and fewer collections).
func forwardRows(m model.Model, caches []model.Cache, tokens []int, n int, buf *[]float32) ([][]float32, error) {
	l := len(tokens)
	logits := m.Forward(tokenArray(tokens), caches) // [1, L, V]
	if err := logits.Err(); err != nil {
		return nil, fmt.Errorf("generate: forward pass: %w", err)
	}
	if logits.NDim() != 3 || logits.Dim(0) != 1 || logits.Dim(1) != l {
		return nil, fmt.Errorf("generate: forward pass returned logits of shape %v, want [1, %d, V]", logits.Shape(), l)
	}
	v := logits.Dim(2)
	last := engine.AsType(engine.SliceAxis(logits, 1, l-n, l), engine.Float32) // [1, n, V]
	arrs := append([]*engine.Array{last}, states(caches)...)
	if err := engine.Eval(arrs...); err != nil {
		return nil, fmt.Errorf("generate: forward pass: %w", err)
	}
	var flat []float32
	var err error
	if buf != nil {
		flat, err = last.Float32sInto(*buf)
		*buf = flat
	} else {
		flat, err = last.Float32s()
	}
	if err != nil {
		return nil, fmt.Errorf("generate: reading logits: %w", err)
	}
	// The logits buffer lives outside the Go heap: free it now, not at
	// some later collection (one per token would pile up).
	engine.Release(last)
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*v : (i+1)*v : (i+1)*v] // rows of one fresh copy
	}
	return rows, nil
}

// states returns the cache arrays a step evaluates with its logits: those
// of caches that are not model.Settled.
func states(caches []model.Cache) []*engine.Array {
	var s []*engine.Array
	for _, c := range caches {
		if _, ok := c.(model.Settled); ok {
			continue
		}
		for _, a := range c.State() {
			if a != nil {
				s = append(s, a)
			}
		}
	}
	return s
}

func evalStates(caches []model.Cache) error {
	s := states(caches)
	if len(s) == 0 {
		return nil
	}
	return engine.Eval(s...)
}

func tokenArray(ids []int) *engine.Array {
	d := make([]int32, len(ids))
	for i, id := range ids {
		d[i] = int32(id)
	}
	return engine.FromInt32s(d, 1, len(ids)) // [B=1, L]
}
