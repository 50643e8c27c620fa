package generate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/sample"
)

// BatchStats are mlx_lm's BatchStats.
type BatchStats struct {
	PromptTokens     int
	PromptTPS        float64
	PromptTime       float64 // seconds
	GenerationTokens int
	GenerationTPS    float64
	GenerationTime   float64 // seconds
	PeakMemory       float64 // GB
}

// GenerateBatch runs B prompts of equal length through m together: a
// batched prefill [B, L] in chunks of prefillStep (0: 2048), then maxTokens
// batched decode steps [B, 1], greedy when sampler is nil. No row stops
// early (no EOS), which is what benchmark -b measures. It returns the
// generated ids [B][maxTokens].
func GenerateBatch(ctx context.Context, m model.Model, prompts [][]int, maxTokens, prefillStep int, sampler *sample.Sampler, co model.CacheOptions) ([][]int, BatchStats, error) {
	var st BatchStats
	if len(prompts) == 0 || len(prompts[0]) == 0 {
		return nil, st, errors.New("generate: batch needs at least one non-empty prompt")
	}
	b, l := len(prompts), len(prompts[0])
	for i, p := range prompts {
		if len(p) != l {
			return nil, st, fmt.Errorf("generate: batch prompts must have equal lengths (prompt 0 has %d tokens, prompt %d has %d)", l, i, len(p))
		}
	}
	if prefillStep <= 0 {
		prefillStep = DefaultPrefillStepSize
	}
	caches := m.NewCaches(co)
	out := make([][]int, b)
	tic := time.Now()
	pos := 0
	for l-pos > 1 {
		n := min(prefillStep, l-pos-1)
		if err := m.Forward(batchArray(prompts, pos, pos+n), caches).Err(); err != nil {
			return nil, st, fmt.Errorf("generate: batch prefill: %w", err)
		}
		if err := evalStates(caches); err != nil {
			return nil, st, fmt.Errorf("generate: batch prefill: %w", err)
		}
		pos += n
	}
	input := batchArray(prompts, pos, l)
	for step := 0; step < maxTokens; step++ {
		if err := ctx.Err(); err != nil {
			return nil, st, err
		}
		logits := m.Forward(input, caches) // [B, L, V]
		if err := logits.Err(); err != nil {
			return nil, st, fmt.Errorf("generate: batch step %d: %w", step, err)
		}
		ln, v := logits.Dim(1), logits.Dim(2)
		last := engine.AsType(engine.SliceAxis(logits, 1, ln-1, ln), engine.Float32) // [B, 1, V]
		if err := engine.Eval(append([]*engine.Array{last}, states(caches)...)...); err != nil {
			return nil, st, fmt.Errorf("generate: batch step %d: %w", step, err)
		}
		flat, err := last.Float32s()
		if err != nil {
			return nil, st, err
		}
		next := make([]int32, b)
		for r := range b {
			row := flat[r*v : (r+1)*v]
			sample.LogSoftmax(row)
			id := sample.Argmax(row)
			if sampler != nil {
				if id, err = sampler.Sample(row); err != nil {
					return nil, st, fmt.Errorf("generate: sampling: %w", err)
				}
			}
			next[r] = int32(id)
			out[r] = append(out[r], id)
		}
		input = engine.FromInt32s(next, b, 1)
		if step == 0 {
			st.PromptTime = time.Since(tic).Seconds()
			tic = time.Now()
		}
	}
	st.PromptTokens = b * l
	if st.PromptTime > 0 {
		st.PromptTPS = float64(st.PromptTokens) / st.PromptTime
	}
	st.GenerationTokens = b * maxTokens
	st.GenerationTime = time.Since(tic).Seconds()
	if st.GenerationTime > 0 {
		st.GenerationTPS = float64(st.GenerationTokens) / st.GenerationTime
	}
	st.PeakMemory = PeakMemoryGB()
	return out, st, nil
}

// batchArray returns prompts[:, start:stop] as int32 [B, L].
func batchArray(prompts [][]int, start, stop int) *engine.Array {
	d := make([]int32, 0, len(prompts)*(stop-start))
	for _, p := range prompts {
		for _, id := range p[start:stop] {
			d = append(d, int32(id))
		}
	}
	return engine.FromInt32s(d, len(prompts), stop-start)
}
