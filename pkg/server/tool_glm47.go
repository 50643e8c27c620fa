package server

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// mlx_lm's tool_parsers/glm47 (GLM 4.5 to 4.7):
// <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>,
// with fallbacks for JSON objects and "name a=1 b=2" text; it never fails
// (a call it cannot read becomes name "unknown" with the raw text).
var (
	glmNameRE = regexp.MustCompile(`(?s)\A(.*?)<arg_key>`)
	glmArgRE  = regexp.MustCompile(`(?s)<arg_key>(.*?)</arg_key>(?:\\n|` + pyS + `)*<arg_value>(.*?)</arg_value>`)
)

func parseGLM47(text string, tools any) ([]*pyjson.Object, error) {
	m := glmNameRE.FindStringSubmatch(text)
	if m == nil {
		if c := glmJSONCall(text, tools); c != nil {
			return one(c), nil
		}
		if c := glmPlainCall(text, tools); c != nil {
			return one(c), nil
		}
		return one(call("unknown", rawArgs(pyStrip(text)))), nil
	}
	name := pyStrip(m[1])
	strArgs := glmStringArgs(name, tools)
	args := pyjson.NewObject()
	for _, p := range glmArgRE.FindAllStringSubmatch(text, -1) {
		key, value := pyStrip(p[1]), pyStrip(p[2])
		if strArgs[key] {
			args.Set(key, value)
		} else {
			args.Set(key, pyDeserialize(value))
		}
	}
	return one(call(name, args)), nil
}

func rawArgs(s string) *pyjson.Object {
	o := pyjson.NewObject()
	o.Set("raw", s)
	return o
}

// glmStringArgs is _get_string_arg_names.
func glmStringArgs(name string, tools any) map[string]bool {
	out := map[string]bool{}
	props := toolProperties(tools, name)
	if props == nil {
		return out
	}
	for _, k := range props.Keys {
		if t, _ := schemaType(props, k); t == "string" {
			out[k] = true
		}
	}
	return out
}

// glmNormalize is _normalize_arguments.
func glmNormalize(args *pyjson.Object, strArgs map[string]bool) *pyjson.Object {
	out := pyjson.NewObject()
	for _, k := range args.Keys {
		v := args.Values[k]
		switch s, isStr := v.(string); {
		case strArgs[k] && isStr:
			out.Set(k, s)
		case strArgs[k]:
			out.Set(k, pyStr(v))
		case isStr:
			out.Set(k, pyDeserialize(s))
		default:
			out.Set(k, v)
		}
	}
	return out
}

// glmJSONCall is _parse_json_tool_call (nil: not a call).
func glmJSONCall(text string, tools any) *pyjson.Object {
	parsed, err := pyJSONLoads(pyStrip(text), true)
	if err != nil {
		return nil
	}
	if list, ok := parsed.([]any); ok && len(list) > 0 {
		if o, ok := list[0].(*pyjson.Object); ok {
			parsed = o
		}
	}
	o, ok := parsed.(*pyjson.Object)
	if !ok {
		return nil
	}
	var name, args any
	_, hasName := o.Get("name")
	_, hasArgs := o.Get("arguments")
	_, hasFn := o.Get("function")
	tool, _ := o.Get("tool")
	switch t, isObj := tool.(*pyjson.Object); {
	case hasName && hasArgs:
		name, _ = o.Get("name")
		args, _ = o.Get("arguments")
	case hasFn && hasArgs:
		name, _ = o.Get("function")
		args, _ = o.Get("arguments")
	case isObj:
		name, _ = t.Get("name")
		args, _ = t.Get("arguments")
	}
	if n, ok := name.(*pyjson.Object); ok {
		if isFalsy(args) {
			args, _ = n.Get("arguments")
		}
		name, _ = n.Get("name")
	}
	if s, ok := args.(string); ok {
		args = pyDeserialize(s)
	}
	ns, ok := name.(string)
	if !ok {
		return nil
	}
	if args == nil {
		return call(ns, pyjson.NewObject())
	}
	if a, ok := args.(*pyjson.Object); ok {
		return call(ns, glmNormalize(a, glmStringArgs(ns, tools)))
	}
	return nil
}

// glmPlainCall is _parse_plain_text_tool_call (nil: not a call).
func glmPlainCall(text string, tools any) *pyjson.Object {
	stripped := pyStrip(text)
	if stripped == "" {
		return nil
	}
	if first, rest, ok := strings.Cut(stripped, "\n"); ok {
		name, rest := pyStrip(first), pyStrip(rest)
		if name != "" && rest != "" {
			if a, ok := pyDeserialize(rest).(*pyjson.Object); ok {
				return call(name, glmNormalize(a, glmStringArgs(name, tools)))
			}
		}
	}
	name, rest, _ := strings.Cut(stripped, " ")
	if name == "" {
		return nil
	}
	rest = pyStrip(rest)
	if rest == "" {
		return call(name, pyjson.NewObject())
	}
	strArgs := glmStringArgs(name, tools)
	if a, ok := pyDeserialize(rest).(*pyjson.Object); ok {
		return call(name, glmNormalize(a, strArgs))
	}
	if kv := glmKeyValues(rest, strArgs); kv != nil {
		return call(name, kv)
	}
	return call(name, rawArgs(rest))
}

// glmKeyValues is _parse_key_value_pairs (nil: not key=value text).
func glmKeyValues(text string, strArgs map[string]bool) *pyjson.Object {
	if !strings.Contains(text, "=") {
		return nil
	}
	tokens, err := shlexSplit(text)
	if err != nil || len(tokens) == 0 {
		return nil
	}
	args := pyjson.NewObject()
	for _, tok := range tokens {
		key, value, ok := strings.Cut(tok, "=")
		if !ok {
			return nil
		}
		if key = pyStrip(key); key == "" {
			return nil
		}
		if strArgs[key] {
			args.Set(key, value)
		} else {
			args.Set(key, pyDeserialize(value))
		}
	}
	return args
}

// shlexSplit is Python's shlex.split (POSIX mode, no comments).
func shlexSplit(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("ValueError: No escaped character")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("ValueError: No closing quotation")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; ; i++ {
				if i >= len(s) {
					return nil, fmt.Errorf("ValueError: No closing quotation")
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// pyStr is Python's str(v) for a parsed value.
func pyStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return pyRepr(v)
}

// pyRepr is Python's repr(v) for a parsed value.
func pyRepr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case pyjson.Int:
		return string(t)
	case float64:
		switch {
		case math.IsNaN(t):
			return "nan"
		case math.IsInf(t, 1):
			return "inf"
		case math.IsInf(t, -1):
			return "-inf"
		}
		return pyjson.FloatRepr(t)
	case string:
		q := "'"
		if strings.Contains(t, "'") && !strings.Contains(t, `"`) {
			q = `"`
		}
		var b strings.Builder
		b.WriteString(q)
		for _, r := range t {
			switch {
			case r == '\\':
				b.WriteString(`\\`)
			case string(r) == q:
				b.WriteString(`\` + q)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\r':
				b.WriteString(`\r`)
			case r == '\t':
				b.WriteString(`\t`)
			case r < 0x20 || r == 0x7f:
				fmt.Fprintf(&b, `\x%02x`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteString(q)
		return b.String()
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *pyjson.Object:
		parts := make([]string, len(t.Keys))
		for i, k := range t.Keys {
			parts[i] = pyRepr(k) + ": " + pyRepr(t.Values[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}
