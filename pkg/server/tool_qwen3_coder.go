package server

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/qwen3_coder: a call is
//
//	<tool_call>
//	<function=NAME>
//	<parameter=ARG>
//	VALUE
//	</parameter>
//	</function>
//	</tool_call>
//
// with each value converted by the type the request's tools declare for it.

// Python's `<function=(.*?)</function>$`: `$` also matches before a final
// newline.
var (
	qwenFunctionRE  = regexp.MustCompile(`(?s)<function=(.*?)</function>\n?\z`)
	qwenParameterRE = regexp.MustCompile(`(?s)<parameter=(.*?)</parameter>`)
)

func parseQwen3Coder(text string, tools any) ([]*pyjson.Object, error) {
	m := qwenFunctionRE.FindStringSubmatch(text)
	if m == nil {
		return nil, fmt.Errorf("ValueError: No function provided.")
	}
	fc := m[1]
	end := strings.Index(fc, ">")
	if end < 0 {
		return nil, fmt.Errorf("ValueError: substring not found")
	}
	name := fc[:end]
	props := toolProperties(tools, name)
	args := pyjson.NewObject()
	for _, pm := range qwenParameterRE.FindAllStringSubmatch(fc[end+1:], -1) {
		idx := strings.Index(pm[1], ">")
		if idx < 0 {
			return nil, fmt.Errorf("ValueError: substring not found")
		}
		pname, value := pm[1][:idx], pm[1][idx+1:]
		value = strings.TrimPrefix(value, "\n")
		value = strings.TrimSuffix(value, "\n")
		v, err := qwenConvert(value, pname, props)
		if err != nil {
			return nil, err
		}
		args.Set(pname, v)
	}
	return one(call(name, args)), nil
}

// qwenConvert is _convert_param_value.
func qwenConvert(value, name string, props *pyjson.Object) (any, error) {
	if strings.ToLower(value) == "null" {
		return nil, nil
	}
	if props == nil {
		return value, nil
	}
	pv, ok := props.Get(name)
	if !ok || isFalsy(pv) {
		return value, nil
	}
	typ := "string"
	if po, ok := pv.(*pyjson.Object); ok {
		if t, ok := po.Get("type"); ok {
			// str() of a non-string type matches none of the names below.
			typ = "\x00"
			if s, ok := t.(string); ok {
				typ = strings.ToLower(strings.TrimSpace(s))
			}
		}
	}
	has := func(p ...string) bool {
		for _, x := range p {
			if strings.HasPrefix(typ, x) {
				return true
			}
		}
		return false
	}
	switch {
	case in(typ, "string", "str", "text", "varchar", "char", "enum"):
		return value, nil
	case has("int", "uint", "long", "short", "unsigned"):
		f, err := pyFloat(value)
		if err != nil {
			return nil, err
		}
		i, err := pyIntOfFloat(f)
		if err != nil {
			return nil, err
		}
		if f != math.Trunc(f) {
			return nil, fmt.Errorf("ValueError: Invalid integer literal %q", value)
		}
		return i, nil
	case has("num", "float"):
		f, err := pyFloat(value)
		if err != nil {
			return nil, err
		}
		i, err := pyIntOfFloat(f)
		if err != nil {
			return nil, err
		}
		if f != math.Trunc(f) {
			return f, nil
		}
		return i, nil
	case in(typ, "boolean", "bool", "binary"):
		return strings.ToLower(value) == "true", nil
	}
	if in(typ, "object", "array", "arr") || has("dict", "list") {
		if v, err := pyJSONLoads(value, false); err == nil {
			return v, nil
		}
	}
	if v, err := pyLiteralEval(value); err == nil {
		return v, nil
	}
	return value, nil
}

func in(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// isFalsy is Python's `not v` for a JSON value.
func isFalsy(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case bool:
		return !t
	case string:
		return t == ""
	case pyjson.Int:
		return strings.Trim(string(t), "-0") == ""
	case float64:
		return t == 0
	case []any:
		return len(t) == 0
	case *pyjson.Object:
		return len(t.Keys) == 0
	}
	return false
}
