package cmd

import (
	"context"

	"github.com/spf13/cobra"
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
	return errNotImplemented("benchmark", "#4")
}
