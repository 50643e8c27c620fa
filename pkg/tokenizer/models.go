package tokenizer

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// wordLevelModel is HF's WordLevel: one piece, one id.
type wordLevelModel struct {
	vocab map[string]int
	ids   map[int]string
	unk   int
}

func newWordLevel(vocab map[string]int, unkTok string) (*wordLevelModel, error) {
	m := &wordLevelModel{vocab: vocab, ids: make(map[int]string, len(vocab)), unk: -1}
	for t, id := range vocab {
		m.ids[id] = t
	}
	if unkTok != "" {
		id, ok := vocab[unkTok]
		if !ok {
			return nil, fmt.Errorf("model.unk_token %q is not in model.vocab", unkTok)
		}
		m.unk = id
	}
	return m, nil
}

func (m *wordLevelModel) tokenize(w string, out []int) []int {
	if id, ok := m.vocab[w]; ok {
		return append(out, id)
	}
	if m.unk >= 0 {
		return append(out, m.unk)
	}
	return out
}
func (m *wordLevelModel) tokenToID(t string) (int, bool)  { id, ok := m.vocab[t]; return id, ok }
func (m *wordLevelModel) idToToken(id int) (string, bool) { t, ok := m.ids[id]; return t, ok }
func (m *wordLevelModel) size() int                       { return len(m.vocab) }

// wordPieceModel is HF's WordPiece: greedy longest match, "##" continuations.
type wordPieceModel struct {
	wordLevelModel
	prefix  string
	maxChar int
}

func (m *wordPieceModel) tokenize(w string, out []int) []int {
	if utf8.RuneCountInString(w) > m.maxChar {
		if m.unk >= 0 {
			out = append(out, m.unk)
		}
		return out
	}
	start := len(out)
	for i := 0; i < len(w); {
		found := -1
		end := len(w)
		for end > i {
			sub := w[i:end]
			if i > 0 {
				sub = m.prefix + sub
			}
			if id, ok := m.vocab[sub]; ok {
				found = id
				break
			}
			_, size := utf8.DecodeLastRuneInString(w[i:end])
			end -= size
		}
		if found < 0 {
			out = out[:start]
			if m.unk >= 0 {
				out = append(out, m.unk)
			}
			return out
		}
		out = append(out, found)
		i = end
	}
	return out
}

// unigramModel is HF's Unigram (SentencePiece unigram) with Viterbi decoding.
type unigramModel struct {
	pieces       []string
	scores       []float64
	vocab        map[string]int
	unk          int
	byteFallback bool
	unkScore     float64
	tr           *trie
}

func newUnigram(pieces []string, scores []float64, unk int, byteFallback bool) (*unigramModel, error) {
	m := &unigramModel{pieces: pieces, scores: scores, vocab: make(map[string]int, len(pieces)), unk: unk, byteFallback: byteFallback, tr: newTrie()}
	minScore := math.Inf(1)
	for i, p := range pieces {
		if _, dup := m.vocab[p]; !dup {
			m.vocab[p] = i
		}
		m.tr.insert(p, i)
		minScore = math.Min(minScore, scores[i])
	}
	if unk >= len(pieces) {
		return nil, fmt.Errorf("model.unk_id %d is outside the vocab (%d pieces)", unk, len(pieces))
	}
	m.unkScore = minScore - 10
	return m, nil
}

func (m *unigramModel) tokenToID(t string) (int, bool) { id, ok := m.vocab[t]; return id, ok }
func (m *unigramModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.pieces) {
		return "", false
	}
	return m.pieces[id], true
}
func (m *unigramModel) size() int { return len(m.pieces) }

func (m *unigramModel) tokenize(w string, out []int) []int {
	if w == "" {
		return out
	}
	n := len(w)
	type node struct {
		id    int
		score float64
		start int
		set   bool
	}
	best := make([]node, n+1)
	best[0].set = true
	for i := 0; i < n; {
		if !best[i].set {
			i++
			continue
		}
		_, clen := utf8.DecodeRuneInString(w[i:])
		hasSingle := false
		nd := 0
		for j := i; j < n; j++ {
			c, ok := m.tr.nodes[nd].next[w[j]]
			if !ok {
				break
			}
			nd = int(c)
			if tok := m.tr.nodes[nd].tok; tok >= 0 {
				end := j + 1
				if end-i == clen {
					hasSingle = true
				}
				sc := best[i].score + m.scores[tok]
				if !best[end].set || sc > best[end].score {
					best[end] = node{id: int(tok), score: sc, start: i, set: true}
				}
			}
		}
		if !hasSingle {
			sc := best[i].score + m.unkScore
			end := i + clen
			if !best[end].set || sc > best[end].score {
				best[end] = node{id: m.unk, score: sc, start: i, set: true}
			}
		}
		i += clen
	}
	// Walk back, then emit, fusing consecutive unknowns.
	type tok struct {
		id         int
		start, end int
	}
	var rev []tok
	for e := n; e > 0; {
		b := best[e]
		rev = append(rev, tok{b.id, b.start, e})
		e = b.start
	}
	lastUnk := false
	for k := len(rev) - 1; k >= 0; k-- {
		t := rev[k]
		if t.id == m.unk && m.unk >= 0 {
			if m.byteFallback {
				if bytes, ok := m.byteTokens(w[t.start:t.end]); ok {
					out = append(out, bytes...)
					continue
				}
			}
			if lastUnk {
				continue
			}
			lastUnk = true
			out = append(out, m.unk)
			continue
		}
		lastUnk = false
		out = append(out, t.id)
	}
	return out
}

func (m *unigramModel) byteTokens(s string) ([]int, bool) {
	ids := make([]int, 0, len(s))
	for i := 0; i < len(s); i++ {
		id, ok := m.vocab[fmt.Sprintf("<0x%02X>", s[i])]
		if !ok {
			return nil, false
		}
		ids = append(ids, id)
	}
	return ids, true
}
