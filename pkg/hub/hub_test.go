package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

// testClient is a client for s with a fresh cache, no token, and retries
// that do not sleep.
func testClient(t *testing.T, s *hubtest.Server) *Client {
	t.Helper()
	home := t.TempDir()
	c := FromEnv(func(k string) string {
		if k == "HF_HOME" {
			return home
		}
		return ""
	})
	c.Endpoint = s.URL()
	c.CacheDir = filepath.Join(t.TempDir(), "hub")
	c.Retry = Retry{Max: 3, Base: time.Millisecond, MaxWait: 4 * time.Millisecond, Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }}
	return c
}

func randBytes(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// tinyRepo is a model repo: LFS weights, regular JSON files, a nested file
// and files mlx_lm's allow patterns leave out.
func tinyRepo() map[string][]byte {
	return map[string][]byte{
		"config.json":                      []byte(`{"model_type":"llama","hidden_size":8}`),
		"tokenizer.json":                   []byte(`{"version":"1.0","model":{"type":"BPE"}}`),
		"model.safetensors":                randBytes(300_000, 1),
		"sub/extra.json":                   []byte(`{"nested":true}`),
		"README.md":                        []byte("# tiny\n"),
		"pytorch_model.bin":                randBytes(1000, 2),
		"consolidated.safetensors":         randBytes(500, 3),
		"chat_template.jinja":              []byte("{{ messages }}"),
		"model-00001-of-00002.safetensors": randBytes(2000, 4),
	}
}

var tinyAllowed = []string{"chat_template.jinja", "config.json", "model-00001-of-00002.safetensors", "model.safetensors", "sub/extra.json", "tokenizer.json"}

func blobName(path string, data []byte) string {
	if hubtest.IsLFS(path, int64(len(data))) {
		return hubtest.SHA256(data)
	}
	return hubtest.GitBlobSHA1(data)
}

func TestSnapshotCacheLayoutMatchesHuggingfaceHub(t *testing.T) {
	s := hubtest.New(t)
	s.Token = "hf_secret"
	files := tinyRepo()
	commit := s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	c.Token = "hf_secret"

	dir, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(c.CacheDir, "models--org--tiny")
	if want := filepath.Join(repoDir, "snapshots", commit); dir != want {
		t.Fatalf("snapshot dir %s, want %s", dir, want)
	}
	if b, err := os.ReadFile(filepath.Join(repoDir, "refs", "main")); err != nil || string(b) != commit {
		t.Fatalf("refs/main = %q, %v; want %q without newline", b, err, commit)
	}
	got, _ := snapshotFiles(dir)
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(tinyAllowed, ",") {
		t.Fatalf("snapshot files %v, want %v", got, tinyAllowed)
	}
	var wantBlobs []string
	for _, p := range tinyAllowed {
		ptr := filepath.Join(dir, filepath.FromSlash(p))
		st, err := os.Lstat(ptr)
		if err != nil || st.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("%s is not a symlink: %v %v", p, st, err)
		}
		target, _ := os.Readlink(ptr)
		blob := blobName(p, files[p])
		wantBlobs = append(wantBlobs, blob)
		wantTarget := strings.Repeat("../", strings.Count(p, "/")+2) + "blobs/" + blob
		if target != wantTarget {
			t.Errorf("%s -> %s, want %s", p, target, wantTarget)
		}
		if b, _ := os.ReadFile(ptr); !bytes.Equal(b, files[p]) {
			t.Errorf("%s: content differs", p)
		}
		if _, err := os.Stat(filepath.Join(c.CacheDir, ".locks", "models--org--tiny", blob+".lock")); err != nil {
			t.Errorf("lock file for %s: %v", p, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(repoDir, "blobs"))
	var blobs []string
	for _, e := range entries {
		blobs = append(blobs, e.Name())
	}
	sort.Strings(blobs)
	sort.Strings(wantBlobs)
	if strings.Join(blobs, ",") != strings.Join(wantBlobs, ",") {
		t.Errorf("blobs %v, want %v", blobs, wantBlobs)
	}
	if b, err := os.ReadFile(filepath.Join(c.CacheDir, "CACHEDIR.TAG")); err != nil || !strings.HasPrefix(string(b), "Signature: 8a477f597d28d172789f06886806bc55") {
		t.Errorf("CACHEDIR.TAG: %q %v", b, err)
	}
	var tree struct {
		FormatVersion int `json:"format_version"`
		Files         map[string]struct {
			Size      int64  `json:"size"`
			BlobID    string `json:"blob_id"`
			LFSSha256 string `json:"lfs_sha256"`
		} `json:"files"`
	}
	b, err := os.ReadFile(filepath.Join(repoDir, "trees", commit+".json"))
	if err != nil || json.Unmarshal(b, &tree) != nil || tree.FormatVersion != 1 || len(tree.Files) != len(files) {
		t.Fatalf("trees/%s.json: %s %v", commit, b, err)
	}
	if e := tree.Files["model.safetensors"]; e.LFSSha256 != hubtest.SHA256(files["model.safetensors"]) || e.Size != 300_000 {
		t.Errorf("tree entry for model.safetensors: %+v", e)
	}

	// Token to the Hub only; the CDN never sees it; HEADs stop at the redirect.
	for _, r := range s.Requests() {
		if r.Host == "cdn" && r.Auth != "" {
			t.Errorf("CDN request %s %s carried Authorization", r.Method, r.Path)
		}
		if r.Host == "hub" && r.Auth != "Bearer hf_secret" {
			t.Errorf("Hub request %s %s without the token", r.Method, r.Path)
		}
		if r.Host == "cdn" && r.Method == http.MethodHead {
			t.Errorf("HEAD followed the redirect to the CDN: %s", r.Path)
		}
	}
	if n := s.Count("cdn", "GET", "/lfs/"); n != 2 {
		t.Errorf("%d CDN downloads, want 2 (two LFS files)", n)
	}
}

func TestSecondRunDownloadsNothing(t *testing.T) {
	s := hubtest.New(t)
	commit := s.AddRepo("org/tiny", tinyRepo())
	c := testClient(t, s)
	ctx := context.Background()
	first, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	s.ResetLog()
	second, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil || second != first {
		t.Fatalf("second run: %s, %v", second, err)
	}
	if n := len(s.Requests()); n != 1 || s.Count("hub", "GET", "/api/models/org/tiny/revision/main") != 1 {
		t.Errorf("second run by branch made %d requests (%v); want only the listing", n, s.Requests())
	}
	s.ResetLog()
	if _, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{Revision: commit, AllowPatterns: DefaultAllowPatterns}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("run pinned to a cached commit made %d requests: %v", n, s.Requests())
	}
}

func TestCutDownloadResumesInTheSameRun(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	sha := hubtest.SHA256(files["model.safetensors"])
	s.Cut("/lfs/"+sha, 123_457, 1)
	dir, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}})
	if err != nil {
		t.Fatal(err)
	}
	var ranges []string
	for _, r := range s.Requests() {
		if r.Host == "cdn" && strings.Contains(r.Path, sha) {
			ranges = append(ranges, r.Range)
		}
	}
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes=123457-" {
		t.Fatalf("CDN GET ranges %q, want [\"\" \"bytes=123457-\"]", ranges)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); !bytes.Equal(b, files["model.safetensors"]) {
		t.Fatal("resumed file differs")
	}
}

func TestCutDownloadResumesInTheNextRun(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	c.Retry.Max = 2
	sha := hubtest.SHA256(files["model.safetensors"])
	s.Cut("/lfs/"+sha, 100_000, 1)
	s.Cut("/lfs/"+sha, 0, c.Retry.Max+1) // the connection keeps dropping: give up
	_, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "byte 100000 of 300000") || !strings.Contains(err.Error(), "run again to resume") {
		t.Fatalf("error %v, want an interrupted download at byte 100000", err)
	}
	inc := filepath.Join(c.CacheDir, "models--org--tiny", "blobs", sha+".incomplete")
	if st, err := os.Stat(inc); err != nil || st.Size() != 100_000 {
		t.Fatalf(".incomplete: %v %v, want 100000 bytes", st, err)
	}
	if _, err := os.Lstat(filepath.Join(c.CacheDir, "models--org--tiny", "blobs", sha)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a partial blob was moved into place: %v", err)
	}
	s.ResetLog()
	dir, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Count("cdn", "GET", sha); n != 1 || s.Requests()[len(s.Requests())-1].Range != "bytes=100000-" {
		t.Fatalf("resume requests: %+v", s.Requests())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); !bytes.Equal(b, files["model.safetensors"]) {
		t.Fatal("resumed file differs")
	}
	if _, err := os.Stat(inc); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(".incomplete left behind")
	}
}

func TestOfflineUsesTheCacheOnly(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny", tinyRepo())
	c := testClient(t, s)
	ctx := context.Background()
	online, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	s.ResetLog()
	c.Offline = true
	dir, err := ResolveModel(ctx, "org/tiny", ResolveOptions{Client: c})
	if err != nil || dir != online {
		t.Fatalf("offline resolve: %s, %v; want %s", dir, err, online)
	}
	if p, err := c.DownloadFile(ctx, "org/tiny", "config.json", ""); err != nil || p != filepath.Join(online, "config.json") {
		t.Fatalf("offline DownloadFile: %s %v", p, err)
	}
	_, err = c.DownloadFile(ctx, "org/tiny", "README.md", "")
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), `"README.md"`) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE=1") {
		t.Errorf("offline missing file: %v", err)
	}
	_, err = c.Snapshot(ctx, "org/other", SnapshotOptions{})
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "org/other") {
		t.Errorf("offline uncached repo: %v", err)
	}
	// A file of the snapshot disappears: offline says which one.
	os.Remove(filepath.Join(online, "tokenizer.json"))
	_, err = c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "tokenizer.json") || strings.Count(err.Error(), "\n") > 0 {
		t.Errorf("offline incomplete snapshot: %v", err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("offline mode made %d requests", n)
	}
}

func TestHubDownFallsBackToCache(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny", tinyRepo())
	c := testClient(t, s)
	ctx := context.Background()
	want, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	c.Warnings = &warn
	s.Fail("", "/api/", http.StatusServiceUnavailable, 100)
	got, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil || got != want || !strings.Contains(warn.String(), "using the cached snapshot") {
		t.Fatalf("fallback: %s %v, warnings %q", got, err, warn.String())
	}
	_, err = c.Snapshot(ctx, "org/never", SnapshotOptions{})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "after 4 attempts") {
		t.Fatalf("hub down, not cached: %v", err)
	}
}

func TestRetriesWithBackoffThenSucceeds(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	var waits []time.Duration
	var mu sync.Mutex
	c.Retry.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return nil
	}
	s.Fail("GET", "/api/models/", http.StatusBadGateway, 2)
	s.Fail("GET", "/lfs/", http.StatusTooManyRequests, 1)
	s.Fail("HEAD", "/resolve/", http.StatusInternalServerError, 1)
	if _, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}}); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("hub", "GET", "/api/models/"); n != 3 {
		t.Errorf("%d listing requests, want 3 (two 502 then success)", n)
	}
	if len(waits) != 4 || waits[0] != time.Millisecond || waits[1] != 2*time.Millisecond {
		t.Errorf("backoff waits %v, want 1ms, 2ms for the listing then one per other retry", waits)
	}
}

func TestPersistent5xxFailsClearly(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny", tinyRepo())
	c := testClient(t, s)
	s.Fail("", "/api/models/", http.StatusServiceUnavailable, 100)
	_, err := c.ModelInfo(context.Background(), "org/tiny", "")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "after 4 attempts") {
		t.Fatalf("error %v", err)
	}
	if n := s.Count("hub", "", "/api/models/"); n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
}

func TestGatedRepo(t *testing.T) {
	s := hubtest.New(t)
	s.Token = "hf_granted"
	s.AddRepo("meta/gated", tinyRepo())
	s.SetGated("meta/gated", true)
	c := testClient(t, s)
	ctx := context.Background()
	_, err := c.Snapshot(ctx, "meta/gated", SnapshotOptions{})
	if !errors.Is(err, ErrGated) {
		t.Fatalf("no token: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"gated", "HTTP 401", "accept its license at " + s.URL() + "/meta/gated", "HF_TOKEN"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	c.Token = "hf_other"
	_, err = c.DownloadFile(ctx, "meta/gated", "config.json", "")
	if !errors.Is(err, ErrGated) || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "not been granted") {
		t.Fatalf("wrong token: %v", err)
	}
	c.Token = "hf_granted"
	if _, err := c.Snapshot(ctx, "meta/gated", SnapshotOptions{AllowPatterns: DefaultAllowPatterns}); err != nil {
		t.Fatalf("granted token: %v", err)
	}
}

func TestNotFoundErrors(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny", tinyRepo())
	s.Token = "hf_owner"
	s.AddRepo("org/private", tinyRepo())
	s.SetPrivate("org/private", true)
	c := testClient(t, s)
	ctx := context.Background()
	for _, id := range []string{"org/missing", "org/private"} {
		_, err := c.Snapshot(ctx, id, SnapshotOptions{})
		if !errors.Is(err, ErrRepoNotFound) || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "HF_TOKEN") {
			t.Errorf("%s: %v", id, err)
		}
	}
	_, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{Revision: "v9"})
	if !errors.Is(err, ErrRevisionNotFound) || !strings.Contains(err.Error(), `revision "v9"`) {
		t.Errorf("unknown revision: %v", err)
	}
	_, err = c.DownloadFile(ctx, "org/tiny", "nope.json", "")
	if !errors.Is(err, ErrEntryNotFound) || !strings.Contains(err.Error(), `"nope.json"`) {
		t.Errorf("unknown file: %v", err)
	}
	_, err = c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: []string{"*.gguf"}})
	if err == nil || !strings.Contains(err.Error(), "matches the patterns [*.gguf]") {
		t.Errorf("no matching file: %v", err)
	}
	for _, rev := range []string{"../x", "/abs", "a//b"} {
		if _, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{Revision: rev}); !errors.Is(err, ErrRevisionNotFound) {
			t.Errorf("revision %q: %v", rev, err)
		}
	}
}

func TestMalformedRepoIDs(t *testing.T) {
	s := hubtest.New(t)
	c := testClient(t, s)
	for _, id := range []string{"", "a/b/c", "-abc", "org/-abc", "abc-", "a--b", "a..b", "org/abc.git", "org/na me", "org/", "/name", "org/n@me", strings.Repeat("x", 97)} {
		_, err := c.Snapshot(context.Background(), id, SnapshotOptions{})
		if !errors.Is(err, ErrInvalidRepoID) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), fmt.Sprintf("%q", id)) {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"gpt2", "org/name", "mlx-community/Qwen2.5-0.5B-Instruct-4bit", "a_b/c.d-e"} {
		if err := ValidateRepoID(id); err != nil {
			t.Errorf("%q rejected: %v", id, err)
		}
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("bad ids reached the server %d times", n)
	}
}

func TestResolveModel(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny", tinyRepo())
	c := testClient(t, s)
	ctx := context.Background()
	local := t.TempDir()
	if got, err := ResolveModel(ctx, local, ResolveOptions{Client: c}); err != nil || got != local {
		t.Errorf("local dir: %s %v", got, err)
	}
	if _, err := ResolveModel(ctx, "./no/such/dir", ResolveOptions{Client: c}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing local dir: %v", err)
	}
	if _, err := ResolveModel(ctx, "bad id!", ResolveOptions{Client: c}); !errors.Is(err, ErrInvalidRepoID) {
		t.Errorf("bad id: %v", err)
	}
	dir, err := ResolveModel(ctx, "org/tiny", ResolveOptions{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := snapshotFiles(dir)
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(tinyAllowed, ",") {
		t.Errorf("resolved files %v", got)
	}
}

func TestRevisionsTagsAndPRRefs(t *testing.T) {
	s := hubtest.New(t)
	first := s.AddRepo("org/tiny", map[string][]byte{"config.json": []byte(`{"v":1}`)})
	s.Tag("org/tiny", "v1", first)
	second := s.Commit("org/tiny", "main", map[string][]byte{"config.json": []byte(`{"v":2}`)}, nil)
	pr := s.Commit("org/tiny", "refs/pr/1", map[string][]byte{"config.json": []byte(`{"v":3}`)}, nil)
	c := testClient(t, s)
	ctx := context.Background()
	for rev, want := range map[string]string{"v1": first, "main": second, "refs/pr/1": pr, first: first} {
		dir, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{Revision: rev})
		if err != nil {
			t.Fatalf("%s: %v", rev, err)
		}
		if filepath.Base(dir) != want {
			t.Errorf("%s resolved to %s, want %s", rev, filepath.Base(dir), want)
		}
		if rev != want {
			if b, _ := os.ReadFile(filepath.Join(c.CacheDir, "models--org--tiny", "refs", filepath.FromSlash(rev))); string(b) != want {
				t.Errorf("refs/%s = %q", rev, b)
			}
		}
	}
	if s.Count("hub", "GET", "/revision/refs%2Fpr%2F1") != 1 {
		t.Errorf("refs/pr/1 was not escaped whole in the URL: %+v", s.Requests())
	}
}

// corruptingTransport flips one byte of every CDN body.
type corruptingTransport struct{ cdn string }

func (c corruptingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !strings.HasPrefix(r.URL.String(), c.cdn) || r.Method != http.MethodGet {
		return resp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) > 10 {
		b[10] ^= 0xff
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

func TestSHA256MismatchIsRejected(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	c.Transport = corruptingTransport{cdn: s.CDN.URL}
	_, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}})
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("error %v", err)
	}
	blobs, _ := os.ReadDir(filepath.Join(c.CacheDir, "models--org--tiny", "blobs"))
	if len(blobs) != 0 {
		t.Errorf("blobs left after a bad download: %v", blobs)
	}
	if files, _ := snapshotFiles(filepath.Join(c.CacheDir, "models--org--tiny", "snapshots")); len(files) != 0 {
		t.Errorf("snapshot links after a bad download: %v", files)
	}
}

// quotaWriter fails with ENOSPC once quota bytes were written (a full disk).
type quotaWriter struct {
	w     io.Writer
	mu    *sync.Mutex
	quota *int64
}

func (q quotaWriter) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if int64(len(p)) <= *q.quota {
		*q.quota -= int64(len(p))
		return q.w.Write(p)
	}
	n, err := q.w.Write(p[:*q.quota])
	*q.quota -= int64(n)
	if err == nil {
		err = syscall.ENOSPC
	}
	return n, err
}

func TestFullDiskLeavesTheCacheConsistent(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	c.Workers = 1
	quota := int64(150_000)
	var mu sync.Mutex
	c.wrapBlobWriter = func(w io.Writer) io.Writer { return quotaWriter{w: w, mu: &mu, quota: &quota} }
	ctx := context.Background()
	_, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v, want one line about the full disk", err)
	}
	assertConsistent(t, c.CacheDir)
	info, err := ScanCache(c.CacheDir)
	if err != nil || len(info.Warnings) != 0 || len(info.Incomplete) != 1 {
		t.Fatalf("scan after full disk: %+v %v", info, err)
	}

	c.wrapBlobWriter = nil // space freed
	dir, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	resumed := false
	for _, r := range s.Requests() {
		resumed = resumed || strings.HasPrefix(r.Range, "bytes=")
	}
	if !resumed {
		t.Error("the second run did not resume the partial file")
	}
	for _, p := range tinyAllowed {
		if b, _ := os.ReadFile(filepath.Join(dir, p)); !bytes.Equal(b, files[p]) {
			t.Errorf("%s differs after recovery", p)
		}
	}
	assertConsistent(t, c.CacheDir)
}

// assertConsistent checks every snapshot link resolves to a blob whose
// content matches its name (sha256 or git sha1).
func assertConsistent(t *testing.T, cache string) {
	t.Helper()
	repos, _ := filepath.Glob(filepath.Join(cache, "models--*"))
	for _, repo := range repos {
		filepath.WalkDir(filepath.Join(repo, "snapshots"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("dangling link %s: %v", p, err)
				return nil
			}
			target, _ := os.Readlink(p)
			name := filepath.Base(target)
			if name != hubtest.SHA256(b) && name != hubtest.GitBlobSHA1(b) {
				t.Errorf("%s -> %s holds other content", p, target)
			}
			return nil
		})
		blobs, _ := os.ReadDir(filepath.Join(repo, "blobs"))
		for _, e := range blobs {
			if strings.HasSuffix(e.Name(), ".incomplete") {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(repo, "blobs", e.Name()))
			if e.Name() != hubtest.SHA256(b) && e.Name() != hubtest.GitBlobSHA1(b) {
				t.Errorf("blob %s holds other content", e.Name())
			}
		}
	}
}

func TestConcurrentDownloadsInOneProcess(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	var wg sync.WaitGroup
	dirs := make([]string, 6)
	errs := make([]error, 6)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := *c // separate clients sharing one cache
			dirs[i], errs[i] = cc.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
		}()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("download %d: %s %v", i, dirs[i], errs[i])
		}
	}
	for _, p := range tinyAllowed {
		if b, _ := os.ReadFile(filepath.Join(dirs[0], p)); !bytes.Equal(b, files[p]) {
			t.Errorf("%s differs", p)
		}
	}
	if n := s.Count("cdn", "GET", hubtest.SHA256(files["model.safetensors"])); n != 1 {
		t.Errorf("the blob was downloaded %d times, want once (lock)", n)
	}
	assertConsistent(t, c.CacheDir)
}

// TestHelperDownloadProcess is run as a child process by
// TestConcurrentDownloadsInTwoProcesses.
func TestHelperDownloadProcess(t *testing.T) {
	if os.Getenv("MLXGO_HUB_CHILD") != "1" {
		t.Skip("helper for TestConcurrentDownloadsInTwoProcesses")
	}
	c := FromEnv(os.Getenv)
	dir, err := c.Snapshot(context.Background(), os.Getenv("MLXGO_HUB_REPO"), SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("DIR=" + dir)
}

func TestConcurrentDownloadsInTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	s := hubtest.New(t)
	files := tinyRepo()
	files["model.safetensors"] = randBytes(8<<20, 9)
	s.AddRepo("org/tiny", files)
	cache := t.TempDir()
	var wg sync.WaitGroup
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := execTestBinary(t, "-test.run=^TestHelperDownloadProcess$")
			cmd.Env = append(os.Environ(), "MLXGO_HUB_CHILD=1", "MLXGO_HUB_REPO=org/tiny", "HF_ENDPOINT="+s.URL(), "HF_HUB_CACHE="+cache, "HF_HOME="+t.TempDir(), "HF_TOKEN=", "HF_HUB_OFFLINE=")
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil || !bytes.Contains(outs[i], []byte("DIR=")) {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	if n := s.Count("cdn", "GET", hubtest.SHA256(files["model.safetensors"])); n != 1 {
		t.Errorf("the 8 MiB blob was downloaded %d times by two processes, want once (flock)", n)
	}
	assertConsistent(t, cache)
	c := FromEnv(func(string) string { return "" })
	c.CacheDir, c.Offline = cache, true
	dir, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); !bytes.Equal(b, files["model.safetensors"]) {
		t.Error("weights differ")
	}
	if inc, _ := filepath.Glob(filepath.Join(cache, "*", "blobs", "*.incomplete")); len(inc) != 0 {
		t.Errorf("left %v", inc)
	}
}

func TestStalledDownloadTimesOutAndResumes(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	c.DownloadIdleTimeout = 200 * time.Millisecond
	sha := hubtest.SHA256(files["model.safetensors"])
	s.Stall("/lfs/"+sha, 50_000, 1)
	dir, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}})
	if err != nil {
		t.Fatal(err)
	}
	var ranges []string
	for _, r := range s.Requests() {
		if r.Host == "cdn" {
			ranges = append(ranges, r.Range)
		}
	}
	resumed := false
	for _, r := range ranges {
		resumed = resumed || r == "bytes=50000-"
	}
	if len(ranges) < 2 || ranges[0] != "" || !resumed {
		t.Errorf("CDN ranges %q, want a resume from byte 50000 after the stall", ranges)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); !bytes.Equal(b, files["model.safetensors"]) {
		t.Error("content differs")
	}
}

func TestCancelledDownloadKeepsThePartialFile(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	sha := hubtest.SHA256(files["model.safetensors"])
	s.Stall("/lfs/"+sha, 70_000, 1)
	ctx, cancel := context.WithCancel(context.Background())
	c.DownloadIdleTimeout = time.Minute
	go func() {
		inc := filepath.Join(c.CacheDir, "models--org--tiny", "blobs", sha+".incomplete")
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if st, err := os.Stat(inc); err == nil && st.Size() == 70_000 {
				cancel() // like Ctrl-C
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	s.ResetLog()
	if _, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"model.safetensors"}}); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("cdn", "GET", sha); n != 1 || s.Requests()[len(s.Requests())-1].Range != "bytes=70000-" {
		t.Errorf("after cancel: %+v", s.Requests())
	}
	assertConsistent(t, c.CacheDir)
}

func TestResolveModelFromEnvironment(t *testing.T) {
	s := hubtest.New(t)
	commit := s.AddRepo("org/tiny", tinyRepo())
	cache := s.SetEnv(t)
	dir, err := ResolveModel(context.Background(), "org/tiny", ResolveOptions{})
	if err != nil || dir != filepath.Join(cache, "models--org--tiny", "snapshots", commit) {
		t.Fatalf("%s %v", dir, err)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	s.ResetLog()
	if again, err := ResolveModel(context.Background(), "org/tiny", ResolveOptions{}); err != nil || again != dir || len(s.Requests()) != 0 {
		t.Fatalf("offline: %s %v, %d requests", again, err, len(s.Requests()))
	}
}

// TestKilledProcessLeavesAResumableCache kills (SIGKILL) a process in the
// middle of a download: its flock dies with it, and the next download picks
// up its .incomplete file where it stopped.
func TestKilledProcessLeavesAResumableCache(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	sha := hubtest.SHA256(files["model.safetensors"])
	s.Stall("/lfs/"+sha, 100_000, 1)
	cache := t.TempDir()
	cmd := execTestBinary(t, "-test.run=^TestHelperDownloadProcess$")
	cmd.Env = append(os.Environ(), "MLXGO_HUB_CHILD=1", "MLXGO_HUB_REPO=org/tiny", "HF_ENDPOINT="+s.URL(), "HF_HUB_CACHE="+cache, "HF_HOME="+t.TempDir(), "HF_TOKEN=", "HF_HUB_OFFLINE=", "HF_HUB_DOWNLOAD_TIMEOUT=60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inc := filepath.Join(cache, "models--org--tiny", "blobs", sha+".incomplete")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(inc); err == nil && st.Size() == 100_000 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the child never reached byte 100000")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()

	c := testClient(t, s)
	c.CacheDir = cache
	s.ResetLog()
	dir, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Count("cdn", "GET", sha); n != 1 {
		t.Errorf("weights fetched %d times after the kill, want once", n)
	}
	for _, r := range s.Requests() {
		if r.Host == "cdn" && strings.Contains(r.Path, sha) && r.Range != "bytes=100000-" {
			t.Errorf("weights fetched with Range %q, want a resume from byte 100000", r.Range)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); !bytes.Equal(b, files["model.safetensors"]) {
		t.Error("weights differ")
	}
	assertConsistent(t, cache)
}

func TestDownloadFileOnlineThenHubDown(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	commit := s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	ctx := context.Background()
	p, err := c.DownloadFile(ctx, "org/tiny", "sub/extra.json", "")
	if err != nil || p != filepath.Join(c.CacheDir, "models--org--tiny", "snapshots", commit, "sub", "extra.json") {
		t.Fatalf("%s %v", p, err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, files["sub/extra.json"]) {
		t.Error("content differs")
	}
	if b, _ := os.ReadFile(filepath.Join(c.CacheDir, "models--org--tiny", "refs", "main")); string(b) != commit {
		t.Errorf("refs/main %q", b)
	}
	var warn bytes.Buffer
	c.Warnings = &warn
	s.Fail("", "/resolve/", http.StatusServiceUnavailable, 100)
	if again, err := c.DownloadFile(ctx, "org/tiny", "sub/extra.json", "main"); err != nil || again != p || !strings.Contains(warn.String(), "using the cached") {
		t.Errorf("hub down, cached: %s %v %q", again, err, warn.String())
	}
	if _, err := c.DownloadFile(ctx, "org/tiny", "config.json", "main"); !errors.Is(err, ErrNotCached) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("hub down, not cached: %v", err)
	}
	for _, bad := range []string{"../x", "/etc/passwd", "a//b", ""} {
		if _, err := c.DownloadFile(ctx, "org/tiny", bad, ""); err == nil {
			t.Errorf("file name %q accepted", bad)
		}
	}
}

func TestRegularFilesAreCheckedAgainstTheirGitOID(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	// Corrupt regular files too: the hub serves them itself, not the CDN.
	c.Transport = corruptingTransport{cdn: s.Hub.URL + "/org/tiny/resolve/"}
	_, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: []string{"config.json"}})
	if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), "git blob sha1") {
		t.Fatalf("error %v", err)
	}
	assertConsistent(t, c.CacheDir)
}

func TestFailureBeforeAnyFileKeepsTheRepoScannable(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny", tinyRepo())
	c := testClient(t, s)
	quota := int64(0)
	var mu sync.Mutex
	c.wrapBlobWriter = func(w io.Writer) io.Writer { return quotaWriter{w: w, mu: &mu, quota: &quota} }
	if _, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %v", err)
	}
	info, err := ScanCache(c.CacheDir)
	if err != nil || len(info.Warnings) != 0 || len(info.Repos) != 1 || info.Repos[0].NbFiles != 0 {
		t.Fatalf("scan: %+v %v", info, err)
	}
	if _, err := os.Stat(filepath.Join(c.CacheDir, "models--org--tiny", "refs", "main")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("refs/main written although no snapshot exists: %v", err)
	}
}
