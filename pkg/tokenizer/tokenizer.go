// Package tokenizer loads Hugging Face tokenizer.json files and encodes and
// decodes exactly as the HF `tokenizers` library does, renders chat templates
// as transformers' apply_chat_template does, and streams decoded text as
// mlx_lm's detokenizers do.
//
// Supported tokenizer.json parts:
//   - models: BPE (byte-level and SentencePiece-style with byte fallback,
//     ignore_merges, continuing_subword_prefix, end_of_word_suffix), Unigram
//     (Viterbi, byte fallback), WordLevel, WordPiece;
//   - normalizers: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, StripAccents,
//     Strip, Replace, Prepend, BertNormalizer, Nmt, ByteLevel (Precompiled only
//     when its charsmap is empty);
//   - pre-tokenizers: Sequence, Split (String or Oniguruma regex; the family
//     patterns of Llama 3, Qwen, GPT-4o, DeepSeek and GPT-2 have hand-written
//     matchers, others go through Go's regexp with \s made Unicode-aware and
//     `\s+(?!\S)` emulated), ByteLevel, Metaspace, Digits, Whitespace,
//     WhitespaceSplit, Punctuation, CharDelimiterSplit, BertPreTokenizer;
//   - post-processors: TemplateProcessing, ByteLevel, RobertaProcessing,
//     BertProcessing, Sequence;
//   - decoders: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip,
//     WordPiece, BPEDecoder, Sequence;
//   - added tokens (lstrip, rstrip, single_word, normalized) matched
//     leftmost-longest before the model.
//
// Anything else is refused at load time with an error naming the file and
// the part. Chat templates run on github.com/ardanlabs/jinja v1.8.0 behind
// our own jinja2-exact whitespace handling and a Python-compatible tojson;
// where that library is more lenient than Python (printing None as "",
// `x in None` being false) renders can differ for "content": null messages.
package tokenizer

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// Tokenizer is a loaded tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	path       string
	normalizer normalizer
	pre        preTokenizer
	model      model
	post       postProcessor
	decoder    decoder
	added      *addedVocab

	cfg tokenizerConfig
	// eosIDs is the EOS set as mlx_lm builds it.
	eosIDs []int
}

// LoadFile loads a tokenizer.json on its own (no config files).
func LoadFile(path string) (*Tokenizer, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseTokenizerJSON(path, data)
	if err != nil {
		return nil, err
	}
	t.finish()
	return t, nil
}

// Encode returns the ids of text. With addSpecial the post-processor adds
// its special tokens (BOS and the like), as HF's add_special_tokens=True.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	ids := t.encodeSegments(text)
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	return ids
}

func (t *Tokenizer) encodeSegments(text string) []int {
	ids := make([]int, 0, len(text)/3+2)
	segs := t.added.split(segment{s: text, tok: -1, first: true}, t.added.raw, nil)
	var norm []segment
	for _, sg := range segs {
		if sg.tok >= 0 {
			norm = append(norm, sg)
			continue
		}
		if t.normalizer != nil {
			sg.s = t.normalizer.normalize(sg.s)
		}
		norm = t.added.split(sg, t.added.normalized, norm)
	}
	var pieces []piece
	for _, sg := range norm {
		if sg.tok >= 0 {
			ids = append(ids, t.added.tokens[sg.tok].ID)
			continue
		}
		if sg.s == "" {
			continue
		}
		pieces = append(pieces[:0], piece{s: sg.s, first: sg.first})
		if t.pre != nil {
			pieces = t.pre.preTokenize(pieces)
		}
		for _, p := range pieces {
			ids = t.model.tokenize(p.s, ids)
		}
	}
	return ids
}

// IDToToken returns the token string of id (added tokens included).
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if i, ok := t.added.byID[id]; ok {
		return t.added.tokens[i].Content, true
	}
	return t.model.idToToken(id)
}

// TokenToID returns the id of a token string (added tokens included).
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	if i, ok := t.added.byContent[tok]; ok {
		return t.added.tokens[i].ID, true
	}
	return t.model.tokenToID(tok)
}

// Tokens maps ids to token strings; unknown ids give "".
func (t *Tokenizer) Tokens(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i], _ = t.IDToToken(id)
	}
	return out
}

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool {
	i, ok := t.added.byID[id]
	return ok && t.added.tokens[i].Special
}

// VocabSize is the number of ids: the model's vocabulary plus added tokens
// outside it (HF's get_vocab_size(with_added_tokens=True)).
func (t *Tokenizer) VocabSize() int {
	n := t.model.size()
	for _, a := range t.added.tokens {
		if _, ok := t.model.idToToken(a.ID); !ok {
			n++
		}
	}
	return n
}

// Decode turns ids back into text as HF's decode does; skipSpecial drops
// special added tokens. Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		if s, ok := t.IDToToken(id); ok {
			toks = append(toks, s)
		}
	}
	return t.decodeTokens(toks)
}

func (t *Tokenizer) decodeTokens(toks []string) string {
	if t.decoder == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.decoder.decodeChain(toks), "")
}

// EncodeBatch encodes texts in parallel on up to workers goroutines
// (GOMAXPROCS when workers < 1).
func (t *Tokenizer) EncodeBatch(texts []string, addSpecial bool, workers int) [][]int {
	out := make([][]int, len(texts))
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(texts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(texts) {
					return
				}
				out[i] = t.Encode(texts[i], addSpecial)
			}
		}()
	}
	wg.Wait()
	return out
}

// EncodePrompt encodes a prompt string as mlx_lm's stream_generate does:
// with special tokens, unless the text already starts with the BOS token
// (a rendered chat template usually does).
func (t *Tokenizer) EncodePrompt(prompt string) []int {
	add := t.cfg.bos == "" || !strings.HasPrefix(prompt, t.cfg.bos)
	return t.Encode(prompt, add)
}
