// Package server is mlxgo's OpenAI-compatible HTTP API, mlx_lm.server's
// equivalent: POST /v1/completions, POST /v1/chat/completions (and
// /chat/completions), GET /v1/models and GET /health, with mlx_lm's request
// fields, defaults and response shapes.
//
// One model is loaded once and requests are generated one at a time: a
// request waits for the one before it to finish (or for its client to go
// away). A client that disconnects stops its generation. The KV cache of the
// last request is kept, and a request whose prompt starts with the same
// tokens reuses it (mlx_lm's prompt cache, with one entry).
package server

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// Options configure a Server. The sampling fields are the defaults of
// requests that do not set them (mlx_lm's --temp, --top-p, --top-k, --min-p,
// --max-tokens).
type Options struct {
	Model     model.Model
	Tokenizer *tokenizer.Tokenizer
	// ModelID is the id /v1/models lists; a request's "model" may name it,
	// one of ModelAliases, or "default_model", or leave it out.
	ModelID      string
	ModelAliases []string
	// AdapterPath is the adapter applied to Model ("" for none); a request's
	// "adapters" must be absent or name it.
	AdapterPath string
	// MaxContext is the model's max_position_embeddings (0: unknown); longer
	// prompts get a 400.
	MaxContext int

	// Draft turns on speculative decoding; DraftID is the name a request's
	// "draft_model" may give it.
	Draft          model.Model
	DraftID        string
	NumDraftTokens int

	Temp, TopP, MinP float64
	TopK             int
	MaxTokens        int

	// ChatTemplate, when not "", replaces the tokenizer's chat template
	// (--chat-template); ChatTemplateArgs are extra apply_chat_template
	// arguments (--chat-template-args), which a request's
	// chat_template_kwargs override.
	ChatTemplate     string
	ChatTemplateArgs map[string]json.RawMessage
	// ToolParser is the tool-call format of the chat template
	// (InferToolParser); replies in a supported one have their tool calls
	// parsed into "tool_calls".
	ToolParser string

	// AllowedOrigins are the CORS origins ("*": any).
	AllowedOrigins []string
	// PrefillStepSize is the prompt chunk size (0: 2048).
	PrefillStepSize int
	// PromptCache keeps the last request's KV cache for the next request
	// that shares its prefix.
	PromptCache bool

	// SystemFingerprint is sent in every completion response.
	SystemFingerprint string
	// Logger receives request and progress lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock for "created" (nil: time.Now).
	Now func() time.Time
}

// Server serves one model over HTTP. It is an http.Handler.
type Server struct {
	o    Options
	log  *slog.Logger
	busy chan struct{} // holds one value while a generation runs

	mu    sync.Mutex // guards cache (held with busy)
	cache *promptCache
}

// New checks o and returns a Server.
func New(o Options) (*Server, error) {
	if o.Model == nil || o.Tokenizer == nil {
		return nil, fmt.Errorf("server: a model and its tokenizer are required")
	}
	if o.MaxTokens < 0 {
		return nil, fmt.Errorf("server: default max tokens must be >= 0, got %d", o.MaxTokens)
	}
	if o.NumDraftTokens < 1 {
		o.NumDraftTokens = 3
	}
	if len(o.AllowedOrigins) == 0 {
		o.AllowedOrigins = []string{"*"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, log: log, busy: make(chan struct{}, 1)}, nil
}

// ServeHTTP routes a request as mlx_lm's do_GET and do_POST do; unknown
// paths get a 404 "Not Found".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.setCORS(w, r)
	path := r.URL.Path
	switch {
	case r.Method == http.MethodOptions:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && path == "/v1/completions":
		s.handleCompletion(w, r, false)
	case r.Method == http.MethodPost && (path == "/v1/chat/completions" || path == "/chat/completions"):
		s.handleCompletion(w, r, true)
	case r.Method == http.MethodGet && path == "/health":
		s.handleHealth(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/v1/models"):
		s.handleModels(w, r)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "Not Found")
	}
}

func (s *Server) setCORS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	origin := r.Header.Get("Origin")
	switch {
	case slices.Contains(s.o.AllowedOrigins, "*"):
		h.Set("Access-Control-Allow-Origin", "*")
	case origin != "" && slices.Contains(s.o.AllowedOrigins, origin):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Vary", "Origin")
	}
	h.Set("Access-Control-Allow-Methods", "*")
	h.Set("Access-Control-Allow-Headers", "*")
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"status": "ok"}`)
}

// handleModels lists the served model (mlx_lm also lists the MLX models in
// the Hugging Face cache, which it can switch to; mlxgo serves one model).
// /v1/models/<id> filters the list to that id.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
	}
	data := []entry{}
	// mlx_lm: everything after /v1/models/ is a repo id to filter on.
	filter := ""
	if parts := strings.Split(r.URL.Path, "/"); len(parts) > 3 {
		filter = strings.Join(parts[3:], "/")
	}
	if filter == "" || filter == s.o.ModelID || slices.Contains(s.o.ModelAliases, filter) {
		data = append(data, entry{ID: s.o.ModelID, Object: "model", Created: s.o.Now().Unix()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// servesModel reports whether a request's "model" names the loaded model.
func (s *Server) servesModel(name string) bool {
	return name == "" || name == "default_model" || name == s.o.ModelID || slices.Contains(s.o.ModelAliases, name)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error": "encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// writeError sends mlx_lm's error body, {"error": "<message>"}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// uuid4 is a random RFC 4122 version 4 UUID, as Python's uuid.uuid4().
func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
