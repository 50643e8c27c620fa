package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// piece is a stretch of normalized text on its way to the model. first is
// true when the piece starts at offset 0 of the original input (Metaspace's
// prepend_scheme "first" needs it).
type piece struct {
	s     string
	first bool
}

type preTokenizer interface {
	preTokenize(ps []piece) []piece
}

// splitBehavior is HF's SplitDelimiterBehavior.
type splitBehavior int

const (
	behRemoved splitBehavior = iota
	behIsolated
	behMergedWithPrevious
	behMergedWithNext
	behContiguous
)

type span struct {
	st, en int
	match  bool
}

// splitPieces cuts s at the matches and applies the delimiter behavior,
// exactly as HF's NormalizedString::split does; empty pieces are dropped.
func splitPieces(p piece, ms [][2]int, beh splitBehavior, invert bool, out []piece) []piece {
	s := p.s
	if len(s) == 0 {
		return out
	}
	spans := make([]span, 0, 2*len(ms)+1)
	prev := 0
	for _, m := range ms {
		if m[0] > prev {
			spans = append(spans, span{prev, m[0], false})
		}
		spans = append(spans, span{m[0], m[1], true})
		prev = m[1]
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	if invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var res []span
	switch beh {
	case behRemoved:
		for _, sp := range spans {
			if !sp.match {
				res = append(res, sp)
			}
		}
	case behIsolated:
		res = spans
	case behMergedWithPrevious:
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(res) > 0 {
				res[len(res)-1].en = sp.en
			} else {
				res = append(res, sp)
			}
			prevMatch = sp.match
		}
	case behMergedWithNext:
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(res) > 0 {
				res[len(res)-1].st = sp.st
			} else {
				res = append(res, sp)
			}
			prevMatch = sp.match
		}
		for i, j := 0, len(res)-1; i < j; i, j = i+1, j-1 {
			res[i], res[j] = res[j], res[i]
		}
	case behContiguous:
		prevMatch := false
		for i, sp := range spans {
			if i > 0 && sp.match == prevMatch {
				res[len(res)-1].en = sp.en
			} else {
				res = append(res, sp)
			}
			prevMatch = sp.match
		}
	}
	for _, sp := range res {
		if sp.en > sp.st {
			out = append(out, piece{s: s[sp.st:sp.en], first: p.first && sp.st == 0})
		}
	}
	return out
}

type splitPre struct {
	pat    patternSplitter
	beh    splitBehavior
	invert bool
}

func (sp *splitPre) preTokenize(ps []piece) []piece {
	out := make([]piece, 0, len(ps))
	for _, p := range ps {
		out = splitPieces(p, sp.pat.matches(p.s), sp.beh, sp.invert, out)
	}
	return out
}

// funcSplitter matches maximal runs (or single runes) satisfying a predicate.
type funcSplitter struct {
	pred   func(rune) bool
	single bool
}

func (f funcSplitter) matches(s string) [][2]int {
	var out [][2]int
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !f.pred(r) {
			i += size
			continue
		}
		j := i + size
		if !f.single {
			for j < len(s) {
				r2, s2 := utf8.DecodeRuneInString(s[j:])
				if !f.pred(r2) {
					break
				}
				j += s2
			}
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

func isNumeric(r rune) bool { return unicode.IsNumber(r) }

func isPunct(r rune) bool {
	return (r < 128 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r)) || unicode.IsPunct(r)
}

// byteLevelPre is HF's ByteLevel pre-tokenizer.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
}

const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

var gpt2Splitter patternSplitter = fastSplitter{matchGPT2}

func (b *byteLevelPre) preTokenize(ps []piece) []piece {
	out := make([]piece, 0, len(ps))
	for _, p := range ps {
		if b.addPrefixSpace && !strings.HasPrefix(p.s, " ") {
			p.s = " " + p.s
		}
		if b.useRegex {
			start := len(out)
			out = splitPieces(p, gpt2Splitter.matches(p.s), behIsolated, false, out)
			for i := start; i < len(out); i++ {
				out[i].s = byteLevelEncode(out[i].s)
			}
		} else if p.s != "" {
			out = append(out, piece{s: byteLevelEncode(p.s), first: p.first})
		}
	}
	return out
}

// metaspacePre is HF's Metaspace pre-tokenizer.
type metaspacePre struct {
	replacement string
	prepend     string // "always", "first", "never"
	split       bool
}

func (m *metaspacePre) preTokenize(ps []piece) []piece {
	out := make([]piece, 0, len(ps))
	for _, p := range ps {
		s := strings.ReplaceAll(p.s, " ", m.replacement)
		if !strings.HasPrefix(s, m.replacement) && (m.prepend == "always" || (m.prepend == "first" && p.first)) {
			s = m.replacement + s
		}
		np := piece{s: s, first: p.first}
		if m.split {
			out = splitPieces(np, literalSplitter{m.replacement}.matches(s), behMergedWithNext, false, out)
		} else if s != "" {
			out = append(out, np)
		}
	}
	return out
}

type seqPre []preTokenizer

func (q seqPre) preTokenize(ps []piece) []piece {
	for _, p := range q {
		ps = p.preTokenize(ps)
	}
	return ps
}
