package lora

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Tokenizer is what the datasets need from a tokenizer.
type Tokenizer interface {
	// Encode tokenizes text as HF's tokenizer.encode does (special tokens added).
	Encode(text string) ([]int, error)
	// EncodeChat renders the chat template over messages (a JSON array of
	// message objects) and optional tools (a JSON array, or nil), then
	// tokenizes the result without adding special tokens, as
	// apply_chat_template(tokenize=True) does.
	EncodeChat(messages, tools json.RawMessage, addGenerationPrompt bool) ([]int, error)
	// EOS returns the id that ends a text example.
	EOS() int
}

// Format is a dataset record layout, detected from the first record.
type Format int

const (
	FormatText        Format = iota + 1 // {"text": ...}
	FormatCompletions                   // {"prompt": ..., "completion": ...}
	FormatChat                          // {"messages": [...], "tools"?: [...]}
)

func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatCompletions:
		return "completions"
	case FormatChat:
		return "chat"
	}
	return "unknown"
}

// DataConfig holds the YAML-configurable feature keys and prompt masking.
type DataConfig struct {
	TextFeature       string // default "text"
	PromptFeature     string // default "prompt"
	CompletionFeature string // default "completion"
	ChatFeature       string // default "messages"
	MaskPrompt        bool
}

func (c DataConfig) withDefaults() DataConfig {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.TextFeature, "text")
	def(&c.PromptFeature, "prompt")
	def(&c.CompletionFeature, "completion")
	def(&c.ChatFeature, "messages")
	return c
}

// Record is one JSONL line, kept raw so chat messages and tools reach the
// template with their key order intact.
type Record struct {
	Line   int
	Fields map[string]json.RawMessage
}

// Dataset is one split (train, valid or test) of records in one format.
type Dataset struct {
	Path    string
	Format  Format
	Records []Record
	cfg     DataConfig
}

// Example is a tokenized record: the loss covers targets from Offset on.
type Example struct {
	Tokens []int
	Offset int
}

// LoadSplit reads path (a .jsonl file). A missing file returns (nil, nil):
// mlx_lm treats a missing split as empty. Every line must be a JSON object
// in the format the first record has; a bad line is reported as file:line.
func LoadSplit(path string, cfg DataConfig) (*Dataset, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readSplit(path, f, cfg.withDefaults())
}

func readSplit(path string, r io.Reader, cfg DataConfig) (*Dataset, error) {
	ds := &Dataset{Path: path, cfg: cfg}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, fmt.Errorf("%s:%d: not a JSON object: %v", path, line, err)
		}
		rec := Record{Line: line, Fields: fields}
		format, err := cfg.detect(rec)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if ds.Format == 0 {
			ds.Format = format
			if format == FormatText && cfg.MaskPrompt {
				return nil, fmt.Errorf("%s: --mask-prompt needs chat or prompt/completion data, but the records have %q (text format)", path, cfg.TextFeature)
			}
		} else if format != ds.Format {
			return nil, fmt.Errorf("%s:%d: record is in %s format but the first record is in %s format", path, line, format, ds.Format)
		}
		if err := cfg.check(rec, format); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		ds.Records = append(ds.Records, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ds, nil
}

// detect picks the format with mlx_lm's precedence: completions, chat, text.
func (c DataConfig) detect(r Record) (Format, error) {
	_, hasP := r.Fields[c.PromptFeature]
	_, hasC := r.Fields[c.CompletionFeature]
	switch {
	case hasP && hasC:
		return FormatCompletions, nil
	case r.Fields[c.ChatFeature] != nil:
		return FormatChat, nil
	case r.Fields[c.TextFeature] != nil:
		return FormatText, nil
	}
	return 0, fmt.Errorf("unsupported record: expected %q, %q and %q, or %q (see mlx_lm's LORA.md#Data)",
		c.TextFeature, c.PromptFeature, c.CompletionFeature, c.ChatFeature)
}

// check validates field types so a bad record fails before training starts.
func (c DataConfig) check(r Record, f Format) error {
	isString := func(key string) error {
		var s string
		if err := json.Unmarshal(r.Fields[key], &s); err != nil {
			return fmt.Errorf("%q must be a string", key)
		}
		return nil
	}
	switch f {
	case FormatText:
		return isString(c.TextFeature)
	case FormatCompletions:
		if err := isString(c.PromptFeature); err != nil {
			return err
		}
		return isString(c.CompletionFeature)
	case FormatChat:
		var msgs []map[string]json.RawMessage
		if err := json.Unmarshal(r.Fields[c.ChatFeature], &msgs); err != nil || len(msgs) == 0 {
			return fmt.Errorf("%q must be a non-empty list of message objects", c.ChatFeature)
		}
		for i, m := range msgs {
			if _, ok := m["role"]; !ok {
				return fmt.Errorf("%s[%d] has no \"role\"", c.ChatFeature, i)
			}
		}
	}
	if t, ok := r.Fields["tools"]; ok && string(t) != "null" {
		var tools []json.RawMessage
		if err := json.Unmarshal(t, &tools); err != nil {
			return fmt.Errorf("\"tools\" must be a list")
		}
	}
	return nil
}

// Tokenize turns every record into an Example, as mlx_lm's dataset classes
// do: text gets EOS appended when missing; chat and completions go through
// the chat template; with MaskPrompt the offset is the length of the
// template applied to all but the last message (with a generation prompt).
func (d *Dataset) Tokenize(tok Tokenizer) ([]Example, error) {
	out := make([]Example, 0, len(d.Records))
	for _, r := range d.Records {
		ex, err := d.tokenize(tok, r)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", d.Path, r.Line, err)
		}
		if len(ex.Tokens) < 2 {
			return nil, fmt.Errorf("%s:%d: record has %d tokens; need at least 2 to train on", d.Path, r.Line, len(ex.Tokens))
		}
		out = append(out, ex)
	}
	return out, nil
}

func (d *Dataset) tokenize(tok Tokenizer, r Record) (Example, error) {
	c := d.cfg
	tools := r.Fields["tools"]
	if string(tools) == "null" {
		tools = nil
	}
	switch d.Format {
	case FormatText:
		var text string
		_ = json.Unmarshal(r.Fields[c.TextFeature], &text)
		ids, err := tok.Encode(text)
		if err != nil {
			return Example{}, err
		}
		if len(ids) == 0 || ids[len(ids)-1] != tok.EOS() {
			ids = append(ids, tok.EOS())
		}
		return Example{Tokens: ids}, nil
	case FormatCompletions:
		msgs, err := json.Marshal([]map[string]json.RawMessage{
			{"role": json.RawMessage(`"user"`), "content": r.Fields[c.PromptFeature]},
			{"role": json.RawMessage(`"assistant"`), "content": r.Fields[c.CompletionFeature]},
		})
		if err != nil {
			return Example{}, err
		}
		return chatExample(tok, msgs, tools, c.MaskPrompt)
	default:
		return chatExample(tok, r.Fields[c.ChatFeature], tools, c.MaskPrompt)
	}
}

func chatExample(tok Tokenizer, msgs, tools json.RawMessage, mask bool) (Example, error) {
	ids, err := tok.EncodeChat(msgs, tools, false)
	if err != nil {
		return Example{}, err
	}
	if !mask {
		return Example{Tokens: ids}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(msgs, &list); err != nil {
		return Example{}, err
	}
	var last struct {
		Role string `json:"role"`
	}
	_ = json.Unmarshal(list[len(list)-1], &last)
	prefix, err := json.Marshal(list[:len(list)-1])
	if err != nil {
		return Example{}, err
	}
	pids, err := tok.EncodeChat(prefix, tools, last.Role == "assistant")
	if err != nil {
		return Example{}, err
	}
	return Example{Tokens: ids, Offset: len(pids)}, nil
}

// Splits are the three datasets of a --data folder; any may be nil.
type Splits struct {
	Train, Valid, Test *Dataset
}

// LoadDir reads train.jsonl, valid.jsonl and test.jsonl from dir.
func LoadDir(dir string, cfg DataConfig) (Splits, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return Splits{}, fmt.Errorf("--data %s: %w (Hugging Face dataset ids are not supported yet; give a folder with train.jsonl)", dir, err)
	}
	if !st.IsDir() {
		return Splits{}, fmt.Errorf("--data %s: not a folder (expected a folder with train.jsonl, valid.jsonl, test.jsonl)", dir)
	}
	var s Splits
	for _, p := range []struct {
		name string
		dst  **Dataset
	}{{"train", &s.Train}, {"valid", &s.Valid}, {"test", &s.Test}} {
		ds, err := LoadSplit(filepath.Join(dir, p.name+".jsonl"), cfg)
		if err != nil {
			return Splits{}, err
		}
		if ds != nil && len(ds.Records) == 0 {
			ds = nil
		}
		*p.dst = ds
	}
	return s, nil
}
