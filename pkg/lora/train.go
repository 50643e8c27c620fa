package lora

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/optim"
)

// TrainOptions are the loop settings of mlx_lm's TrainingArgs.
type TrainOptions struct {
	Iters                 int
	BatchSize             int
	MaxSeqLength          int
	StepsPerReport        int
	StepsPerEval          int
	SaveEvery             int
	ValBatches            int // -1: the whole validation set
	GradAccumulationSteps int
	// ClearCacheThreshold > 0 empties the allocator's cache after a step
	// when it holds more than this many bytes (--clear-cache-threshold).
	ClearCacheThreshold int64
	Seed                uint32
	Mask                MaskMode
	// AdapterFile is adapters.safetensors in the adapter folder; checkpoints
	// go beside it. Empty: nothing is saved.
	AdapterFile string
	// Out receives mlx_lm's report lines.
	Out io.Writer
	// Progress, when set (a terminal), shows a progress bar over the iterations.
	Progress io.Writer
	// Warn receives the truncation warning (default: Out).
	Warn func(string)
	// GradCheckpoint recomputes each transformer block in the backward
	// pass instead of keeping its intermediates (--grad-checkpoint; see
	// CheckpointBlocks).
	GradCheckpoint bool
}

// ErrInterrupted is returned (wrapped) when ctx ends training early; the
// current adapter has been saved by then.
var ErrInterrupted = errors.New("training interrupted")

// Stats are what a training run measured.
type Stats struct {
	TrainedTokens int
	TokensPerSec  float64 // over the whole run, excluding validation
	LastLoss      float64 // the last report's train loss
	FirstLoss     float64 // the first report's train loss
	PeakMemory    int64
}

// Train runs mlx_lm's training loop over the tuned model: batches from
// train (looped, reshuffled each epoch), validation at iteration 1, every
// StepsPerEval and at the last iteration, report lines in mlx_lm's release
// format, adapters saved every SaveEvery iterations and at the end. When
// ctx ends, the current adapter is saved and ErrInterrupted returned.
func Train(ctx context.Context, m model.Model, t *Tuned, opt optim.Optimizer, schedule optim.Schedule, train, valid []Example, o TrainOptions) (Stats, error) {
	var st Stats
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	warn := o.Warn
	if warn == nil {
		warn = func(s string) { fmt.Fprintln(out, s) }
	}
	accSteps := max(o.GradAccumulationSteps, 1)
	batches, err := NewBatcher(train, o.BatchSize, o.MaxSeqLength, o.Seed)
	if err != nil {
		return st, fmt.Errorf("training set: %w", err)
	}
	batches.Loop, batches.Warn = true, warn
	var bar *progressbar.ProgressBar
	if o.Progress != nil {
		bar = progressbar.NewOptions(o.Iters, progressbar.OptionSetWriter(o.Progress), progressbar.OptionSetDescription("Training"),
			progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
	}
	println := func(format string, args ...any) {
		if bar != nil {
			_ = bar.Clear()
		}
		fmt.Fprintf(out, format+"\n", args...)
	}
	save := func() error {
		if o.AdapterFile == "" {
			return nil
		}
		return t.Save(o.AdapterFile)
	}
	fmt.Fprintf(out, "Starting training..., iters: %d\n", o.Iters)
	engine.ResetPeakMemory()
	var (
		losses        float64
		nTokens       int
		steps         int
		trainTime     time.Duration
		totalTime     time.Duration
		trainedTokens int
		accum         []*engine.Array
		reported      bool
	)
	for it := 1; it <= o.Iters; it++ {
		if ctx.Err() != nil {
			if err := save(); err != nil {
				return st, fmt.Errorf("%w; saving the adapter failed: %v", ErrInterrupted, err)
			}
			if o.AdapterFile != "" {
				println("Iter %d: Interrupted; saved current adapter weights to %s.", it-1, o.AdapterFile)
			}
			return st, fmt.Errorf("%w at iteration %d: %v", ErrInterrupted, it-1, context.Cause(ctx))
		}
		batch, _ := batches.Next()
		if len(valid) > 0 && (it == 1 || it%o.StepsPerEval == 0 || it == o.Iters) {
			tic := time.Now()
			vb, err := batches.Sibling(valid, o.BatchSize, o.MaxSeqLength)
			if err != nil {
				return st, fmt.Errorf("validation set: %w", err)
			}
			vl, err := evaluate(m, t, vb, o.ValBatches, o.Mask)
			if err != nil {
				return st, fmt.Errorf("validation at iteration %d: %w", it, err)
			}
			println("Iter %d: Val loss %.3f, Val took %.3fs", it, vl, time.Since(tic).Seconds())
		}
		tic := time.Now()
		t.Dropout.Training = true
		var restore func()
		if o.GradCheckpoint {
			restore = CheckpointBlocks(m, t)
		}
		loss, ntoks, grads, err := valueAndGrad(m, t, batch, o.Mask)
		if restore != nil {
			restore() // the gradient graph is built: recomputation is in it
		}
		if err != nil {
			return st, fmt.Errorf("iteration %d: %w", it, err)
		}
		if accum != nil {
			for i := range grads {
				grads[i] = engine.Add(grads[i], accum[i])
			}
		}
		if it%accSteps == 0 {
			if accSteps > 1 {
				for i := range grads {
					grads[i] = engine.Divide(grads[i], engine.ScalarOf(float64(accSteps), grads[i].DType()))
				}
			}
			params, err := opt.Update(t.Arrays(), grads)
			if err != nil {
				return st, fmt.Errorf("iteration %d: %w", it, err)
			}
			if err := engine.Eval(append(append([]*engine.Array{loss}, params...), opt.State()...)...); err != nil {
				return st, fmt.Errorf("iteration %d: %w", it, err)
			}
			t.SetArrays(params)
			accum = nil
		} else {
			if err := engine.Eval(append([]*engine.Array{loss}, grads...)...); err != nil {
				return st, fmt.Errorf("iteration %d: %w", it, err)
			}
			accum = grads
		}
		t.Dropout.Training = false
		if o.ClearCacheThreshold > 0 && engine.CacheMemory() > o.ClearCacheThreshold {
			engine.ClearCache()
		}
		lv, err := loss.Item()
		if err != nil {
			return st, err
		}
		losses += lv
		nTokens += ntoks
		steps++
		dt := time.Since(tic)
		trainTime += dt
		totalTime += dt
		if bar != nil {
			_ = bar.Add(1)
		}
		if it%o.StepsPerReport == 0 || it == o.Iters {
			trainLoss := losses / float64(steps)
			lr := opt.LearningRate()
			if opt.Step() == 0 {
				lr = schedule(0)
			}
			secs := trainTime.Seconds()
			trainedTokens += nTokens
			peak := engine.PeakMemory()
			println("Iter %d: Train loss %.3f, Learning Rate %.3e, It/sec %.3f, Tokens/sec %.3f, Trained Tokens %d, Peak mem %.3f GB",
				it, trainLoss, lr, float64(o.StepsPerReport)/secs, float64(nTokens)/secs, trainedTokens, float64(peak)/1e9)
			if !reported {
				st.FirstLoss, reported = trainLoss, true
			}
			st.LastLoss, st.PeakMemory = trainLoss, peak
			losses, nTokens, steps, trainTime = 0, 0, 0, 0
		}
		if o.AdapterFile != "" && it%o.SaveEvery == 0 {
			if err := save(); err != nil {
				return st, err
			}
			ckpt := filepath.Join(filepath.Dir(o.AdapterFile), CheckpointName(it))
			if err := t.Save(ckpt); err != nil {
				return st, err
			}
			println("Iter %d: Saved adapter weights to %s and %s.", it, o.AdapterFile, ckpt)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	st.TrainedTokens = trainedTokens
	if totalTime > 0 {
		st.TokensPerSec = float64(trainedTokens) / totalTime.Seconds()
	}
	if o.AdapterFile != "" {
		if err := save(); err != nil {
			return st, err
		}
		fmt.Fprintf(out, "Saved final weights to %s.\n", o.AdapterFile)
	}
	return st, nil
}

// valueAndGrad builds the loss of batch and its gradient with respect to
// every trainable array (unevaluated).
func valueAndGrad(m model.Model, t *Tuned, batch Batch, mode MaskMode) (*engine.Array, int, []*engine.Array, error) {
	var ntoks int
	vg := engine.ValueAndGrad(func(ps []*engine.Array) *engine.Array {
		t.SetArrays(ps)
		l, n := Loss(m, batch, mode)
		ntoks = n
		return l
	})
	loss, grads, err := vg(t.Arrays())
	return loss, ntoks, grads, err
}

// Step runs one forward and backward pass and one optimizer update
// (benchmarks and tests), returning the loss and the target count.
func Step(m model.Model, t *Tuned, opt optim.Optimizer, batch Batch, mode MaskMode) (float64, int, error) {
	loss, ntoks, grads, err := valueAndGrad(m, t, batch, mode)
	if err != nil {
		return 0, 0, err
	}
	params, err := opt.Update(t.Arrays(), grads)
	if err != nil {
		return 0, 0, err
	}
	if err := engine.Eval(append(append([]*engine.Array{loss}, params...), opt.State()...)...); err != nil {
		return 0, 0, err
	}
	t.SetArrays(params)
	lv, err := loss.Item()
	return lv, ntoks, err
}

// Evaluate is mlx_lm's evaluate: the token-weighted mean loss over up to
// numBatches batches (-1: all) of examples, one epoch in the seeded order.
func Evaluate(m model.Model, t *Tuned, examples []Example, batchSize, numBatches, maxSeqLen int, mode MaskMode, seed uint32) (float64, error) {
	b, err := NewBatcher(examples, batchSize, maxSeqLen, seed)
	if err != nil {
		return 0, err
	}
	return evaluate(m, t, b, numBatches, mode)
}

func evaluate(m model.Model, t *Tuned, b *Batcher, numBatches int, mode MaskMode) (float64, error) {
	if t != nil {
		t.Dropout.Training = false
	}
	var sum float64
	var total int
	for i := 0; numBatches < 0 || i < numBatches; i++ {
		batch, ok := b.Next()
		if !ok {
			break
		}
		loss, n := Loss(m, batch, mode)
		if err := engine.Eval(loss); err != nil {
			return 0, err
		}
		v, err := loss.Item()
		if err != nil {
			return 0, err
		}
		if n > 0 {
			sum += v * float64(n)
			total += n
		}
	}
	if total == 0 {
		return math.NaN(), nil
	}
	return sum / float64(total), nil
}
