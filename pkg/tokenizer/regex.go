package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Hugging Face tokenizers compiles Split patterns with Oniguruma, whose \s, \w
// and \d are Unicode-aware and which supports look-ahead. Go's RE2 has neither:
// \s is ASCII-only and (?!...) does not compile. We translate the classes and
// replace the one look-ahead every family pattern uses, `\s+(?!\S)|\s+`, by a
// capturing `\s+` whose match is shortened by one rune afterwards when it is
// followed by a non-space (which is what the look-ahead does: it leaves the
// last space of a run for the next word).

const (
	wsClassBody  = `\t\n\v\f\r \x{85}\p{Z}`
	wordClassBod = `\p{L}\p{M}\p{N}\p{Pc}`
	lookAheadAlt = `\s+(?!\S)|\s+`
	wsGroupName  = "mlxgo_ws"
)

// patternSplitter finds the non-overlapping, non-empty matches of a pattern.
type patternSplitter interface {
	matches(s string) [][2]int
}

type literalSplitter struct{ lit string }

func (l literalSplitter) matches(s string) [][2]int {
	if l.lit == "" {
		return nil
	}
	var out [][2]int
	off := 0
	for {
		i := strings.Index(s[off:], l.lit)
		if i < 0 {
			return out
		}
		out = append(out, [2]int{off + i, off + i + len(l.lit)})
		off += i + len(l.lit)
	}
}

type regexSplitter struct {
	re      *regexp.Regexp
	wsGroup int // submatch index of the rewritten look-ahead alternative, or -1
}

// compileOnigPattern translates an Oniguruma pattern from tokenizer.json into
// a Go regexp.
func compileOnigPattern(pat string) (*regexSplitter, error) {
	wsGroup := false
	if strings.Contains(pat, lookAheadAlt) {
		pat = strings.Replace(pat, lookAheadAlt, `(?P<`+wsGroupName+`>\s+)`, 1)
		wsGroup = true
	}
	if strings.Contains(pat, "(?!") || strings.Contains(pat, "(?=") || strings.Contains(pat, "(?<=") || strings.Contains(pat, "(?<!") {
		return nil, fmt.Errorf("regex %q: look-around other than %q is not supported", pat, lookAheadAlt)
	}
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '\\' && i+1 < len(pat):
			n := pat[i+1]
			i++
			switch n {
			case 's':
				if inClass {
					b.WriteString(wsClassBody)
				} else {
					b.WriteString("[" + wsClassBody + "]")
				}
			case 'S':
				if inClass {
					return nil, fmt.Errorf("regex %q: \\S inside a character class is not supported", pat)
				}
				b.WriteString("[^" + wsClassBody + "]")
			case 'w':
				if inClass {
					b.WriteString(wordClassBod)
				} else {
					b.WriteString("[" + wordClassBod + "]")
				}
			case 'W':
				if inClass {
					return nil, fmt.Errorf("regex %q: \\W inside a character class is not supported", pat)
				}
				b.WriteString("[^" + wordClassBod + "]")
			case 'd':
				b.WriteString(`\p{Nd}`)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal.
			if i+1 < len(pat) && pat[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(pat) && pat[i+1] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", pat, err)
	}
	rs := &regexSplitter{re: re, wsGroup: -1}
	if wsGroup {
		rs.wsGroup = re.SubexpIndex(wsGroupName)
	}
	return rs, nil
}

// matches runs the pattern over s in small windows so Go's regexp can use its
// fast backtracking matcher; a match that reaches the window's end is retried
// on a larger window, so results equal a match over the whole string.
func (r *regexSplitter) matches(s string) [][2]int {
	var out [][2]int
	var loc []int
	p := 0
	for p < len(s) {
		w := 256
		for {
			end := min(p+w, len(s))
			loc = r.re.FindStringSubmatchIndex(s[p:end])
			if end == len(s) || (loc != nil && p+loc[1] < end) {
				break
			}
			w *= 4
		}
		if loc == nil {
			break
		}
		st, en := p+loc[0], p+loc[1]
		if en == st {
			_, size := utf8.DecodeRuneInString(s[st:])
			p = st + max(size, 1)
			continue
		}
		if r.wsGroup >= 0 && loc[2*r.wsGroup] >= 0 && en < len(s) {
			// \s+(?!\S): the run is followed by a non-space; give its last rune back.
			_, size := utf8.DecodeLastRuneInString(s[st:en])
			if en-st > size {
				en -= size
			}
		}
		out = append(out, [2]int{st, en})
		p = en
	}
	return out
}
