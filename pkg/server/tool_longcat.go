package server

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/longcat (LongCat):
// <longcat_tool_call>NAME<longcat_arg_key>K</longcat_arg_key><longcat_arg_value>V</longcat_arg_value></longcat_tool_call>,
// or a JSON object between the markers.
var (
	longcatNameRE = regexp.MustCompile(`(?s)\A(.*?)<longcat_arg_key>`)
	longcatArgRE  = regexp.MustCompile(`(?s)<longcat_arg_key>(.*?)</longcat_arg_key>(?:\\n|` + pyS + `)*<longcat_arg_value>(.*?)</longcat_arg_value>`)
)

func parseLongcat(text string, tools any) ([]*pyjson.Object, error) {
	text = pyStrip(text)
	if strings.HasPrefix(text, "{") {
		if v, err := pyJSONLoads(text, true); err == nil {
			return callList(v)
		}
	}
	m := longcatNameRE.FindStringSubmatch(text)
	if m == nil {
		// mlx_lm raises AttributeError here.
		return nil, fmt.Errorf("no function name before <longcat_arg_key>")
	}
	name := pyStrip(m[1])
	props := toolProperties(tools, name)
	args := pyjson.NewObject()
	for _, p := range longcatArgRE.FindAllStringSubmatch(text, -1) {
		key, value := pyStrip(p[1]), pyStrip(p[2])
		if t, _ := schemaType(props, key); t == "string" {
			args.Set(key, value)
		} else {
			args.Set(key, pyDeserialize(value))
		}
	}
	return one(call(name, args)), nil
}
