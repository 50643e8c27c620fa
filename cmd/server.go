package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/server"
)

// ServerOptions holds `mlxgo server` flags, named and defaulted as
// mlx_lm.server.
type ServerOptions struct {
	Model                  string
	AdapterPath            string
	Host                   string
	Port                   int
	AllowedOrigins         []string
	DraftModel             string
	NumDraftTokens         int
	TrustRemoteCode        bool
	LogLevel               string
	ChatTemplate           string
	UseDefaultChatTemplate bool
	Temp, TopP, MinP       float64
	TopK                   int
	MaxTokens              int
	ChatTemplateArgs       map[string]any
	DecodeConcurrency      int
	PromptConcurrency      int
	PrefillStepSize        int
	PromptCacheSize        int
	PromptCacheBytes       int64 // 0: no limit given
	Pipeline               bool
}

func newServerCmd(f *Factory) *cobra.Command { return newServerCmdWith(f, runServer) }

func newServerCmdWith(f *Factory, runF func(context.Context, *Factory, *ServerOptions) error) *cobra.Command {
	o := &ServerOptions{}
	var origins, templateArgs, cacheBytes string
	c := &cobra.Command{
		Use:   "server",
		Short: "Serve an OpenAI-compatible HTTP API",
		Long: `Serve a model over an OpenAI-compatible HTTP API, as mlx_lm.server does:
POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health.

The model given by --model is loaded at start; a request whose "model",
"adapters" or "draft_model" names another one loads it in its place, as
mlx_lm does (without --model, the first request must name one). Requests are
generated one at a time. The KV caches of the last --prompt-cache-size
requests are kept, and a request that starts with the same tokens as one of
them continues from it.
Not supported (flags accepted for compatibility): continuous batching
(--decode-concurrency, --prompt-concurrency), distributed inference
(--pipeline). Tool calls in replies are parsed for chat templates in
mlx_lm's json_tools format (<tool_call>{...}</tool_call>); other formats stay
in the reply text.`,
		Example: `  mlxgo server --model mlx-community/Qwen2.5-0.5B-Instruct-4bit --port 8080
  curl localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 50}'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if o.Port < 0 || o.Port > 65535 {
				return flagError("--port must be in [0, 65535], got %d", o.Port)
			}
			o.AllowedOrigins = strings.Split(origins, ",")
			switch strings.ToUpper(o.LogLevel) {
			case "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL":
				o.LogLevel = strings.ToUpper(o.LogLevel)
			default:
				return flagError("--log-level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL; got %q", o.LogLevel)
			}
			if o.NumDraftTokens < 1 {
				return flagError("--num-draft-tokens must be >= 1, got %d", o.NumDraftTokens)
			}
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
			if o.MaxTokens < 0 {
				return flagError("--max-tokens must be >= 0, got %d", o.MaxTokens)
			}
			if err := json.Unmarshal([]byte(templateArgs), &o.ChatTemplateArgs); err != nil || o.ChatTemplateArgs == nil {
				return flagError("--chat-template-args: expected a JSON object, got %q", templateArgs)
			}
			for _, p := range []struct {
				name string
				v    int
			}{{"--decode-concurrency", o.DecodeConcurrency}, {"--prompt-concurrency", o.PromptConcurrency}, {"--prefill-step-size", o.PrefillStepSize}} {
				if p.v < 1 {
					return flagError("%s must be >= 1, got %d", p.name, p.v)
				}
			}
			if o.PromptCacheSize < 0 {
				return flagError("--prompt-cache-size must be >= 0, got %d", o.PromptCacheSize)
			}
			if c.Flags().Changed("prompt-cache-bytes") {
				n, err := parseSize(cacheBytes)
				if err != nil {
					return flagError("--prompt-cache-bytes: %v", err)
				}
				o.PromptCacheBytes = n
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Model, "model", "", "The path to the MLX model weights, tokenizer, and config (local folder or Hugging Face repo)")
	fs.StringVar(&o.AdapterPath, "adapter-path", "", "Optional path for the trained adapter weights and config")
	fs.StringVar(&o.Host, "host", "127.0.0.1", "Host for the HTTP server")
	fs.IntVar(&o.Port, "port", 8080, "Port for the HTTP server (0 picks a free port)")
	fs.StringVar(&origins, "allowed-origins", "*", "Allowed origins, comma-separated")
	fs.StringVar(&o.DraftModel, "draft-model", "", "A model to be used for speculative decoding")
	fs.IntVar(&o.NumDraftTokens, "num-draft-tokens", 3, "Number of tokens to draft when using speculative decoding")
	fs.BoolVar(&o.TrustRemoteCode, "trust-remote-code", false, "Accepted for compatibility; mlxgo runs no model code from repos")
	fs.StringVar(&o.LogLevel, "log-level", "INFO", "Set the logging level: DEBUG, INFO, WARNING, ERROR, CRITICAL")
	fs.StringVar(&o.ChatTemplate, "chat-template", "", "Specify a chat template for the tokenizer (Jinja source)")
	fs.BoolVar(&o.UseDefaultChatTemplate, "use-default-chat-template", false, "Accepted for compatibility: tokenizers have no default chat template any more; without one, messages are joined as mlx_lm's convert_chat does")
	fs.Float64Var(&o.Temp, "temp", 0, "Default sampling temperature")
	fs.Float64Var(&o.TopP, "top-p", 1, "Default nucleus sampling top-p")
	fs.IntVar(&o.TopK, "top-k", 0, "Default top-k sampling (0 disables top-k)")
	fs.Float64Var(&o.MinP, "min-p", 0, "Default min-p sampling (0 disables min-p)")
	fs.IntVar(&o.MaxTokens, "max-tokens", 512, "Default maximum number of tokens to generate")
	fs.StringVar(&templateArgs, "chat-template-args", "{}", `A JSON object of arguments for the tokenizer's apply_chat_template, e.g. '{"enable_thinking":false}'`)
	fs.IntVar(&o.DecodeConcurrency, "decode-concurrency", 32, "Accepted for compatibility: mlxgo generates one request at a time (no continuous batching)")
	fs.IntVar(&o.PromptConcurrency, "prompt-concurrency", 8, "Accepted for compatibility: mlxgo generates one request at a time (no continuous batching)")
	fs.IntVar(&o.PrefillStepSize, "prefill-step-size", 2048, "Step size for prefill processing")
	fs.IntVar(&o.PromptCacheSize, "prompt-cache-size", 10, "Maximum number of distinct KV caches to hold in the prompt cache (0 turns reuse off)")
	fs.StringVar(&cacheBytes, "prompt-cache-bytes", "", "Maximum size in bytes of the KV caches, e.g. 4GB")
	fs.BoolVar(&o.Pipeline, "pipeline", false, "Accepted for compatibility (distributed inference is not supported)")
	return c
}

// listen opens the server's socket; tests read the address it picked.
var listen = func(host string, port int) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

func runServer(ctx context.Context, f *Factory, o *ServerOptions) error {
	log := slog.New(slog.NewTextHandler(f.ErrOut, &slog.HandlerOptions{Level: slogLevel(o.LogLevel)}))
	if o.Pipeline {
		log.Warn("--pipeline: distributed inference is not supported; serving on this machine only")
	}
	args, err := templateKwargs(o.ChatTemplateArgs)
	if err != nil {
		return err
	}
	// load is mlx_lm's ModelProvider._load: the model a request names, with
	// its adapter and draft model.
	// Errors name the flags for the model given at start, the request's
	// fields for the others.
	loadNaming := func(modelName, draftName string) func(context.Context, server.ModelKey) (*server.Loaded, error) {
		return func(ctx context.Context, k server.ModelKey) (*server.Loaded, error) {
			lm, err := loadForGeneration(ctx, f, modelName, k.Model)
			if err != nil {
				return nil, err
			}
			if k.Adapter != "" {
				if err := applyAdapter(lm.m, k.Adapter); err != nil {
					return nil, err
				}
			}
			if o.UseDefaultChatTemplate && !lm.tok.HasChatTemplate() && o.ChatTemplate == "" {
				log.Warn("--use-default-chat-template: the tokenizer has no chat template and there is no default one; chat messages are joined as plain text")
			}
			l := &server.Loaded{Model: lm.m, Tokenizer: lm.tok, MaxContext: lm.maxContext}
			tmpl := o.ChatTemplate
			if tmpl == "" {
				tmpl = chatTemplateSource(lm.dir)
			}
			tp, err := server.ToolParserFor(lm.dir, tmpl)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", lm.dir, err)
			}
			if l.ToolParser = tp; tp != "" && !server.ToolParserSupported(tp) {
				log.Warn(fmt.Sprintf("tool_parser_type %q is not a tool-call format mlxgo parses: tool calls stay in the reply text", tp))
			}
			if k.Draft != "" {
				draft, err := loadForGeneration(ctx, f, draftName, k.Draft)
				if err != nil {
					return nil, err
				}
				if draft.tok.VocabSize() != lm.tok.VocabSize() {
					log.Warn("Draft model tokenizer does not match model tokenizer. Speculative decoding may not work as expected.")
				}
				l.Draft = draft.m
			}
			return l, nil
		}
	}
	so := server.Options{
		ModelID: modelID(o.Model), AdapterPath: o.AdapterPath, DraftID: o.DraftModel, NumDraftTokens: o.NumDraftTokens,
		Load: loadNaming("model", "draft_model"), ListModels: cachedMLXModels,
		Temp: o.Temp, TopP: o.TopP, TopK: o.TopK, MinP: o.MinP, MaxTokens: o.MaxTokens,
		ChatTemplate: o.ChatTemplate, ChatTemplateArgs: args,
		AllowedOrigins: o.AllowedOrigins, PrefillStepSize: o.PrefillStepSize,
		PromptCacheSize:   o.PromptCacheSize,
		PromptCacheBytes:  o.PromptCacheBytes,
		SystemFingerprint: fmt.Sprintf("mlxgo-%s-%s-%s-%s", Version, runtime.GOOS, runtime.GOARCH, engine.DefaultBackend().Name()),
		Logger:            log,
	}
	if o.Model != "" {
		// The model given is loaded before the server listens (mlx_lm loads
		// it in its generation thread), so a bad --model fails at once.
		so.ModelAliases = []string{o.Model}
		lm, err := loadNaming("--model", "--draft-model")(ctx, server.ModelKey{Model: o.Model, Adapter: o.AdapterPath, Draft: o.DraftModel})
		if err != nil {
			return err
		}
		so.Model, so.Tokenizer, so.MaxContext, so.Draft, so.ToolParser = lm.Model, lm.Tokenizer, lm.MaxContext, lm.Draft, lm.ToolParser
	}
	h, err := server.New(so)
	if err != nil {
		return err
	}
	ln, err := listen(o.Host, o.Port)
	if err != nil {
		return fmt.Errorf("--host %s --port %d: %w", o.Host, o.Port, err)
	}
	// Requests' contexts end when the server stops, which stops their
	// generations.
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv := &http.Server{Handler: h, BaseContext: func(net.Listener) context.Context { return base }, ReadHeaderTimeout: time.Minute}
	log.Warn("mlxgo server is not recommended for production as it only implements basic security checks.")
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	log.Info(fmt.Sprintf("Starting httpd at %s on port %s...", host, port))

	stop, unnotify := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer unnotify()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-stop.Done():
	}
	log.Info("Shutting down")
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down the server: %w", err)
	}
	return nil
}

// chatTemplateSource is the model's default chat template as mlx_lm's
// tool-parser inference sees it: tokenizer_config.json's chat_template when
// it is a string, else chat_template.jinja; "" when there is neither.
func chatTemplateSource(dir string) string {
	var tc struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil && json.Unmarshal(b, &tc) == nil {
		var s string
		if json.Unmarshal(tc.ChatTemplate, &s) == nil && s != "" {
			return s
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		return string(b)
	}
	return ""
}

// cachedMLXModels lists the Hugging Face cache's repos that look like MLX
// models, as mlx_lm's probably_mlx_lm: a model repo whose main revision has
// config.json, model.safetensors.index.json and tokenizer_config.json.
func cachedMLXModels() []string {
	info, err := hub.ScanCache("")
	if err != nil {
		return nil
	}
	var ids []string
	for _, r := range info.Repos {
		if r.RepoType != "model" {
			continue
		}
		for _, rev := range r.Revisions {
			if !slices.Contains(rev.Refs, "main") {
				continue
			}
			ok := true
			for _, name := range []string{"config.json", "model.safetensors.index.json", "tokenizer_config.json"} {
				if _, err := os.Stat(filepath.Join(rev.Path, name)); err != nil {
					ok = false
				}
			}
			if ok {
				ids = append(ids, r.RepoID)
			}
		}
	}
	return ids
}

// modelID is the id /v1/models gives the served model: the absolute path of
// a local folder, or the repo id, as mlx_lm lists them.
func modelID(name string) string {
	if name == "" {
		return ""
	}
	if _, err := os.Stat(name); err == nil {
		if abs, err := filepath.Abs(name); err == nil {
			if r, err := filepath.EvalSymlinks(abs); err == nil {
				return r
			}
			return abs
		}
	}
	return name
}

func slogLevel(s string) slog.Level {
	switch s {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING":
		return slog.LevelWarn
	case "ERROR", "CRITICAL":
		return slog.LevelError
	}
	return slog.LevelInfo
}
