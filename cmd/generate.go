package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all" // every architecture
	"github.com/mlxgo/mlxgo/pkg/sample"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// DefaultModel is mlx_lm's default for generate and chat.
const DefaultModel = "mlx-community/Llama-3.2-3B-Instruct-4bit"

// SamplingOptions are the sampler and logits-processor settings shared by
// generate and chat.
type SamplingOptions struct {
	Temp, TopP, MinP             float64
	TopK, MinTokensToKeep        int
	XTCProbability, XTCThreshold float64
	Seed                         *uint64
	RepetitionPenalty            float64
	RepetitionContextSize        int
	PresencePenalty              float64
	FrequencyPenalty             float64
	LogitBias                    map[int]float32
	logitBiasJSON                string
	seed                         int64
}

// Sampler builds the sampler these options describe.
func (o *SamplingOptions) Sampler(xtcSpecial []int) (*sample.Sampler, error) {
	return sample.New(sample.Options{
		Temp: o.Temp, TopP: o.TopP, MinP: o.MinP, MinTokensToKeep: o.MinTokensToKeep, TopK: o.TopK,
		XTCProbability: o.XTCProbability, XTCThreshold: o.XTCThreshold, XTCSpecialTokens: xtcSpecial, Seed: o.Seed,
	})
}

// Processors builds the logits processors these options describe.
func (o *SamplingOptions) Processors() ([]sample.Processor, error) {
	return sample.NewProcessors(sample.ProcessorOptions{
		LogitBias: o.LogitBias, RepetitionPenalty: o.RepetitionPenalty, RepetitionContextSize: o.RepetitionContextSize,
		PresencePenalty: o.PresencePenalty, FrequencyPenalty: o.FrequencyPenalty,
	})
}

func addSamplingFlags(c *cobra.Command, o *SamplingOptions, full bool) {
	fs := c.Flags()
	fs.Float64Var(&o.Temp, "temp", 0, "Sampling temperature (0 is greedy)")
	fs.Float64Var(&o.TopP, "top-p", 1, "Sampling top-p")
	fs.Float64Var(&o.XTCProbability, "xtc-probability", 0, "Probability of XTC sampling to happen each next token")
	fs.Float64Var(&o.XTCThreshold, "xtc-threshold", 0.1, "Thresold the probs of each next token candidate to be sampled by XTC")
	if !full {
		return
	}
	fs.Float64Var(&o.MinP, "min-p", 0, "Sampling min-p")
	fs.IntVar(&o.TopK, "top-k", 0, "Sampling top-k (0 turns it off)")
	fs.IntVar(&o.MinTokensToKeep, "min-tokens-to-keep", 1, "Minimum tokens to keep for min-p sampling")
	fs.Float64Var(&o.RepetitionPenalty, "repetition-penalty", 0, "mlxgo: CTRL repetition penalty over the last --repetition-context-size tokens (0 off)")
	fs.IntVar(&o.RepetitionContextSize, "repetition-context-size", 20, "mlxgo: tokens the penalties look back over")
	fs.Float64Var(&o.PresencePenalty, "presence-penalty", 0, "mlxgo: subtracted once from each recently seen token's logit")
	fs.Float64Var(&o.FrequencyPenalty, "frequency-penalty", 0, "mlxgo: subtracted per occurrence of each recently seen token")
	fs.StringVar(&o.logitBiasJSON, "logit-bias", "", `mlxgo: JSON object of token id to additive bias, e.g. '{"13": -100}'`)
}

// finishSampling validates and completes the sampling options after parsing.
func finishSampling(c *cobra.Command, o *SamplingOptions, defaultSeed *int64) error {
	if o.Temp < 0 {
		return flagError("--temp must be >= 0, got %g", o.Temp)
	}
	if o.TopP < 0 || o.TopP > 1 {
		return flagError("--top-p must be in [0, 1], got %g", o.TopP)
	}
	if o.MinP < 0 || o.MinP > 1 {
		return flagError("--min-p must be in [0, 1], got %g", o.MinP)
	}
	if o.TopK < 0 {
		return flagError("--top-k must be >= 0, got %d", o.TopK)
	}
	if o.MinTokensToKeep < 1 && c.Flags().Lookup("min-tokens-to-keep") != nil {
		return flagError("--min-tokens-to-keep must be >= 1, got %d", o.MinTokensToKeep)
	}
	if o.XTCThreshold < 0 || o.XTCThreshold > 0.5 {
		return flagError("--xtc-threshold must be in [0, 0.5], got %g", o.XTCThreshold)
	}
	if o.XTCProbability < 0 || o.XTCProbability > 1 {
		return flagError("--xtc-probability must be in [0, 1], got %g", o.XTCProbability)
	}
	if o.RepetitionPenalty < 0 {
		return flagError("--repetition-penalty must be >= 0, got %g", o.RepetitionPenalty)
	}
	if c.Flags().Changed("seed") {
		s := uint64(o.seed)
		o.Seed = &s
	} else if defaultSeed != nil {
		s := uint64(*defaultSeed)
		o.Seed = &s
	}
	if o.logitBiasJSON != "" {
		var raw map[string]float32
		if err := json.Unmarshal([]byte(o.logitBiasJSON), &raw); err != nil {
			return flagError("--logit-bias: expected a JSON object of token id to number: %v", err)
		}
		o.LogitBias = map[int]float32{}
		for k, v := range raw {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 {
				return flagError("--logit-bias: key %q is not a token id", k)
			}
			o.LogitBias[id] = v
		}
	}
	return nil
}

// GenerateOptions holds `mlxgo generate` flags, named and defaulted as mlx_lm.generate.
type GenerateOptions struct {
	Model                  string
	TrustRemoteCode        bool
	AdapterPath            string
	ExtraEOSTokens         []string
	SystemPrompt           string
	Prompt                 string
	PrefillResponse        string
	MaxTokens              int
	Sampling               SamplingOptions
	IgnoreChatTemplate     bool
	UseDefaultChatTemplate bool
	ChatTemplateConfig     map[string]any
	Verbose                bool
	MaxKVSize              int // 0: unbounded
	PromptCacheFile        string
	QuantizeActivations    bool
	KVBits                 int // 0: full-precision cache
	KVGroupSize            int
	QuantizedKVStart       int
	DraftModel             string
	NumDraftTokens         int
}

func newGenerateCmd(f *Factory) *cobra.Command { return newGenerateCmdWith(f, runGenerate) }

func newGenerateCmdWith(f *Factory, runF func(context.Context, *Factory, *GenerateOptions) error) *cobra.Command {
	o := &GenerateOptions{}
	var verbose, templateConfig string
	c := &cobra.Command{
		Use:   "generate",
		Short: "Generate text from a model",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := finishSampling(c, &o.Sampling, nil); err != nil {
				return err
			}
			o.Verbose = str2bool(verbose)
			if o.Model == "" && o.PromptCacheFile == "" {
				o.Model = DefaultModel // with a prompt cache, the model it records
			}
			if o.Prompt == "-" {
				b, err := io.ReadAll(f.In)
				if err != nil {
					return fmt.Errorf("--prompt -: reading stdin: %w", err)
				}
				o.Prompt = string(b)
			}
			o.Prompt = strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(o.Prompt)
			if templateConfig != "" {
				if err := json.Unmarshal([]byte(templateConfig), &o.ChatTemplateConfig); err != nil {
					return flagError("--chat-template-config: expected a JSON object: %v", err)
				}
			}
			if o.MaxTokens < 0 {
				return flagError("--max-tokens must be >= 0, got %d", o.MaxTokens)
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
			if o.NumDraftTokens < 1 {
				return flagError("--num-draft-tokens must be >= 1, got %d", o.NumDraftTokens)
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Model, "model", "", "The path to the local model directory or Hugging Face repo (default "+DefaultModel+")")
	fs.BoolVar(&o.TrustRemoteCode, "trust-remote-code", false, "Accepted for compatibility; mlxgo runs no model code from repos")
	fs.StringVar(&o.AdapterPath, "adapter-path", "", "Optional path for the trained adapter weights and config")
	fs.StringArrayVar(&o.ExtraEOSTokens, "extra-eos-token", nil, "Add tokens (strings or ids) to the EOS set; takes one or more values")
	fs.StringVar(&o.SystemPrompt, "system-prompt", "", "System prompt to be used for the chat template")
	fs.StringVarP(&o.Prompt, "prompt", "p", "hello", "Message to be processed by the model ('-' reads from stdin)")
	fs.StringVar(&o.PrefillResponse, "prefill-response", "", "Prefill response to be used for the chat template")
	fs.IntVarP(&o.MaxTokens, "max-tokens", "m", 100, "Maximum number of tokens to generate")
	addSamplingFlags(c, &o.Sampling, true)
	fs.Int64Var(&o.Sampling.seed, "seed", 0, "PRNG seed (default: random)")
	fs.BoolVar(&o.IgnoreChatTemplate, "ignore-chat-template", false, "Use the raw prompt without the tokenizer's chat template")
	fs.BoolVar(&o.UseDefaultChatTemplate, "use-default-chat-template", false, "Use the default chat template")
	fs.StringVar(&templateConfig, "chat-template-config", "", "Additional config for apply_chat_template, as a JSON object")
	fs.StringVar(&verbose, "verbose", "true", "Log verbose output when 'True' or 'T' or only print the response when 'False' or 'F'")
	fs.IntVar(&o.MaxKVSize, "max-kv-size", 0, "Set the maximum key-value cache size (rotating cache)")
	fs.StringVar(&o.PromptCacheFile, "prompt-cache-file", "", "A file containing saved KV caches to avoid recomputing them")
	fs.BoolVar(&o.QuantizeActivations, "quantize-activations", false, "Quantize activations using the same quantization config as the weights (also -qa)")
	fs.IntVar(&o.KVBits, "kv-bits", 0, "Number of bits for KV cache quantization (default: no quantization)")
	fs.IntVar(&o.KVGroupSize, "kv-group-size", 64, "Group size for KV cache quantization")
	fs.IntVar(&o.QuantizedKVStart, "quantized-kv-start", 5000, "When --kv-bits is set, start quantizing the KV cache from this step onwards")
	fs.StringVar(&o.DraftModel, "draft-model", "", "A model to be used for speculative decoding")
	fs.IntVar(&o.NumDraftTokens, "num-draft-tokens", 3, "Number of tokens to draft when using speculative decoding")
	return c
}

// str2bool is mlx_lm's: anything but "false"/"f" (any case) is true.
func str2bool(s string) bool {
	l := strings.ToLower(s)
	return l != "false" && l != "f"
}

func checkBits(flag string, bits int) error {
	switch bits {
	case 2, 3, 4, 5, 6, 8:
		return nil
	}
	return flagError("%s must be one of 2, 3, 4, 5, 6, 8; got %d", flag, bits)
}

func checkGroup(flag string, g int) error {
	switch g {
	case 32, 64, 128:
		return nil
	}
	return flagError("%s must be one of 32, 64, 128; got %d", flag, g)
}

func runGenerate(ctx context.Context, f *Factory, o *GenerateOptions) error {
	var cached []model.Cache
	if o.PromptCacheFile != "" {
		if o.DraftModel != "" {
			return fmt.Errorf("--prompt-cache-file with --draft-model is not supported yet")
		}
		var meta map[string]string
		var err error
		if cached, meta, err = generate.LoadPromptCache(o.PromptCacheFile); err != nil {
			return fmt.Errorf("--prompt-cache-file: %w", err)
		}
		switch recorded := meta["model"]; {
		case o.Model == "" && recorded == "":
			o.Model = DefaultModel
		case o.Model == "":
			o.Model = recorded
		case recorded != "" && o.Model != recorded:
			return fmt.Errorf("providing a different model (%s) than that used to create the prompt cache (%s) is an error", o.Model, recorded)
		}
		if cached, err = adaptPromptCache(f.ErrOut, cached, o); err != nil {
			return err
		}
	}
	lm, err := loadForGeneration(ctx, f, "--model", o.Model)
	if err != nil {
		return err
	}
	if err := quantizeActivations(lm, o.QuantizeActivations); err != nil {
		return err
	}
	if o.AdapterPath != "" {
		if err := applyAdapter(lm.m, o.AdapterPath); err != nil {
			return err
		}
	}
	tok := lm.tok
	for _, e := range o.ExtraEOSTokens {
		if err := tok.AddEOSToken(e); err != nil {
			return fmt.Errorf("--extra-eos-token %q: %w", e, err)
		}
	}
	kwargs, err := templateKwargs(o.ChatTemplateConfig)
	if err != nil {
		return err
	}
	prompt, err := generate.EncodePrompt(tok, generate.PromptOptions{
		Prompt: o.Prompt, SystemPrompt: o.SystemPrompt, PrefillResponse: o.PrefillResponse,
		IgnoreChatTemplate: o.IgnoreChatTemplate, TemplateKwargs: kwargs, CachedPrefix: cached != nil,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", lm.dir, err)
	}
	if cached != nil {
		if err := lm.checkPrompt(cached[0].Offset() + len(prompt)); err != nil {
			return fmt.Errorf("with the %d tokens of --prompt-cache-file, %w", cached[0].Offset(), err)
		}
	} else if err := lm.checkPrompt(len(prompt)); err != nil {
		return err
	}
	gopts := generate.Options{
		MaxTokens: o.MaxTokens,
		Caches:    cached,
		CacheOptions: model.CacheOptions{
			MaxKVSize: o.MaxKVSize, KVBits: o.KVBits, KVGroupSize: o.KVGroupSize, QuantizedKVStart: o.QuantizedKVStart,
		},
	}
	if o.DraftModel != "" {
		draft, err := loadForGeneration(ctx, f, "--draft-model", o.DraftModel)
		if err != nil {
			return err
		}
		if draft.tok.VocabSize() != tok.VocabSize() {
			return fmt.Errorf("--draft-model %s: draft model tokenizer does not match model tokenizer (vocabulary of %d, the model's has %d)", o.DraftModel, draft.tok.VocabSize(), tok.VocabSize())
		}
		if o.MaxKVSize > 0 {
			return flagError("--max-kv-size cannot be used with --draft-model: speculative decoding needs trimmable caches")
		}
		gopts.Draft, gopts.NumDraftTokens = draft.m, o.NumDraftTokens
	}
	if gopts.Sampler, err = o.Sampling.Sampler(xtcSpecialTokens(tok)); err != nil {
		return err
	}
	if gopts.Processors, err = o.Sampling.Processors(); err != nil {
		return err
	}
	g, err := generate.New(lm.m, prompt, gopts)
	if err != nil {
		return err
	}
	return printGeneration(ctx, f.Out, g, tok, o.Verbose)
}

// adaptPromptCache checks a loaded prompt cache against the run's cache
// flags and gives it the --kv-bits settings, as mlx_lm's generate does:
// a quantized file needs a matching --kv-bits (when given) and
// --kv-group-size (always, mlx_lm's check), and a standard one switches to
// quantized at --quantized-kv-start (generate_step's
// maybe_quantize_kv_cache; model.ApplyCacheOptions). mlx_lm ignores
// --max-kv-size for a loaded cache without a word; here a warning says so
// unless the file's caches are rotating ones of that size.
func adaptPromptCache(errOut io.Writer, cached []model.Cache, o *GenerateOptions) ([]model.Cache, error) {
	for _, c := range cached {
		var group, bits int
		switch c := c.(type) {
		case *model.QuantizedKVCache:
			if !c.Quantized() {
				continue
			}
			group, bits = c.GroupSize, c.Bits
		case *model.RotatingKVCache:
			if !c.Quantized() {
				continue
			}
			group, bits = c.GroupSize, c.Bits
		default:
			continue
		}
		if o.KVBits != 0 && o.KVBits != bits {
			return nil, fmt.Errorf("--kv-bits %d does not match the kv cache loaded from --prompt-cache-file (%d bits)", o.KVBits, bits)
		}
		if o.KVGroupSize != group {
			return nil, fmt.Errorf("--kv-group-size %d does not match the kv cache loaded from --prompt-cache-file (group size %d; pass --kv-group-size %d)", o.KVGroupSize, group, group)
		}
		break // the first quantized layer (mlx_lm looks at layer 0 only)
	}
	if o.MaxKVSize > 0 && !rotatingOfSize(cached, o.MaxKVSize) {
		fmt.Fprintf(errOut, "[WARNING] --max-kv-size %d is ignored with --prompt-cache-file: the caches keep the kind and size they were saved with (make the file with cache_prompt --max-kv-size %d)\n", o.MaxKVSize, o.MaxKVSize)
	}
	return model.ApplyCacheOptions(cached, model.CacheOptions{
		KVBits: o.KVBits, KVGroupSize: o.KVGroupSize, QuantizedKVStart: o.QuantizedKVStart,
	}), nil
}

// rotatingOfSize reports whether caches hold no standard cache and at least
// one rotating cache of the given size (the others may be sliding-window
// layers' smaller ones).
func rotatingOfSize(caches []model.Cache, size int) bool {
	found := false
	for _, c := range caches {
		switch c := c.(type) {
		case *model.KVCache, *model.QuantizedKVCache:
			return false
		case *model.RotatingKVCache:
			found = found || c.MaxSize == size
		}
	}
	return found
}

// printGeneration streams g's text to w as mlx_lm's generate() prints it.
func printGeneration(ctx context.Context, w io.Writer, g *generate.Generator, tok generate.TextTokenizer, verbose bool) error {
	if verbose {
		fmt.Fprintln(w, strings.Repeat("=", 10))
	}
	var text strings.Builder
	var last generate.Response
	err := generate.Stream(ctx, g, tok, func(r generate.Response) error {
		if verbose {
			if _, err := io.WriteString(w, r.Text); err != nil {
				return err
			}
		}
		text.WriteString(r.Text)
		last = r
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if !verbose {
		fmt.Fprintln(w, text.String())
	} else {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Repeat("=", 10))
		if text.Len() == 0 {
			fmt.Fprintln(w, "No text generated for this prompt")
		} else {
			fmt.Fprint(w, formatStats(last))
		}
	}
	if err != nil {
		return fmt.Errorf("generation interrupted after %d tokens", last.GenerationTokens)
	}
	return nil
}

// formatStats is mlx_lm's three verbose lines.
func formatStats(r generate.Response) string {
	return fmt.Sprintf("Prompt: %d tokens, %.3f tokens-per-sec\nGeneration: %d tokens, %.3f tokens-per-sec\nPeak memory: %.3f GB\n",
		r.PromptTokens, r.PromptTPS, r.GenerationTokens, r.GenerationTPS, r.PeakMemory)
}

// loadModel loads a model folder; tests swap it for a fake.
var loadModel = func(dir string) (model.Model, error) {
	m, _, err := model.Load(dir)
	return m, err
}

// loadedModel is a model with its tokenizer and context length.
type loadedModel struct {
	dir        string
	m          model.Model
	tok        *tokenizer.Tokenizer
	maxContext int // max_position_embeddings; 0 when config.json has none
}

// loadForGeneration resolves a --model value (local folder or hub repo id)
// and loads the model and its tokenizer.
func loadForGeneration(ctx context.Context, f *Factory, flag, name string) (*loadedModel, error) {
	dir, err := hub.ResolveModel(ctx, name, hub.ResolveOptions{Progress: hub.TerminalOrNil(f.ErrOut)})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s %s: not a model folder (expected a directory with config.json, *.safetensors and tokenizer.json)", flag, name)
	}
	maxCtx, err := contextLength(dir)
	if err != nil {
		return nil, err
	}
	// The tokenizer first: its parse garbage goes back to the OS before
	// the weights are paged in.
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	boundHeap()
	m, err := loadModel(dir)
	if err != nil {
		return nil, err
	}
	return &loadedModel{dir: dir, m: m, tok: tok, maxContext: maxCtx}, nil
}

// boundHeap keeps the Go heap small while generating: the weights and
// activations live outside it (memory-mapped or pooled), so what it holds
// is the tokenizer's tables and a few hundred KB of garbage per token, and
// the default collection target (twice the live heap) would add tens of MB
// to the peak RSS for nothing. The tokenizer's parse garbage is returned
// to the OS now. GOGC, when set, is left as the user set it.
func boundHeap() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	debug.FreeOSMemory()
}

// checkPrompt refuses a prompt longer than the model's context.
func (lm *loadedModel) checkPrompt(n int) error {
	if lm.maxContext > 0 && n > lm.maxContext {
		return fmt.Errorf("the prompt has %d tokens, more than the model's context of %d (max_position_embeddings in %s)", n, lm.maxContext, filepath.Join(lm.dir, "config.json"))
	}
	return nil
}

// contextLength reads max_position_embeddings from config.json (or its
// text_config); 0 when absent.
func contextLength(dir string) (int, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read model config: %w", err)
	}
	var c struct {
		MaxPos     *int `json:"max_position_embeddings"`
		TextConfig *struct {
			MaxPos *int `json:"max_position_embeddings"`
		} `json:"text_config"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, fmt.Errorf("%s: expected a JSON object with an integer max_position_embeddings: %w", path, err)
	}
	switch {
	case c.MaxPos != nil:
		return *c.MaxPos, nil
	case c.TextConfig != nil && c.TextConfig.MaxPos != nil:
		return *c.TextConfig.MaxPos, nil
	}
	return 0, nil
}

// applyAdapter puts the mlx_lm (or Hugging Face PEFT) adapter in dir on m,
// as mlx_lm's load_adapters does.
func applyAdapter(m model.Model, dir string) error {
	a, err := lora.LoadAdapter(dir)
	if err != nil {
		return fmt.Errorf("--adapter-path: %w", err)
	}
	if _, err := lora.ApplyAdapter(m, a); err != nil {
		return fmt.Errorf("--adapter-path %s: %w", dir, err)
	}
	return nil
}

// quantizeActivations applies --quantize-activations (mlx_lm's -qa) to a
// loaded model: its nvfp4 and mxfp8 linear layers round their inputs to
// their own format (mlx's QQLinear); a quantized linear layer in another
// mode is an error.
func quantizeActivations(lm *loadedModel, on bool) error {
	if !on {
		return nil
	}
	if err := model.QuantizeActivations(lm.m); err != nil {
		return fmt.Errorf("--quantize-activations: %s: %w", lm.dir, err)
	}
	return nil
}

// templateKwargs turns --chat-template-config's values into JSON.
func templateKwargs(cfg map[string]any) (map[string]json.RawMessage, error) {
	if len(cfg) == 0 {
		return nil, nil
	}
	out := make(map[string]json.RawMessage, len(cfg))
	for k, v := range cfg {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, flagError("--chat-template-config: key %q: %v", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// xtcSpecialTokens are the ids XTC never removes: newline and EOS (mlx_lm).
func xtcSpecialTokens(tok *tokenizer.Tokenizer) []int {
	return append(tok.Encode("\n", false), tok.EOSTokenIDs()...)
}
