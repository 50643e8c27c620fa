package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

func TestDownloadFlagsToOptions(t *testing.T) {
	cases := []struct {
		args []string
		want DownloadOptions
	}{
		{[]string{"org/m"}, DownloadOptions{Repo: "org/m"}},
		{[]string{"org/m", "--revision", "v1", "--include", "*.json", "--include", "model*.safetensors", "--exclude", "x*", "-q"},
			DownloadOptions{Repo: "org/m", Revision: "v1", Include: []string{"*.json", "model*.safetensors"}, Exclude: []string{"x*"}, Quiet: true}},
	}
	for _, tc := range cases {
		var got *DownloadOptions
		c := newDownloadCmdWith(&Factory{}, func(_ context.Context, _ *Factory, o *DownloadOptions) error { got = o; return nil })
		c.SetArgs(tc.args)
		c.SetOut(&bytes.Buffer{})
		c.SetErr(&bytes.Buffer{})
		if err := c.Execute(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%v: %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}

func TestDownloadBadInputIsAUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"download"},
		{"download", "a", "b"},
		{"download", "org//x"},
		{"download", "-bad/name"},
		{"download", "org/m", "--revision", ""},
		{"download", "org/m", "--include", ""},
	} {
		code, _, errOut := runArgs(t, args...)
		if code != 2 || !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
	_, _, errOut := runArgs(t, "download", "org//x")
	if first := strings.SplitN(errOut, "\n", 2)[0]; !strings.Contains(first, `invalid repo id "org//x"`) {
		t.Errorf("first line %q", first)
	}
}

func hubEnv(t *testing.T, s *hubtest.Server) string {
	t.Helper()
	return s.SetEnv(t)
}

func TestDownloadCommandEndToEnd(t *testing.T) {
	s := hubtest.New(t)
	files := map[string][]byte{
		"config.json":       []byte(`{"model_type":"llama"}`),
		"model.safetensors": bytes.Repeat([]byte{7}, 5000),
		"README.md":         []byte("# x"),
	}
	commit := s.AddRepo("mlx-community/tiny", files)
	cache := hubEnv(t, s)

	code, out, errOut := runArgs(t, "download", "mlx-community/tiny")
	want := filepath.Join(cache, "models--mlx-community--tiny", "snapshots", commit)
	if code != 0 || strings.TrimSpace(out) != want || errOut != "" {
		t.Fatalf("code %d, stdout %q, stderr %q; want %s", code, out, errOut, want)
	}
	for p, b := range files {
		got, err := os.ReadFile(filepath.Join(want, p))
		if p == "README.md" {
			if err == nil {
				t.Error("README.md is not in mlx_lm's allow patterns but was downloaded")
			}
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s: %v", p, err)
		}
	}
	code, out, _ = runArgs(t, "download", "mlx-community/tiny", "--include", "README.md")
	if b, _ := os.ReadFile(filepath.Join(strings.TrimSpace(out), "README.md")); code != 0 || string(b) != "# x" {
		t.Errorf("--include README.md: code %d, %q", code, b)
	}

	t.Setenv("HF_HUB_OFFLINE", "1")
	if code, out, _ := runArgs(t, "download", "mlx-community/tiny"); code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("offline, cached: code %d, %q", code, out)
	}
	code, _, errOut = runArgs(t, "download", "mlx-community/other")
	if code != 1 || !strings.Contains(errOut, "HF_HUB_OFFLINE=1") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("offline, not cached: code %d, stderr %q", code, errOut)
	}
}

func TestDownloadGatedAndMissingRepos(t *testing.T) {
	s := hubtest.New(t)
	s.Token = "hf_ok"
	s.AddRepo("meta/gated", map[string][]byte{"config.json": []byte("{}")})
	s.SetGated("meta/gated", true)
	hubEnv(t, s)
	code, _, errOut := runArgs(t, "download", "meta/gated")
	if code != 1 || !strings.Contains(errOut, "accept its license at "+s.URL()+"/meta/gated") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("gated: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runArgs(t, "download", "meta/none")
	if code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("missing: code %d, stderr %q", code, errOut)
	}
	t.Setenv("HF_TOKEN", "hf_ok")
	if code, _, errOut := runArgs(t, "download", "meta/gated"); code != 0 {
		t.Errorf("with token: code %d, %q", code, errOut)
	}
}

func TestRunDownloadWithClient(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/m", map[string][]byte{"config.json": []byte("{}"), "tokenizer.json": []byte("{}")})
	c := hub.FromEnv(func(string) string { return "" })
	c.Endpoint, c.CacheDir = s.URL(), t.TempDir()
	var out, errOut bytes.Buffer
	f := &Factory{Out: &out, ErrOut: &errOut}
	if err := runDownload(context.Background(), f, &DownloadOptions{Repo: "org/m", Include: []string{"config.json"}, Client: c}); err != nil {
		t.Fatal(err)
	}
	dir := strings.TrimSpace(out.String())
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil {
		t.Error("--include did not restrict the files")
	}
	if errOut.Len() != 0 {
		t.Errorf("a progress bar went to a non-terminal: %q", errOut.String())
	}
}
