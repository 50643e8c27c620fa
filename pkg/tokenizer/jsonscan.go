package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// A small scanner for the two big parts of tokenizer.json, the BPE vocab
// ({"token": id, ...}) and merges (["a b", ...] or [["a", "b"], ...]):
// encoding/json's reflection made loading a 33 MB file take seconds. The
// bytes were already validated by the json.Unmarshal that extracted them.

type jscan struct {
	b []byte
	i int
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jscan) errf(format string, a ...any) error {
	return fmt.Errorf("at byte %d: %s", s.i, fmt.Sprintf(format, a...))
}

func (s *jscan) expect(c byte) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != c {
		return s.errf("want %q", c)
	}
	s.i++
	return nil
}

// peek returns the next non-space byte (0 at the end).
func (s *jscan) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *jscan) str() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	start := s.i
	escaped := false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			end := s.i
			s.i++
			if !escaped {
				return string(s.b[start:end]), nil
			}
			var v string
			if err := json.Unmarshal(s.b[start-1:end+1], &v); err != nil {
				return "", s.errf("bad string: %v", err)
			}
			return v, nil
		}
		s.i++
	}
	return "", s.errf("unterminated string")
}

func (s *jscan) integer() (int, error) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || (s.b[s.i] >= '0' && s.b[s.i] <= '9')) {
		s.i++
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	if err != nil {
		return 0, s.errf("want an integer id")
	}
	return n, nil
}

// sep consumes ',' and reports true, or consumes close and reports false.
func (s *jscan) sep(close byte) (bool, error) {
	switch s.peek() {
	case ',':
		s.i++
		return true, nil
	case close:
		s.i++
		return false, nil
	}
	return false, s.errf("want ',' or %q", close)
}

func scanVocab(b []byte) (map[string]int, error) {
	s := &jscan{b: b}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	m := make(map[string]int, len(b)/16)
	if s.peek() == '}' {
		return m, nil
	}
	for {
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		v, err := s.integer()
		if err != nil {
			return nil, err
		}
		m[k] = v
		more, err := s.sep('}')
		if err != nil {
			return nil, err
		}
		if !more {
			return m, nil
		}
	}
}

// scanMerges reads ["a b", ...] or [["a", "b"], ...].
func scanMerges(b []byte) ([][2]string, error) {
	s := &jscan{b: b}
	if err := s.expect('['); err != nil {
		return nil, err
	}
	var out [][2]string
	if s.peek() == ']' {
		return out, nil
	}
	for n := 0; ; n++ {
		switch s.peek() {
		case '"':
			v, err := s.str()
			if err != nil {
				return nil, err
			}
			a, c, ok := cutSpace(v)
			if !ok {
				return nil, fmt.Errorf("merges[%d] %q: want two tokens separated by a space", n, v)
			}
			out = append(out, [2]string{a, c})
		case '[':
			s.i++
			a, err := s.str()
			if err != nil {
				return nil, err
			}
			if err := s.expect(','); err != nil {
				return nil, fmt.Errorf("merges[%d]: want 2 tokens: %w", n, err)
			}
			c, err := s.str()
			if err != nil {
				return nil, err
			}
			if err := s.expect(']'); err != nil {
				return nil, fmt.Errorf("merges[%d]: want 2 tokens: %w", n, err)
			}
			out = append(out, [2]string{a, c})
		default:
			return nil, fmt.Errorf(`merges[%d]: want "a b" or ["a", "b"]`, n)
		}
		more, err := s.sep(']')
		if err != nil {
			return nil, err
		}
		if !more {
			return out, nil
		}
	}
}

func cutSpace(v string) (string, string, bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			return v[:i], v[i+1:], true
		}
	}
	return "", "", false
}

// skipValue moves past one JSON value and returns its bytes.
func (s *jscan) skipValue() ([]byte, error) {
	s.ws()
	start := s.i
	depth := 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch c {
		case '"':
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			if s.i >= len(s.b) {
				return nil, s.errf("unterminated string")
			}
			s.i++
		case '{', '[':
			depth++
			s.i++
		case '}', ']':
			if depth == 0 {
				return s.b[start:s.i], nil
			}
			depth--
			s.i++
		case ',':
			if depth == 0 {
				return s.b[start:s.i], nil
			}
			s.i++
		default:
			s.i++
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return s.b[start:s.i], nil
		}
	}
	if depth != 0 {
		return nil, s.errf("unterminated value")
	}
	return s.b[start:s.i], nil
}

// objectFields splits a JSON object into its keys' raw values, keeping
// only the wanted keys (nil keeps all).
func objectFields(b []byte, want map[string]bool) (map[string]json.RawMessage, error) {
	s := &jscan{b: b}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	if s.peek() == '}' {
		s.i++
		return out, s.end()
	}
	for {
		k, err := s.str()
		if err != nil {
			return nil, err
		}
		if err := s.expect(':'); err != nil {
			return nil, err
		}
		v, err := s.skipValue()
		if err != nil {
			return nil, err
		}
		if len(v) == 0 {
			return nil, s.errf("missing value for %q", k)
		}
		if want == nil || want[k] {
			out[k] = v
		}
		more, err := s.sep('}')
		if err != nil {
			return nil, err
		}
		if !more {
			return out, s.end()
		}
	}
}

func (s *jscan) end() error {
	if s.peek() != 0 {
		return s.errf("trailing data")
	}
	return nil
}
