package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
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
	lm, err := loadForGeneration(ctx, f, "--model", o.Model)
	if err != nil {
		return err
	}
	if o.AdapterPath != "" {
		if err := applyAdapter(lm.m, o.AdapterPath); err != nil {
			return err
		}
	}
	tok := lm.tok
	sampler, err := o.Sampling.Sampler(xtcSpecialTokens(tok))
	if err != nil {
		return err
	}
	newCaches := func() []model.Cache { return lm.m.NewCaches(model.CacheOptions{MaxKVSize: o.MaxKVSize}) }
	caches := newCaches()

	// The root context ends at the first Ctrl-C; chat handles Ctrl-C itself:
	// it stops the current reply, and at the prompt it quits.
	base := context.WithoutCancel(ctx)
	sigs, stop := chatSignals()
	defer stop()
	lines := make(chan string)
	readErr := make(chan error, 1)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		sc := bufio.NewScanner(f.In)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-quit:
				return
			}
		}
		readErr <- sc.Err()
	}()

	fmt.Fprintf(f.Out, "[INFO] Starting chat session with %s.\n", o.Model)
	printChatHelp(f.Out)
	for {
		fmt.Fprint(f.Out, ">> ")
		var query string
		select {
		case query = <-lines:
		case err := <-readErr:
			fmt.Fprintln(f.Out)
			if err != nil {
				return fmt.Errorf("reading the chat input: %w", err)
			}
			return nil // end of input, like 'q'
		case <-sigs:
			fmt.Fprintln(f.Out)
			return nil
		}
		query = strings.TrimSuffix(query, "\r")
		switch query {
		case "q":
			return nil
		case "r":
			caches = newCaches()
			continue
		case "h":
			printChatHelp(f.Out)
			continue
		}
		prompt, err := generate.ChatTurn(tok, o.SystemPrompt, query)
		if err != nil {
			return fmt.Errorf("%s: %w", lm.dir, err)
		}
		if n := caches[0].Offset() + len(prompt); lm.maxContext > 0 && n > lm.maxContext {
			fmt.Fprintf(f.ErrOut, "[ERROR] the conversation would have %d tokens, more than the model's context of %d (max_position_embeddings); 'r' resets the chat\n", n, lm.maxContext)
			continue
		}
		g, err := generate.New(lm.m, prompt, generate.Options{MaxTokens: o.MaxTokens, Sampler: sampler, Caches: caches})
		if err != nil {
			return err
		}
		reply, cancel := context.WithCancel(base)
		done := make(chan struct{})
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-done:
			}
		}()
		err = generate.Stream(reply, g, tok, func(r generate.Response) error {
			_, err := io.WriteString(f.Out, r.Text)
			return err
		})
		close(done)
		cancel()
		fmt.Fprintln(f.Out)
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		if err := g.Commit(); err != nil {
			return err
		}
	}
}

// chatSignals delivers the interrupts that stop a reply; tests swap it.
var chatSignals = func() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt)
	return ch, func() { signal.Stop(ch) }
}

func printChatHelp(w io.Writer) {
	fmt.Fprint(w, "The command list:\n- 'q' to exit\n- 'r' to reset the chat\n- 'h' to display these commands\n")
}
