package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// tokenizerConfig is what we read from tokenizer_config.json,
// special_tokens_map.json, chat_template.jinja, config.json and
// generation_config.json.
type tokenizerConfig struct {
	bos, eos, unk, pad string
	additional         []string
	// templates holds the chat templates by name; a plain string template
	// is stored under "" and a file's "default" entry under "default".
	templates    map[string]string
	templateFile string // where the templates came from, for error messages
	// configEOS is eos_token_id from config.json, replaced by
	// generation_config.json's when that has one (mlx_lm's load_config).
	configEOS []int
	hasConfig bool
	// tokenizer_class, add_bos_token and add_eos_token (nil: absent).
	class          string
	addBOS, addEOS *bool
	cleanUp        bool
}

// Option changes how Load reads a model directory.
type Option func(*loadOptions)

type loadOptions struct{ transformersPost bool }

// WithTransformersPostProcessor makes special tokens follow transformers
// 4.x instead of tokenizer.json: for the Llama, CodeLlama and Gemma
// tokenizer classes it rebuilds the post-processor from tokenizer_config's
// add_bos_token (default true) and add_eos_token (default false), as their
// update_post_processor does. It matters for files whose tokenizer.json
// disagrees, such as DeepSeek V3's (class LlamaTokenizerFast, ByteLevel
// post-processor: transformers 4.x adds BOS, tokenizers alone does not).
func WithTransformersPostProcessor() Option {
	return func(o *loadOptions) { o.transformersPost = true }
}

// specialTok reads "<s>" or {"content": "<s>", ...}; null gives "".
func specialTok(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", errors.New(`want a string or {"content": "..."}`)
	}
	return *obj.Content, nil
}

// readJSONIfExists unmarshals path into v; a missing file is not an error.
func readJSONIfExists(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("tokenizer: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("tokenizer: %s: malformed JSON: %w", path, err)
	}
	return true, nil
}

// idList reads eos_token_id: an int, a list of ints or null.
func idList(raw json.RawMessage) ([]int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("want an int or a list of ints")
	}
	return many, nil
}

// Load loads the tokenizer of a model directory: tokenizer.json (required),
// tokenizer_config.json, special_tokens_map.json, chat_template.jinja,
// config.json and generation_config.json (all optional).
func Load(dir string, opts ...Option) (*Tokenizer, error) {
	var lo loadOptions
	for _, o := range opts {
		o(&lo)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("tokenizer: %s is not a directory", dir)
	}
	tjPath := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(tjPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %s: no tokenizer.json (mlxgo reads the fast-tokenizer file; sentencepiece .model files alone are not supported)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseTokenizerJSON(tjPath, data)
	if err != nil {
		return nil, err
	}
	if err := t.loadConfigs(dir); err != nil {
		return nil, err
	}
	if lo.transformersPost {
		if err := t.transformersPostProcessor(); err != nil {
			return nil, err
		}
	}
	t.finish()
	return t, nil
}

// transformersPostProcessor is transformers 4.x's update_post_processor of
// LlamaTokenizerFast, CodeLlamaTokenizerFast and GemmaTokenizerFast.
func (t *Tokenizer) transformersPostProcessor() error {
	switch strings.TrimSuffix(t.cfg.class, "Fast") {
	case "LlamaTokenizer", "CodeLlamaTokenizer", "GemmaTokenizer":
	default:
		return nil
	}
	addBOS, addEOS := true, false
	if t.cfg.addBOS != nil {
		addBOS = *t.cfg.addBOS
	}
	if t.cfg.addEOS != nil {
		addEOS = *t.cfg.addEOS
	}
	var p templatePost
	if addBOS {
		id, ok := t.TokenToID(t.cfg.bos)
		if t.cfg.bos == "" || !ok {
			return fmt.Errorf("tokenizer: %s: add_bos_token is true but bos_token %q is not a token", t.cfg.class, t.cfg.bos)
		}
		p.items = append(p.items, []int{id})
	}
	p.items = append(p.items, nil)
	if addEOS {
		id, ok := t.TokenToID(t.cfg.eos)
		if t.cfg.eos == "" || !ok {
			return fmt.Errorf("tokenizer: %s: add_eos_token is true but eos_token %q is not a token", t.cfg.class, t.cfg.eos)
		}
		p.items = append(p.items, []int{id})
	}
	t.post = p
	return nil
}

func (t *Tokenizer) loadConfigs(dir string) error {
	c := &t.cfg
	c.templates = map[string]string{}
	var tc map[string]json.RawMessage
	tcPath := filepath.Join(dir, "tokenizer_config.json")
	if _, err := readJSONIfExists(tcPath, &tc); err != nil {
		return err
	}
	var sm map[string]json.RawMessage
	smPath := filepath.Join(dir, "special_tokens_map.json")
	if _, err := readJSONIfExists(smPath, &sm); err != nil {
		return err
	}
	// special_tokens_map.json first, tokenizer_config.json wins.
	for _, src := range []struct {
		path string
		m    map[string]json.RawMessage
	}{{smPath, sm}, {tcPath, tc}} {
		for key, dst := range map[string]*string{"bos_token": &c.bos, "eos_token": &c.eos, "unk_token": &c.unk, "pad_token": &c.pad} {
			raw, ok := src.m[key]
			if !ok {
				continue
			}
			v, err := specialTok(raw)
			if err != nil {
				return fmt.Errorf("tokenizer: %s: %s: %w", src.path, key, err)
			}
			*dst = v
		}
		if raw, ok := src.m["additional_special_tokens"]; ok {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("tokenizer: %s: additional_special_tokens: want a list: %w", src.path, err)
			}
			c.additional = c.additional[:0]
			for i, r := range list {
				v, err := specialTok(r)
				if err != nil {
					return fmt.Errorf("tokenizer: %s: additional_special_tokens[%d]: %w", src.path, i, err)
				}
				c.additional = append(c.additional, v)
			}
		}
	}
	if raw, ok := tc["tokenizer_class"]; ok {
		json.Unmarshal(raw, &c.class) // not a string: no class-specific behavior
	}
	for key, dst := range map[string]**bool{"add_bos_token": &c.addBOS, "add_eos_token": &c.addEOS} {
		if raw, ok := tc[key]; ok {
			var b *bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return fmt.Errorf("tokenizer: %s: %s: want true, false or null: %w", tcPath, key, err)
			}
			*dst = b
		}
	}
	if raw, ok := tc["clean_up_tokenization_spaces"]; ok {
		json.Unmarshal(raw, &c.cleanUp) // not a bool: false
	}
	if raw, ok := tc["chat_template"]; ok {
		c.templateFile = tcPath + ": chat_template"
		if err := parseTemplates(raw, c.templates); err != nil {
			return fmt.Errorf("tokenizer: %s: chat_template: %w", tcPath, err)
		}
	}
	// chat_template.json ({"chat_template": ...}) and chat_template.jinja
	// (newer transformers) take precedence over tokenizer_config.json.
	var ctj map[string]json.RawMessage
	ctjPath := filepath.Join(dir, "chat_template.json")
	if ok, err := readJSONIfExists(ctjPath, &ctj); err != nil {
		return err
	} else if ok {
		if raw, ok := ctj["chat_template"]; ok {
			c.templateFile = ctjPath + ": chat_template"
			if err := parseTemplates(raw, c.templates); err != nil {
				return fmt.Errorf("tokenizer: %s: chat_template: %w", ctjPath, err)
			}
		}
	}
	// additional_chat_templates/NAME.jinja are named templates (newer
	// transformers save a template list this way).
	if ents, err := os.ReadDir(filepath.Join(dir, "additional_chat_templates")); err == nil {
		for _, e := range ents {
			name, ok := strings.CutSuffix(e.Name(), ".jinja")
			if !ok || e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, "additional_chat_templates", e.Name()))
			if err != nil {
				return fmt.Errorf("tokenizer: %w", err)
			}
			c.templates[name] = string(b)
		}
	}
	jPath := filepath.Join(dir, "chat_template.jinja")
	if b, err := os.ReadFile(jPath); err == nil {
		if len(c.templates) > 0 && c.templates[""] == "" {
			c.templates["default"] = string(b)
		} else {
			c.templates[""] = string(b)
			delete(c.templates, "default")
		}
		c.templateFile = jPath
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tokenizer: %w", err)
	}

	var cfg, gen map[string]json.RawMessage
	cfgPath := filepath.Join(dir, "config.json")
	if _, err := readJSONIfExists(cfgPath, &cfg); err != nil {
		return err
	}
	genPath := filepath.Join(dir, "generation_config.json")
	if _, err := readJSONIfExists(genPath, &gen); err != nil {
		return err
	}
	for _, src := range []struct {
		path string
		m    map[string]json.RawMessage
	}{{cfgPath, cfg}, {genPath, gen}} {
		raw, ok := src.m["eos_token_id"]
		if !ok {
			continue
		}
		ids, err := idList(raw)
		if err != nil {
			return fmt.Errorf("tokenizer: %s: eos_token_id: %w", src.path, err)
		}
		if ids != nil {
			c.configEOS = ids
			c.hasConfig = true
		}
	}
	return nil
}

// parseTemplates reads chat_template: a string, or a list of
// {"name": ..., "template": ...}.
func parseTemplates(raw json.RawMessage, into map[string]string) error {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		into[""] = s
		return nil
	}
	var list []struct {
		Name     *string `json:"name"`
		Template *string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return errors.New(`want a string or a list of {"name": ..., "template": ...}`)
	}
	for i, e := range list {
		if e.Name == nil || e.Template == nil {
			return fmt.Errorf(`[%d]: want {"name": ..., "template": ...}`, i)
		}
		into[*e.Name] = *e.Template
	}
	return nil
}

// finish computes what depends on both tokenizer.json and the configs.
func (t *Tokenizer) finish() {
	t.eosIDs = nil
	if t.cfg.hasConfig {
		t.eosIDs = append(t.eosIDs, t.cfg.configEOS...)
	} else if id, ok := t.TokenToID(t.cfg.eos); ok && t.cfg.eos != "" {
		t.eosIDs = []int{id}
	}
	slices.Sort(t.eosIDs)
	t.eosIDs = slices.Compact(t.eosIDs)
}

// BOSToken and EOSToken are the tokenizer's BOS/EOS strings ("" if unset).
func (t *Tokenizer) BOSToken() string { return t.cfg.bos }

// EOSToken is the tokenizer's EOS string ("" if unset).
func (t *Tokenizer) EOSToken() string { return t.cfg.eos }

// BOSID is the id of the BOS token, or -1.
func (t *Tokenizer) BOSID() int {
	if id, ok := t.TokenToID(t.cfg.bos); ok && t.cfg.bos != "" {
		return id
	}
	return -1
}

// EOSTokenIDs is the EOS set as mlx_lm builds it: config.json's
// eos_token_id, replaced by generation_config.json's when present; otherwise
// the tokenizer's eos_token. Sorted, no duplicates.
func (t *Tokenizer) EOSTokenIDs() []int { return slices.Clone(t.eosIDs) }

// IsEOS reports whether id ends generation.
func (t *Tokenizer) IsEOS(id int) bool { return slices.Contains(t.eosIDs, id) }

// AddEOSToken adds a token to the EOS set, as mlx_lm's --extra-eos-token
// does: a decimal string is an id, anything else a token string. Call it
// before sharing the Tokenizer between goroutines.
func (t *Tokenizer) AddEOSToken(tok string) error {
	id, err := strconv.Atoi(strings.TrimSpace(tok))
	if err != nil {
		var ok bool
		if id, ok = t.TokenToID(tok); !ok {
			return fmt.Errorf("tokenizer: extra EOS token %q is not a token of this tokenizer", tok)
		}
	} else if id < 0 {
		return fmt.Errorf("tokenizer: extra EOS token id %d is negative", id)
	}
	if !slices.Contains(t.eosIDs, id) {
		t.eosIDs = append(t.eosIDs, id)
		slices.Sort(t.eosIDs)
	}
	return nil
}

// HasChatTemplate reports whether a chat template was found.
func (t *Tokenizer) HasChatTemplate() bool { return len(t.cfg.templates) > 0 }

// HasThinking reports whether the vocabulary has <think> and </think>, which
// mlx_lm uses to default enable_thinking.
func (t *Tokenizer) HasThinking() bool {
	_, a := t.TokenToID("<think>")
	_, b := t.TokenToID("</think>")
	return a && b
}

// CleanUpTokenizationSpaces is tokenizer_config.json's
// clean_up_tokenization_spaces: whether transformers' decode applies
// CleanUpSpaces (Decode itself, like HF tokenizers, does not).
func (t *Tokenizer) CleanUpTokenizationSpaces() bool { return t.cfg.cleanUp }

// CleanUpSpaces is transformers' clean_up_tokenization: it removes the
// space before punctuation and English contractions.
func CleanUpSpaces(s string) string {
	for _, r := range [][2]string{{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}
