package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The alphabet mixes every class the family patterns distinguish: ASCII and
// non-ASCII letters of each case category, marks, digits and other numbers,
// each kind of space, CR/LF, apostrophes and case-folding look-alikes,
// punctuation, symbols, CJK and kana.
var splitAlphabet = []string{
	"a", "Z", "é", "É", "ǅ", "ʰ", "中", "あ", "ア", "\u0301", "\u0903", "ß", "ſ", "K", "\u212a",
	"0", "7", "²", "Ⅻ", "٣",
	" ", " ", " ", "\t", "\n", "\r", "\v", "\f", "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b",
	"'", "'", "s", "S", "t", "re", "VE", "m", "LL", "d", "’",
	".", ",", "!", "-", "/", "\\", "[", "]", "_", "`", "$", "€", "😀", "+", "<", "|",
}

func randomText(r *rand.Rand) string {
	n := r.IntN(24)
	var b strings.Builder
	for range n {
		b.WriteString(splitAlphabet[r.IntN(len(splitAlphabet))])
	}
	return b.String()
}

func TestFastSplitMatchesRegex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for pat, fn := range fastPatterns {
		re, err := compileOnigPattern(pat)
		if err != nil {
			t.Fatalf("%q: %v", pat, err)
		}
		fast := fastSplitter{fn}
		fails := 0
		for range 20000 {
			s := randomText(r)
			if got, want := fast.matches(s), re.matches(s); !slices.Equal(got, want) {
				t.Errorf("pattern %.40q on %q:\n fast  %v\n regex %v", pat, s, got, want)
				if fails++; fails > 5 {
					break
				}
			}
		}
	}
}

func FuzzFastSplit(f *testing.F) {
	for _, s := range []string{"Hello world", "I'm  \n\n x", "ab's12345 !!\r\n", "中文 テスト 😀"} {
		f.Add(s)
	}
	type pair struct{ fast, re patternSplitter }
	var pairs []pair
	for pat, fn := range fastPatterns {
		re, err := compileOnigPattern(pat)
		if err != nil {
			f.Fatal(err)
		}
		pairs = append(pairs, pair{fastSplitter{fn}, re})
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range pairs {
			if got, want := p.fast.matches(s), p.re.matches(s); !slices.Equal(got, want) {
				t.Fatalf("on %q: fast %v, regex %v", s, got, want)
			}
		}
	})
}
