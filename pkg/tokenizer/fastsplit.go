package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Hand-written matchers for the pre-tokenizer patterns of the big model
// families. They return exactly what the regex (with Oniguruma's look-ahead)
// matches — fastsplit_test.go checks them against the generic regex path on
// random text — and run several times faster than Go's regexp.

// matchFn returns the end of the match starting at s[i:], or -1.
type matchFn func(s string, i int) int

type fastSplitter struct{ fn matchFn }

func (f fastSplitter) matches(s string) [][2]int {
	out := make([][2]int, 0, len(s)/4+1)
	for i := 0; i < len(s); {
		if e := f.fn(s, i); e > i {
			out = append(out, [2]int{i, e})
			i = e
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return out
}

// fastPatterns maps a tokenizer.json Split regex to its matcher.
var fastPatterns = map[string]matchFn{
	// Llama 3, Qwen 2/2.5.
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": func(s string, i int) int { return matchCL100(s, i, 3) },
	// Qwen 3 (single digits).
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": func(s string, i int) int { return matchCL100(s, i, 1) },
	// GPT-4o (o200k).
	"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": matchO200k,
	// DeepSeek V3 (third split).
	"[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+": matchDeepSeek,
	// DeepSeek V3 (first and second splits).
	"\\p{N}{1,3}": func(s string, i int) int {
		j := i
		for k := 0; k < 3; k++ {
			r, n := runeAt(s, j)
			if !isN(r) {
				break
			}
			j += n
		}
		return j
	},
	"[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+": func(s string, i int) int {
		return run(s, i, func(r rune) bool {
			return (r >= 0x4e00 && r <= 0x9fa5) || (r >= 0x3040 && r <= 0x309f) || (r >= 0x30a0 && r <= 0x30ff)
		})
	},
	// GPT-2 (ByteLevel use_regex).
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+": matchGPT2,
}

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isSpace(r rune) bool { return r >= 0 && unicode.IsSpace(r) }
func isL(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
	}
	return unicode.IsLetter(r)
}
func isN(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= '0' && r <= '9'
	}
	return unicode.IsNumber(r)
}
func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

// otherRune is [^\s\p{L}\p{N}].
func otherRune(r rune) bool { return r >= 0 && !isSpace(r) && !isL(r) && !isN(r) }

// run returns the end of the maximal run of runes satisfying p from i.
func run(s string, i int, p func(rune) bool) int {
	for i < len(s) {
		r, n := runeAt(s, i)
		if !p(r) {
			break
		}
		i += n
	}
	return i
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) (case-insensitive with
// Unicode simple folding, as Go's regexp and Oniguruma do), or -1.
func contraction(s string, i int, fold bool) int {
	if i >= len(s) || s[i] != '\'' {
		return -1
	}
	eq := func(r rune, c rune) bool {
		if r == c {
			return true
		}
		if !fold {
			return false
		}
		for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
			if r == f {
				return true
			}
		}
		return false
	}
	r1, n1 := runeAt(s, i+1)
	r2, n2 := runeAt(s, i+1+n1)
	for _, alt := range []string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if !eq(r1, rune(alt[0])) {
			continue
		}
		if len(alt) == 1 {
			return i + 1 + n1
		}
		if eq(r2, rune(alt[1])) {
			return i + 1 + n1 + n2
		}
	}
	return -1
}

// whitespace implements \s*[\r\n]+|\s+(?!\S)|\s+ at i (s[i] is a space).
func whitespace(s string, i int, newlines bool) int {
	end := run(s, i, isSpace)
	if newlines {
		// \s*[\r\n]+: up to the last CR/LF of the run.
		last := -1
		for j := i; j < end; {
			r, n := runeAt(s, j)
			if isCRLF(r) {
				last = j + n
			}
			j += n
		}
		if last > 0 {
			return last
		}
	}
	if end == len(s) {
		return end
	}
	if _, n := utf8.DecodeLastRuneInString(s[i:end]); end-n > i {
		return end - n
	}
	return end
}

// matchCL100 is Llama 3's pattern (maxDigits 3) and Qwen 3's (1).
func matchCL100(s string, i, maxDigits int) int {
	r, n := runeAt(s, i)
	if e := contraction(s, i, true); e > 0 {
		return e
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if !isCRLF(r) && !isL(r) && !isN(r) {
		if r2, _ := runeAt(s, i+n); isL(r2) {
			return run(s, i+n, isL)
		}
	}
	if isL(r) {
		return run(s, i, isL)
	}
	if isN(r) {
		j := i
		for k := 0; k < maxDigits; k++ {
			rr, nn := runeAt(s, j)
			if !isN(rr) {
				break
			}
			j += nn
		}
		return j
	}
	// ?[^\s\p{L}\p{N}]+[\r\n]*
	j := i
	if r == ' ' {
		j++
	}
	if r2, _ := runeAt(s, j); otherRune(r2) {
		return run(s, run(s, j, otherRune), isCRLF)
	}
	if isSpace(r) {
		return whitespace(s, i, true)
	}
	return -1
}

// matchGPT2 is GPT-2's pattern.
func matchGPT2(s string, i int) int {
	if e := contraction(s, i, false); e > 0 {
		return e
	}
	r, _ := runeAt(s, i)
	j := i
	if r == ' ' {
		j++
	}
	r2, _ := runeAt(s, j)
	switch {
	case isL(r2):
		return run(s, j, isL)
	case isN(r2):
		return run(s, j, isN)
	case otherRune(r2):
		return run(s, j, otherRune)
	}
	if isSpace(r) {
		return whitespace(s, i, false)
	}
	return -1
}

func isUpperish(r rune) bool { // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	if r < 0 {
		return false
	}
	if r < utf8.RuneSelf {
		return r >= 'A' && r <= 'Z'
	}
	return unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M)
}

func isLowerish(r rune) bool { // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	if r < 0 {
		return false
	}
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z'
	}
	return unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M)
}

// o200kWord matches [U]*[L]+ or [U]+[L]* (first=true picks the former)
// from j, with the optional contraction, or -1.
func o200kWord(s string, j int, first bool) int {
	k := run(s, j, isUpperish)
	var end int
	if first {
		if e := run(s, k, isLowerish); e > k {
			end = e
		} else {
			// Backtrack [U]* to the last rune that [L]+ can take.
			end = -1
			for p := k; p > j; {
				r, n := utf8.DecodeLastRuneInString(s[j:p])
				if isLowerish(r) {
					end = p
					break
				}
				p -= n
			}
			if end < 0 {
				return -1
			}
		}
	} else {
		if k == j {
			return -1
		}
		end = run(s, k, isLowerish)
	}
	if e := contraction(s, end, true); e > 0 {
		return e
	}
	return end
}

func matchO200k(s string, i int) int {
	r, n := runeAt(s, i)
	pre := !isCRLF(r) && !isL(r) && !isN(r) && r >= 0
	for _, first := range []bool{true, false} {
		if pre {
			if e := o200kWord(s, i+n, first); e > 0 {
				return e
			}
		}
		if e := o200kWord(s, i, first); e > 0 {
			return e
		}
	}
	if isN(r) {
		j := i
		for k := 0; k < 3; k++ {
			rr, nn := runeAt(s, j)
			if !isN(rr) {
				break
			}
			j += nn
		}
		return j
	}
	j := i
	if r == ' ' {
		j++
	}
	if r2, _ := runeAt(s, j); otherRune(r2) {
		return run(s, run(s, j, otherRune), func(r rune) bool { return isCRLF(r) || r == '/' })
	}
	if isSpace(r) {
		return whitespace(s, i, true)
	}
	return -1
}

func isASCIIPunct(r rune) bool {
	switch r {
	case '!', '"', '#', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '^', '_', '`', '{', '|', '}', '~':
		return true
	}
	return false
}
func isASCIILetter(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') }
func isPS(r rune) bool          { return r >= 0 && (unicode.IsPunct(r) || unicode.IsSymbol(r)) }
func isLM(r rune) bool          { return r >= 0 && (isL(r) || unicode.Is(unicode.M, r)) }

func matchDeepSeek(s string, i int) int {
	r, n := runeAt(s, i)
	// [!"#...~][A-Za-z]+
	if isASCIIPunct(r) {
		if e := run(s, i+n, isASCIILetter); e > i+n {
			return e
		}
	}
	// [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
	if r >= 0 && !isCRLF(r) && !isL(r) && !isPS(r) {
		if e := run(s, i+n, isLM); e > i+n {
			return e
		}
	}
	if e := run(s, i, isLM); e > i {
		return e
	}
	// ?[\p{P}\p{S}]+[\r\n]*
	j := i
	if r == ' ' {
		j++
	}
	if e := run(s, j, isPS); e > j {
		return run(s, e, isCRLF)
	}
	if isSpace(r) {
		return whitespace(s, i, true)
	}
	return -1
}
