package cmd

import (
	"context"

	"github.com/spf13/cobra"
)

// ChatOptions holds `mlxgo chat` flags, named and defaulted as mlx_lm.chat.
type ChatOptions struct {
	Model           string
	TrustRemoteCode bool
	AdapterPath     string
	Sampling        SamplingOptions
	MaxKVSize       int
	MaxTokens       int
	SystemPrompt    string
	Pipeline        bool
}

func newChatCmd(f *Factory) *cobra.Command { return newChatCmdWith(f, runChat) }

func newChatCmdWith(f *Factory, runF func(context.Context, *Factory, *ChatOptions) error) *cobra.Command {
	o := &ChatOptions{}
	c := &cobra.Command{
		Use:   "chat",
		Short: "Chat with a model in an interactive REPL",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			chatSeed := int64(0) // mlx_lm's chat is always seeded, default 0
			if err := finishSampling(c, &o.Sampling, &chatSeed); err != nil {
				return err
			}
			if o.Model == "" {
				o.Model = DefaultModel
			}
			if c.Flags().Changed("max-kv-size") && o.MaxKVSize < 1 {
				return flagError("--max-kv-size must be >= 1, got %d", o.MaxKVSize)
			}
			if o.MaxTokens < 0 {
				return flagError("--max-tokens must be >= 0, got %d", o.MaxTokens)
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Model, "model", "", "The path to the local model directory or Hugging Face repo (default "+DefaultModel+")")
	fs.BoolVar(&o.TrustRemoteCode, "trust-remote-code", false, "Accepted for compatibility; mlxgo runs no model code from repos")
	fs.StringVar(&o.AdapterPath, "adapter-path", "", "Optional path for the trained adapter weights and config")
	addSamplingFlags(c, &o.Sampling, false)
	o.Sampling.MinTokensToKeep = 1
	fs.Int64Var(&o.Sampling.seed, "seed", 0, "PRNG seed")
	fs.IntVar(&o.MaxKVSize, "max-kv-size", 0, "Set the maximum key-value cache size")
	fs.IntVarP(&o.MaxTokens, "max-tokens", "m", 256, "Maximum number of tokens to generate")
	fs.StringVar(&o.SystemPrompt, "system-prompt", "", "System prompt to be used for the chat template")
	fs.BoolVar(&o.Pipeline, "pipeline", false, "Accepted for compatibility (distributed pipeline parallelism is not supported)")
	return c
}

func runChat(ctx context.Context, f *Factory, o *ChatOptions) error {
	return errNotImplemented("chat", "#4")
}
