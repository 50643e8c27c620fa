package cmd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
)

// BenchmarkOptions holds `mlxgo benchmark` flags, named and defaulted as mlx_lm.benchmark.
type BenchmarkOptions struct {
	Model               string
	PromptTokens        int
	GenerationTokens    int
	BatchSize           int
	NumTrials           int
	Pipeline            bool
	QuantizeActivations bool
	PrefillStepSize     int
	Delay               float64
	TrustRemoteCode     bool
}

func newBenchmarkCmd(f *Factory) *cobra.Command { return newBenchmarkCmdWith(f, runBenchmark) }

func newBenchmarkCmdWith(f *Factory, runF func(context.Context, *Factory, *BenchmarkOptions) error) *cobra.Command {
	o := &BenchmarkOptions{}
	c := &cobra.Command{
		Use:   "benchmark",
		Short: "Measure prompt and generation tokens per second",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			for _, p := range []struct {
				name string
				v    int
			}{{"--prompt-tokens", o.PromptTokens}, {"--generation-tokens", o.GenerationTokens}, {"--batch-size", o.BatchSize}, {"--num-trials", o.NumTrials}, {"--prefill-step-size", o.PrefillStepSize}} {
				if p.v < 1 {
					return flagError("%s must be >= 1, got %d", p.name, p.v)
				}
			}
			if o.Delay < 0 {
				return flagError("--delay must be >= 0, got %g", o.Delay)
			}
			if o.Model == "" {
				o.Model = DefaultModel
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Model, "model", "", "The path to the local model directory or Hugging Face repo")
	fs.IntVarP(&o.PromptTokens, "prompt-tokens", "p", 512, "Length of prompt")
	fs.IntVarP(&o.GenerationTokens, "generation-tokens", "g", 1024, "Length of completion")
	fs.IntVarP(&o.BatchSize, "batch-size", "b", 1, "Batch size")
	fs.IntVarP(&o.NumTrials, "num-trials", "n", 5, "Number of timing trials")
	fs.BoolVar(&o.Pipeline, "pipeline", false, "Accepted for compatibility (distributed pipeline parallelism is not supported)")
	fs.BoolVar(&o.QuantizeActivations, "quantize-activations", false, "Quantize activations (also -qa)")
	fs.IntVar(&o.PrefillStepSize, "prefill-step-size", 2048, "Prefill step size")
	fs.Float64Var(&o.Delay, "delay", 0, "Delay between each trial in seconds")
	fs.BoolVar(&o.TrustRemoteCode, "trust-remote-code", false, "Accepted for compatibility")
	return c
}

func runBenchmark(ctx context.Context, f *Factory, o *BenchmarkOptions) error {
	lm, err := loadForGeneration(ctx, f, "--model", o.Model)
	if err != nil {
		return err
	}
	if err := quantizeActivations(lm, o.QuantizeActivations); err != nil {
		return err
	}
	// Random prompts (seed 0, as mlx_lm seeds its generator), EOS disabled.
	vocab := lm.m.VocabSize()
	rng := rand.New(rand.NewPCG(0, 0))
	prompts := make([][]int, o.BatchSize)
	for i := range prompts {
		prompts[i] = make([]int, o.PromptTokens)
		for j := range prompts[i] {
			prompts[i][j] = rng.IntN(vocab)
		}
	}
	bench := func() (benchResult, error) {
		if o.BatchSize == 1 {
			return benchSingle(ctx, lm, prompts[0], o)
		}
		_, st, err := generate.GenerateBatch(ctx, lm.m, prompts, o.GenerationTokens, o.PrefillStepSize, nil, model.CacheOptions{})
		return benchResult{st.PromptTPS, st.GenerationTPS, st.PeakMemory}, err
	}
	fmt.Fprintln(f.Out, "Running warmup..")
	if _, err := bench(); err != nil {
		return err
	}
	fmt.Fprintf(f.Out, "Timing with prompt_tokens=%d, generation_tokens=%d, batch_size=%d.\n", o.PromptTokens, o.GenerationTokens, o.BatchSize)
	var sum benchResult
	for i := range o.NumTrials {
		if o.Delay > 0 {
			select {
			case <-time.After(time.Duration(o.Delay * float64(time.Second))):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		tic := time.Now()
		r, err := bench()
		if err != nil {
			return err
		}
		total := time.Since(tic).Seconds()
		fmt.Fprintf(f.Out, "Trial %d:  %s, total_time=%.3f\n", i+1, r, total)
		sum.promptTPS += r.promptTPS
		sum.generationTPS += r.generationTPS
		sum.peakMemory += r.peakMemory
	}
	n := float64(o.NumTrials)
	avg := benchResult{sum.promptTPS / n, sum.generationTPS / n, sum.peakMemory / n}
	fmt.Fprintf(f.Out, "Averages: %s\n", avg)
	return nil
}

type benchResult struct{ promptTPS, generationTPS, peakMemory float64 }

func (r benchResult) String() string {
	return fmt.Sprintf("prompt_tps=%.3f, generation_tps=%.3f, peak_memory=%.3f", r.promptTPS, r.generationTPS, r.peakMemory)
}

func benchSingle(ctx context.Context, lm *loadedModel, prompt []int, o *BenchmarkOptions) (benchResult, error) {
	g, err := generate.New(lm.m, prompt, generate.Options{MaxTokens: o.GenerationTokens, PrefillStepSize: o.PrefillStepSize})
	if err != nil {
		return benchResult{}, err
	}
	var last generate.Response
	err = generate.Stream(ctx, g, generate.NoEOS{TextTokenizer: lm.tok}, func(r generate.Response) error {
		last = r
		return nil
	})
	return benchResult{last.PromptTPS, last.GenerationTPS, last.PeakMemory}, err
}
