package gguf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// tokenizerJSON holds the parts of tokenizer.json the export reads.
type tokenizerJSON struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type         string          `json:"type"`
		Vocab        json.RawMessage `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		ByteFallback bool            `json:"byte_fallback"`
		UnkToken     *string         `json:"unk_token"`
	} `json:"model"`
}

// tokenizerKVs builds the tokenizer.* metadata from tokenizerDir's
// tokenizer.json and (optional) tokenizer_config.json and chat_template.jinja,
// padding the vocabulary with [PADn] tokens up to nVocab rows (the
// embedding's) as llama.cpp's converter does.
//
// Byte-level BPE (Llama 3, Qwen) is written as tokenizer.ggml.model "gpt2"
// with merges and a pre-tokenizer name; SentencePiece-style BPE with byte
// fallback (Llama 2, Mistral, Mixtral, Gemma) as "llama" with scores. The
// scores are -(rank+1) of the merge that forms the token (single characters,
// bytes and control tokens 0, other pieces no merge forms below every
// merge): llama.cpp's SPM tokenizer merges the highest-scoring pair first, so
// this reproduces the BPE merge order. llama.cpp's LlamaHfVocab and mlx_lm
// write -1000 for every token, which loses that order: on the 60 golden
// texts of TestLlamaCppRealTokenizers, llama.cpp then tokenizes 20 (llama2)
// and 13 (gemma3) differently from HF; with these scores, none.
func tokenizerKVs(dir string, c *hfConfig, spec archSpec, nVocab int) ([]KV, error) {
	path := filepath.Join(dir, "tokenizer.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("gguf: %s not found: GGUF export needs the tokenizer (tokenizer.json)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(raw, &tj); err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("gguf: %s: tokenizer model %q is not supported for GGUF export (want BPE)", path, tj.Model.Type)
	}
	var vocab map[string]int
	if err := json.Unmarshal(tj.Model.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("gguf: %s: model.vocab: %w", path, err)
	}
	merges, err := parseMerges(tj.Model.Merges)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: model.merges: %w", path, err)
	}

	// id -> token text, added tokens included
	n := 0
	for _, id := range vocab {
		n = max(n, id+1)
	}
	for _, t := range tj.AddedTokens {
		n = max(n, t.ID+1)
	}
	if n > nVocab {
		return nil, fmt.Errorf("gguf: %s has %d tokens but the embedding has %d rows", path, n, nVocab)
	}
	tokens := make([]string, nVocab)
	types := make([]int32, nVocab)
	have := make([]bool, nVocab)
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("gguf: %s: token %q has negative id %d", path, tok, id)
		}
		tokens[id], types[id], have[id] = tok, TokenNormal, true
	}
	byteRe := regexp.MustCompile(`^<0x[0-9A-Fa-f]{2}>$`)
	spm := tj.Model.ByteFallback
	if spm {
		for id, tok := range tokens {
			if have[id] && byteRe.MatchString(tok) {
				types[id] = TokenByte
			}
		}
		if tj.Model.UnkToken != nil {
			if id, ok := vocab[*tj.Model.UnkToken]; ok {
				types[id] = TokenUnknown
			}
		}
	}
	ids := map[string]int{}
	for tok, id := range vocab {
		ids[tok] = id
	}
	for _, t := range tj.AddedTokens {
		if t.ID < 0 {
			return nil, fmt.Errorf("gguf: %s: added token %q has negative id %d", path, t.Content, t.ID)
		}
		tokens[t.ID], have[t.ID] = t.Content, true
		ids[t.Content] = t.ID
		switch {
		case t.Special:
			if types[t.ID] != TokenUnknown {
				types[t.ID] = TokenControl
			}
		default:
			types[t.ID] = TokenUserDefined
		}
	}
	for id := range tokens {
		if !have[id] {
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), TokenUnused
		}
	}

	kvs := []KV{}
	if spm {
		scores := make([]float32, nVocab)
		for rank, m := range merges {
			a, b, _ := strings.Cut(m, " ")
			if id, ok := vocab[a+b]; ok && scores[id] == 0 {
				scores[id] = -float32(rank + 1)
			}
		}
		for id := range scores {
			switch {
			case types[id] == TokenUnused:
				scores[id] = -1000
			case types[id] == TokenNormal && scores[id] == 0 && utf8.RuneCountInString(tokens[id]) > 1:
				// a multi-character piece no merge forms: HF's BPE never
				// produces it, so it ranks below every merge
				scores[id] = -float32(len(merges) + 1)
			}
		}
		kvs = append(kvs,
			KV{"tokenizer.ggml.model", "llama"},
			KV{"tokenizer.ggml.tokens", tokens},
			KV{"tokenizer.ggml.scores", scores},
			KV{"tokenizer.ggml.token_type", types},
			KV{"tokenizer.ggml.add_space_prefix", addsSpacePrefix(tj)})
	} else {
		kvs = append(kvs,
			KV{"tokenizer.ggml.model", "gpt2"},
			KV{"tokenizer.ggml.pre", preTokenizerName(tj.PreTokenizer, c.ModelType)},
			KV{"tokenizer.ggml.tokens", tokens},
			KV{"tokenizer.ggml.token_type", types},
			KV{"tokenizer.ggml.merges", merges})
	}

	tc, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, err
	}
	special := func(key, cfgKey string, fromConfig json.RawMessage) {
		if s, ok := tokenString(tc[cfgKey]); ok {
			if id, ok := ids[s]; ok {
				kvs = append(kvs, KV{key, uint32(id)})
				return
			}
		}
		if id, ok := firstID(fromConfig); ok && id < nVocab {
			kvs = append(kvs, KV{key, uint32(id)})
		}
	}
	special("tokenizer.ggml.bos_token_id", "bos_token", c.BosTokenID)
	special("tokenizer.ggml.eos_token_id", "eos_token", c.EosTokenID)
	special("tokenizer.ggml.unknown_token_id", "unk_token", nil)
	special("tokenizer.ggml.padding_token_id", "pad_token", c.PadTokenID)
	// Whether HF adds BOS: tokenizer_config.json's add_bos_token when set,
	// else whether tokenizer.json's post-processor template starts with it
	// (Qwen's has no template: false). Written always, so llama.cpp does not
	// fall back to its per-vocab-type default.
	addBOS, ok := tc["add_bos_token"].(bool)
	if !ok {
		bos, has := tokenString(tc["bos_token"])
		addBOS = has && templateAddsFirst(tj.PostProcessor, bos)
	}
	kvs = append(kvs, KV{"tokenizer.ggml.add_bos_token", addBOS})
	if b, ok := tc["add_eos_token"].(bool); ok {
		kvs = append(kvs, KV{"tokenizer.ggml.add_eos_token", b})
	}
	tmpl, named, err := chatTemplates(dir, tc)
	if err != nil {
		return nil, err
	}
	if tmpl != "" {
		kvs = append(kvs, KV{"tokenizer.chat_template", tmpl})
	}
	if len(named) > 0 {
		names := make([]string, 0, len(named))
		for k := range named {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			kvs = append(kvs, KV{"tokenizer.chat_template." + k, named[k]})
		}
		kvs = append(kvs, KV{"tokenizer.chat_templates", names})
	}
	return kvs, nil
}

// parseMerges reads merges in either form tokenizers writes: "a b" strings
// or [a, b] pairs (which may contain spaces; llama.cpp's merges are "a b").
func parseMerges(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		return strs, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("want a list of \"a b\" strings or [a, b] pairs: %w", err)
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		out[i] = p[0] + " " + p[1]
	}
	return out, nil
}

func readTokenizerConfig(dir string) (map[string]any, error) {
	path := filepath.Join(dir, "tokenizer_config.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	return m, nil
}

// tokenString reads a special token given as a string or as an AddedToken
// object ({"content": ...}).
func tokenString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case map[string]any:
		s, ok := x["content"].(string)
		return s, ok
	}
	return "", false
}

// firstID reads a config.json token id given as an int or a list of ints.
func firstID(raw json.RawMessage) (int, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var id int
	if json.Unmarshal(raw, &id) == nil {
		return id, true
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return ids[0], true
	}
	return 0, false
}

// chatTemplates gives the default chat template and any named ones, from
// chat_template.jinja (newer transformers) or tokenizer_config.json's
// chat_template (a string, or a list of {name, template}).
func chatTemplates(dir string, tc map[string]any) (string, map[string]string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		return string(b), nil, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("gguf: %w", err)
	}
	switch x := tc["chat_template"].(type) {
	case string:
		return x, nil, nil
	case []any:
		def, named := "", map[string]string{}
		for _, e := range x {
			m, _ := e.(map[string]any)
			name, _ := m["name"].(string)
			tmpl, _ := m["template"].(string)
			if name == "" || tmpl == "" {
				continue
			}
			if name == "default" {
				def = tmpl
			} else {
				named[name] = tmpl
			}
		}
		return def, named, nil
	}
	return "", nil, nil
}

// addsSpacePrefix reports whether a SentencePiece-style tokenizer.json
// prepends "▁" to the input (a Prepend normalizer, or a Metaspace
// pre-tokenizer that prepends); Gemma's does not.
func addsSpacePrefix(tj tokenizerJSON) bool {
	s := string(tj.Normalizer)
	if strings.Contains(s, `"Prepend"`) {
		return true
	}
	p := string(tj.PreTokenizer)
	if strings.Contains(p, `"Metaspace"`) {
		return !strings.Contains(p, `"prepend_scheme":"never"`) && !strings.Contains(p, `"add_prefix_space":false`)
	}
	return false
}

// templateAddsFirst reports whether the post-processor's single-sequence
// template starts with the given special token (how Llama 3's tokenizer.json
// adds <|begin_of_text|>).
func templateAddsFirst(raw json.RawMessage, tok string) bool {
	var pp struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
		} `json:"single"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &pp) != nil {
		return false
	}
	for _, p := range pp.Processors {
		if templateAddsFirst(p, tok) {
			return true
		}
	}
	return pp.Type == "TemplateProcessing" && len(pp.Single) > 0 && pp.Single[0].SpecialToken != nil && pp.Single[0].SpecialToken.ID == tok
}

// preTokenizerName picks llama.cpp's tokenizer.ggml.pre for a byte-level BPE
// tokenizer from its split regex. llama.cpp's converter identifies the
// pre-tokenizer by hashing the tokenization of a probe text; without running
// the tokenizer, the regex is the distinguishing part.
func preTokenizerName(raw json.RawMessage, modelType string) string {
	s := string(raw)
	switch {
	case strings.Contains(s, `\\p{N}{1,3}`):
		return "llama-bpe" // Llama 3
	case strings.Contains(s, `[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+`):
		return "tekken" // Mistral Nemo and later
	case strings.Contains(s, `|\\p{N}|`) && strings.Contains(s, `[^\\r\\n\\p{L}\\p{N}]?\\p{L}+`):
		return "qwen2"
	case strings.Contains(s, `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+`) || strings.Contains(s, `"ByteLevel"`) && !strings.Contains(s, `"Split"`):
		return "gpt-2"
	}
	switch modelType {
	case "qwen2", "qwen3", "qwen3_moe":
		return "qwen2"
	case "llama":
		return "llama-bpe"
	}
	return "default"
}
