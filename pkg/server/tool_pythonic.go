package server

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/pythonic (LFM2 and others):
// <|tool_call_start|>[name(a="x", b=2)]<|tool_call_end|>. Only the first
// call of the list is read, and each value goes through ast.literal_eval
// (kept as text when that fails), as mlx_lm does.
var (
	pythonicCallRE = regexp.MustCompile(`(?s)\[(` + pyW + `+)\((.*?)\)\]`)
	pythonicArgRE  = regexp.MustCompile(`(?s)(` + pyW + `+)=(?:"([^"]*)"|([^,]+))(?:,` + pyS + `*|\n?\z)`)
)

func parsePythonic(text string, _ any) ([]*pyjson.Object, error) {
	m := pythonicCallRE.FindStringSubmatch(text)
	if m == nil {
		return nil, fmt.Errorf("ValueError: No function provided.")
	}
	args := pyjson.NewObject()
	for _, a := range pythonicArgRE.FindAllStringSubmatch(m[2], -1) {
		value := a[2]
		if value == "" {
			value = pyStrip(a[3])
		}
		var v any = value
		if lv, err := pyLiteralEval(value); err == nil {
			v = lv
		}
		args.Set(pyStrip(a[1]), v)
	}
	return one(call(m[1], args)), nil
}

// pyStrip is Python's str.strip().
func pyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}
