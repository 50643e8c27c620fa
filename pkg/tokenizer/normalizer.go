package tokenizer

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

type normalizer interface {
	normalize(s string) string
}

type normFunc func(string) string

func (f normFunc) normalize(s string) string { return f(s) }

type seqNorm []normalizer

func (q seqNorm) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

type replaceNorm struct {
	pat     patternSplitter
	content string
}

func (r *replaceNorm) normalize(s string) string {
	ms := r.pat.matches(s)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, m := range ms {
		b.WriteString(s[prev:m[0]])
		b.WriteString(r.content)
		prev = m[1]
	}
	b.WriteString(s[prev:])
	return b.String()
}

func nfc(s string) string  { return norm.NFC.String(s) }
func nfd(s string) string  { return norm.NFD.String(s) }
func nfkc(s string) string { return norm.NFKC.String(s) }
func nfkd(s string) string { return norm.NFKD.String(s) }

func stripAccents(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

func isHFWhitespace(r rune) bool { return unicode.IsSpace(r) }

// bertNormalizer is HF's BertNormalizer.
type bertNormalizer struct {
	cleanText, chinese, stripAccents, lowercase bool
}

func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

func (b *bertNormalizer) normalize(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if b.cleanText {
			if r == 0 || r == 0xFFFD || (unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r') {
				continue
			}
			if isHFWhitespace(r) {
				r = ' '
			}
		}
		if b.chinese && isChineseChar(r) {
			sb.WriteByte(' ')
			sb.WriteRune(r)
			sb.WriteByte(' ')
			continue
		}
		sb.WriteRune(r)
	}
	out := sb.String()
	if b.stripAccents {
		out = stripAccents(nfd(out))
	}
	if b.lowercase {
		out = strings.ToLower(out)
	}
	return out
}

// nmt is HF's Nmt normalizer: drops some control characters and turns
// others, and some invisible spaces, into a space.
func nmt(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case (r >= 0x1 && r <= 0x8) || r == 0xB || (r >= 0xE && r <= 0x1F) || r == 0x7F || r == 0x8F || r == 0x9F:
			return -1
		case r == 0x9 || r == 0xA || r == 0xC || r == 0xD || r == 0x1680 || (r >= 0x200B && r <= 0x200F) ||
			r == 0x2028 || r == 0x2029 || r == 0x2581 || r == 0xFEFF || r == 0xFFFD:
			return ' '
		}
		return r
	}, s)
}
