package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"path/filepath"

	"github.com/ardanlabs/jinja"
)

// Message is one chat turn, for callers that build conversations in Go.
// Richer messages (tool_calls, content lists) are passed as JSON.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// MessagesJSON encodes messages for ApplyChatTemplate.
func MessagesJSON(msgs []Message) json.RawMessage {
	b, _ := json.Marshal(msgs) // cannot fail: strings only
	return b
}

// ChatOptions are apply_chat_template's arguments.
type ChatOptions struct {
	// Tools is a JSON list of tool schemas; nil renders tools=None.
	Tools json.RawMessage
	// Documents is a JSON list of documents; nil renders documents=None.
	Documents            json.RawMessage
	AddGenerationPrompt  bool
	ContinueFinalMessage bool
	// TemplateName picks a named template ("tool_use", ...). Empty: the
	// default, or "tool_use" when Tools is set and the file has one.
	TemplateName string
	// Template, when set, is rendered instead of the model's templates
	// (mlx_lm's --chat-template).
	Template string
	// Kwargs are extra template variables (enable_thinking, date_string,
	// ...), each a JSON value.
	Kwargs map[string]json.RawMessage
	// Now is strftime_now's clock; nil means time.Now.
	Now func() time.Time
}

var compiled sync.Map // template source -> *jinja.Template

func (t *Tokenizer) selectTemplate(opts *ChatOptions) (string, string, error) {
	if opts.Template != "" {
		return opts.Template, "chat template given by the caller", nil
	}
	ts := t.cfg.templates
	where := t.cfg.templateFile
	if len(ts) == 0 {
		return "", "", fmt.Errorf("tokenizer: %s: no chat template (tokenizer_config.json has no chat_template and there is no chat_template.jinja)", filepath.Dir(t.path))
	}
	if s, ok := ts[""]; ok && len(ts) == 1 {
		if opts.TemplateName != "" {
			return "", "", fmt.Errorf("tokenizer: %s: template %q requested but the file has a single unnamed template", where, opts.TemplateName)
		}
		return s, where, nil
	}
	name := opts.TemplateName
	switch {
	case name != "":
		if _, ok := ts[name]; !ok {
			return "", "", fmt.Errorf("tokenizer: %s: no template named %q (have %s)", where, name, strings.Join(templateNames(ts), ", "))
		}
	case opts.Tools != nil && ts["tool_use"] != "":
		name = "tool_use"
	case ts["default"] != "":
		name = "default"
	case ts[""] != "":
		name = ""
	default:
		return "", "", fmt.Errorf("tokenizer: %s: several chat templates (%s) and none is named \"default\"; pick one", where, strings.Join(templateNames(ts), ", "))
	}
	return ts[name], fmt.Sprintf("%s[%q]", where, name), nil
}

func templateNames(ts map[string]string) []string {
	var n []string
	for k := range ts {
		n = append(n, strconv.Quote(k))
	}
	sort.Strings(n)
	return n
}

// ApplyChatTemplate renders messages (a JSON list of message objects, key
// order kept) with the model's chat template as transformers'
// apply_chat_template(tokenize=False) does.
func (t *Tokenizer) ApplyChatTemplate(messages json.RawMessage, opts ChatOptions) (string, error) {
	src, where, err := t.selectTemplate(&opts)
	if err != nil {
		return "", err
	}
	return RenderChatTemplate(src, where, messages, t.specialTokenVars(), opts)
}

func (t *Tokenizer) specialTokenVars() map[string]jinja.Value {
	vars := map[string]jinja.Value{}
	for k, v := range map[string]string{"bos_token": t.cfg.bos, "eos_token": t.cfg.eos, "unk_token": t.cfg.unk, "pad_token": t.cfg.pad} {
		if v != "" {
			vars[k] = jinja.NewString(v)
		}
	}
	if len(t.cfg.additional) > 0 {
		items := make([]jinja.Value, len(t.cfg.additional))
		for i, s := range t.cfg.additional {
			items[i] = jinja.NewString(s)
		}
		vars["additional_special_tokens"] = jinja.NewList(items)
	}
	return vars
}

// RenderChatTemplate renders template source src (where names it in errors)
// with transformers' variables: messages, tools, documents,
// add_generation_prompt, the special tokens in vars, and opts.Kwargs.
func RenderChatTemplate(src, where string, messages json.RawMessage, vars map[string]jinja.Value, opts ChatOptions) (out string, err error) {
	// The template engine is third-party code run on model-supplied
	// templates: turn a panic in it into an error.
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("tokenizer: %s: template engine failed: %v", where, r)
		}
	}()
	if opts.ContinueFinalMessage && opts.AddGenerationPrompt {
		return "", errors.New("tokenizer: continue_final_message and add_generation_prompt are not compatible: use continue_final_message to continue the final message, add_generation_prompt to start a new assistant message")
	}
	msgs, err := JSONToValue(messages)
	if err != nil {
		return "", fmt.Errorf("tokenizer: messages: %w", err)
	}
	if !msgs.IsList() {
		return "", errors.New("tokenizer: messages: want a JSON list of message objects")
	}
	tmpl, err := compileTemplate(src)
	if err != nil {
		return "", fmt.Errorf("tokenizer: %s: %w", where, err)
	}
	data := map[string]jinja.Value{}
	for k, v := range vars {
		data[k] = v
	}
	data["messages"] = msgs
	data["tools"] = jinja.None()
	data["documents"] = jinja.None()
	if opts.Tools != nil {
		if data["tools"], err = JSONToValue(opts.Tools); err != nil {
			return "", fmt.Errorf("tokenizer: tools: %w", err)
		}
	}
	if opts.Documents != nil {
		if data["documents"], err = JSONToValue(opts.Documents); err != nil {
			return "", fmt.Errorf("tokenizer: documents: %w", err)
		}
	}
	data["add_generation_prompt"] = jinja.NewBool(opts.AddGenerationPrompt)
	for k, raw := range opts.Kwargs {
		v, err := JSONToValue(raw)
		if err != nil {
			return "", fmt.Errorf("tokenizer: template argument %s: %w", k, err)
		}
		data[k] = v
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	data["strftime_now"] = jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		if len(args) != 1 || !args[0].IsString() {
			return jinja.Undefined(), errors.New("strftime_now: want one format string")
		}
		return jinja.NewString(strftime(now(), args[0].AsString())), nil
	})
	data[tojsonFunc] = jinja.NewCallable(tojsonFunc, tojson)
	out, err = tmpl.RenderValues(data)
	if err != nil {
		return "", fmt.Errorf("tokenizer: %s: render: %w", where, err)
	}
	if opts.ContinueFinalMessage {
		return continueFinal(out, msgs)
	}
	return out, nil
}

// continueFinal cuts the render right after the final message's content, as
// transformers does for continue_final_message.
func continueFinal(out string, msgs jinja.Value) (string, error) {
	l := msgs.AsList()
	if l.Len() == 0 {
		return "", errors.New("tokenizer: continue_final_message needs at least one message")
	}
	last := l.Get(l.Len() - 1)
	if !last.IsDict() {
		return "", errors.New("tokenizer: continue_final_message: the final message is not an object")
	}
	c, _ := last.AsDict().Get("content")
	var final string
	switch {
	case c.IsString():
		final = c.AsString()
	case c.IsList():
		found := false
		for i := c.AsList().Len() - 1; i >= 0 && !found; i-- {
			if b := c.AsList().Get(i); b.IsDict() {
				if txt, ok := b.AsDict().Get("text"); ok && txt.IsString() {
					final, found = txt.AsString(), true
				}
			}
		}
		if !found {
			return "", errors.New("tokenizer: continue_final_message is set but the final message has no text content")
		}
	default:
		return "", errors.New("tokenizer: continue_final_message: the final message has no string content")
	}
	stripped := strings.TrimSpace(final)
	loc := strings.LastIndex(out, stripped)
	if loc < 0 {
		return "", errors.New("tokenizer: continue_final_message is set but the final message does not appear in the chat after applying the chat template (the template changes it)")
	}
	lead := strings.TrimLeft(final, " \t\n\r\v\f")
	if end := loc + len(lead); end <= len(out) && out[loc:end] == final {
		return out[:end], nil
	}
	return out[:loc+len(stripped)], nil
}

const tojsonFunc = "mlxgo_tojson"

var fromJSONRe = regexp.MustCompile(`\|(\s*)from_json\b`)

var tojsonRe = regexp.MustCompile(`\|\s*tojson\b`)

// rewriteTojson turns `X | tojson(args)` into a call of our own encoder,
// which writes what transformers' tojson (json.dumps with ensure_ascii=False
// by default, keys in order) writes: ardanlabs/jinja v1.8.0's indented form
// sorts keys and escapes <, > and &, and its compact form prints 1.0 as 1
// and escapes U+2028/U+2029. Where the operand cannot be delimited the
// library's filter stays.
func rewriteTojson(src string) string {
	skip := 0 // matches (from the end) left alone
	for guard := 0; guard < 1000; guard++ {
		locs := tojsonRe.FindAllStringIndex(src, -1)
		inStr := stringMask(src)
		var cand [][]int
		for _, l := range locs {
			if !inStr[l[0]] {
				cand = append(cand, l)
			}
		}
		if len(cand) <= skip {
			return src
		}
		l := cand[len(cand)-1-skip]
		if out, ok := rewriteOneTojson(src, l[0], l[1]); ok {
			src = out
		} else {
			skip++
		}
	}
	return src
}

// rewriteOneTojson rewrites the filter whose "| tojson" spans src[pipe:end].
func rewriteOneTojson(src string, pipe, end int) (string, bool) {
	start := operandStart(src, pipe)
	if start < 0 {
		return src, false
	}
	args := ""
	j := end
	for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
		j++
	}
	if j < len(src) && src[j] == '(' {
		close := matchForward(src, j)
		if close < 0 {
			return src, false
		}
		if inner := strings.TrimSpace(src[j+1 : close]); inner != "" {
			args = ", " + inner
		}
		end = close + 1
	}
	operand := strings.TrimSpace(src[start:pipe])
	return src[:start] + tojsonFunc + "(" + operand + args + ")" + src[end:], true
}

// rewriteTagBody adapts one expression or statement to transformers'
// environment: tojson is ours (see rewriteTojson), and from_json, which
// transformers does not have, is renamed so that using it stays a
// render-time "unknown filter" error, as in jinja2.
func rewriteTagBody(body string) string {
	inStr := stringMask(body)
	if locs := fromJSONRe.FindAllStringIndex(body, -1); len(locs) > 0 {
		for k := len(locs) - 1; k >= 0; k-- {
			if inStr[locs[k][0]] {
				continue
			}
			body = body[:locs[k][1]-len("from_json")] + "from_json_is_not_a_transformers_filter" + body[locs[k][1]:]
		}
	}
	return rewriteTojson(body)
}

// stringMask marks the bytes of src that are inside a quoted string.
func stringMask(src string) []bool {
	m := make([]bool, len(src)+1)
	for i := 0; i < len(src); i++ {
		if c := src[i]; c == '\'' || c == '"' {
			m[i] = true
			i++
			for i < len(src) && src[i] != c {
				m[i] = true
				if src[i] == '\\' && i+1 < len(src) {
					i++
					m[i] = true
				}
				i++
			}
			if i < len(src) {
				m[i] = true
			}
		}
	}
	return m
}

// matchForward returns the index of the ')' closing the '(' at src[i].
func matchForward(src string, i int) int {
	depth := 0
	for ; i < len(src); i++ {
		switch c := src[i]; c {
		case '\'', '"':
			i++
			for i < len(src) && src[i] != c {
				if src[i] == '\\' {
					i++
				}
				i++
			}
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// operandStart scans back from the filter's '|' over one primary expression
// (a name with attributes, subscripts and calls, or a bracketed literal).
func operandStart(src string, pipe int) int {
	i := pipe - 1
	for i >= 0 && (src[i] == ' ' || src[i] == '\t') {
		i--
	}
	end := i
	for i >= 0 {
		c := src[i]
		switch {
		case c == ')' || c == ']' || c == '}':
			open := map[byte]byte{')': '(', ']': '[', '}': '{'}[c]
			depth := 0
			for ; i >= 0; i-- {
				if src[i] == c {
					depth++
				} else if src[i] == open {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if i < 0 {
				return -1
			}
			i--
		case c == '\'' || c == '"':
			i--
			for i >= 0 && (src[i] != c || (i > 0 && src[i-1] == '\\')) {
				i--
			}
			if i < 0 {
				return -1
			}
			i--
		case c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'):
			i--
		default:
			if i == end {
				return -1
			}
			return i + 1
		}
	}
	return 0
}

func compileTemplate(src string) (*jinja.Template, error) {
	if v, ok := compiled.Load(src); ok {
		return v.(*jinja.Template), nil
	}
	norm, err := normalizeJinja(src)
	if err != nil {
		return nil, fmt.Errorf("jinja scan: %w", err)
	}
	tmpl, err := jinja.Compile(norm)
	if err != nil {
		return nil, err
	}
	compiled.Store(src, tmpl)
	return tmpl, nil
}

// JSONToValue decodes JSON into a template value, keeping object key order.
func JSONToValue(data []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return jinja.Undefined(), err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jinja.Undefined(), errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (jinja.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return jinja.Undefined(), err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '[':
			var items []jinja.Value
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return jinja.Undefined(), err
				}
				items = append(items, v)
			}
			_, err := dec.Token()
			return jinja.NewList(items), err
		case '{':
			d := jinja.NewDict()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jinja.Undefined(), err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return jinja.Undefined(), err
				}
				d.AsDict().Set(kt.(string), v)
			}
			_, err := dec.Token()
			return d, err
		}
	case string:
		return jinja.NewString(x), nil
	case bool:
		return jinja.NewBool(x), nil
	case nil:
		return jinja.None(), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return jinja.NewInt(i), nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return jinja.Undefined(), err
		}
		return jinja.NewFloat(f), nil
	}
	return jinja.Undefined(), fmt.Errorf("unexpected JSON token %v", tok)
}

// tojson is transformers' tojson filter:
// json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
func tojson(args []jinja.Value, kw map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("tojson: missing value")
	}
	e := pyEncoder{}
	params := []string{"ensure_ascii", "indent", "separators", "sort_keys"}
	get := func(i int) (jinja.Value, bool) {
		if i+1 < len(args) {
			return args[i+1], true
		}
		v, ok := kw[params[i]]
		return v, ok
	}
	if v, ok := get(0); ok {
		e.ensureASCII = v.IsTruthy()
	}
	if v, ok := get(1); ok && !v.IsNone() && !v.IsUndefined() {
		switch {
		case v.IsInt():
			ind := strings.Repeat(" ", max(int(v.AsInt()), 0))
			e.indent = &ind
		case v.IsString():
			ind := v.AsString()
			e.indent = &ind
		default:
			return jinja.Undefined(), errors.New("tojson: indent must be an int or a string")
		}
	}
	e.itemSep, e.keySep = ", ", ": "
	if e.indent != nil {
		e.itemSep = ","
	}
	if v, ok := get(2); ok && !v.IsNone() && !v.IsUndefined() {
		if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Get(0).IsString() || !v.AsList().Get(1).IsString() {
			return jinja.Undefined(), errors.New("tojson: separators must be two strings")
		}
		e.itemSep, e.keySep = v.AsList().Get(0).AsString(), v.AsList().Get(1).AsString()
	}
	if v, ok := get(3); ok {
		e.sortKeys = v.IsTruthy()
	}
	var sb strings.Builder
	if err := e.encode(&sb, args[0], 0); err != nil {
		return jinja.Undefined(), err
	}
	return jinja.NewString(sb.String()), nil
}

// pyEncoder writes values as Python's json.dumps does.
type pyEncoder struct {
	indent          *string
	itemSep, keySep string
	sortKeys        bool
	ensureASCII     bool
}

func (e *pyEncoder) nl(sb *strings.Builder, level int) {
	if e.indent != nil {
		sb.WriteByte('\n')
		sb.WriteString(strings.Repeat(*e.indent, level))
	}
}

func (e *pyEncoder) encode(sb *strings.Builder, v jinja.Value, level int) error {
	switch {
	case v.IsNone():
		sb.WriteString("null")
	case v.IsBool():
		if v.AsBool() {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case v.IsInt():
		sb.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		sb.WriteString(pyFloat(v.AsFloat()))
	case v.IsString():
		pyString(sb, v.AsString(), e.ensureASCII)
	case v.IsList():
		items := v.AsList().Items
		if len(items) == 0 {
			sb.WriteString("[]")
			return nil
		}
		sb.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				sb.WriteString(e.itemSep)
			}
			e.nl(sb, level+1)
			if err := e.encode(sb, it, level+1); err != nil {
				return err
			}
		}
		e.nl(sb, level)
		sb.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		if d.Len() == 0 {
			sb.WriteString("{}")
			return nil
		}
		keys := d.Keys
		if e.sortKeys {
			keys = append([]string(nil), keys...)
			sort.Strings(keys)
		}
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteString(e.itemSep)
			}
			e.nl(sb, level+1)
			pyString(sb, k, e.ensureASCII)
			sb.WriteString(e.keySep)
			if err := e.encode(sb, d.Data[k], level+1); err != nil {
				return err
			}
		}
		e.nl(sb, level)
		sb.WriteByte('}')
	default:
		return fmt.Errorf("tojson: Object of type %s is not JSON serializable", kindName(v))
	}
	return nil
}

func kindName(v jinja.Value) string {
	switch {
	case v.IsUndefined():
		return "Undefined"
	case v.IsCallable():
		return "function"
	}
	return "object"
}

// pyFloat formats like Python's float repr.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

func pyString(sb *strings.Builder, s string, ascii bool) {
	sb.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (ascii && r >= 0x7f && r < 0x10000):
				fmt.Fprintf(sb, `\u%04x`, r)
			case ascii && r >= 0x10000:
				r -= 0x10000
				fmt.Fprintf(sb, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			default:
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
}

// strftime implements the Python strftime directives chat templates use.
func strftime(t time.Time, f string) string {
	var sb strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			sb.WriteByte(f[i])
			continue
		}
		i++
		c := f[i]
		pad := true
		if c == '-' && i+1 < len(f) {
			pad = false
			i++
			c = f[i]
		}
		num := func(n, w int) {
			if pad {
				fmt.Fprintf(&sb, "%0*d", w, n)
			} else {
				fmt.Fprintf(&sb, "%d", n)
			}
		}
		switch c {
		case 'Y':
			fmt.Fprintf(&sb, "%d", t.Year())
		case 'y':
			num(t.Year()%100, 2)
		case 'm':
			num(int(t.Month()), 2)
		case 'd':
			num(t.Day(), 2)
		case 'e':
			fmt.Fprintf(&sb, "%2d", t.Day())
		case 'H':
			num(t.Hour(), 2)
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			num(h, 2)
		case 'M':
			num(t.Minute(), 2)
		case 'S':
			num(t.Second(), 2)
		case 'p':
			if t.Hour() < 12 {
				sb.WriteString("AM")
			} else {
				sb.WriteString("PM")
			}
		case 'B':
			sb.WriteString(t.Month().String())
		case 'b', 'h':
			sb.WriteString(t.Month().String()[:3])
		case 'A':
			sb.WriteString(t.Weekday().String())
		case 'a':
			sb.WriteString(t.Weekday().String()[:3])
		case 'j':
			num(t.YearDay(), 3)
		case 'Z':
			sb.WriteString(t.Format("MST"))
		case 'z':
			sb.WriteString(t.Format("-0700"))
		case '%':
			sb.WriteByte('%')
		default:
			sb.WriteByte('%')
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
