package hub

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFromEnvFollowsHuggingfaceHubRules(t *testing.T) {
	home := t.TempDir()
	hfHome := t.TempDir()
	os.WriteFile(filepath.Join(hfHome, "token"), []byte("hf_from_file\n"), 0o600)
	other := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(other, []byte("  hf_from_path  "), 0o600)
	cases := []struct {
		name                   string
		env                    map[string]string
		cache, token, endpoint string
		offline                bool
	}{
		{"defaults", map[string]string{"HOME": home}, filepath.Join(home, ".cache/huggingface/hub"), "", DefaultEndpoint, false},
		{"xdg", map[string]string{"HOME": home, "XDG_CACHE_HOME": "/x"}, "/x/huggingface/hub", "", DefaultEndpoint, false},
		{"hf_home and its token file", map[string]string{"HOME": home, "HF_HOME": hfHome, "XDG_CACHE_HOME": "/x"}, filepath.Join(hfHome, "hub"), "hf_from_file", DefaultEndpoint, false},
		{"hf_hub_cache wins, ~ expanded", map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_HUB_CACHE": "~/c"}, filepath.Join(home, "c"), "hf_from_file", DefaultEndpoint, false},
		{"legacy cache var", map[string]string{"HOME": home, "HUGGINGFACE_HUB_CACHE": "/legacy"}, "/legacy", "", DefaultEndpoint, false},
		{"HF_TOKEN wins over the file", map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_TOKEN": "hf_env"}, filepath.Join(hfHome, "hub"), "hf_env", DefaultEndpoint, false},
		{"HF_TOKEN_PATH", map[string]string{"HOME": home, "HF_HOME": hfHome, "HF_TOKEN_PATH": other}, filepath.Join(hfHome, "hub"), "hf_from_path", DefaultEndpoint, false},
		{"endpoint and offline", map[string]string{"HOME": home, "HF_ENDPOINT": "https://mirror.example/", "HF_HUB_OFFLINE": "yes"}, filepath.Join(home, ".cache/huggingface/hub"), "", "https://mirror.example", true},
		{"offline 0 is online", map[string]string{"HOME": home, "HF_HUB_OFFLINE": "0"}, filepath.Join(home, ".cache/huggingface/hub"), "", DefaultEndpoint, false},
		{"transformers offline", map[string]string{"HOME": home, "TRANSFORMERS_OFFLINE": "1"}, filepath.Join(home, ".cache/huggingface/hub"), "", DefaultEndpoint, true},
	}
	for _, tc := range cases {
		c := FromEnv(envMap(tc.env))
		if c.CacheDir != tc.cache || c.Token != tc.token || c.Endpoint != tc.endpoint || c.Offline != tc.offline {
			t.Errorf("%s: cache %q token %q endpoint %q offline %v; want %q %q %q %v", tc.name, c.CacheDir, c.Token, c.Endpoint, c.Offline, tc.cache, tc.token, tc.endpoint, tc.offline)
		}
	}
}

func TestMatchFollowsPythonFnmatch(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"*.json", "config.json", true},
		{"*.json", "sub/dir/x.json", true}, // '*' crosses '/' in fnmatch
		{"*.json", "config.json5", false},
		{"model*.safetensors", "model.safetensors", true},
		{"model*.safetensors", "model-00001-of-00002.safetensors", true},
		{"model*.safetensors", "consolidated.safetensors", false},
		{"model*.safetensors", "sub/model.safetensors", false},
		{"tokenizer.model", "tokenizer.model", true},
		{"tokenizer.model", "tokenizerXmodel", false}, // '.' is literal
		{"?.txt", "a.txt", true},
		{"?.txt", "ab.txt", false},
		{"[ab].txt", "b.txt", true},
		{"[!ab].txt", "b.txt", false},
		{"[!ab].txt", "c.txt", true},
		{"[.txt", "[.txt", true}, // unclosed bracket is literal
		{"data/", "data/x/y.bin", true},
		{"Config.json", "config.json", false}, // case-sensitive
		{"*.jinja", "chat_template.jinja", true},
		{"é*", "été.txt", true},
	}
	for _, tc := range cases {
		if got := Match(tc.pat, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pat, tc.name, got, tc.want)
		}
	}
	got := FilterPaths([]string{"a.json", "b.bin", "c.txt"}, []string{"*.json", "*.txt"}, []string{"c*"})
	if strings.Join(got, ",") != "a.json" {
		t.Errorf("FilterPaths = %v", got)
	}
}

func TestFormatSizeAndTimeSinceMatchHuggingfaceHub(t *testing.T) {
	for n, want := range map[int64]string{0: "0.0", 999: "999.0", 1000: "1.0K", 8800: "8.8K", 2_700_000: "2.7M", 893_800_000: "893.8M", 3_000_000_000: "3.0G"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
	now := time.Unix(1_800_000_000, 0)
	for secs, want := range map[int64]string{5: "a few seconds ago", 25: "25 seconds ago", 90: "2 minutes ago", 3600: "60 minutes ago", 7200: "2 hours ago", 86400: "24 hours ago", 3 * 86400: "3 days ago", 8 * 86400: "1 week ago", 60 * 86400: "2 months ago", 400 * 86400: "1 year ago"} {
		if got := FormatTimeSince(now.Add(-time.Duration(secs)*time.Second), now); got != want {
			t.Errorf("%ds: %q, want %q", secs, got, want)
		}
	}
}

func TestScanAndDeleteCache(t *testing.T) {
	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("mlx-community/tiny-4bit", files)
	s.AddRepo("org/other", map[string][]byte{"config.json": []byte(`{}`)})
	c := testClient(t, s)
	ctx := context.Background()
	if _, err := c.Snapshot(ctx, "mlx-community/tiny-4bit", SnapshotOptions{AllowPatterns: DefaultAllowPatterns}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Snapshot(ctx, "org/other", SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(c.CacheDir, "not-a-repo"), 0o755)
	info, err := ScanCache(c.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Repos) != 2 || len(info.Warnings) != 1 {
		t.Fatalf("repos %+v warnings %v", info.Repos, info.Warnings)
	}
	r := info.Repos[0]
	var want int64
	for _, p := range tinyAllowed {
		want += int64(len(files[p]))
	}
	if r.RepoID != "mlx-community/tiny-4bit" || r.RepoType != "model" || r.NbFiles != len(tinyAllowed) || r.SizeOnDisk != want ||
		strings.Join(r.Refs, ",") != "main" || len(r.Revisions) != 1 || r.LastModified.IsZero() {
		t.Errorf("scanned %+v, want %d files, %d bytes", r, len(tinyAllowed), want)
	}
	if err := DeleteCachedRepo(c.CacheDir, r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("repo folder still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.CacheDir, ".locks", "models--mlx-community--tiny-4bit")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock folder still there")
	}
	info, _ = ScanCache(c.CacheDir)
	if len(info.Repos) != 1 || info.Repos[0].RepoID != "org/other" {
		t.Errorf("after delete: %+v", info.Repos)
	}
	if err := DeleteCachedRepo(c.CacheDir, CachedRepo{Path: "/etc"}); err == nil {
		t.Error("deleting outside the cache was allowed")
	}
	if _, err := ScanCache(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "HF_HUB_CACHE") {
		t.Errorf("missing cache: %v", err)
	}
}

func TestUploadFolderThenDownloadIt(t *testing.T) {
	for _, multipart := range []bool{false, true} {
		s := hubtest.New(t)
		s.Token = "hf_writer"
		if multipart {
			s.MultipartChunk = 64 << 10
		}
		c := testClient(t, s)
		c.Token = "hf_writer"
		dir := t.TempDir()
		local := map[string][]byte{
			"config.json":       []byte(`{"model_type":"llama"}`),
			"model.safetensors": randBytes(200_000, 7),
			"sub/notes.txt":     []byte("hello"),
			"empty.json":        {},
		}
		for p, b := range local {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(dir, p), b, 0o644)
		}
		os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
		os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref"), 0o644)
		ctx := context.Background()
		var bar bytes.Buffer
		c.Progress = &bar
		info, err := c.UploadFolder(ctx, "me/new-model", dir, UploadOptions{})
		if err != nil {
			t.Fatalf("multipart=%v: %v", multipart, err)
		}
		if info.OID != s.Head("me/new-model", "main") || !strings.Contains(bar.String(), "Uploading 1 LFS files") {
			t.Errorf("commit %+v, head %s, bar %q", info, s.Head("me/new-model", "main"), bar.String())
		}
		got := s.Files("me/new-model", "main")
		for p, b := range local {
			if !bytes.Equal(got[p], b) {
				t.Errorf("multipart=%v: %s differs on the Hub", multipart, p)
			}
		}
		if _, ok := got[".git/HEAD"]; ok {
			t.Error(".git was uploaded")
		}
		if n := s.Count("cdn", "PUT", "/upload/"); (multipart && n != 4) || (!multipart && n != 1) {
			t.Errorf("multipart=%v: %d PUTs", multipart, n)
		}
		// Unchanged folder: the repo exists (409 is fine) and nothing is committed.
		s.ResetLog()
		again, err := c.UploadFolder(ctx, "me/new-model", dir, UploadOptions{})
		if err != nil || again.OID != info.OID || s.Count("hub", "POST", "/commit/") != 0 || s.Count("cdn", "PUT", "") != 0 {
			t.Errorf("re-upload: %+v %v, requests %+v", again, err, s.Requests())
		}
		// Round trip through the download path.
		c.Progress = nil
		snap, err := c.Snapshot(ctx, "me/new-model", SnapshotOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for p, b := range local {
			if data, _ := os.ReadFile(filepath.Join(snap, p)); !bytes.Equal(data, b) {
				t.Errorf("%s differs after download", p)
			}
		}
	}
}

func TestUploadWithoutTokenFailsClearly(t *testing.T) {
	s := hubtest.New(t)
	s.Token = "hf_writer"
	c := testClient(t, s)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
	_, err := c.UploadFolder(context.Background(), "me/x", dir, UploadOptions{})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("error %v", err)
	}
	if _, err := c.UploadFolder(context.Background(), "me/x", filepath.Join(dir, "nope"), UploadOptions{}); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("missing folder: %v", err)
	}
}

func TestProgressBarShowsBytes(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny", tinyRepo())
	c := testClient(t, s)
	var bar bytes.Buffer
	c.Progress = &bar
	if _, err := c.Snapshot(context.Background(), "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns}); err != nil {
		t.Fatal(err)
	}
	out := bar.String()
	if !strings.Contains(out, "Fetching 6 files") || !strings.Contains(out, "100%") || !strings.Contains(out, "kB") {
		t.Errorf("progress output %q", out)
	}
	if TerminalOrNil(&bar) != nil {
		t.Error("a buffer is not a terminal")
	}
}
