package cmd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// TestGeneratePromptCacheFileTypes: generate --prompt-cache-file continues
// a rotating (--max-kv-size) cache and qwen3_next's linear-attention
// (ArraysCache) plus KV caches, printing the text of the same continuation
// on caches that were never saved. (The fixtures' head dim, 16, is below
// MLX's smallest --kv-group-size, so --kv-bits caches are checked in
// pkg/generate on a random model.)
func TestGeneratePromptCacheFileTypes(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		opts model.CacheOptions
		args []string
	}{
		{"../testdata/models/llama-f32", model.CacheOptions{MaxKVSize: 12}, []string{"--max-kv-size", "12"}},
		{"../testdata/models/qwen3_next-f32", model.CacheOptions{}, nil},
	} {
		m, _, err := model.Load(tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.Load(tc.dir)
		if err != nil {
			t.Fatal(err)
		}
		prefix, err := generate.ApplyChatTemplate(tok, []tokenizer.Message{{Role: "user", Content: "Tell me a story"}}, false, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		g, err := generate.New(m, tok.Encode(prefix, false), generate.Options{CacheOptions: tc.opts})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Commit(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "prompt.safetensors")
		if err := generate.SavePromptCache(path, g.Caches(), map[string]string{"model": tc.dir, "tokenizer_config": "{}"}); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runWith(t, "", append([]string{"generate", "--prompt-cache-file", path, "--prompt", " more", "-m", "10", "--verbose", "F"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", tc.dir, code, errOut)
		}
		suffix, err := generate.EncodePrompt(tok, generate.PromptOptions{Prompt: " more", CachedPrefix: true})
		if err != nil {
			t.Fatal(err)
		}
		g2, err := generate.New(m, suffix, generate.Options{MaxTokens: 10, Caches: g.Caches()})
		if err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		if err := generate.Stream(context.Background(), g2, tok, func(r generate.Response) error {
			want.WriteString(r.Text)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if out != want.String()+"\n" || want.Len() < 5 {
			t.Errorf("%s: with the cache file %q, never saved %q", tc.dir, out, want.String())
		}
	}
}
