package tokenizer

import (
	"encoding/json"
	"strings"
	"testing"
)

// Expected outputs come from Python jinja2 3.1.6 set up as transformers
// sets it up: ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]).
const jinjaWhitespaceCases = `[["{%- if true -%}A: {{ 'x' }}{%- endif -%}", "A: x"], ["  {% if true %}\n  x\n  {% endif %}\n", "  x\n"], ["a {% if true %}b{% endif %} c\n", "a b c"], ["{% for i in [1,2] %}\n    {{ i }}\n{% endfor %}\nend\n\n", "    1\n    2\nend\n"], ["{{ 'a' }}\n{# comment #}\n{{ 'b' }}", "a\nb"], ["x  {#- c -#}  y", "xy"], ["{%+ if true %}\n  k{% endif +%}\nz", "  k\nz"], ["line\r\nnext\r\n{% if true %}\r\nq{% endif %}", "line\nnext\nq"], ["{% raw %}{{ not }} {%- x %}{% endraw %}!", "{{ not }} {%- x %}!"], ["{{ '%}' }} {{ \"}}\" }}", "%} }}"], ["  {{ 'expr' }}  {% if true %}  t  {% endif %}", "  expr    t  "], ["\t{%- if true %}\n\tA\n\t{%- endif %}\n", "\tA"]]`

func TestJinjaWhitespaceLikePython(t *testing.T) {
	var cases [][2]string
	if err := json.Unmarshal([]byte(jinjaWhitespaceCases), &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		got, err := RenderChatTemplate(c[0], "test", json.RawMessage(`[]`), nil, ChatOptions{})
		if err != nil {
			t.Errorf("%q: %v", c[0], err)
			continue
		}
		if got != c[1] {
			t.Errorf("%q:\n got %q\nwant %q", c[0], got, c[1])
		}
	}
	if _, err := normalizeJinja("a {{ b "); err == nil {
		t.Error("unclosed tag accepted")
	}
}

func TestTojsonLikePython(t *testing.T) {
	// Expected: Python's json.dumps with transformers' tojson defaults
	// (ensure_ascii=False), then ensure_ascii=True+sort_keys, then
	// indent=0 with compact separators.
	val := json.RawMessage(`{"b": 1.0, "a": [1e16, 1e-5, 0.1, -0.0, 3], "s": "\u2028é😀<&>\u007f\u0001", "n": null, "t": true}`)
	src := `{{ tools | tojson }}|{{ tools | tojson(ensure_ascii=True, sort_keys=True) }}|{{ tools|tojson(indent=0, separators=[',', ':']) }}|{{ 'x' | tojson }}`
	got, err := RenderChatTemplate(src, "test", json.RawMessage(`[]`), nil, ChatOptions{Tools: val})
	if err != nil {
		t.Fatal(err)
	}
	want := "{\"b\": 1.0, \"a\": [1e+16, 1e-05, 0.1, -0.0, 3], \"s\": \"\u2028\u00e9\U0001F600<&>\u007f\\u0001\", \"n\": null, \"t\": true}" +
		"|{\"a\": [1e+16, 1e-05, 0.1, -0.0, 3], \"b\": 1.0, \"n\": null, \"s\": \"\\u2028\\u00e9\\ud83d\\ude00<&>\\u007f\\u0001\", \"t\": true}" +
		"|{\n\"b\":1.0,\n\"a\":[\n1e+16,\n1e-05,\n0.1,\n-0.0,\n3\n],\n\"s\":\"\u2028\u00e9\U0001F600<&>\u007f\\u0001\",\n\"n\":null,\n\"t\":true\n}" +
		"|\"x\""
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestTojsonRewriteLeavesStringsAlone(t *testing.T) {
	src := `x | tojson {{ '| tojson' }} {{ ({"a": [1.0]} | tojson) | tojson }} {{ "a|tojson(indent=2)" ~ [2.0] | tojson }}`
	got, err := RenderChatTemplate(src, "test", json.RawMessage(`[]`), nil, ChatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `x | tojson | tojson "{\"a\": [1.0]}" a|tojson(indent=2)[2.0]`
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// FuzzNormalizeJinja: the whitespace pass must not panic, and must keep
// plain text (no tags) unchanged apart from jinja2's newline rules.
func FuzzNormalizeJinja(f *testing.F) {
	for _, c := range []string{"{%- if x -%}a{{ b }}{% endif %}\n", "{# c #}", "{{ 'x' ~ \"}}\" }}", "{% raw %}{{{% endraw %}", "a\r\nb\n", "{%+ x +%}"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out, err := normalizeJinja(src)
		if err != nil {
			return
		}
		if !strings.Contains(src, "{") {
			got, err := RenderChatTemplate(src, "fuzz", json.RawMessage(`[]`), nil, ChatOptions{})
			want := strings.TrimSuffix(strings.ReplaceAll(strings.ReplaceAll(src, "\r\n", "\n"), "\r", "\n"), "\n")
			if err == nil && got != want {
				t.Fatalf("plain text %q rendered %q (normalized %q)", src, got, out)
			}
		}
	})
}

// FuzzRenderTemplate: any template source gives a render or an error.
func FuzzRenderTemplate(f *testing.F) {
	for _, c := range []string{"{%- for m in messages %}{{ m.content | tojson(indent=2) }}{% endfor %}", "{{ a[1:2] }}", "{% set x = namespace(a=1) %}{{ x.a }}", "{{ (1|tojson) }}", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }}"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, src string) {
		RenderChatTemplate(src, "fuzz", json.RawMessage(`[{"role": "user", "content": "hi"}]`), nil, ChatOptions{})
	})
}
