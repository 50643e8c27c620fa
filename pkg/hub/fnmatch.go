package hub

import (
	"regexp"
	"strings"
	"sync"
)

// Match reports whether name matches pattern with Python's
// fnmatch.fnmatchcase rules, as huggingface_hub's allow patterns use them:
// '*' matches any run of characters including '/', '?' one character,
// "[seq]" and "[!seq]" a character class. A pattern ending in '/' matches
// everything under that folder.
func Match(pattern, name string) bool {
	return compilePattern(pattern).MatchString(name)
}

// FilterPaths keeps the paths matching at least one allow pattern (all
// paths when allow is empty) and no ignore pattern, in the input order.
func FilterPaths(paths, allow, ignore []string) []string {
	var out []string
	for _, p := range paths {
		if len(allow) > 0 && !matchAny(allow, p) {
			continue
		}
		if matchAny(ignore, p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func matchAny(patterns []string, name string) bool {
	for _, pat := range patterns {
		if Match(pat, name) {
			return true
		}
	}
	return false
}

var patternCache sync.Map // string -> *regexp.Regexp

func compilePattern(pattern string) *regexp.Regexp {
	if re, ok := patternCache.Load(pattern); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(translateGlob(pattern))
	patternCache.Store(pattern, re)
	return re
}

// translateGlob follows Python's fnmatch.translate.
func translateGlob(pat string) string {
	pat = strings.ReplaceAll(pat, "\\", "/")
	if strings.HasSuffix(pat, "/") {
		pat += "*"
	}
	var b strings.Builder
	b.WriteString(`(?s)\A`)
	n := len(pat)
	for i := 0; i < n; {
		c := pat[i]
		i++
		switch c {
		case '*':
			for i < n && pat[i] == '*' {
				i++
			}
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i
			if j < n && pat[j] == '!' {
				j++
			}
			if j < n && pat[j] == ']' {
				j++
			}
			for j < n && pat[j] != ']' {
				j++
			}
			if j >= n {
				b.WriteString(`\[`)
				continue
			}
			stuff := pat[i:j]
			i = j + 1
			neg := false
			if strings.HasPrefix(stuff, "!") {
				neg = true
				stuff = stuff[1:]
			}
			var cls strings.Builder
			for k := 0; k < len(stuff); k++ {
				ch := stuff[k]
				switch ch {
				case '\\', '[', ']', '^':
					cls.WriteByte('\\')
					cls.WriteByte(ch)
				default:
					cls.WriteByte(ch)
				}
			}
			if cls.Len() == 0 {
				if neg {
					b.WriteString(`.`)
				} else {
					b.WriteString(`[^\x00-\x{10FFFF}]`) // matches nothing
				}
				continue
			}
			b.WriteByte('[')
			if neg {
				b.WriteByte('^')
			}
			b.WriteString(cls.String())
			b.WriteByte(']')
		default:
			if c < 0x80 {
				b.WriteString(regexp.QuoteMeta(string(rune(c))))
			} else {
				b.WriteByte(c) // UTF-8 continuation bytes pass through literally
			}
		}
	}
	b.WriteString(`\z`)
	return b.String()
}
