package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's added_tokens.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// trie matches added tokens leftmost-longest, as HF's aho-corasick does.
type trie struct {
	nodes []trieNode
	first [256]bool
}

type trieNode struct {
	next map[byte]int32
	tok  int32 // index into addedVocab.tokens, -1 if none
}

func newTrie() *trie { return &trie{nodes: []trieNode{{tok: -1}}} }

func (t *trie) insert(s string, tok int) {
	if s == "" {
		return
	}
	t.first[s[0]] = true
	n := 0
	for i := 0; i < len(s); i++ {
		nd := &t.nodes[n]
		if nd.next == nil {
			nd.next = map[byte]int32{}
		}
		c, ok := nd.next[s[i]]
		if !ok {
			c = int32(len(t.nodes))
			t.nodes[n].next[s[i]] = c
			t.nodes = append(t.nodes, trieNode{tok: -1})
		}
		n = int(c)
	}
	t.nodes[n].tok = int32(tok)
}

// longestAt returns the longest token starting at s[i:] and its end.
func (t *trie) longestAt(s string, i int) (tok, end int) {
	tok = -1
	n := 0
	for j := i; j < len(s); j++ {
		c, ok := t.nodes[n].next[s[j]]
		if !ok {
			break
		}
		n = int(c)
		if t.nodes[n].tok >= 0 {
			tok, end = int(t.nodes[n].tok), j+1
		}
	}
	return tok, end
}

type addedVocab struct {
	tokens     []AddedToken
	byID       map[int]int // id -> index in tokens
	byContent  map[string]int
	raw        *trie // tokens matched on the raw text (normalized=false)
	normalized *trie // tokens matched on normalized text
}

func newAddedVocab(toks []AddedToken, norm normalizer) *addedVocab {
	a := &addedVocab{tokens: toks, byID: map[int]int{}, byContent: map[string]int{}, raw: newTrie(), normalized: newTrie()}
	for i, t := range toks {
		a.byID[t.ID] = i
		a.byContent[t.Content] = i
		if t.Normalized && norm != nil {
			a.normalized.insert(norm.normalize(t.Content), i)
		} else if t.Normalized {
			a.normalized.insert(t.Content, i)
		} else {
			a.raw.insert(t.Content, i)
		}
	}
	return a
}

// segment is a piece of the input: either an added token (tok >= 0) or text.
type segment struct {
	s     string
	tok   int // index into tokens, -1 for text
	first bool
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r) || r == '_'
}

// split cuts s at the added tokens of tr, handling lstrip, rstrip and
// single_word as HF's AddedVocabulary::split_with_indices does.
func (a *addedVocab) split(seg segment, tr *trie, out []segment) []segment {
	s := seg.s
	startOff := 0
	if len(tr.nodes) == 1 {
		return append(out, seg)
	}
	for i := 0; i < len(s); {
		if !tr.first[s[i]] {
			i++
			continue
		}
		ti, end := tr.longestAt(s, i)
		if ti < 0 {
			i++
			continue
		}
		t := &a.tokens[ti]
		start, stop := i, end
		if t.SingleWord {
			startSpace := start == 0
			if !startSpace {
				r, _ := utf8.DecodeLastRuneInString(s[:start])
				startSpace = !isWordRune(r)
			}
			stopSpace := stop == len(s)
			if !stopSpace {
				r, _ := utf8.DecodeRuneInString(s[stop:])
				stopSpace = !isWordRune(r)
			}
			if !startSpace || !stopSpace {
				i++
				continue
			}
		}
		if t.LStrip {
			ns := start
			for ns > 0 {
				r, size := utf8.DecodeLastRuneInString(s[:ns])
				if !unicode.IsSpace(r) {
					break
				}
				ns -= size
			}
			start = max(ns, startOff)
		}
		if t.RStrip {
			for stop < len(s) {
				r, size := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += size
			}
		}
		if startOff < start {
			out = append(out, segment{s: s[startOff:start], tok: -1, first: seg.first && startOff == 0})
		}
		out = append(out, segment{s: s[start:stop], tok: ti, first: seg.first && start == 0})
		startOff = stop
		i = stop
	}
	if startOff < len(s) {
		out = append(out, segment{s: s[startOff:], tok: -1, first: seg.first && startOff == 0})
	}
	return out
}
