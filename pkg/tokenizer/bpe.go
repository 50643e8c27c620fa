package tokenizer

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"unicode/utf8"
)

// model turns one pre-tokenized piece into ids.
type model interface {
	tokenize(word string, out []int) []int
	tokenToID(tok string) (int, bool)
	idToToken(id int) (string, bool)
	size() int
}

type mergeInfo struct {
	rank int32
	id   int32
}

// bpeModel is HF's BPE model (dropout unsupported).
type bpeModel struct {
	vocab        map[string]int
	ids          []string
	merges       map[uint64]mergeInfo
	unk          int // -1 when there is no unk token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	contPrefix   string
	eowSuffix    string
	byteIDs      [256]int // ids of <0xNN>, -1 where absent

	cache wordCache
}

// wordCache maps words to their ids, sharded so parallel encoders do not
// queue on one lock.
type wordCache struct {
	seed   maphash.Seed
	shards [64]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int
}

func (c *wordCache) shard(w string) *cacheShard {
	return &c.shards[maphash.String(c.seed, w)&63]
}

func (c *wordCache) get(w string) ([]int, bool) {
	sh := c.shard(w)
	sh.mu.RLock()
	ids, ok := sh.m[w]
	sh.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int) {
	sh := c.shard(w)
	sh.mu.Lock()
	if sh.m == nil || len(sh.m) >= bpeCacheMax/len(c.shards) {
		sh.m = map[string][]int{}
	}
	sh.m[w] = ids
	sh.mu.Unlock()
}

func (c *wordCache) reset() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.m = nil
		sh.mu.Unlock()
	}
}

const (
	bpeCacheMax     = 1 << 17
	bpeCacheWordMax = 256
)

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPE(vocab map[string]int, merges [][2]string, unkTok string, fuseUnk, byteFallback, ignoreMerges bool, prefix, suffix string) (*bpeModel, error) {
	m := &bpeModel{vocab: vocab, merges: make(map[uint64]mergeInfo, len(merges)), unk: -1,
		fuseUnk: fuseUnk, byteFallback: byteFallback, ignoreMerges: ignoreMerges,
		contPrefix: prefix, eowSuffix: suffix}
	m.cache.seed = maphash.MakeSeed()
	maxID := -1
	for _, id := range vocab {
		maxID = max(maxID, id)
	}
	m.ids = make([]string, maxID+1)
	for t, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("model.vocab: negative id %d for %q", id, t)
		}
		m.ids[id] = t
	}
	if unkTok != "" {
		id, ok := vocab[unkTok]
		if !ok {
			return nil, fmt.Errorf("model.unk_token %q is not in model.vocab", unkTok)
		}
		m.unk = id
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.byteIDs[b] = id
		}
	}
	plen := len(prefix)
	for rank, mg := range merges {
		a, ok1 := vocab[mg[0]]
		b, ok2 := vocab[mg[1]]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("model.merges[%d] %q %q: token not in model.vocab", rank, mg[0], mg[1])
		}
		newTok := mg[0] + mg[1]
		if plen > 0 && strings.HasPrefix(mg[1], prefix) {
			newTok = mg[0] + mg[1][plen:]
		}
		id, ok := vocab[newTok]
		if !ok {
			return nil, fmt.Errorf("model.merges[%d] %q %q: merged token %q not in model.vocab", rank, mg[0], mg[1], newTok)
		}
		k := pairKey(a, b)
		if _, dup := m.merges[k]; !dup {
			m.merges[k] = mergeInfo{rank: int32(rank), id: int32(id)}
		}
	}
	return m, nil
}

func (m *bpeModel) tokenToID(t string) (int, bool) { id, ok := m.vocab[t]; return id, ok }
func (m *bpeModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.ids) {
		return "", false
	}
	if t := m.ids[id]; t != "" || m.vocab[""] == id {
		if v, ok := m.vocab[t]; ok && v == id {
			return t, true
		}
	}
	return "", false
}
func (m *bpeModel) size() int { return len(m.vocab) }

type bpeSym struct {
	id         int
	prev, next int
	dead       bool
}

// bpeCand is a candidate merge; key orders by (rank, position) as HF does.
type bpeCand struct {
	key uint64 // rank<<32 | position of the left symbol
	id  int32  // the merged token
}

// candHeap is a binary min-heap on key, typed to avoid container/heap's
// interface boxing on the hot path.
type candHeap []bpeCand

func (h *candHeap) push(c bpeCand) {
	*h = append(*h, c)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if q[p].key <= q[i].key {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

func (h *candHeap) pop() bpeCand {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q[r].key < q[l].key {
			m = r
		}
		if q[i].key <= q[m].key {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

func candKey(rank int32, pos int) uint64 { return uint64(uint32(rank))<<32 | uint64(uint32(pos)) }

func (m *bpeModel) tokenize(word string, out []int) []int {
	if word == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(out, id)
		}
	}
	cacheable := len(word) <= bpeCacheWordMax
	if cacheable {
		if ids, ok := m.cache.get(word); ok {
			return append(out, ids...)
		}
	}
	start := len(out)
	out = m.merge(word, out)
	if cacheable {
		m.cache.put(word, append([]int(nil), out[start:]...))
	}
	return out
}

// merge is the BPE algorithm with a priority queue of candidate merges,
// ordered by (rank, position) as in HF tokenizers' word.merge_all.
func (m *bpeModel) merge(word string, out []int) []int {
	syms := make([]bpeSym, 0, len(word))
	lastUnk := false
	n := utf8.RuneCountInString(word)
	i := 0
	for off, r := range word {
		size := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, size = utf8.DecodeRuneInString(word[off:])
		}
		ch := word[off : off+size]
		if m.contPrefix != "" && i > 0 {
			ch = m.contPrefix + ch
		}
		if m.eowSuffix != "" && i == n-1 {
			ch += m.eowSuffix
		}
		i++
		if id, ok := m.vocab[ch]; ok {
			syms = append(syms, bpeSym{id: id})
			lastUnk = false
			continue
		}
		if m.byteFallback {
			raw := word[off : off+size]
			all := true
			for j := 0; j < len(raw); j++ {
				if m.byteIDs[raw[j]] < 0 {
					all = false
				}
			}
			if all {
				for j := 0; j < len(raw); j++ {
					syms = append(syms, bpeSym{id: m.byteIDs[raw[j]]})
				}
				lastUnk = false
				continue
			}
		}
		if m.unk >= 0 {
			if !(m.fuseUnk && lastUnk) {
				syms = append(syms, bpeSym{id: m.unk})
			}
			lastUnk = true
		}
	}
	for k := range syms {
		syms[k].prev = k - 1
		syms[k].next = k + 1
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	h := make(candHeap, 0, len(syms))
	for k := 0; k+1 < len(syms); k++ {
		if mi, ok := m.merges[pairKey(syms[k].id, syms[k+1].id)]; ok {
			h.push(bpeCand{candKey(mi.rank, k), mi.id})
		}
	}
	for len(h) > 0 {
		c := h.pop()
		pos := int(uint32(c.key))
		s := &syms[pos]
		if s.dead || s.next < 0 {
			continue
		}
		nx := &syms[s.next]
		mi, ok := m.merges[pairKey(s.id, nx.id)]
		if !ok || mi.id != c.id {
			continue
		}
		s.id = int(c.id)
		nx.dead = true
		s.next = nx.next
		if s.next >= 0 {
			syms[s.next].prev = pos
		}
		if s.prev >= 0 {
			if mi, ok := m.merges[pairKey(syms[s.prev].id, s.id)]; ok {
				h.push(bpeCand{candKey(mi.rank, s.prev), mi.id})
			}
		}
		if s.next >= 0 {
			if mi, ok := m.merges[pairKey(s.id, syms[s.next].id)]; ok {
				h.push(bpeCand{candKey(mi.rank, pos), mi.id})
			}
		}
	}
	for k := 0; k >= 0 && k < len(syms); k = syms[k].next {
		out = append(out, syms[k].id)
	}
	return out
}
