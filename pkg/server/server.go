// Package server is mlxgo's OpenAI-compatible HTTP API, mlx_lm.server's
// equivalent: POST /v1/completions, POST /v1/chat/completions (and
// /chat/completions), GET /v1/models and GET /health, with mlx_lm's request
// fields, defaults and response shapes.
//
// One model is resident; a request naming another model loads it in its
// place (mlx_lm's ModelProvider). Requests are generated one at a time: a
// request waits for the one before it to finish (or for its client to go
// away). A client that disconnects stops its generation. The KV caches of
// recent requests are kept, and a request whose prompt starts with the same
// tokens as one of them reuses it (mlx_lm's LRU prompt cache).
package server

import (
	"context"
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
	// Model, Tokenizer, MaxContext, Draft and ToolParser are the model
	// loaded at start (Model nil: none yet), the one ModelID, AdapterPath
	// and DraftID name.
	Model      model.Model
	Tokenizer  *tokenizer.Tokenizer
	MaxContext int
	Draft      model.Model
	ToolParser string

	// ModelID is the --model value /v1/models lists; a request's "model"
	// may name it, one of ModelAliases or "default_model", or leave it out,
	// for the model given at start.
	ModelID      string
	ModelAliases []string
	// AdapterPath and DraftID are the --adapter-path and --draft-model of
	// the model given at start.
	AdapterPath    string
	DraftID        string
	NumDraftTokens int

	// Load, when set, loads the model (with adapter and draft model) a
	// request names, which then replaces the loaded one, as mlx_lm's
	// ModelProvider does; nil: requests for other models get a 404.
	Load func(ctx context.Context, key ModelKey) (*Loaded, error)
	// ListModels lists the model ids /v1/models offers besides ModelID (the
	// MLX models in the Hugging Face cache).
	ListModels func() []string

	Temp, TopP, MinP float64
	TopK             int
	MaxTokens        int

	// ChatTemplate, when not "", replaces the tokenizer's chat template
	// (--chat-template); ChatTemplateArgs are extra apply_chat_template
	// arguments (--chat-template-args), which a request's
	// chat_template_kwargs override.
	ChatTemplate     string
	ChatTemplateArgs map[string]json.RawMessage

	// AllowedOrigins are the CORS origins ("*": any).
	AllowedOrigins []string
	// PrefillStepSize is the prompt chunk size (0: 2048).
	PrefillStepSize int
	// PromptCacheSize is how many KV caches of earlier requests are kept
	// for later requests that share their prefix (0: none), and
	// PromptCacheBytes bounds their total size (0: no bound); the least
	// recently used go first (mlx_lm's LRUPromptCache).
	PromptCacheSize  int
	PromptCacheBytes int64

	// SystemFingerprint is sent in every completion response.
	SystemFingerprint string
	// Logger receives request and progress lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock for "created" (nil: time.Now).
	Now func() time.Time
}

// ModelKey names a model to serve: model path or repo id, adapter path and
// draft model ("" for none), mlx_lm's model_key.
type ModelKey struct {
	Model, Adapter, Draft string
}

// Loaded is a model ready to serve.
type Loaded struct {
	Model      model.Model
	Tokenizer  *tokenizer.Tokenizer
	MaxContext int // max_position_embeddings; 0: unknown
	Draft      model.Model
	// ToolParser is the chat template's tool-call format (InferToolParser).
	ToolParser string
}

// Server serves one model over HTTP. It is an http.Handler.
type Server struct {
	o    Options
	log  *slog.Logger
	busy chan struct{} // holds one value while a generation runs

	// The loaded model and its key (guarded by busy).
	cur    *Loaded
	curKey ModelKey

	mu    sync.Mutex     // guards cache (held with busy)
	cache []*promptCache // least recently used first
}

// New checks o and returns a Server.
func New(o Options) (*Server, error) {
	if (o.Model == nil || o.Tokenizer == nil) && o.Load == nil {
		return nil, fmt.Errorf("server: a model and its tokenizer, or a way to load them, are required")
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
	s := &Server{o: o, log: log, busy: make(chan struct{}, 1)}
	if o.Model != nil && o.Tokenizer != nil {
		s.cur = &Loaded{Model: o.Model, Tokenizer: o.Tokenizer, MaxContext: o.MaxContext, Draft: o.Draft, ToolParser: o.ToolParser}
		s.curKey = ModelKey{o.ModelID, o.AdapterPath, o.DraftID}
	}
	return s, nil
}

// keyFor is the model a request asks for, as mlx_lm's ModelProvider maps
// it: "default_model" (or no "model", or a name of the model given at
// start) is that model with its adapter, unless the request names another
// adapter; draft_model "default_model" is the draft model given at start.
func (s *Server) keyFor(rq *request) ModelKey {
	k := ModelKey{Model: rq.model, Adapter: rq.adapter, Draft: rq.draftModel}
	if s.isDefault(rq.model) {
		k.Model = s.o.ModelID
		if k.Adapter == "" {
			k.Adapter = s.o.AdapterPath
		}
	}
	if k.Draft == "default_model" {
		k.Draft = s.o.DraftID
	}
	return k
}

// use returns the model for key, loading it in place of the current one
// when it differs. The caller holds busy.
func (s *Server) use(ctx context.Context, key ModelKey) (*Loaded, error) {
	if s.cur != nil && key == s.curKey {
		return s.cur, nil
	}
	if s.o.Load == nil {
		if s.cur == nil {
			return nil, fmt.Errorf("no model is loaded")
		}
		return nil, fmt.Errorf("model %q (adapters %q, draft_model %q) is not loaded: this server serves %q (adapters %q, draft_model %q) and cannot load others", key.Model, key.Adapter, key.Draft, s.curKey.Model, s.curKey.Adapter, s.curKey.Draft)
	}
	s.log.Info("loading model", "model", key.Model, "adapters", key.Adapter, "draft_model", key.Draft)
	// Unlike mlx_lm, which drops the loaded model first, the loaded model
	// stays until the new one has loaded: a request naming a model that
	// does not load leaves the server as it was. (Weights are memory-mapped,
	// so the overlap costs little.)
	lm, err := s.o.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cache = nil
	s.mu.Unlock()
	s.cur, s.curKey = lm, key
	return lm, nil
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

// handleModels lists the models a request may name, as mlx_lm does: the
// MLX models in the Hugging Face cache (ListModels) and the model given at
// start. /v1/models/<id> filters the list to that id.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
	}
	// mlx_lm: everything after /v1/models/ is a repo id to filter on.
	filter := ""
	if parts := strings.Split(r.URL.Path, "/"); len(parts) > 3 {
		filter = strings.Join(parts[3:], "/")
	}
	var ids []string
	if s.o.ListModels != nil {
		ids = s.o.ListModels()
	}
	if s.o.ModelID != "" && !slices.Contains(ids, s.o.ModelID) {
		ids = append(ids, s.o.ModelID)
	}
	data := []entry{}
	created := s.o.Now().Unix()
	for _, id := range ids {
		if filter == "" || filter == id || id == s.o.ModelID && s.isDefault(filter) {
			data = append(data, entry{ID: id, Object: "model", Created: created})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// isDefault reports whether a request's "model" names the model given at
// start.
func (s *Server) isDefault(name string) bool {
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
