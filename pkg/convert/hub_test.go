package convert

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

func fixtureFiles(t *testing.T, name string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(filepath.Join(fixtures, name, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = data
	}
	return files
}

// TestHubSourceAndUpload: a hub id is downloaded with mlx_lm's allow
// patterns and converted; the model card names it as base_model; with an
// upload repo the folder (and the usage card) lands on the hub.
func TestHubSourceAndUpload(t *testing.T) {
	s := hubtest.New(t)
	s.AddRepo("org/tiny-llama", fixtureFiles(t, "llama-f32"))
	s.SetEnv(t)
	t.Setenv("HF_TOKEN", "secret")
	var progress bytes.Buffer
	dir, printed, _ := run(t, Options{HFPath: "org/tiny-llama", Quantize: true, GroupSize: 32, UploadRepo: "me/tiny-llama-4bit", Version: "1.2.3", Progress: &progress})
	if !strings.HasSuffix(printed, "Upload successful, go to https://huggingface.co/me/tiny-llama-4bit for details.\n") {
		t.Errorf("printed %q", printed)
	}
	want := readTensors(t, filepath.Join(fixtures, "llama-q4"))
	got := readTensors(t, dir)
	if !reflect.DeepEqual(got, want) {
		t.Error("tensors differ from llama-q4")
	}
	card, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	head := "---\nbase_model: org/tiny-llama\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n"
	for _, w := range []string{head, "\n# me/tiny-llama-4bit\n", "converted to MLX format from [org/tiny-llama](https://huggingface.co/org/tiny-llama)",
		"mlxgo version **1.2.3**", `load("me/tiny-llama-4bit")`} {
		if !strings.Contains(string(card), w) {
			t.Errorf("README.md lacks %q:\n%s", w, card)
		}
	}
	if !strings.HasPrefix(string(card), head) {
		t.Errorf("README.md does not start with the YAML block:\n%s", card)
	}
	up := s.Files("me/tiny-llama-4bit", "main")
	var names []string
	for n := range up {
		if n != ".gitattributes" { // made with the repo
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, listDir(t, dir)) {
		t.Errorf("uploaded %v, folder has %v", names, listDir(t, dir))
	}
	local, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if !bytes.Equal(up["model.safetensors"], local) {
		t.Error("uploaded weights differ")
	}
	if !strings.Contains(progress.String(), "Converting") {
		t.Errorf("no progress bar drawn: %q", progress.String())
	}
}

// TestShards: with a small shard cap the weights split greedily into
// model-0000i-of-0000N.safetensors in mlx_lm's order, the index maps every
// tensor to its shard, and the folder reads back as the one-file output.
func TestShards(t *testing.T) {
	src := filepath.Join(fixtures, "llama-f32")
	one, _, _ := run(t, Options{HFPath: src, Quantize: true, GroupSize: 32})
	many, _, res := run(t, Options{HFPath: src, Quantize: true, GroupSize: 32, shardSize: 20_000})
	if len(res.Shards) < 3 {
		t.Fatalf("shards %v", res.Shards)
	}
	for i, s := range res.Shards {
		if want := "model-0000" + string(rune('1'+i)) + "-of-0000" + string(rune('0'+len(res.Shards))) + ".safetensors"; s != want {
			t.Errorf("shard %d named %s, want %s", i, s, want)
		}
	}
	if !reflect.DeepEqual(readTensors(t, many), readTensors(t, one)) {
		t.Error("sharded output differs")
	}
	idx, err := st.ReadIndex(filepath.Join(many, st.IndexName))
	if err != nil {
		t.Fatal(err)
	}
	// The embedding (first in mlx_lm's order) is in the first shard, the
	// untied lm_head's biases (last) in the last.
	if idx.WeightMap["model.embed_tokens.weight"] != res.Shards[0] || idx.WeightMap["lm_head.biases"] != res.Shards[len(res.Shards)-1] {
		t.Errorf("weight map %v", idx.WeightMap)
	}
}

// TestSourceCard: a hub source's own card metadata is kept (order, values,
// tags plus mlx), null keys dropped, base_model/library_name/pipeline_tag
// set, and the card text emptied, as mlx_lm's create_model_card.
func TestSourceCard(t *testing.T) {
	s := hubtest.New(t)
	files := fixtureFiles(t, "llama-f32")
	files["README.md"] = []byte("---\nlicense: apache-2.0\nlanguage:\n- en\n- fr\ntags: [llama, text]\nlibrary_name: transformers\ndatasets: null\nmodel-index: []\n---\n\n# Tiny\nSome text.\n")
	s.AddRepo("org/carded", files)
	s.SetEnv(t)
	dir, _, _ := run(t, Options{HFPath: "org/carded"})
	card, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	want := "---\nlicense: apache-2.0\nlanguage:\n- en\n- fr\ntags:\n- llama\n- text\n- mlx\nlibrary_name: mlx\nmodel-index: []\nbase_model: org/carded\npipeline_tag: text-generation\n---\n"
	if string(card) != want {
		t.Errorf("README.md\n%s\nwant\n%s", card, want)
	}
}
