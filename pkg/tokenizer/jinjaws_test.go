package tokenizer

import (
	"encoding/json"
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
