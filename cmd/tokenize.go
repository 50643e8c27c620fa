package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// TokenizeOptions are `mlxgo tokenize`'s flags.
type TokenizeOptions struct {
	Model               string
	Text                string
	HasText             bool
	IDs                 []int
	MessagesFile        string
	BatchFile           string
	NoSpecialTokens     bool
	AddGenerationPrompt bool
}

func newTokenizeCmd(f *Factory) *cobra.Command { return newTokenizeCmdWith(f, runTokenize) }

func newTokenizeCmdWith(f *Factory, runF func(context.Context, *Factory, *TokenizeOptions) error) *cobra.Command {
	o := &TokenizeOptions{}
	var ids string
	c := &cobra.Command{
		Use:   "tokenize --model DIR (--text T | --ids 1,2,3 | --messages FILE.json | --batch FILE.jsonl)",
		Short: "Show the token ids and rendered prompt for text or chat messages",
		Long: `Show what a prompt becomes: prints {"ids": [...], "tokens": [...], "text": "..."} as JSON,
where text is the decode of the ids; with --messages the rendered chat prompt is
printed as "prompt" too. --batch reads one request a line ({"text": ...},
{"ids": [...]} or {"messages": [...], "add_generation_prompt": true, "tools": [...]})
and prints one result a line, loading the tokenizer once. FILE may be - for stdin.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			o.HasText = c.Flags().Changed("text")
			n := 0
			for _, set := range []bool{o.HasText, c.Flags().Changed("ids"), o.MessagesFile != "", o.BatchFile != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return flagError("give exactly one of --text, --ids, --messages or --batch")
			}
			if o.Model == "" {
				return flagError("--model is required (a local model directory)")
			}
			if c.Flags().Changed("ids") {
				var err error
				if o.IDs, err = parseIDs(ids); err != nil {
					return flagError("--ids: %v", err)
				}
			}
			if o.AddGenerationPrompt && o.MessagesFile == "" && o.BatchFile == "" {
				return flagError("--add-generation-prompt needs --messages or --batch")
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Model, "model", "", "Local model directory holding tokenizer.json")
	fs.StringVar(&o.Text, "text", "", "Text to encode")
	fs.StringVar(&ids, "ids", "", "Comma-separated token ids to decode")
	fs.StringVar(&o.MessagesFile, "messages", "", "JSON file with a list of chat messages to render and encode")
	fs.StringVar(&o.BatchFile, "batch", "", "JSONL file of requests, one a line")
	fs.BoolVar(&o.NoSpecialTokens, "no-special-tokens", false, "Do not add the tokenizer's special tokens (BOS...) when encoding")
	fs.BoolVar(&o.AddGenerationPrompt, "add-generation-prompt", false, "Append the assistant turn header after the messages")
	return c
}

func parseIDs(s string) ([]int, error) {
	var ids []int
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" && len(ids) == 0 && strings.TrimSpace(s) == "" {
			break
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("item %d %q: want a non-negative integer", i+1, f)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

// tokenizeResult is one printed result.
type tokenizeResult struct {
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
	Text   string   `json:"text"`
	Prompt *string  `json:"prompt,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// tokenizeRequest is one --batch line.
type tokenizeRequest struct {
	Text                *string                    `json:"text"`
	IDs                 []int                      `json:"ids"`
	Messages            json.RawMessage            `json:"messages"`
	Tools               json.RawMessage            `json:"tools"`
	AddGenerationPrompt bool                       `json:"add_generation_prompt"`
	AddSpecialTokens    *bool                      `json:"add_special_tokens"`
	Kwargs              map[string]json.RawMessage `json:"chat_template_kwargs"`
}

// loadTokenizer loads the tokenizer of a local model folder, or of a hub
// repo id (downloading only the tokenizer files, as mlx_lm does).
func loadTokenizer(ctx context.Context, f *Factory, model string) (*tokenizer.Tokenizer, error) {
	st, err := os.Stat(model)
	if err == nil && !st.IsDir() {
		return nil, fmt.Errorf("--model %s: want a model directory, not a file", model)
	}
	if err != nil && !(errors.Is(err, os.ErrNotExist) && looksLikeRepoID(model)) {
		return nil, fmt.Errorf("--model: %w", err)
	}
	dir, err := hub.ResolveModel(ctx, model, hub.ResolveOptions{AllowPatterns: hub.TokenizerAllowPatterns, Progress: hub.TerminalOrNil(f.ErrOut)})
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", model, err)
	}
	return tokenizer.Load(dir)
}

// looksLikeRepoID matches "org/name" as the hub spells repo ids.
func looksLikeRepoID(s string) bool {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~") {
		return false
	}
	return strings.Count(s, "/") == 1 && !strings.HasSuffix(s, "/")
}

func runTokenize(ctx context.Context, f *Factory, o *TokenizeOptions) error {
	tk, err := loadTokenizer(ctx, f, o.Model)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(f.Out)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	if o.BatchFile != "" {
		return tokenizeBatch(ctx, f, tk, o, enc, out)
	}
	req := tokenizeRequest{AddGenerationPrompt: o.AddGenerationPrompt}
	switch {
	case o.HasText:
		req.Text = &o.Text
	case o.IDs != nil:
		req.IDs = o.IDs
	case o.MessagesFile != "":
		data, err := readInput(f, o.MessagesFile)
		if err != nil {
			return fmt.Errorf("--messages: %w", err)
		}
		if err := json.Unmarshal(data, &req.Messages); err != nil {
			return fmt.Errorf("--messages %s: malformed JSON: %w", o.MessagesFile, err)
		}
		req.Messages = bytes.TrimSpace(req.Messages)
		if len(req.Messages) == 0 || req.Messages[0] != '[' {
			// Also accept {"messages": [...], "tools": [...]}.
			var wrapped tokenizeRequest
			if err := json.Unmarshal(data, &wrapped); err != nil || wrapped.Messages == nil {
				return fmt.Errorf("--messages %s: want a JSON list of messages or an object with \"messages\"", o.MessagesFile)
			}
			wrapped.AddGenerationPrompt = wrapped.AddGenerationPrompt || o.AddGenerationPrompt
			req = wrapped
		}
	default:
		req.IDs = []int{}
	}
	res, err := tokenizeOne(tk, &req, !o.NoSpecialTokens)
	if err != nil {
		return err
	}
	return enc.Encode(res)
}

func readInput(f *Factory, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(f.In)
	}
	return os.ReadFile(path)
}

func tokenizeBatch(ctx context.Context, f *Factory, tk *tokenizer.Tokenizer, o *TokenizeOptions, enc *json.Encoder, out *bufio.Writer) error {
	var r io.Reader
	if o.BatchFile == "-" {
		r = f.In
	} else {
		fh, err := os.Open(o.BatchFile)
		if err != nil {
			return fmt.Errorf("--batch: %w", err)
		}
		defer fh.Close()
		r = fh
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	line, failed := 0, 0
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var req tokenizeRequest
		var res *tokenizeResult
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err := dec.Decode(&req)
		if err == nil {
			res, err = tokenizeOne(tk, &req, !o.NoSpecialTokens)
		}
		if err != nil {
			failed++
			res = &tokenizeResult{IDs: []int{}, Tokens: []string{}, Error: fmt.Sprintf("%s line %d: %v", o.BatchFile, line, err)}
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--batch %s: %w", o.BatchFile, err)
	}
	if failed > 0 {
		out.Flush()
		return fmt.Errorf("--batch %s: %d of the requests failed (see their \"error\")", o.BatchFile, failed)
	}
	return nil
}

// tokenizeOne handles one request. Like mlx_lm, a rendered prompt that
// already starts with the BOS token is encoded without special tokens.
func tokenizeOne(tk *tokenizer.Tokenizer, req *tokenizeRequest, addSpecial bool) (*tokenizeResult, error) {
	if req.AddSpecialTokens != nil {
		addSpecial = *req.AddSpecialTokens
	}
	n := 0
	for _, set := range []bool{req.Text != nil, req.IDs != nil, req.Messages != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New(`want exactly one of "text", "ids" or "messages"`)
	}
	res := &tokenizeResult{}
	switch {
	case req.IDs != nil:
		res.IDs = req.IDs
		for _, id := range req.IDs {
			if _, ok := tk.IDToToken(id); !ok {
				return nil, fmt.Errorf("id %d is not in the vocabulary (size %d)", id, tk.VocabSize())
			}
		}
	case req.Text != nil:
		res.IDs = encodePrompt(tk, *req.Text, addSpecial)
	default:
		prompt, err := tk.ApplyChatTemplate(req.Messages, tokenizer.ChatOptions{
			Tools: req.Tools, AddGenerationPrompt: req.AddGenerationPrompt, Kwargs: req.Kwargs})
		if err != nil {
			return nil, err
		}
		res.Prompt = &prompt
		res.IDs = encodePrompt(tk, prompt, addSpecial)
	}
	res.Tokens = tk.Tokens(res.IDs)
	res.Text = tk.Decode(res.IDs, false)
	return res, nil
}

func encodePrompt(tk *tokenizer.Tokenizer, s string, addSpecial bool) []int {
	var ids []int
	if addSpecial {
		ids = tk.EncodePrompt(s)
	} else {
		ids = tk.Encode(s, false)
	}
	if ids == nil {
		ids = []int{}
	}
	return ids
}
