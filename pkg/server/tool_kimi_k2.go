package server

import (
	"fmt"
	"regexp"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/kimi_k2 (Kimi K2): a section of calls
// <|tool_call_begin|>functions.NAME:N<|tool_call_argument_begin|>{json}<|tool_call_end|>,
// each keeping "functions.NAME:N" as its id.
var (
	kimiNameRE  = regexp.MustCompile(`(?s)\A` + pyS + `*((?:functions\.)?(.+?):` + pyD + `+)` + pyS + `*<\|tool_call_argument_begin\|>`)
	kimiArgsRE  = regexp.MustCompile(`(?s)<\|tool_call_argument_begin\|>` + pyS + `*(.*)`)
	kimiSplitRE = regexp.MustCompile(`(?s)<\|tool_call_begin\|>(.*?)<\|tool_call_end\|>`)
)

func parseKimiK2(text string, _ any) ([]*pyjson.Object, error) {
	parts := []string{text}
	if ms := kimiSplitRE.FindAllStringSubmatch(text, -1); ms != nil {
		parts = parts[:0]
		for _, m := range ms {
			parts = append(parts, m[1])
		}
	}
	var calls []*pyjson.Object
	for _, p := range parts {
		m := kimiNameRE.FindStringSubmatch(p)
		if m == nil {
			return nil, fmt.Errorf("ValueError: No tool call found.")
		}
		a := kimiArgsRE.FindStringSubmatch(p)
		if a == nil {
			return nil, fmt.Errorf("ValueError: No tool call arguments found.")
		}
		o := pyjson.NewObject()
		o.Set("id", m[1])
		o.Set("name", m[2])
		o.Set("arguments", pyDeserialize(a[1]))
		calls = append(calls, o)
	}
	return calls, nil
}
