// Package pyjson reads and writes JSON the way Python's json module does, so
// files mlxgo writes (config.json, adapter_config.json, index files) are
// byte-identical to what mlx_lm writes: objects keep their key order unless
// sorted, numbers keep Python's int/float distinction and float repr
// ("1e-05", "20.0"), non-ASCII is escaped (ensure_ascii), and indentation
// uses Python's separators.
package pyjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Object is a JSON object with its key order.
type Object struct {
	Keys   []string
	Values map[string]any
}

// NewObject returns an empty object.
func NewObject() *Object { return &Object{Values: map[string]any{}} }

// Get returns the value of key and whether it is present.
func (o *Object) Get(key string) (any, bool) {
	v, ok := o.Values[key]
	return v, ok
}

// Set sets key, appending it when new.
func (o *Object) Set(key string, v any) {
	if _, ok := o.Values[key]; !ok {
		o.Keys = append(o.Keys, key)
	}
	o.Values[key] = v
}

// Delete removes key.
func (o *Object) Delete(key string) {
	if _, ok := o.Values[key]; !ok {
		return
	}
	delete(o.Values, key)
	o.Keys = slices.DeleteFunc(o.Keys, func(k string) bool { return k == key })
}

// Int is a JSON integer, kept apart from floats as Python keeps int apart from float.
type Int = json.Number

// Decode parses JSON into *Object, []any, string, bool, nil, Int (integers,
// exact) and float64 (numbers with a fraction or exponent).
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the top-level value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := NewObject()
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o.Set(kt.(string), v)
			}
			_, err := dec.Token()
			return o, err
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if strings.ContainsAny(string(t), ".eE") {
			return strconv.ParseFloat(string(t), 64)
		}
		return t, nil
	default:
		return t, nil
	}
}

// Options control encoding. The zero value is json.dumps(v) with Python's
// compact-ish default separators (", " and ": ").
type Options struct {
	Indent   int  // > 0: json.dump(indent=N), separators "," and ": "
	SortKeys bool // sort every object's keys (json.dump sort_keys=True)
}

// Marshal encodes v. Accepted: *Object, map[string]any (keys sorted, as Go
// maps have no order), []any and other slices, string, bool, nil, Int,
// integers, float32/float64, json.RawMessage (decoded first).
func Marshal(v any, o Options) ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, v, o, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func newline(b *bytes.Buffer, o Options, depth int) {
	if o.Indent > 0 {
		b.WriteByte('\n')
		b.WriteString(strings.Repeat(" ", o.Indent*depth))
	}
}

func encode(b *bytes.Buffer, v any, o Options, depth int) error {
	itemSep := ", "
	if o.Indent > 0 {
		itemSep = ","
	}
	switch t := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case string:
		writeString(b, t)
	case Int:
		b.WriteString(string(t))
	case int:
		b.WriteString(strconv.Itoa(t))
	case int64:
		b.WriteString(strconv.FormatInt(t, 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(t), 10))
	case uint64:
		b.WriteString(strconv.FormatUint(t, 10))
	case float64:
		b.WriteString(FloatRepr(t))
	case float32:
		b.WriteString(FloatRepr(float64(t)))
	case json.RawMessage:
		d, err := Decode(t)
		if err != nil {
			return err
		}
		return encode(b, d, o, depth)
	case map[string]any:
		obj := NewObject()
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			obj.Set(k, t[k])
		}
		return encode(b, obj, o, depth)
	case *Object:
		if len(t.Keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		keys := t.Keys
		if o.SortKeys {
			keys = slices.Sorted(slices.Values(keys))
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(itemSep)
			}
			newline(b, o, depth+1)
			writeString(b, k)
			b.WriteString(": ")
			if err := encode(b, t.Values[k], o, depth+1); err != nil {
				return err
			}
		}
		newline(b, o, depth)
		b.WriteByte('}')
	case []any:
		if len(t) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				b.WriteString(itemSep)
			}
			newline(b, o, depth+1)
			if err := encode(b, e, o, depth+1); err != nil {
				return err
			}
		}
		newline(b, o, depth)
		b.WriteByte(']')
	case []string:
		return encode(b, toAny(t), o, depth)
	case []int:
		return encode(b, toAny(t), o, depth)
	case []float64:
		return encode(b, toAny(t), o, depth)
	default:
		return fmt.Errorf("pyjson: cannot encode %T", v)
	}
	return nil
}

func toAny[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// FloatRepr formats f as Python's repr(float) does, and json's Infinity/NaN.
func FloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	// Shortest round-trip digits d.ddd and exponent e: f = d.ddd × 10^e.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	decpt := exp + 1 // value = 0.digits × 10^decpt
	if -4 < decpt && decpt <= 16 {
		var out string
		switch {
		case decpt <= 0:
			out = "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			out = digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			out = digits[:decpt] + "." + digits[decpt:]
		}
		return sign + out
	}
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	esign := "+"
	if exp < 0 {
		esign, exp = "-", -exp
	}
	return fmt.Sprintf("%s%se%s%02d", sign, m, esign, exp)
}

// writeString writes s as Python's json with ensure_ascii=True.
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		case r < 0x80:
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
}
