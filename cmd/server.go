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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/engine"
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

The model given by --model is loaded once; requests are generated one at a
time, and a request's "model", "adapters" and "draft_model" must name the
loaded ones (mlx_lm can switch models per request; mlxgo cannot). The KV cache
of the last request is reused by the next one that starts with the same tokens.
Not supported (accepted for compatibility): continuous batching
(--decode-concurrency, --prompt-concurrency), distributed inference
(--pipeline), tool-call parsing of replies (tool calls stay in the text).`,
		Example: `  mlxgo server --model mlx-community/Qwen2.5-0.5B-Instruct-4bit --port 8080
  curl localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 50}'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if o.Model == "" {
				return flagError("--model is required: mlxgo serves one model, loaded at start")
			}
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
	fs.StringVar(&o.Model, "model", "", "The path to the MLX model weights, tokenizer, and config (local folder or Hugging Face repo; required)")
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
	fs.IntVar(&o.PromptCacheSize, "prompt-cache-size", 10, "Maximum number of distinct KV caches to hold in the prompt cache (mlxgo keeps at most 1, the last request's; 0 turns reuse off)")
	fs.StringVar(&cacheBytes, "prompt-cache-bytes", "", "Maximum size in bytes of the KV caches, e.g. 4GB (accepted; mlxgo keeps only the last request's cache)")
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
	lm, err := loadForGeneration(ctx, f, "--model", o.Model)
	if err != nil {
		return err
	}
	if o.AdapterPath != "" {
		if err := applyAdapter(lm.m, o.AdapterPath); err != nil {
			return err
		}
	}
	if o.UseDefaultChatTemplate && !lm.tok.HasChatTemplate() && o.ChatTemplate == "" {
		log.Warn("--use-default-chat-template: the tokenizer has no chat template and there is no default one; chat messages are joined as plain text")
	}
	args, err := templateKwargs(o.ChatTemplateArgs)
	if err != nil {
		return err
	}
	so := server.Options{
		Model: lm.m, Tokenizer: lm.tok, ModelID: modelID(o.Model), ModelAliases: []string{o.Model, lm.dir},
		AdapterPath: o.AdapterPath, MaxContext: lm.maxContext,
		Temp: o.Temp, TopP: o.TopP, TopK: o.TopK, MinP: o.MinP, MaxTokens: o.MaxTokens,
		ChatTemplate: o.ChatTemplate, ChatTemplateArgs: args,
		AllowedOrigins: o.AllowedOrigins, PrefillStepSize: o.PrefillStepSize,
		PromptCache:       o.PromptCacheSize > 0,
		NumDraftTokens:    o.NumDraftTokens,
		SystemFingerprint: fmt.Sprintf("mlxgo-%s-%s-%s-%s", Version, runtime.GOOS, runtime.GOARCH, engine.DefaultBackend().Name()),
		Logger:            log,
	}
	if o.DraftModel != "" {
		draft, err := loadForGeneration(ctx, f, "--draft-model", o.DraftModel)
		if err != nil {
			return err
		}
		if draft.tok.VocabSize() != lm.tok.VocabSize() {
			log.Warn("Draft model tokenizer does not match model tokenizer. Speculative decoding may not work as expected.")
		}
		so.Draft, so.DraftID = draft.m, o.DraftModel
	}
	tmpl := o.ChatTemplate
	if tmpl == "" {
		tmpl = chatTemplateSource(lm.dir)
	}
	if so.ToolParser = server.InferToolParser(tmpl); so.ToolParser != "" && !server.ToolParserSupported(so.ToolParser) {
		log.Warn(fmt.Sprintf("the chat template's tool calls are in mlx_lm's %s format, which mlxgo does not parse: tool calls stay in the reply text", so.ToolParser))
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

// modelID is the id /v1/models gives the served model: the absolute path of
// a local folder, or the repo id, as mlx_lm lists them.
func modelID(name string) string {
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
