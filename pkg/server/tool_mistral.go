package server

import (
	"fmt"
	"regexp"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/mistral: [TOOL_CALLS]NAME[ARGS]{json}, the call
// running to the end of the reply.
var mistralRE = regexp.MustCompile(`(?s)` + pyS + `*(` + pyW + `+)\[ARGS\]` + pyS + `*(\{.*\})`)

func parseMistral(text string, _ any) ([]*pyjson.Object, error) {
	m := mistralRE.FindStringSubmatch(text)
	if m == nil {
		return nil, fmt.Errorf("ValueError: Could not parse tool call from: %s", text)
	}
	args, err := pyJSONLoads(m[2], true)
	if err != nil {
		return nil, err
	}
	return one(call(m[1], args)), nil
}
