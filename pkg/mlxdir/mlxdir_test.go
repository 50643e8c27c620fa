package mlxdir

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConfig: the generation config's eos replaces the config's; Marshal
// drops _name_or_path and vision_config, copies quantization into
// quantization_config and sorts the top-level keys only.
func TestConfig(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "config.json"), `{"model_type": "llama", "_name_or_path": "x", "eos_token_id": 1, "vision_config": {}, "b": {"z": 1, "a": 2}}`)
	write(t, filepath.Join(dir, "generation_config.json"), `{"eos_token_id": [2, 3]}`)
	c, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Str("model_type") != "llama" || c.CheckModelType(dir) != nil {
		t.Errorf("model_type %q", c.Str("model_type"))
	}
	q := pyjson.NewObject()
	q.Set("group_size", 64)
	q.Set("bits", 4)
	c.SetQuantization(q, false)
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n    \"b\": {\n        \"z\": 1,\n        \"a\": 2\n    },\n    \"eos_token_id\": [\n        2,\n        3\n    ],\n    \"model_type\": \"llama\",\n" +
		"    \"quantization\": {\n        \"group_size\": 64,\n        \"bits\": 4\n    },\n    \"quantization_config\": {\n        \"group_size\": 64,\n        \"bits\": 4\n    }\n}"
	if string(data) != want {
		t.Errorf("config.json\n%s\nwant\n%s", data, want)
	}
	c.SetQuantization(nil, true)
	if data, _ := c.Marshal(); strings.Contains(string(data), "quantization") {
		t.Errorf("dropped quantization still written:\n%s", data)
	}

	write(t, filepath.Join(dir, "config.json"), `{"model_type": "llama", "model_file": "m.py"}`)
	if c, err = ReadConfig(dir); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckModelType(dir); err == nil || !strings.Contains(err.Error(), "m.py") {
		t.Errorf("model_file: %v", err)
	}
	if _, err := ReadConfig(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no config.json") {
		t.Errorf("missing config: %v", err)
	}
}

// TestFolder: Abort removes the temporary folder and the parents Create
// made; Commit renames into place, refuses an existing destination unless
// replacing, and then leaves none of the old files.
func TestFolder(t *testing.T) {
	root := t.TempDir()
	f, err := Create(filepath.Join(root, "a", "b", "out"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(f.Dir, "x"), "x")
	f.Abort()
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("abort left %v", entries)
	}

	src := t.TempDir()
	write(t, filepath.Join(src, "config.json"), `{"model_type": "llama"}`)
	write(t, filepath.Join(src, "tokenizer.json"), "{}")
	write(t, filepath.Join(src, "model.safetensors"), "not copied")
	cfg, err := ReadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, "out")
	commit := func(replace bool) ([]string, error) {
		f, err := Create(dst)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Abort()
		if _, err := f.WriteMeta(cfg, src, TemplateCard("")); err != nil {
			t.Fatal(err)
		}
		return f.Commit(replace)
	}
	files, err := commit(false)
	if want := []string{"README.md", "config.json", "tokenizer.json"}; err != nil || !slices.Equal(files, want) {
		t.Fatalf("files %v, %v; want %v", files, err, want)
	}
	if fi, err := os.Stat(filepath.Join(dst, "config.json")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("config.json mode %v, %v", fi.Mode(), err)
	}
	if _, err := commit(false); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second commit without replace: %v", err)
	}
	write(t, filepath.Join(dst, "stale"), "old")
	if _, err := commit(true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "stale")); err == nil {
		t.Error("replace kept a file of the old folder")
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("left beside the output: %v", entries)
	}
}

// TestCard: a local source gets the template; a hub source its own
// card's metadata, or the template with base_model when it has no card.
func TestCard(t *testing.T) {
	if got, want := TemplateCard(""), "---\nlanguage: en\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n"; got != want {
		t.Errorf("template %q", got)
	}
	if got := TemplateCard("org/x:y"); !strings.HasPrefix(got, "---\nbase_model: 'org/x:y'\n") {
		t.Errorf("quoted base_model %q", got)
	}
	s := hubtest.New(t)
	s.AddRepo("org/carded", map[string][]byte{"README.md": []byte("---\nlicense: mit\ntags: [a]\n---\n# Text\n")})
	s.AddRepo("org/bare", map[string][]byte{"config.json": []byte("{}")})
	s.SetEnv(t)
	ctx := context.Background()
	if got, want := Card(ctx, nil, "org/carded"), "---\nlicense: mit\ntags:\n- a\n- mlx\nbase_model: org/carded\nlibrary_name: mlx\npipeline_tag: text-generation\n---\n"; got != want {
		t.Errorf("hub card\n%s\nwant\n%s", got, want)
	}
	if got := Card(ctx, nil, "org/bare"); got != TemplateCard("org/bare") {
		t.Errorf("no source card: %q", got)
	}
	if got := Card(ctx, nil, ""); got != TemplateCard("") {
		t.Errorf("local: %q", got)
	}
}
