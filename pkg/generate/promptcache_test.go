package generate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

func TestPromptCacheRoundTrip(t *testing.T) {
	m, _, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	tok := loadTokenizer(t)
	prefix := tok.Encode("<|user|>Tell me a story\n", false)
	rest := tok.Encode("<|user|>Once upon\n<|assistant|>", false)

	// The cache of the prefix alone, saved and loaded again.
	g, _ := New(m, prefix, Options{MaxTokens: 0})
	if err := g.Commit(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cache.safetensors")
	if err := SavePromptCache(path, g.Caches(), map[string]string{"model": fixture, "tokenizer_config": "{}"}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	md := f.Metadata()
	if md["2.0"] != "KVCache" || md["2.1"] != "KVCache" || md["1.model"] != fixture || md["0.0"] != "" {
		t.Errorf("metadata %v, want mlx_lm's flattened [meta, user, classes]", md)
	}
	if info, ok := f.Info("1.1"); !ok || !slices.Equal(info.Shape, []int{1, 2, len(prefix), 16}) {
		t.Errorf("layer 1 values %+v, want [1, 2, %d, 16]", info, len(prefix))
	}
	f.Close()

	caches, user, err := LoadPromptCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if user["model"] != fixture || len(caches) != 2 || caches[0].Offset() != len(prefix) {
		t.Fatalf("loaded %d caches (offset %d), metadata %v", len(caches), caches[0].Offset(), user)
	}
	g1, _ := New(m, rest, Options{MaxTokens: 8, Caches: caches})
	got := ids(collect(t, g1))
	g2, _ := New(m, append(slices.Clone(prefix), rest...), Options{MaxTokens: 8})
	if want := ids(collect(t, g2)); !slices.Equal(got, want) {
		t.Fatalf("continuing a loaded cache gave %v, the whole prompt %v", got, want)
	}
}

func TestPromptCacheErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadPromptCache(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
	plain := filepath.Join(dir, "plain.safetensors")
	if err := safetensors.Save(plain, nil, map[string]string{"format": "mlx"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadPromptCache(plain); err == nil || !strings.Contains(err.Error(), "not a prompt-cache file") {
		t.Errorf("file without classes: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "junk.safetensors"), []byte("junk"), 0o644)
	if _, _, err := LoadPromptCache(filepath.Join(dir, "junk.safetensors")); err == nil {
		t.Error("junk file accepted")
	}
}

func TestEncodePromptCachedPrefix(t *testing.T) {
	tok := loadTokenizer(t)
	got, err := EncodePrompt(tok, PromptOptions{Prompt: "hi", SystemPrompt: "sys", CachedPrefix: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := tok.Decode(got, false); s != "hi\n<|assistant|>" {
		t.Fatalf("suffix after the cached prefix %q", s)
	}
}
