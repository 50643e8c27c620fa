package server

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// Tool-call arguments are Python values as mlx_lm's parsers build them:
// *pyjson.Object (dict), []any (list or tuple), string, bool, nil (None),
// pyjson.Int (int, exact) and float64; pyOther stands for a value json.dumps
// cannot write (set, bytes, complex).
type pyOther struct{ kind string }

// Python's regex \w, \s and \d over Unicode text, for Go's RE2 (whose
// classes are ASCII-only).
const (
	pyW = `[\p{L}\p{M}\p{N}\p{Pc}]`
	pyS = `[\t\n\v\f\r \x{1c}-\x{1f}\x{85}\p{Z}]`
	pyD = `\p{Nd}`
)

// pyDumps writes v as Python's json.dumps(v, ensure_ascii=False).
func pyDumps(v any) (string, error) {
	var b bytes.Buffer
	if err := pyDump(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

func pyDump(b *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case pyjson.Int:
		b.WriteString(string(t))
	case float64:
		b.WriteString(pyjson.FloatRepr(t))
	case string:
		pyDumpString(b, t)
	case []any:
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := pyDump(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case *pyjson.Object:
		b.WriteByte('{')
		for i, k := range t.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			pyDumpString(b, k)
			b.WriteString(": ")
			if err := pyDump(b, t.Values[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case pyOther:
		return fmt.Errorf("TypeError: Object of type %s is not JSON serializable", t.kind)
	default:
		return fmt.Errorf("TypeError: Object of type %T is not JSON serializable", v)
	}
	return nil
}

func pyDumpString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// pyJSONLoads is Python's json.loads (strict=false also lets control
// characters into strings).
func pyJSONLoads(s string, strict bool) (any, error) {
	if !strict {
		s = escapeControlInStrings(s)
	}
	v, err := pyjson.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("JSONDecodeError: %v", err)
	}
	return v, nil
}

// escapeControlInStrings escapes raw control characters inside JSON string
// literals, so a strict decoder reads what json.loads(strict=False) does.
func escapeControlInStrings(s string) string {
	var b strings.Builder
	in, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case in && esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case in && c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// pyDeserialize is the parsers' _deserialize: json.loads, else
// ast.literal_eval, else the text itself.
func pyDeserialize(s string) any {
	if v, err := pyJSONLoads(s, true); err == nil {
		return v
	}
	if v, err := pyLiteralEval(s); err == nil {
		return v
	}
	return s
}

// pyFloat is Python's float(s) for a str.
func pyFloat(s string) (float64, error) {
	t := strings.TrimSpace(s)
	l := strings.ToLower(strings.TrimLeft(t, "+-"))
	if strings.HasPrefix(l, "0x") || strings.HasPrefix(l, "0o") || strings.HasPrefix(l, "0b") || strings.HasPrefix(t, "_") || strings.HasSuffix(t, "_") {
		return 0, fmt.Errorf("ValueError: could not convert string to float: %q", s)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errorsIsRange(err) {
		return 0, fmt.Errorf("ValueError: could not convert string to float: %q", s)
	}
	return f, nil
}

func errorsIsRange(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// pyIntOfFloat is Python's int(f): the float's exact integer part.
func pyIntOfFloat(f float64) (pyjson.Int, error) {
	if math.IsInf(f, 0) {
		return "", fmt.Errorf("OverflowError: cannot convert float infinity to integer")
	}
	if math.IsNaN(f) {
		return "", fmt.Errorf("ValueError: cannot convert float NaN to integer")
	}
	i, _ := big.NewFloat(math.Trunc(f)).Int(nil)
	return pyjson.Int(i.String()), nil
}

// pyInt is Python's int(s) for a str, base 10.
func pyInt(s string) (pyjson.Int, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("ValueError: invalid literal for int() with base 10: %q", s)
	digits := strings.TrimLeft(t, "+-")
	if len(t)-len(digits) > 1 || digits == "" || digits[0] == '_' || digits[len(digits)-1] == '_' || strings.Contains(digits, "__") {
		return "", bad
	}
	digits = strings.ReplaceAll(digits, "_", "")
	i, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return "", bad
	}
	if strings.HasPrefix(t, "-") {
		i.Neg(i)
	}
	return pyjson.Int(i.String()), nil
}

// pyLiteralEval is Python's ast.literal_eval for a str: numbers, strings,
// True/False/None, lists, tuples, dicts and sets (sets, bytes and complex
// numbers come back as pyOther).
func pyLiteralEval(s string) (any, error) {
	p := &litParser{s: strings.TrimLeft(s, " \t")}
	v, err := p.expr()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, fmt.Errorf("SyntaxError: invalid syntax at %q", p.s[p.i:])
	}
	return v, nil
}

type litParser struct {
	s string
	i int
}

func (p *litParser) errf(format string, a ...any) error {
	return fmt.Errorf("ValueError: malformed node or string: "+format, a...)
}

func (p *litParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.i++
		case '\\':
			if strings.HasPrefix(p.s[p.i:], "\\\n") {
				p.i += 2
				continue
			}
			return
		default:
			return
		}
	}
}

func (p *litParser) peek() byte {
	p.space()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *litParser) expr() (any, error) {
	c := p.peek()
	switch {
	case c == 0:
		return nil, fmt.Errorf("SyntaxError: unexpected end of input")
	case c == '+' || c == '-':
		p.i++
		if q := p.peek(); !(q >= '0' && q <= '9' || q == '.') {
			return nil, p.errf("sign on a non-number")
		}
		v, err := p.number()
		if err != nil {
			return nil, err
		}
		if c == '+' {
			return v, nil
		}
		switch t := v.(type) {
		case pyjson.Int:
			if strings.HasPrefix(string(t), "-") {
				return pyjson.Int(t[1:]), nil
			}
			if t == "0" {
				return t, nil
			}
			return pyjson.Int("-" + string(t)), nil
		case float64:
			return -t, nil
		}
		return v, nil
	case c >= '0' && c <= '9' || c == '.' && p.i+1 < len(p.s) && p.s[p.i+1] >= '0' && p.s[p.i+1] <= '9':
		return p.number()
	case c == '[':
		p.i++
		items, _, err := p.items(']')
		return items, err
	case c == '(':
		p.i++
		items, comma, err := p.items(')')
		if err != nil {
			return nil, err
		}
		if len(items) == 1 && !comma {
			return items[0], nil
		}
		return items, nil
	case c == '{':
		return p.dict()
	case c == '"' || c == '\'':
		return p.strings()
	}
	// A name, or a string prefix.
	j := p.i
	for j < len(p.s) {
		r, n := utf8.DecodeRuneInString(p.s[j:])
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r > 127) {
			break
		}
		j += n
	}
	word := p.s[p.i:j]
	if j < len(p.s) && (p.s[j] == '"' || p.s[j] == '\'') && len(word) <= 2 {
		switch strings.ToLower(word) {
		case "r", "u", "b", "br", "rb":
			return p.strings()
		}
	}
	switch word {
	case "True":
		p.i = j
		return true, nil
	case "False":
		p.i = j
		return false, nil
	case "None":
		p.i = j
		return nil, nil
	case "":
		return nil, fmt.Errorf("SyntaxError: invalid syntax at %q", p.s[p.i:])
	}
	return nil, p.errf("name %q", word)
}

// items reads comma-separated values up to close; comma reports a comma
// after the last one.
func (p *litParser) items(close byte) ([]any, bool, error) {
	out := []any{}
	comma := false
	for {
		if p.peek() == close {
			p.i++
			return out, comma, nil
		}
		if len(out) > 0 && !comma {
			return nil, false, fmt.Errorf("SyntaxError: expected ',' or %q", close)
		}
		v, err := p.expr()
		if err != nil {
			return nil, false, err
		}
		out = append(out, v)
		comma = false
		if p.peek() == ',' {
			p.i++
			comma = true
		}
	}
}

func (p *litParser) dict() (any, error) {
	p.i++ // {
	o := pyjson.NewObject()
	set := false
	n := 0
	for {
		if p.peek() == '}' {
			p.i++
			if set {
				return pyOther{"set"}, nil
			}
			return o, nil
		}
		if n > 0 {
			if p.peek() != ',' {
				return nil, fmt.Errorf("SyntaxError: expected ',' or '}'")
			}
			p.i++
			if p.peek() == '}' {
				continue
			}
		}
		k, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ':' {
			if n > 0 && !set {
				return nil, fmt.Errorf("SyntaxError: ':' expected after dictionary key")
			}
			set = true
			n++
			continue
		}
		if set {
			return nil, fmt.Errorf("SyntaxError: invalid syntax")
		}
		p.i++
		v, err := p.expr()
		if err != nil {
			return nil, err
		}
		key, err := pyKey(k)
		if err != nil {
			return nil, err
		}
		o.Set(key, v)
		n++
	}
}

// pyKey is the JSON key json.dumps writes for a dict key.
func pyKey(k any) (string, error) {
	switch t := k.(type) {
	case string:
		return t, nil
	case pyjson.Int:
		return string(t), nil
	case float64:
		return pyjson.FloatRepr(t), nil
	case bool:
		return strconv.FormatBool(t), nil
	case nil:
		return "null", nil
	}
	return "", fmt.Errorf("TypeError: unhashable or unsupported dict key %T", k)
}

func (p *litParser) number() (any, error) {
	s := p.s[p.i:]
	j := 0
	isFloat := false
	lower := strings.ToLower(s)
	if len(s) > 1 && s[0] == '0' && strings.ContainsRune("xob", rune(lower[1])) {
		j = 2
		for j < len(s) && (isHex(s[j]) || s[j] == '_') {
			j++
		}
	} else {
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
			j++
		}
		if j < len(s) && s[j] == '.' {
			isFloat = true
			j++
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
				j++
			}
		}
		if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
			k := j + 1
			if k < len(s) && (s[k] == '+' || s[k] == '-') {
				k++
			}
			if k < len(s) && s[k] >= '0' && s[k] <= '9' {
				isFloat = true
				j = k
				for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
					j++
				}
			}
		}
	}
	lit := s[:j]
	p.i += j
	if p.i < len(p.s) && (p.s[p.i] == 'j' || p.s[p.i] == 'J') {
		p.i++
		return pyOther{"complex"}, nil
	}
	if p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z') {
		return nil, fmt.Errorf("SyntaxError: invalid decimal literal")
	}
	if strings.Contains(lit, "__") || strings.HasSuffix(lit, "_") || strings.Contains(lit, "_.") || strings.Contains(lit, "._") {
		return nil, fmt.Errorf("SyntaxError: invalid decimal literal")
	}
	clean := strings.ReplaceAll(lit, "_", "")
	if isFloat {
		f, err := strconv.ParseFloat(clean, 64)
		if err != nil && !errorsIsRange(err) {
			return nil, fmt.Errorf("SyntaxError: invalid float %q", lit)
		}
		return f, nil
	}
	base := 10
	if len(clean) > 1 && clean[0] == '0' {
		switch lower[1] {
		case 'x':
			base = 16
		case 'o':
			base = 8
		case 'b':
			base = 2
		default:
			if strings.Trim(clean, "0") != "" {
				return nil, fmt.Errorf("SyntaxError: leading zeros in decimal integer literals are not permitted")
			}
		}
		if base != 10 {
			clean = clean[2:]
		}
	}
	i, ok := new(big.Int).SetString(clean, base)
	if !ok {
		return nil, fmt.Errorf("SyntaxError: invalid integer %q", lit)
	}
	return pyjson.Int(i.String()), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// strings reads one or more adjacent string literals, joined.
func (p *litParser) strings() (any, error) {
	var out strings.Builder
	bytesLit, n := false, 0
	for {
		c := p.peek()
		j := p.i
		for j < len(p.s) && strings.ContainsRune("rRuUbB", rune(p.s[j])) && j-p.i < 2 {
			j++
		}
		if j >= len(p.s) || (p.s[j] != '"' && p.s[j] != '\'') || c == 0 {
			break
		}
		prefix := strings.ToLower(p.s[p.i:j])
		if prefix != "" && prefix != "r" && prefix != "u" && prefix != "b" && prefix != "br" && prefix != "rb" {
			break
		}
		isBytes := strings.Contains(prefix, "b")
		if n > 0 && isBytes != bytesLit {
			return nil, fmt.Errorf("SyntaxError: cannot mix bytes and nonbytes literals")
		}
		bytesLit = isBytes
		p.i = j
		s, err := p.stringLit(strings.Contains(prefix, "r"))
		if err != nil {
			return nil, err
		}
		out.WriteString(s)
		n++
	}
	if bytesLit {
		return pyOther{"bytes"}, nil
	}
	return out.String(), nil
}

func (p *litParser) stringLit(raw bool) (string, error) {
	q := p.s[p.i : p.i+1]
	if strings.HasPrefix(p.s[p.i:], q+q+q) {
		q = q + q + q
	}
	p.i += len(q)
	var b strings.Builder
	for {
		if p.i >= len(p.s) {
			return "", fmt.Errorf("SyntaxError: unterminated string literal")
		}
		if strings.HasPrefix(p.s[p.i:], q) {
			p.i += len(q)
			return b.String(), nil
		}
		c := p.s[p.i]
		if c == '\n' && len(q) == 1 {
			return "", fmt.Errorf("SyntaxError: unterminated string literal")
		}
		if c != '\\' {
			b.WriteByte(c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return "", fmt.Errorf("SyntaxError: unterminated string literal")
		}
		e := p.s[p.i+1]
		if raw {
			b.WriteByte('\\')
			b.WriteByte(e)
			p.i += 2
			continue
		}
		p.i += 2
		switch e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if p.i+n > len(p.s) {
				return "", fmt.Errorf("SyntaxError: truncated \\%c escape", e)
			}
			v, err := strconv.ParseUint(p.s[p.i:p.i+n], 16, 32)
			if err != nil || v > utf8.MaxRune {
				return "", fmt.Errorf("SyntaxError: bad \\%c escape", e)
			}
			b.WriteRune(rune(v))
			p.i += n
		default:
			if e >= '0' && e <= '7' {
				v := int(e - '0')
				for k := 0; k < 2 && p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '7'; k++ {
					v = v*8 + int(p.s[p.i]-'0')
					p.i++
				}
				b.WriteRune(rune(v))
				continue
			}
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
}

// toolSchema finds the parameters' properties of the tool named name in
// a request's tools (nil when absent).
func toolProperties(tools any, name string) *pyjson.Object {
	list, _ := tools.([]any)
	for _, t := range list {
		to, ok := t.(*pyjson.Object)
		if !ok {
			continue
		}
		fv, _ := to.Get("function")
		f, ok := fv.(*pyjson.Object)
		if !ok {
			continue
		}
		if n, _ := f.Get("name"); n != name {
			continue
		}
		pv, _ := f.Get("parameters")
		params, ok := pv.(*pyjson.Object)
		if !ok {
			return nil
		}
		props, _ := params.Get("properties")
		po, _ := props.(*pyjson.Object)
		return po
	}
	return nil
}

// schemaType is a property's "type" when it is a string ("" otherwise).
func schemaType(props *pyjson.Object, arg string) (string, bool) {
	if props == nil {
		return "", false
	}
	pv, ok := props.Get(arg)
	if !ok {
		return "", false
	}
	po, ok := pv.(*pyjson.Object)
	if !ok {
		return "", true
	}
	t, _ := po.Get("type")
	s, _ := t.(string)
	return s, true
}
