package server

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/gemma4 (Gemma 4):
// <|tool_call>call:NAME{key:<|"|>text<|"|>,n:1,o:{...}}<tool_call|>, one or
// more calls back to back. mlx_lm matches the balanced braces with a
// recursive regex; gemma4Match walks them the same way.

const gemma4Quote = `<|"|>`

var gemma4StringRE = regexp.MustCompile(`(?s)<\|"\|>(.*?)<\|"\|>`)

func parseGemma4(text string, _ any) ([]*pyjson.Object, error) {
	var calls []*pyjson.Object
	for i := 0; i < len(text); {
		name, args, end, ok := gemma4Match(text, i)
		if !ok {
			i++
			continue
		}
		v, err := pyJSONLoads(gemma4ArgsToJSON(args), true)
		if err != nil {
			return nil, err
		}
		calls = append(calls, call(name, v))
		i = end
	}
	if len(calls) == 0 {
		return nil, fmt.Errorf("ValueError: No function provided.")
	}
	return calls, nil
}

// gemma4Match matches `call:([\w-]+)(\{...\})` at i: the name, the braced
// arguments and the end of the match.
func gemma4Match(s string, i int) (name, args string, end int, ok bool) {
	if !strings.HasPrefix(s[i:], "call:") {
		return "", "", 0, false
	}
	j := i + len("call:")
	for j < len(s) {
		r, n := utf8.DecodeRuneInString(s[j:])
		if r != '-' && !isPyWordRune(r) {
			break
		}
		j += n
	}
	if j == i+len("call:") {
		return "", "", 0, false
	}
	e, ok := gemma4Braces(s, j)
	if !ok {
		return "", "", 0, false
	}
	return s[i+len("call:") : j], s[j:e], e, true
}

// gemma4Braces matches a balanced {...} group at i, in which <|"|>...<|"|>
// strings hide braces, and returns its end.
func gemma4Braces(s string, i int) (int, bool) {
	if i >= len(s) || s[i] != '{' {
		return 0, false
	}
	i++
	for i < len(s) {
		switch {
		case s[i] == '}':
			return i + 1, true
		case s[i] == '{':
			e, ok := gemma4Braces(s, i)
			if !ok {
				return 0, false
			}
			i = e
		case strings.HasPrefix(s[i:], gemma4Quote):
			k := strings.Index(s[i+len(gemma4Quote):], gemma4Quote)
			if k < 0 {
				return 0, false
			}
			i += 2*len(gemma4Quote) + k
		default:
			i++
		}
	}
	return 0, false
}

// gemma4ArgsToJSON is _gemma4_args_to_json: <|"|> strings become JSON
// strings and bare keys after '{' or ',' are quoted.
func gemma4ArgsToJSON(text string) string {
	var strs []string
	text = gemma4StringRE.ReplaceAllStringFunc(text, func(m string) string {
		strs = append(strs, m[len(gemma4Quote):len(m)-len(gemma4Quote)])
		return fmt.Sprintf("\x00%d\x00", len(strs)-1)
	})
	// (?<=[{,])(\w+): -> "\1":
	var b strings.Builder
	for i := 0; i < len(text); {
		b.WriteByte(text[i])
		if text[i] != '{' && text[i] != ',' {
			i++
			continue
		}
		i++
		j := i
		for j < len(text) {
			r, n := utf8.DecodeRuneInString(text[j:])
			if !isPyWordRune(r) {
				break
			}
			j += n
		}
		if j > i && j < len(text) && text[j] == ':' {
			b.WriteString(`"` + text[i:j] + `":`)
			i = j + 1
		}
	}
	text = b.String()
	for i, s := range strs {
		q, _ := pyjson.Marshal(s, pyjson.Options{})
		text = strings.ReplaceAll(text, fmt.Sprintf("\x00%d\x00", i), string(q))
	}
	return text
}

var pyWordRE = regexp.MustCompile(`^` + pyW + `$`)

// isPyWordRune is Python's \w for one character.
func isPyWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
	}
	return pyWordRE.MatchString(string(r))
}
