package generate

import (
	"context"
	"io"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// Finish reasons of the last Response.
const (
	FinishStop        = "stop"        // an EOS token was generated
	FinishLength      = "length"      // MaxTokens were generated
	FinishInterrupted = "interrupted" // the context was cancelled (mlxgo only)
)

// Response is one step of Stream, mlx_lm's GenerationResponse.
type Response struct {
	// Text is the new segment of decoded text; it may be "".
	Text      string
	Token     int
	Logprobs  []float32 // [V], valid until the next response (copy to keep)
	FromDraft bool
	// PromptTokens is the prompt length and PromptTPS the prompt tokens per
	// second (prompt length / time to the first token).
	PromptTokens int
	PromptTPS    float64
	// GenerationTokens counts the tokens so far (an EOS token included) and
	// GenerationTPS is that count over the time since the first token.
	GenerationTokens int
	GenerationTPS    float64
	// PeakMemory is the allocator's peak in GB (bytes / 1e9).
	PeakMemory float64
	// FinishReason is "" until the last Response, then FinishStop,
	// FinishLength or FinishInterrupted.
	FinishReason string
}

// TextTokenizer is what Stream needs from a tokenizer.
type TextTokenizer interface {
	NewDetokenizer() tokenizer.Detokenizer
	IsEOS(id int) bool
}

// NoEOS wraps a tokenizer so that no token ends generation (benchmarks).
type NoEOS struct{ TextTokenizer }

// IsEOS is always false.
func (NoEOS) IsEOS(int) bool { return false }

// Stream runs g and calls fn with each text segment, as mlx_lm's
// stream_generate does: it stops at a token in tok's EOS set (not decoded)
// or after g's MaxTokens, and the last call has the finish reason and the
// final segment of the streaming detokenizer. When ctx is cancelled Stream
// ends with FinishInterrupted and returns ctx's error. An error from fn
// stops the stream and is returned.
func Stream(ctx context.Context, g *Generator, tok TextTokenizer, fn func(Response) error) error {
	detok := tok.NewDetokenizer()
	resp := Response{PromptTokens: g.PromptTokens(), Token: -1}
	maxTokens := g.MaxTokens()
	tic := time.Now()
	var ctxErr error
	for n := 0; ; n++ {
		if ctxErr = ctx.Err(); ctxErr != nil {
			resp.FinishReason = FinishInterrupted
			break
		}
		t, err := g.Next()
		if err == io.EOF {
			resp.FinishReason = FinishLength
			break
		}
		if err != nil {
			return err
		}
		now := time.Now()
		if n == 0 {
			resp.PromptTPS = float64(resp.PromptTokens) / now.Sub(tic).Seconds()
			tic = now
		}
		resp.Token, resp.Logprobs, resp.FromDraft = t.ID, t.Logprobs, t.FromDraft
		resp.GenerationTokens = n + 1
		resp.GenerationTPS = float64(n+1) / time.Since(tic).Seconds()
		resp.PeakMemory = PeakMemoryGB()
		if tok.IsEOS(t.ID) {
			resp.FinishReason = FinishStop
			break
		}
		detok.Add(t.ID)
		if n+1 == maxTokens {
			resp.FinishReason = FinishLength
			break
		}
		resp.Text = detok.LastSegment()
		if err := fn(resp); err != nil {
			return err
		}
	}
	detok.Finalize()
	resp.Text = detok.LastSegment()
	if resp.GenerationTokens > 0 {
		resp.GenerationTPS = float64(resp.GenerationTokens) / time.Since(tic).Seconds()
	}
	resp.PeakMemory = PeakMemoryGB()
	if err := fn(resp); err != nil {
		return err
	}
	return ctxErr
}

// PeakMemoryGB is the peak memory mlx_lm reports, in GB (1e9 bytes): the
// allocator's peak plus the memory-mapped weights the model uses in place,
// which mlx_lm's figure includes because MLX loads weights into its own
// buffers.
func PeakMemoryGB() float64 {
	return float64(engine.PeakMemory()+engine.MappedMemory()) / 1e9
}
