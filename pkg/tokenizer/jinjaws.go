package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
)

// Whitespace control is done here, the way Python's jinja2 lexer does it for
// transformers (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline
// False, "-" and "+" markers), and the template handed to ardanlabs/jinja
// has every piece of text turned into a string-literal expression and no
// markers. The library's own trimming (which in v1.8.0 reaches past
// expression tags, so `{%- if x -%}A: {{ y }}{%- endif %}` loses the space
// after "A:") then has no text to act on.

type jtag struct {
	kind        byte // '{' expression, '%' block, '#' comment
	left, right byte // '-', '+' or 0
	body        string
}

type jitem struct {
	text  string
	tag   *jtag
	isTag bool
}

func lexJinja(src string) ([]jitem, error) {
	var items []jitem
	i := 0
	for i < len(src) {
		j := indexOpener(src, i)
		if j < 0 {
			items = append(items, jitem{text: src[i:]})
			break
		}
		if j > i {
			items = append(items, jitem{text: src[i:j]})
		}
		t, end, err := lexTag(src, j)
		if err != nil {
			return nil, err
		}
		items = append(items, jitem{tag: t, isTag: true})
		i = end
		if t.kind == '%' && strings.TrimSpace(t.body) == "raw" {
			// Everything up to {% endraw %} is text.
			k := i
			for {
				o := strings.Index(src[k:], "{%")
				if o < 0 {
					return nil, fmt.Errorf("unclosed {%% raw %%}")
				}
				et, eend, err := lexTag(src, k+o)
				if err != nil {
					return nil, err
				}
				if strings.TrimSpace(et.body) == "endraw" {
					items = append(items, jitem{text: src[i : k+o]}, jitem{tag: et, isTag: true})
					i = eend
					break
				}
				k = eend
			}
		}
	}
	return items, nil
}

func indexOpener(s string, from int) int {
	for i := from; i+1 < len(s); i++ {
		if s[i] == '{' && (s[i+1] == '{' || s[i+1] == '%' || s[i+1] == '#') {
			return i
		}
	}
	return -1
}

// lexTag reads the tag at s[i:] ("{{", "{%" or "{#") and returns it and the
// offset after its closer.
func lexTag(s string, i int) (*jtag, int, error) {
	t := &jtag{kind: s[i+1]}
	closer := map[byte]string{'{': "}}", '%': "%}", '#': "#}"}[t.kind]
	p := i + 2
	if p < len(s) && (s[p] == '-' || (s[p] == '+' && t.kind != '{')) {
		t.left = s[p]
		p++
	}
	start := p
	for p < len(s) {
		c := s[p]
		if t.kind != '#' && (c == '\'' || c == '"') {
			p++
			for p < len(s) && s[p] != c {
				if s[p] == '\\' {
					p++
				}
				p++
			}
			p++
			continue
		}
		if strings.HasPrefix(s[p:], closer) {
			t.body = s[start:p]
			if n := len(t.body); n > 0 && (t.body[n-1] == '-' || (t.body[n-1] == '+' && t.kind != '{')) {
				t.right = t.body[n-1]
				t.body = t.body[:n-1]
			}
			return t, p + 2, nil
		}
		p++
	}
	line := strings.Count(s[:i], "\n") + 1
	return nil, 0, fmt.Errorf("unclosed %q tag at line %d", s[i:i+2], line)
}

// normalizeJinja applies jinja2's whitespace rules and returns a template
// without text segments or markers (see above).
func normalizeJinja(src string) (string, error) {
	// jinja2 normalizes newlines and drops one trailing newline.
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	src = strings.TrimSuffix(src, "\n")
	items, err := lexJinja(src)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for k, it := range items {
		if it.isTag {
			t := it.tag
			if b := strings.TrimSpace(t.body); t.kind == '#' || (t.kind == '%' && (b == "raw" || b == "endraw")) {
				continue
			}
			if t.kind == '{' {
				b.WriteString("{{" + rewriteTagBody(t.body) + "}}")
			} else {
				b.WriteString("{%" + rewriteTagBody(t.body) + "%}")
			}
			continue
		}
		text := it.text
		startsLine := k == 0 // text at the template start begins a line
		// The tag before this text acts on its start.
		if k > 0 && items[k-1].isTag {
			p := items[k-1].tag
			switch {
			case p.right == '-':
				text = strings.TrimLeftFunc(text, unicode.IsSpace)
			case p.right != '+' && p.kind != '{':
				text = strings.TrimPrefix(text, "\n")
			}
		}
		// The tag after this text acts on its end.
		if k+1 < len(items) && items[k+1].isTag {
			n := items[k+1].tag
			switch {
			case n.left == '-':
				text = strings.TrimRightFunc(text, unicode.IsSpace)
			case n.left != '+' && n.kind != '{':
				// lstrip_blocks: drop the spaces and tabs before the tag
				// when nothing else precedes it on its line (judged on
				// the original text).
				orig := it.text
				nl := strings.LastIndexByte(orig, '\n')
				tail := orig[nl+1:]
				if strings.Trim(tail, " \t") == "" && (nl >= 0 || startsLine) {
					cut := len(tail)
					if len(text) >= cut && strings.HasSuffix(text, tail) {
						text = text[:len(text)-cut]
					}
				}
			}
		}
		if text == "" {
			continue
		}
		b.WriteString("{{ '")
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(text))
		b.WriteString("' }}")
	}
	return b.String(), nil
}
