package server

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/minimax_m2 (MiniMax M2):
// <minimax:tool_call><invoke name="NAME"><parameter name="ARG">VALUE</parameter></invoke></minimax:tool_call>,
// each value converted by the types its schema in the request's tools allows.
var (
	minimaxInvokeRE = regexp.MustCompile(`(?s)<invoke name=(.*?)</invoke>`)
	minimaxParamRE  = regexp.MustCompile(`(?s)<parameter name=(.*?)</parameter>`)
	minimaxNameRE   = regexp.MustCompile(`\A([^>]+)`)
	minimaxPairRE   = regexp.MustCompile(`(?s)\A([^>]+)>(.*)`)
)

func minimaxName(s string) string {
	s = pyStrip(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	// Python's s[1:-1] test also passes for a lone quote character.
	if s == `"` || s == "'" {
		return ""
	}
	return s
}

func parseMinimaxM2(text string, tools any) ([]*pyjson.Object, error) {
	invokes := minimaxInvokeRE.FindAllStringSubmatch(text, -1)
	if invokes == nil {
		return nil, fmt.Errorf("ValueError: No tool call found")
	}
	var calls []*pyjson.Object
	for _, inv := range invokes {
		nm := minimaxNameRE.FindStringSubmatch(inv[1])
		if nm == nil {
			continue
		}
		name := minimaxName(nm[1])
		props := toolProperties(tools, name)
		args := pyjson.NewObject()
		for _, pm := range minimaxParamRE.FindAllStringSubmatch(inv[1], -1) {
			m := minimaxPairRE.FindStringSubmatch(pm[1])
			if m == nil {
				continue
			}
			pname := minimaxName(m[1])
			value := strings.TrimSuffix(strings.TrimPrefix(pyStrip(m[2]), "\n"), "\n")
			types := []string{"string"}
			if props != nil {
				if schema, ok := props.Get(pname); ok {
					types = minimaxTypes(schema)
				}
			}
			args.Set(pname, minimaxConvert(value, types))
		}
		calls = append(calls, call(name, args))
	}
	return calls, nil
}

// minimaxTypes is _extract_types_from_schema.
func minimaxTypes(schema any) []string {
	o, ok := schema.(*pyjson.Object)
	if !ok {
		return []string{"string"}
	}
	var types []string
	add := func(t string) {
		if !in(t, types...) {
			types = append(types, t)
		}
	}
	if t, ok := o.Get("type"); ok {
		switch tv := t.(type) {
		case string:
			add(tv)
		case []any:
			for _, e := range tv {
				if s, ok := e.(string); ok {
					add(s)
				}
			}
		}
	}
	if e, ok := o.Get("enum"); ok {
		if list, ok := e.([]any); ok {
			for _, v := range list {
				switch v.(type) {
				case nil:
					add("null")
				case bool:
					add("boolean")
				case pyjson.Int:
					add("integer")
				case float64:
					add("number")
				case string:
					add("string")
				case []any:
					add("array")
				case *pyjson.Object:
					add("object")
				}
			}
		}
	}
	for _, f := range []string{"anyOf", "oneOf", "allOf"} {
		if c, ok := o.Get(f); ok {
			if list, ok := c.([]any); ok {
				for _, s := range list {
					for _, t := range minimaxTypes(s) {
						add(t)
					}
				}
			}
		}
	}
	if len(types) == 0 {
		return []string{"string"}
	}
	return types
}

// minimaxConvert is _convert_param_value_with_types.
func minimaxConvert(value string, types []string) any {
	lower := strings.ToLower(value)
	if lower == "null" {
		return nil
	}
	norm := make([]string, len(types))
	for i, t := range types {
		norm[i] = strings.ToLower(t)
	}
	if in("null", norm...) || in(lower, "null", "none", "nil") {
		return nil
	}
	for _, t := range []string{"integer", "int", "number", "float", "boolean", "bool", "object", "array", "string", "str", "text"} {
		if !in(t, norm...) {
			continue
		}
		switch t {
		case "string", "str", "text":
			return value
		case "integer", "int":
			if i, err := pyInt(value); err == nil {
				return i
			}
		case "number", "float":
			f, err := pyFloat(value)
			if err != nil {
				continue
			}
			i, err := pyIntOfFloat(f)
			if err != nil {
				continue
			}
			if f != math.Trunc(f) {
				return f
			}
			return i
		case "boolean", "bool":
			switch strings.ToLower(pyStrip(value)) {
			case "true", "1", "yes", "on":
				return true
			case "false", "0", "no", "off":
				return false
			}
		case "object", "array":
			if v, err := pyJSONLoads(value, true); err == nil {
				return v
			}
		}
	}
	if v, err := pyJSONLoads(value, true); err == nil {
		return v
	}
	return value
}
