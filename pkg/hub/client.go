package hub

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub used when HF_ENDPOINT is unset.
const DefaultEndpoint = "https://huggingface.co"

// DefaultRevision is the branch used when no revision is given.
const DefaultRevision = "main"

// DefaultAllowPatterns are mlx_lm's patterns for a model download
// (mlx_lm/utils.py _download). Patterns use Python fnmatch rules: '*' also
// matches '/'.
var DefaultAllowPatterns = []string{
	"*.json",
	"model*.safetensors",
	"*.py",
	"tokenizer.model",
	"*.tiktoken",
	"tiktoken.model",
	"*.txt",
	"*.jsonl",
	"*.jinja",
}

// TokenizerAllowPatterns are DefaultAllowPatterns without the weights, for
// loading only a tokenizer (mlx_lm's tokenizer-only download).
var TokenizerAllowPatterns = []string{
	"*.json",
	"*.py",
	"tokenizer.model",
	"*.tiktoken",
	"tiktoken.model",
	"*.txt",
	"*.jsonl",
	"*.jinja",
}

// Client talks to one Hub endpoint and stores files in one cache directory.
// The zero value is not usable; build one with NewClient or FromEnv and
// adjust fields before the first call. A Client is safe for concurrent use.
type Client struct {
	// Endpoint is the Hub base URL without a trailing slash (HF_ENDPOINT).
	Endpoint string
	// Token is sent as "Authorization: Bearer" to the endpoint host only,
	// never to a CDN host a download is redirected to.
	Token string
	// CacheDir is the hub cache root (HF_HUB_CACHE).
	CacheDir string
	// Offline forbids any network access (HF_HUB_OFFLINE=1): files come
	// from the cache or the call fails with ErrNotCached.
	Offline bool
	// Transport performs the HTTP requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Workers is the number of files downloaded in parallel (default 8).
	Workers int
	// Retry governs retries of 408/429/5xx answers and dropped connections.
	Retry Retry
	// DownloadIdleTimeout aborts (and resumes) a download that received no
	// byte for this long (HF_HUB_DOWNLOAD_TIMEOUT, default 10 s).
	DownloadIdleTimeout time.Duration
	// Progress receives one byte progress bar per snapshot download or
	// upload; nil shows none. See TerminalOrNil.
	Progress io.Writer
	// Warnings receives one-line notices (cache used because the Hub could
	// not be reached, low disk space); nil discards them.
	Warnings io.Writer
	// UserAgent is sent with every request.
	UserAgent string

	// wrapBlobWriter, when set by tests, wraps the writer of each
	// .incomplete file (to simulate a full disk).
	wrapBlobWriter func(io.Writer) io.Writer
}

// Retry is an exponential backoff policy: waits Base, 2*Base, ... capped at
// MaxWait, for at most Max retries after the first attempt.
type Retry struct {
	Max     int
	Base    time.Duration
	MaxWait time.Duration
	// Sleep waits d or until ctx is done; nil sleeps for real. Tests inject
	// a no-op here to keep the suite fast.
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultRetry matches huggingface_hub's http_backoff: 5 retries, 1 s
// doubling to 8 s.
var DefaultRetry = Retry{Max: 5, Base: time.Second, MaxWait: 8 * time.Second}

func (r Retry) wait(ctx context.Context, attempt int, retryAfter time.Duration) error {
	d := r.Base
	for i := 0; i < attempt && d < r.MaxWait; i++ {
		d *= 2
	}
	if d > r.MaxWait {
		d = r.MaxWait
	}
	if retryAfter > 0 && retryAfter < r.MaxWait {
		d = retryAfter
	}
	if r.Sleep != nil {
		return r.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewClient returns a client configured from the process environment.
func NewClient() *Client { return FromEnv(os.Getenv) }

// FromEnv returns a client configured from getenv, following
// huggingface_hub's rules:
//
//	cache:    HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub,
//	          HF_HOME defaulting to $XDG_CACHE_HOME/huggingface, then ~/.cache/huggingface
//	token:    HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), else the file HF_TOKEN_PATH,
//	          default $HF_HOME/token
//	endpoint: HF_ENDPOINT, default https://huggingface.co
//	offline:  HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) in 1/ON/YES/TRUE
func FromEnv(getenv func(string) string) *Client {
	home := HFHome(getenv)
	cache := firstNonEmpty(getenv("HF_HUB_CACHE"), getenv("HUGGINGFACE_HUB_CACHE"))
	if cache == "" {
		cache = filepath.Join(home, "hub")
	} else {
		cache = expandPath(cache, getenv)
	}
	token := strings.TrimSpace(firstNonEmpty(getenv("HF_TOKEN"), getenv("HUGGING_FACE_HUB_TOKEN")))
	if token == "" {
		path := getenv("HF_TOKEN_PATH")
		if path == "" {
			path = filepath.Join(home, "token")
		} else {
			path = expandPath(path, getenv)
		}
		if b, err := os.ReadFile(path); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	endpoint := strings.TrimRight(firstNonEmpty(getenv("HF_ENDPOINT"), DefaultEndpoint), "/")
	idle := 10 * time.Second
	if s := getenv("HF_HUB_DOWNLOAD_TIMEOUT"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			idle = time.Duration(n) * time.Second
		}
	}
	return &Client{
		Endpoint:            endpoint,
		Token:               token,
		CacheDir:            cache,
		Offline:             isTrue(getenv("HF_HUB_OFFLINE")) || isTrue(getenv("TRANSFORMERS_OFFLINE")),
		Workers:             8,
		Retry:               DefaultRetry,
		DownloadIdleTimeout: idle,
		UserAgent:           "mlxgo; hf_hub-compatible",
	}
}

// HFHome returns $HF_HOME, defaulting to $XDG_CACHE_HOME/huggingface, then
// ~/.cache/huggingface.
func HFHome(getenv func(string) string) string {
	if h := getenv("HF_HOME"); h != "" {
		return expandPath(h, getenv)
	}
	if x := getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(expandPath(x, getenv), "huggingface")
	}
	return filepath.Join(userHome(getenv), ".cache", "huggingface")
}

func userHome(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	return "."
}

// expandPath applies os.path.expanduser then expandvars, as huggingface_hub does.
func expandPath(p string, getenv func(string) string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		p = userHome(getenv) + p[1:]
	}
	return os.Expand(p, getenv)
}

func isTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func (c *Client) workers() int {
	if c.Workers <= 0 {
		return 8
	}
	return c.Workers
}

func (c *Client) warnf(format string, a ...any) {
	if c.Warnings != nil {
		fprintf(c.Warnings, "warning: "+format+"\n", a...)
	}
}
