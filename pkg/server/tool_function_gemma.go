package server

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/function_gemma (FunctionGemma):
// <start_function_call>call:NAME{key:value,key:<escape>text<escape>}<end_function_call>.
// Only the first call is read; values are JSON when they parse, text
// otherwise.
var functionGemmaRE = regexp.MustCompile(`(?s)call:(` + pyW + `+)\{(.*?)\}`)

func parseFunctionGemma(text string, _ any) ([]*pyjson.Object, error) {
	m := functionGemmaRE.FindStringSubmatch(text)
	if m == nil {
		return nil, fmt.Errorf("ValueError: No function provided.")
	}
	const escape = "<escape>"
	args := pyjson.NewObject()
	rest := m[2]
	for rest != "" {
		split := strings.Index(rest, ":")
		if split < 0 {
			return nil, fmt.Errorf("ValueError: substring not found")
		}
		key := rest[:split]
		rest = rest[split+1:]
		if strings.HasPrefix(rest, escape) {
			rest = rest[len(escape):]
			split = strings.Index(rest, escape)
			if split < 0 {
				return nil, fmt.Errorf("ValueError: substring not found")
			}
			args.Set(key, rest[:split])
			rest = pySlice(rest, split+len(escape)+1)
			continue
		}
		split = strings.Index(rest, ",")
		if split < 0 {
			split = len(rest)
		}
		value := rest[:split]
		rest = pySlice(rest, split+1)
		if v, err := pyJSONLoads(value, true); err == nil {
			args.Set(key, v)
		} else {
			args.Set(key, value)
		}
	}
	return one(call(m[1], args)), nil
}

// pySlice is Python's s[i:], empty past the end.
func pySlice(s string, i int) string {
	if i >= len(s) {
		return ""
	}
	return s[i:]
}
