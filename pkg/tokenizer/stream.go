package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// Detokenizer turns a stream of ids into text as it arrives. The
// concatenation of all segments equals Decode(ids, false) of the whole
// stream; a segment never ends inside a UTF-8 character; each token costs
// time proportional to its own length.
type Detokenizer interface {
	// Reset starts a new stream.
	Reset()
	// Add appends one token.
	Add(id int)
	// Finalize flushes what is held back (an incomplete character at the
	// end of the stream).
	Finalize()
	// LastSegment returns the text added since the previous call.
	LastSegment() string
	// Text is all text so far.
	Text() string
	// Tokens are the ids added so far.
	Tokens() []int
}

type detokBase struct {
	text   strings.Builder
	offset int
	tokens []int
}

func (d *detokBase) LastSegment() string {
	s := d.text.String()[d.offset:]
	d.offset = d.text.Len()
	return s
}
func (d *detokBase) Text() string  { return d.text.String() }
func (d *detokBase) Tokens() []int { return d.tokens }
func (d *detokBase) resetBase()    { d.text.Reset(); d.offset = 0; d.tokens = d.tokens[:0] }
func (d *detokBase) emit(s string) { d.text.WriteString(s) }
func (d *detokBase) addTok(id int) { d.tokens = append(d.tokens, id) }

// NewDetokenizer returns the streaming detokenizer mlx_lm would pick for
// this tokenizer's decoder: byte-level BPE, SentencePiece, or the naive one.
func (t *Tokenizer) NewDetokenizer() Detokenizer {
	switch d := t.decoder.(type) {
	case byteLevelDec:
		return &bpeDetok{t: t}
	case seqDec:
		if spm, ok := spmShape(d); ok {
			spm.t = t
			return spm
		}
	}
	return t.NewNaiveDetokenizer()
}

// spmShape recognizes Sequence[Replace(▁, " "), ByteFallback, Fuse, Strip?].
func spmShape(q seqDec) (*spmDetok, bool) {
	if len(q) < 3 || len(q) > 4 {
		return nil, false
	}
	r, ok1 := q[0].(replaceDec)
	_, ok2 := q[1].(byteFallbackDec)
	_, ok3 := q[2].(fuseDec)
	if !ok1 || !ok2 || !ok3 || r.pat != "\u2581" || r.content != " " {
		return nil, false
	}
	d := &spmDetok{}
	if len(q) == 4 {
		s, ok := q[3].(stripDec)
		if !ok || s.stop != 0 || s.content == "" {
			return nil, false
		}
		d.strip, d.stripContent = s.start, s.content
	}
	d.toStrip = d.strip
	return d, true
}

// completePrefix returns how many leading bytes of b can be emitted now: all
// of them except a trailing, still-incomplete UTF-8 sequence.
func completePrefix(b []byte) int {
	// Look at most 3 bytes back for the start of a multi-byte sequence.
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xC0 { // a lead byte
			need := 0
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			default:
				need = 2
			}
			if k < need && !utf8.FullRune(b[len(b)-k:]) && isValidPrefix(b[len(b)-k:]) {
				return len(b) - k
			}
			return len(b)
		}
	}
	return len(b)
}

// isValidPrefix reports whether b could still become a valid character.
func isValidPrefix(b []byte) bool {
	var full [4]byte
	copy(full[:], b)
	// Complete with the smallest continuation bytes that keep every check
	// happy, then ask utf8.Valid.
	lo := []byte{0x80, 0x80, 0x80}
	switch b[0] {
	case 0xE0:
		lo[0] = 0xA0
	case 0xF0:
		lo[0] = 0x90
	}
	n := 2
	switch {
	case b[0] >= 0xF0:
		n = 4
	case b[0] >= 0xE0:
		n = 3
	}
	for i := len(b); i < n; i++ {
		full[i] = lo[i-1]
	}
	return utf8.Valid(full[:n])
}

// bpeDetok streams the ByteLevel decoder: token runes map back to bytes,
// and bytes are released once they form whole characters.
type bpeDetok struct {
	detokBase
	t       *Tokenizer
	pending []byte
}

func (d *bpeDetok) Reset() { d.resetBase(); d.pending = d.pending[:0] }

func (d *bpeDetok) Add(id int) {
	d.addTok(id)
	tok, ok := d.t.IDToToken(id)
	if !ok {
		return
	}
	d.pending = byteLevelDecodeToken(d.pending, tok)
	n := completePrefix(d.pending)
	if n > 0 {
		d.emit(lossyUTF8(d.pending[:n]))
		d.pending = append(d.pending[:0], d.pending[n:]...)
	}
}

func (d *bpeDetok) Finalize() {
	if len(d.pending) > 0 {
		d.emit(lossyUTF8(d.pending))
		d.pending = d.pending[:0]
	}
}

// spmDetok streams the SentencePiece decoder: ▁ becomes a space, <0xNN>
// tokens are bytes grouped as HF's ByteFallback groups them, and the
// leading spaces the Strip step removes are removed from the first text.
type spmDetok struct {
	detokBase
	t            *Tokenizer
	group        []byte // pending <0xNN> bytes
	strip        int
	stripContent string
	toStrip      int
}

func (d *spmDetok) Reset() { d.resetBase(); d.group = d.group[:0]; d.toStrip = d.strip }

func (d *spmDetok) out(s string) {
	for d.toStrip > 0 && d.stripContent != "" && strings.HasPrefix(s, d.stripContent) {
		s = s[len(d.stripContent):]
		d.toStrip--
	}
	if s != "" {
		d.toStrip = 0
		d.emit(s)
	}
}

func (d *spmDetok) flushGroup() {
	if len(d.group) == 0 {
		return
	}
	if utf8.Valid(d.group) {
		d.out(string(d.group))
	} else {
		d.out(strings.Repeat("\uFFFD", len(d.group)))
	}
	d.group = d.group[:0]
}

func (d *spmDetok) Add(id int) {
	d.addTok(id)
	tok, ok := d.t.IDToToken(id)
	if !ok {
		return
	}
	tok = strings.ReplaceAll(tok, "\u2581", " ")
	if b, ok := byteFallbackTok(tok); ok {
		d.group = append(d.group, b)
		// A group that is one complete character is final unless more
		// byte tokens follow; HF judges the whole group, so hold it.
		return
	}
	d.flushGroup()
	d.out(tok)
}

func (d *spmDetok) Finalize() { d.flushGroup() }

// naiveDetok decodes a sliding window of recent tokens and emits what the
// window adds, holding back a trailing U+FFFD (an incomplete character).
// It works for any decoder whose output for a suffix of the stream extends
// the output for a shorter suffix, which is checked on every step: when it
// does not hold, it falls back to re-decoding from the start of the window.
type naiveDetok struct {
	detokBase
	t          *Tokenizer
	prefixOff  int // window start
	readOff    int // tokens before readOff are emitted
	prefixText string
}

// NewNaiveDetokenizer returns the fallback streaming detokenizer.
func (t *Tokenizer) NewNaiveDetokenizer() Detokenizer { return &naiveDetok{t: t} }

func (d *naiveDetok) Reset() {
	d.resetBase()
	d.prefixOff, d.readOff, d.prefixText = 0, 0, ""
}

func (d *naiveDetok) Add(id int) {
	d.addTok(id)
	d.step(false)
}

func (d *naiveDetok) step(force bool) {
	full := d.t.Decode(d.tokens[d.prefixOff:], false)
	if !force && strings.HasSuffix(full, "\uFFFD") {
		return
	}
	if len(full) > len(d.prefixText) && strings.HasPrefix(full, d.prefixText) {
		d.emit(full[len(d.prefixText):])
		// The new window starts where the last window's read part ended.
		d.prefixOff = d.readOff
		d.readOff = len(d.tokens)
		d.prefixText = d.t.Decode(d.tokens[d.prefixOff:d.readOff], false)
	}
}

func (d *naiveDetok) Finalize() { d.step(true) }
