package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/pyjson"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// DefaultCachePromptModel is mlx_lm.cache_prompt's --model default (a
// local folder).
const DefaultCachePromptModel = "mlx_model"

// CachePromptOptions holds `mlxgo cache_prompt` flags, named and defaulted
// as mlx_lm.cache_prompt (mlx_lm/cache_prompt.py). IgnoreChatTemplate,
// UseDefaultChatTemplate and ChatTemplateConfig are generate's flags of
// the same names: mlx_lm's cache_prompt had the first two until v0.30 and
// never the third.
type CachePromptOptions struct {
	Model                  string
	AdapterPath            string
	TrustRemoteCode        bool
	EOSToken               string // "": none
	IgnoreChatTemplate     bool
	UseDefaultChatTemplate bool
	ChatTemplateConfig     map[string]any
	MaxKVSize              int // 0: unbounded
	PromptCacheFile        string
	Prompt                 string
	KVBits                 int // 0: full-precision cache
	KVGroupSize            int
	QuantizedKVStart       int
}

func newCachePromptCmd(f *Factory) *cobra.Command {
	return newCachePromptCmdWith(f, runCachePrompt)
}

func newCachePromptCmdWith(f *Factory, runF func(context.Context, *Factory, *CachePromptOptions) error) *cobra.Command {
	o := &CachePromptOptions{}
	var templateConfig string
	c := &cobra.Command{
		Use:   "cache_prompt --prompt-cache-file FILE --prompt TEXT",
		Short: "Cache the state of a prompt to be reused with mlxgo generate",
		Long: `Run a prompt through the model and save its KV caches, to be reused with
mlxgo generate --prompt-cache-file (mlx_lm.cache_prompt). The prompt is
rendered as an unfinished user message of the chat template, so generate's
--prompt continues it. A FILE not ending in .safetensors gets the extension,
as MLX's save_safetensors adds it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			var missing []string
			for _, name := range []string{"prompt-cache-file", "prompt"} {
				if !c.Flags().Changed(name) {
					missing = append(missing, "--"+name)
				}
			}
			if len(missing) > 0 {
				return flagError("the following arguments are required: %s", strings.Join(missing, ", "))
			}
			if o.PromptCacheFile == "" {
				return flagError("--prompt-cache-file: expected a file name")
			}
			if o.Prompt == "-" {
				b, err := io.ReadAll(f.In)
				if err != nil {
					return fmt.Errorf("--prompt -: reading stdin: %w", err)
				}
				o.Prompt = string(b)
			}
			if templateConfig != "" {
				if err := json.Unmarshal([]byte(templateConfig), &o.ChatTemplateConfig); err != nil {
					return flagError("--chat-template-config: expected a JSON object: %v", err)
				}
			}
			if c.Flags().Changed("max-kv-size") && o.MaxKVSize < 1 {
				return flagError("--max-kv-size must be >= 1, got %d", o.MaxKVSize)
			}
			if c.Flags().Changed("kv-bits") {
				if err := checkBits("--kv-bits", o.KVBits); err != nil {
					return err
				}
			}
			if err := checkGroup("--kv-group-size", o.KVGroupSize); err != nil {
				return err
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Model, "model", DefaultCachePromptModel, "The path to the local model directory or Hugging Face repo")
	fs.StringVar(&o.AdapterPath, "adapter-path", "", "Optional path for the trained adapter weights and config")
	fs.BoolVar(&o.TrustRemoteCode, "trust-remote-code", false, "Accepted for compatibility; mlxgo runs no model code from repos (recorded in the file's tokenizer_config)")
	fs.StringVar(&o.EOSToken, "eos-token", "", "End of sequence token for tokenizer (recorded in the file's tokenizer_config)")
	fs.BoolVar(&o.IgnoreChatTemplate, "ignore-chat-template", false, "Use the raw prompt without the tokenizer's chat template")
	fs.BoolVar(&o.UseDefaultChatTemplate, "use-default-chat-template", false, "Accepted for compatibility; the tokenizer's own chat template is used")
	fs.StringVar(&templateConfig, "chat-template-config", "", "Additional config for apply_chat_template, as a JSON object")
	fs.IntVar(&o.MaxKVSize, "max-kv-size", 0, "Set the maximum key-value cache size (rotating cache)")
	fs.StringVar(&o.PromptCacheFile, "prompt-cache-file", "", "The file to save the prompt cache in (required)")
	fs.StringVar(&o.Prompt, "prompt", "", "Message to be processed by the model ('-' reads from stdin) (required)")
	fs.IntVar(&o.KVBits, "kv-bits", 0, "Number of bits for KV cache quantization (default: no quantization)")
	fs.IntVar(&o.KVGroupSize, "kv-group-size", 64, "Group size for KV cache quantization")
	fs.IntVar(&o.QuantizedKVStart, "quantized-kv-start", 5000, "When --kv-bits is set, start quantizing the KV cache from this step onwards")
	return c
}

func runCachePrompt(ctx context.Context, f *Factory, o *CachePromptOptions) error {
	path := o.PromptCacheFile
	if !strings.HasSuffix(path, ".safetensors") {
		path += ".safetensors" // MLX's save_safetensors adds it
	}
	// Fail before the prefill, not after it.
	if err := checkWritable(path); err != nil {
		return fmt.Errorf("--prompt-cache-file %s: %w", path, err)
	}
	lm, err := loadForGeneration(ctx, f, "--model", o.Model)
	if err != nil {
		return err
	}
	if o.AdapterPath != "" {
		if err := applyAdapter(lm.m, o.AdapterPath); err != nil {
			return err
		}
	}
	kwargs, err := templateKwargs(o.ChatTemplateConfig)
	if err != nil {
		return err
	}
	prompt, err := cachePromptTokens(lm.tok, o.Prompt, o.IgnoreChatTemplate, kwargs)
	if err != nil {
		return fmt.Errorf("%s: %w", lm.dir, err)
	}
	if len(prompt) == 0 {
		return fmt.Errorf("--prompt: the prompt encodes to no tokens, nothing to cache")
	}
	if err := lm.checkPrompt(len(prompt)); err != nil {
		return err
	}
	caches, err := prefillPrompt(f.Out, lm.m, prompt, model.CacheOptions{
		MaxKVSize: o.MaxKVSize, KVBits: o.KVBits, KVGroupSize: o.KVGroupSize, QuantizedKVStart: o.QuantizedKVStart,
	})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %s not written", path)
	}
	fmt.Fprintf(f.Out, "Peak memory: %.3f GB\n", generate.PeakMemoryGB())
	fmt.Fprintln(f.Out, "Saving...")
	tc, err := cachePromptTokenizerConfig(o)
	if err != nil {
		return err
	}
	meta := map[string]string{"model": o.Model, "tokenizer_config": tc}
	if err := generate.SavePromptCache(path, caches, meta); err != nil {
		return fmt.Errorf("--prompt-cache-file: %w", err)
	}
	return nil
}

// cachePromptTokens encodes the prompt as mlx_lm's cache_prompt does: with
// a chat template, a user message rendered with continue_final_message
// (no generation prompt) and encoded without special tokens, so that
// generate's prompt continues the message; without one (or with
// --ignore-chat-template), the text encoded with special tokens.
func cachePromptTokens(tok *tokenizer.Tokenizer, prompt string, ignoreTemplate bool, kwargs map[string]json.RawMessage) ([]int, error) {
	if ignoreTemplate || !tok.HasChatTemplate() {
		return tok.Encode(prompt, true), nil
	}
	text, err := generate.ApplyChatTemplate(tok, []tokenizer.Message{{Role: "user", Content: prompt}}, false, true, kwargs)
	if err != nil {
		return nil, err
	}
	return tok.Encode(text, false), nil
}

// prefillPrompt runs prompt through m into fresh caches made with co, as
// mlx_lm's generate_step with max_tokens=0: chunks of the prefill step,
// then the last token, converting caches at --quantized-kv-start on the
// way. It prints mlx_lm's progress line ("\rProcessed N tokens (X tok/s)",
// padded to the longest so far) after each chunk, then a newline.
func prefillPrompt(w io.Writer, m model.Model, prompt []int, co model.CacheOptions) ([]model.Cache, error) {
	start := time.Now()
	maxLen := 0
	progress := func(processed, _ int) {
		speed := 0.0
		if s := time.Since(start).Seconds(); s > 0 {
			speed = float64(processed) / s
		}
		msg := fmt.Sprintf("\rProcessed %6d tokens (%6.2f tok/s)", processed, speed)
		maxLen = max(maxLen, len(msg))
		fmt.Fprint(w, msg+strings.Repeat(" ", maxLen-len(msg)))
	}
	// One generated token: the prompt's last token goes through the model
	// on its own, as generate_step's first step; the sampled token is
	// never fed, so the caches hold exactly the prompt.
	g, err := generate.New(m, prompt, generate.Options{MaxTokens: 1, CacheOptions: co, PromptProgress: progress})
	if err != nil {
		return nil, err
	}
	if _, err := g.Next(); err != nil {
		return nil, err
	}
	progress(len(prompt), len(prompt))
	fmt.Fprintln(w)
	return g.Caches(), nil
}

// cachePromptTokenizerConfig is the "tokenizer_config" metadata mlx_lm's
// cache_prompt writes: json.dumps of {"trust_remote_code": ..., and
// "eos_token" when given}.
func cachePromptTokenizerConfig(o *CachePromptOptions) (string, error) {
	obj := pyjson.NewObject()
	obj.Set("trust_remote_code", o.TrustRemoteCode)
	if o.EOSToken != "" {
		obj.Set("eos_token", o.EOSToken)
	}
	b, err := pyjson.Marshal(obj, pyjson.Options{})
	if err != nil {
		return "", fmt.Errorf("tokenizer_config metadata: %w", err)
	}
	return string(b), nil
}

// checkWritable reports whether a file can be created at path: its folder
// exists and takes a new file.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("folder %s does not exist", dir)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("is a folder")
	}
	tmp, err := os.CreateTemp(dir, ".mlxgo-write-check-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}
