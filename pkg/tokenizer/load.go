package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// fileJSON is the part of tokenizer.json we read.
type fileJSON struct {
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

// compJSON holds the fields of every normalizer, pre-tokenizer,
// post-processor and decoder type we support.
type compJSON struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	Pretokenizers []json.RawMessage `json:"pretokenizers"`
	Processors    []json.RawMessage `json:"processors"`
	Decoders      []json.RawMessage `json:"decoders"`
	Pattern       *struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content          *string `json:"content"`
	Prepend          string  `json:"prepend"`
	Behavior         string  `json:"behavior"`
	Invert           bool    `json:"invert"`
	AddPrefixSpace   *bool   `json:"add_prefix_space"`
	UseRegex         *bool   `json:"use_regex"`
	Replacement      string  `json:"replacement"`
	PrependScheme    string  `json:"prepend_scheme"`
	Split            *bool   `json:"split"`
	IndividualDigits bool    `json:"individual_digits"`
	StripLeft        bool    `json:"strip_left"`
	StripRight       bool    `json:"strip_right"`
	Start            int     `json:"start"`
	Stop             int     `json:"stop"`
	CleanText        *bool   `json:"clean_text"`
	HandleChinese    *bool   `json:"handle_chinese_chars"`
	StripAccents     *bool   `json:"strip_accents"`
	Lowercase        *bool   `json:"lowercase"`
	Prefix           *string `json:"prefix"`
	Cleanup          *bool   `json:"cleanup"`
	Suffix           *string `json:"suffix"`
	Single           []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		ID  string `json:"id"`
		IDs []int  `json:"ids"`
	} `json:"special_tokens"`
	Sep        []json.RawMessage `json:"sep"`
	Cls        []json.RawMessage `json:"cls"`
	Precompile *string           `json:"precompiled_charsmap"`
	Delimiter  string            `json:"delimiter"`
}

// partError names the file and the part of it that is wrong.
type partError struct {
	file, part string
	err        error
}

func (e *partError) Error() string {
	return fmt.Sprintf("tokenizer: %s: %s: %v", e.file, e.part, e.err)
}
func (e *partError) Unwrap() error { return e.err }

func parseComp(raw json.RawMessage) (*compJSON, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var c compJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("malformed: %w", err)
	}
	if c.Type == "" {
		return nil, errors.New(`missing "type"`)
	}
	return &c, nil
}

func unsupported(kind, typ string, ok []string) error {
	return fmt.Errorf("unknown %s type %q (supported: %s)", kind, typ, strings.Join(ok, ", "))
}

func compilePattern(c *compJSON) (patternSplitter, error) {
	if c.Pattern == nil {
		return nil, errors.New(`missing "pattern"`)
	}
	switch {
	case c.Pattern.String != nil:
		return literalSplitter{*c.Pattern.String}, nil
	case c.Pattern.Regex != nil:
		if fn, ok := fastPatterns[*c.Pattern.Regex]; ok {
			return fastSplitter{fn}, nil
		}
		return compileOnigPattern(*c.Pattern.Regex)
	}
	return nil, errors.New(`"pattern" needs "String" or "Regex"`)
}

func buildNormalizer(raw json.RawMessage, part string) (normalizer, error) {
	c, err := parseComp(raw)
	if err != nil || c == nil {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		return nil, nil
	}
	fail := func(err error) (normalizer, error) { return nil, fmt.Errorf("%s (%s): %w", part, c.Type, err) }
	switch c.Type {
	case "Sequence":
		var q seqNorm
		for i, r := range c.Normalizers {
			n, err := buildNormalizer(r, fmt.Sprintf("%s.normalizers[%d]", part, i))
			if err != nil {
				return nil, err
			}
			if n != nil {
				q = append(q, n)
			}
		}
		return q, nil
	case "NFC":
		return normFunc(nfc), nil
	case "NFD":
		return normFunc(nfd), nil
	case "NFKC":
		return normFunc(nfkc), nil
	case "NFKD":
		return normFunc(nfkd), nil
	case "Lowercase":
		return normFunc(strings.ToLower), nil
	case "StripAccents":
		return normFunc(stripAccents), nil
	case "Strip":
		l, r := c.StripLeft, c.StripRight
		return normFunc(func(s string) string {
			if l {
				s = strings.TrimLeftFunc(s, isHFWhitespace)
			}
			if r {
				s = strings.TrimRightFunc(s, isHFWhitespace)
			}
			return s
		}), nil
	case "Replace":
		p, err := compilePattern(c)
		if err != nil {
			return fail(err)
		}
		if c.Content == nil {
			return fail(errors.New(`missing "content"`))
		}
		return &replaceNorm{pat: p, content: *c.Content}, nil
	case "Prepend":
		pre := c.Prepend
		return normFunc(func(s string) string {
			if s == "" {
				return s
			}
			return pre + s
		}), nil
	case "BertNormalizer":
		b := &bertNormalizer{cleanText: true, chinese: true, lowercase: true}
		if c.CleanText != nil {
			b.cleanText = *c.CleanText
		}
		if c.HandleChinese != nil {
			b.chinese = *c.HandleChinese
		}
		if c.Lowercase != nil {
			b.lowercase = *c.Lowercase
		}
		b.stripAccents = b.lowercase
		if c.StripAccents != nil {
			b.stripAccents = *c.StripAccents
		}
		return b, nil
	case "Nmt":
		return normFunc(nmt), nil
	case "ByteLevel":
		return normFunc(byteLevelEncode), nil
	case "Precompiled":
		if c.Precompile == nil || *c.Precompile == "" {
			return nil, nil
		}
		return fail(errors.New("SentencePiece precompiled_charsmap normalization is not supported"))
	}
	return nil, fmt.Errorf("%s: %w", part, unsupported("normalizer", c.Type,
		[]string{"Sequence", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Strip", "Replace", "Prepend", "BertNormalizer", "Nmt", "ByteLevel"}))
}

func behaviorOf(s string) (splitBehavior, error) {
	switch s {
	case "Removed":
		return behRemoved, nil
	case "Isolated", "":
		return behIsolated, nil
	case "MergedWithPrevious":
		return behMergedWithPrevious, nil
	case "MergedWithNext":
		return behMergedWithNext, nil
	case "Contiguous":
		return behContiguous, nil
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

func prependScheme(c *compJSON) string {
	if c.PrependScheme != "" {
		return c.PrependScheme
	}
	if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
		return "never"
	}
	return "always"
}

func replacementOf(c *compJSON) string {
	if c.Replacement != "" {
		return c.Replacement
	}
	return "\u2581"
}

func buildPreTokenizer(raw json.RawMessage, part string) (preTokenizer, error) {
	c, err := parseComp(raw)
	if err != nil || c == nil {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		return nil, nil
	}
	fail := func(err error) (preTokenizer, error) { return nil, fmt.Errorf("%s (%s): %w", part, c.Type, err) }
	boolOr := func(b *bool, d bool) bool {
		if b == nil {
			return d
		}
		return *b
	}
	switch c.Type {
	case "Sequence":
		var q seqPre
		for i, r := range c.Pretokenizers {
			p, err := buildPreTokenizer(r, fmt.Sprintf("%s.pretokenizers[%d]", part, i))
			if err != nil {
				return nil, err
			}
			if p != nil {
				q = append(q, p)
			}
		}
		return q, nil
	case "Split":
		p, err := compilePattern(c)
		if err != nil {
			return fail(err)
		}
		beh, err := behaviorOf(c.Behavior)
		if err != nil {
			return fail(err)
		}
		return &splitPre{pat: p, beh: beh, invert: c.Invert}, nil
	case "ByteLevel":
		return &byteLevelPre{addPrefixSpace: boolOr(c.AddPrefixSpace, true), useRegex: boolOr(c.UseRegex, true)}, nil
	case "Metaspace":
		return &metaspacePre{replacement: replacementOf(c), prepend: prependScheme(c), split: boolOr(c.Split, true)}, nil
	case "Digits":
		return &splitPre{pat: funcSplitter{pred: isNumeric, single: c.IndividualDigits}, beh: behIsolated}, nil
	case "Whitespace":
		rs, err := compileOnigPattern(`\w+|[^\w\s]+`)
		if err != nil {
			return fail(err)
		}
		return &splitPre{pat: rs, beh: behRemoved, invert: true}, nil
	case "WhitespaceSplit":
		return &splitPre{pat: funcSplitter{pred: isHFWhitespace}, beh: behRemoved}, nil
	case "Punctuation":
		beh, err := behaviorOf(c.Behavior)
		if err != nil {
			return fail(err)
		}
		return &splitPre{pat: funcSplitter{pred: isPunct, single: true}, beh: beh}, nil
	case "CharDelimiterSplit":
		if c.Delimiter == "" {
			return fail(errors.New(`missing "delimiter"`))
		}
		return &splitPre{pat: literalSplitter{c.Delimiter}, beh: behRemoved}, nil
	case "BertPreTokenizer":
		return seqPre{
			&splitPre{pat: funcSplitter{pred: isHFWhitespace}, beh: behRemoved},
			&splitPre{pat: funcSplitter{pred: isPunct, single: true}, beh: behIsolated},
		}, nil
	}
	return nil, fmt.Errorf("%s: %w", part, unsupported("pre_tokenizer", c.Type,
		[]string{"Sequence", "Split", "ByteLevel", "Metaspace", "Digits", "Whitespace", "WhitespaceSplit", "Punctuation", "CharDelimiterSplit", "BertPreTokenizer"}))
}

// tokenRef parses ["<s>", 1] as found in RobertaProcessing's cls/sep.
func tokenRef(r []json.RawMessage) (int, error) {
	if len(r) != 2 {
		return 0, errors.New(`want ["token", id]`)
	}
	var id int
	if err := json.Unmarshal(r[1], &id); err != nil {
		return 0, fmt.Errorf(`want ["token", id]: %w`, err)
	}
	return id, nil
}

func buildPostProcessor(raw json.RawMessage, part string) (postProcessor, error) {
	c, err := parseComp(raw)
	if err != nil || c == nil {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		return nil, nil
	}
	fail := func(err error) (postProcessor, error) { return nil, fmt.Errorf("%s (%s): %w", part, c.Type, err) }
	switch c.Type {
	case "Sequence":
		var q seqPost
		for i, r := range c.Processors {
			p, err := buildPostProcessor(r, fmt.Sprintf("%s.processors[%d]", part, i))
			if err != nil {
				return nil, err
			}
			if p != nil {
				q = append(q, p)
			}
		}
		return q, nil
	case "ByteLevel":
		return noopPost{}, nil
	case "TemplateProcessing":
		var t templatePost
		for i, it := range c.Single {
			switch {
			case it.Sequence != nil:
				t.items = append(t.items, nil)
			case it.SpecialToken != nil:
				st, ok := c.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return fail(fmt.Errorf("single[%d]: special token %q missing from special_tokens", i, it.SpecialToken.ID))
				}
				t.items = append(t.items, append([]int{}, st.IDs...))
			default:
				return fail(fmt.Errorf("single[%d]: want SpecialToken or Sequence", i))
			}
		}
		return t, nil
	case "RobertaProcessing", "BertProcessing":
		cls, err := tokenRef(c.Cls)
		if err != nil {
			return fail(fmt.Errorf("cls: %w", err))
		}
		sep, err := tokenRef(c.Sep)
		if err != nil {
			return fail(fmt.Errorf("sep: %w", err))
		}
		return wrapPost{cls: cls, sep: sep}, nil
	}
	return nil, fmt.Errorf("%s: %w", part, unsupported("post_processor", c.Type,
		[]string{"Sequence", "ByteLevel", "TemplateProcessing", "RobertaProcessing", "BertProcessing"}))
}

func buildDecoder(raw json.RawMessage, part string) (decoder, error) {
	c, err := parseComp(raw)
	if err != nil || c == nil {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		return nil, nil
	}
	fail := func(err error) (decoder, error) { return nil, fmt.Errorf("%s (%s): %w", part, c.Type, err) }
	switch c.Type {
	case "Sequence":
		var q seqDec
		for i, r := range c.Decoders {
			d, err := buildDecoder(r, fmt.Sprintf("%s.decoders[%d]", part, i))
			if err != nil {
				return nil, err
			}
			if d != nil {
				q = append(q, d)
			}
		}
		return q, nil
	case "ByteLevel":
		return byteLevelDec{}, nil
	case "Metaspace":
		return metaspaceDec{replacement: replacementOf(c), prepend: prependScheme(c)}, nil
	case "Replace":
		if c.Pattern == nil || c.Content == nil {
			return fail(errors.New(`want "pattern" and "content"`))
		}
		if c.Pattern.String != nil {
			return replaceDec{pat: *c.Pattern.String, content: *c.Content}, nil
		}
		p, err := compilePattern(c)
		if err != nil {
			return fail(err)
		}
		return regexReplaceDec{rn: replaceNorm{pat: p, content: *c.Content}}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		if c.Content == nil {
			return fail(errors.New(`missing "content"`))
		}
		return stripDec{content: *c.Content, start: c.Start, stop: c.Stop}, nil
	case "WordPiece":
		d := wordPieceDec{prefix: "##", cleanup: true}
		if c.Prefix != nil {
			d.prefix = *c.Prefix
		}
		if c.Cleanup != nil {
			d.cleanup = *c.Cleanup
		}
		return d, nil
	case "BPEDecoder":
		d := bpeSuffixDec{suffix: "</w>"}
		if c.Suffix != nil {
			d.suffix = *c.Suffix
		}
		return d, nil
	}
	return nil, fmt.Errorf("%s: %w", part, unsupported("decoder", c.Type,
		[]string{"Sequence", "ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip", "WordPiece", "BPEDecoder"}))
}

type modelJSON struct {
	Type         string          `json:"type"`
	Vocab        json.RawMessage `json:"vocab"`
	Merges       json.RawMessage `json:"merges"`
	UnkToken     *string         `json:"unk_token"`
	UnkID        *int            `json:"unk_id"`
	FuseUnk      bool            `json:"fuse_unk"`
	ByteFallback bool            `json:"byte_fallback"`
	IgnoreMerges bool            `json:"ignore_merges"`
	ContPrefix   *string         `json:"continuing_subword_prefix"`
	EOWSuffix    *string         `json:"end_of_word_suffix"`
	MaxChars     *int            `json:"max_input_chars_per_word"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func buildModel(raw json.RawMessage) (model, error) {
	const part = "model"
	if len(raw) == 0 {
		return nil, fmt.Errorf("%s: missing", part)
	}
	var m modelJSON
	mf, err := objectFields(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: malformed: %w", part, err)
	}
	m.Vocab, m.Merges = mf["vocab"], mf["merges"]
	delete(mf, "vocab")
	delete(mf, "merges")
	small, _ := json.Marshal(mf)
	if err := json.Unmarshal(small, &m); err != nil {
		return nil, fmt.Errorf("%s: malformed: %w", part, err)
	}
	if m.Type == "" {
		// Old files omit the type; guess from the fields as HF does.
		switch {
		case len(m.Merges) > 0:
			m.Type = "BPE"
		case m.UnkID != nil:
			m.Type = "Unigram"
		default:
			return nil, fmt.Errorf(`%s: missing "type"`, part)
		}
	}
	fail := func(err error) (model, error) { return nil, fmt.Errorf("%s (%s): %w", part, m.Type, err) }
	switch m.Type {
	case "BPE", "WordLevel", "WordPiece":
		vocab, err := scanVocab(m.Vocab)
		if err != nil {
			return fail(fmt.Errorf("vocab: want an object of token -> id: %w", err))
		}
		switch m.Type {
		case "WordLevel":
			return newWordLevel(vocab, str(m.UnkToken))
		case "WordPiece":
			wl, err := newWordLevel(vocab, str(m.UnkToken))
			if err != nil {
				return fail(err)
			}
			wp := &wordPieceModel{wordLevelModel: *wl, prefix: "##", maxChar: 100}
			if m.ContPrefix != nil {
				wp.prefix = *m.ContPrefix
			}
			if m.MaxChars != nil {
				wp.maxChar = *m.MaxChars
			}
			return wp, nil
		}
		var merges [][2]string
		if len(m.Merges) > 0 && string(m.Merges) != "null" {
			if merges, err = scanMerges(m.Merges); err != nil {
				return fail(fmt.Errorf("merges: %w", err))
			}
		}
		bm, err := newBPE(vocab, merges, str(m.UnkToken), m.FuseUnk, m.ByteFallback, m.IgnoreMerges, str(m.ContPrefix), str(m.EOWSuffix))
		if err != nil {
			return fail(err)
		}
		return bm, nil
	case "Unigram":
		var entries [][2]json.RawMessage
		if err := json.Unmarshal(m.Vocab, &entries); err != nil {
			return fail(fmt.Errorf(`vocab: want [["piece", score], ...]: %w`, err))
		}
		pieces := make([]string, len(entries))
		scores := make([]float64, len(entries))
		for i, e := range entries {
			if err := json.Unmarshal(e[0], &pieces[i]); err != nil {
				return fail(fmt.Errorf("vocab[%d]: piece: %w", i, err))
			}
			if err := json.Unmarshal(e[1], &scores[i]); err != nil {
				return fail(fmt.Errorf("vocab[%d]: score: %w", i, err))
			}
		}
		unk := -1
		if m.UnkID != nil {
			unk = *m.UnkID
		}
		um, err := newUnigram(pieces, scores, unk, m.ByteFallback)
		if err != nil {
			return fail(err)
		}
		return um, nil
	}
	return nil, fmt.Errorf("%s: %w", part, unsupported("model", m.Type, []string{"BPE", "Unigram", "WordLevel", "WordPiece"}))
}

// parseTokenizerJSON builds the pipeline from tokenizer.json's bytes; path
// is only used in error messages.
func parseTokenizerJSON(path string, data []byte) (*Tokenizer, error) {
	// The vocab and merges are most of the file: find the top-level parts
	// with the fast scanner and let encoding/json decode the small ones.
	fields, err := objectFields(data, map[string]bool{"added_tokens": true, "normalizer": true,
		"pre_tokenizer": true, "post_processor": true, "decoder": true, "model": true})
	if err != nil {
		return nil, &partError{path, "file", fmt.Errorf("malformed JSON: %w", err)}
	}
	f := fileJSON{Normalizer: fields["normalizer"], PreTokenizer: fields["pre_tokenizer"],
		PostProcessor: fields["post_processor"], Decoder: fields["decoder"], Model: fields["model"]}
	if raw, ok := fields["added_tokens"]; ok {
		if err := json.Unmarshal(raw, &f.AddedTokens); err != nil {
			return nil, &partError{path, "added_tokens", fmt.Errorf("malformed: %w", err)}
		}
	}
	t := &Tokenizer{path: path}
	wrap := func(err error) error { return fmt.Errorf("tokenizer: %s: %w", path, err) }
	if t.model, err = buildModel(f.Model); err != nil {
		return nil, wrap(err)
	}
	if t.normalizer, err = buildNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, wrap(err)
	}
	if t.pre, err = buildPreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
		return nil, wrap(err)
	}
	if t.post, err = buildPostProcessor(f.PostProcessor, "post_processor"); err != nil {
		return nil, wrap(err)
	}
	if t.decoder, err = buildDecoder(f.Decoder, "decoder"); err != nil {
		return nil, wrap(err)
	}
	for i, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, &partError{path, fmt.Sprintf("added_tokens[%d]", i), errors.New("empty content")}
		}
	}
	t.added = newAddedVocab(f.AddedTokens, t.normalizer)
	return t, nil
}

func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return data, nil
}
