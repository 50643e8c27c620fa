package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

func TestServerDefaults(t *testing.T) {
	o, err := parseWith(t, "", newServerCmdWith, "--model", "m")
	if err != nil {
		t.Fatal(err)
	}
	want := &ServerOptions{Model: "m", Host: "127.0.0.1", Port: 8080, AllowedOrigins: []string{"*"}, NumDraftTokens: 3,
		LogLevel: "INFO", TopP: 1, MaxTokens: 512, ChatTemplateArgs: map[string]any{},
		DecodeConcurrency: 32, PromptConcurrency: 8, PrefillStepSize: 2048, PromptCacheSize: 10}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults\n got %+v\nwant %+v", o, want)
	}
}

func TestServerFlags(t *testing.T) {
	o, err := parseWith(t, "", newServerCmdWith,
		"--model", "m", "--adapter-path", "ad", "--host", "0.0.0.0", "--port", "9000",
		"--allowed-origins", "http://a,http://b", "--draft-model", "d", "--num-draft-tokens", "5",
		"--trust-remote-code", "--log-level", "debug", "--chat-template", "{{ messages }}", "--use-default-chat-template",
		"--temp", "0.7", "--top-p", "0.9", "--top-k", "40", "--min-p", "0.05", "--max-tokens", "64",
		"--chat-template-args", `{"enable_thinking": false}`, "--decode-concurrency", "4", "--prompt-concurrency", "2",
		"--prefill-step-size", "256", "--prompt-cache-size", "0", "--prompt-cache-bytes", "2GB", "--pipeline")
	if err != nil {
		t.Fatal(err)
	}
	want := &ServerOptions{Model: "m", AdapterPath: "ad", Host: "0.0.0.0", Port: 9000, AllowedOrigins: []string{"http://a", "http://b"},
		DraftModel: "d", NumDraftTokens: 5, TrustRemoteCode: true, LogLevel: "DEBUG", ChatTemplate: "{{ messages }}",
		UseDefaultChatTemplate: true, Temp: 0.7, TopP: 0.9, TopK: 40, MinP: 0.05, MaxTokens: 64,
		ChatTemplateArgs: map[string]any{"enable_thinking": false}, DecodeConcurrency: 4, PromptConcurrency: 2,
		PrefillStepSize: 256, PromptCacheSize: 0, PromptCacheBytes: 2e9, Pipeline: true}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("flags\n got %+v\nwant %+v", o, want)
	}
}

func TestBadServerFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--port", "70000"}, {"--log-level", "LOUD"}, {"--num-draft-tokens", "0"}, {"--temp", "-1"},
		{"--top-p", "2"}, {"--min-p", "-0.1"}, {"--top-k", "-1"}, {"--max-tokens", "-1"}, {"--chat-template-args", "[1]"},
		{"--decode-concurrency", "0"}, {"--prompt-concurrency", "0"}, {"--prefill-step-size", "0"},
		{"--prompt-cache-size", "-1"}, {"--prompt-cache-bytes", "lots"},
	} {
		full := append([]string{"server", "--model", "m"}, args...)
		code, _, errOut := runArgs(t, full...)
		if code != 2 || !strings.Contains(errOut, args[0]) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming the flag", args, code, errOut)
		}
	}
}

// startServer runs `mlxgo server args...` on a free port and returns its
// address and a function that stops it as Ctrl-C does and returns the exit
// code and stderr.
func startServer(t *testing.T, args ...string) (string, func() (int, string)) {
	t.Helper()
	addr := make(chan string, 1)
	old := listen
	listen = func(host string, port int) (net.Listener, error) {
		ln, err := old(host, port)
		if err == nil {
			addr <- ln.Addr().String()
		}
		return ln, err
	}
	t.Cleanup(func() { listen = old })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		f := &Factory{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
		done <- run(ctx, f, append([]string{"server", "--port", "0"}, args...))
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case code := <-done:
		t.Fatalf("server exited %d: %s", code, errOut.String())
	case <-time.After(time.Minute):
		t.Fatal("server did not start listening")
	}
	return base, func() (int, string) {
		cancel()
		select {
		case code := <-done:
			return code, errOut.String()
		case <-time.After(time.Minute):
			t.Fatal("server did not shut down")
		}
		return 0, ""
	}
}

const serverFixture = "../testdata/models/llama-f32"

// TestServerEndToEnd starts `mlxgo server` on a free port with the llama
// fixture, asks for one chat completion and stops it as Ctrl-C does.
func TestServerEndToEnd(t *testing.T) {
	const fixture = serverFixture
	base, stop := startServer(t, "--model", fixture, "--max-tokens", "7")
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages": [{"role": "user", "content": "Hello"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &r) != nil || len(r.Choices) != 1 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}

	// generate --temp 0 -m 7 --prompt Hello gives the same text.
	m, _, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := generate.EncodePrompt(tok, generate.PromptOptions{Prompt: "Hello"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := generate.New(m, ids, generate.Options{MaxTokens: 7})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	generate.Stream(context.Background(), g, tok, func(r generate.Response) error { want.WriteString(r.Text); return nil })
	if r.Choices[0].Message.Content != want.String() || r.Choices[0].FinishReason != "length" || r.Usage.CompletionTokens != 7 {
		t.Errorf("reply %+v, want %q after 7 tokens (--max-tokens)", r, want.String())
	}

	code, errOut := stop()
	if code != 0 {
		t.Errorf("exit %d after shutdown: %s", code, errOut)
	}
	if !strings.Contains(errOut, "Starting httpd at 127.0.0.1 on port ") {
		t.Errorf("no start line in the log:\n%s", errOut)
	}
}

// TestServerWithoutModel starts the server without --model, as mlx_lm
// allows: requests name the model to load.
func TestServerWithoutModel(t *testing.T) {
	base, stop := startServer(t)
	defer stop()
	post := func(body string) (int, string) {
		resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(`{"prompt": "hi"}`); code != 404 || !strings.Contains(body, "no model given") {
		t.Errorf("no model: %d %s", code, body)
	}
	if code, body := post(`{"prompt": "hi", "max_tokens": 3, "model": "` + serverFixture + `"}`); code != 200 || !strings.Contains(body, `"completion_tokens":3`) {
		t.Errorf("model named in the request: %d %s", code, body)
	}
}

func TestServerBadModel(t *testing.T) {
	code, _, errOut := runArgs(t, "server", "--model", t.TempDir()+"/missing", "--port", "0")
	if code != 1 || !strings.Contains(errOut, "--model") {
		t.Errorf("exit %d, stderr %q; want 1 naming --model", code, errOut)
	}
}

func TestCachedMLXModels(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	commit := strings.Repeat("a", 40)
	mk := func(repo string, files ...string) {
		dir := filepath.Join(cache, "models--"+strings.ReplaceAll(repo, "/", "--"))
		snap := filepath.Join(dir, "snapshots", commit)
		if err := os.MkdirAll(snap, 0o755); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "refs"), 0o755)
		os.MkdirAll(filepath.Join(dir, "blobs"), 0o755)
		os.WriteFile(filepath.Join(dir, "refs", "main"), []byte(commit), 0o644)
		for _, f := range files {
			os.WriteFile(filepath.Join(snap, f), []byte("{}"), 0o644)
		}
	}
	mk("org/mlx-model", "config.json", "model.safetensors.index.json", "tokenizer_config.json")
	mk("org/no-index", "config.json", "tokenizer_config.json")
	if got := cachedMLXModels(); !reflect.DeepEqual(got, []string{"org/mlx-model"}) {
		t.Errorf("cachedMLXModels() = %v, want [org/mlx-model] (mlx_lm's probably_mlx_lm)", got)
	}
}

// TestServerSIGTERM runs the real command in a process and stops it with
// SIGTERM: it shuts down and exits 0.
func TestServerSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM on windows")
	}
	cmd := exec.Command(os.Args[0], "server", "--model", serverFixture, "--port", "0")
	cmd.Env = append(os.Environ(), "MLXGO_TEST_MAIN=1", "HF_HUB_OFFLINE=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stderr)
	port := ""
	var log strings.Builder
	for port == "" && lines.Scan() {
		log.WriteString(lines.Text() + "\n")
		if _, after, ok := strings.Cut(lines.Text(), "Starting httpd at 127.0.0.1 on port "); ok {
			port = strings.TrimSuffix(strings.TrimSuffix(after, `"`), "...")
		}
	}
	if port == "" {
		t.Fatalf("no start line:\n%s", log.String())
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		log.WriteString(lines.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(log.String(), "Shutting down") {
		t.Errorf("after SIGTERM: %v\n%s", err, log.String())
	}
}
