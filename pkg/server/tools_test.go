package server

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// parsedCalls runs a format's parser and the arguments formatting on one
// call text and returns the function objects as JSON.
func parsedCalls(t *testing.T, parser, text, tools string) (string, error) {
	t.Helper()
	p, ok := toolParsers[parser]
	if !ok {
		t.Fatalf("no parser %q", parser)
	}
	var tv any
	if tools != "" {
		var err error
		if tv, err = pyjson.Decode([]byte(tools)); err != nil {
			t.Fatal(err)
		}
	}
	calls, err := formatCalls(p, text, tv)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

const (
	multiplyTools = `[{"type": "function", "function": {"name": "multiply", "description": "Multiply two numbers.",
		"parameters": {"type": "object", "required": ["a", "b"], "properties": {
			"a": {"type": "number", "description": "a is a number"}, "b": {"type": "number", "description": "b is a number"}}}}}]`
	temperatureTools = `[{"type": "function", "function": {"name": "get_current_temperature", "description": "Get the current temperature.",
		"parameters": {"type": "object", "required": ["location"], "properties": {
			"location": {"type": "str", "description": "The location."}}}}}]`
	searchTools = `[{"type": "function", "function": {"name": "search", "parameters": {"type": "object",
		"properties": {"filters": {"type": "object"}, "tags": {"type": "array"}}}}}]`
	scheduleTools = `[{"type": "function", "function": {"name": "schedule", "parameters": {"type": "object",
		"properties": {"name": {"type": "string"}, "deadline": {"type": "string"}}}}},
		{"type": "function", "function": {"name": "log", "parameters": {"type": "object", "properties": {"msg": {"type": "string"}}}}}]`
)

// TestToolParsers has mlx_lm's tests/test_tool_parsing.py cases, written
// as the function objects the server sends.
func TestToolParsers(t *testing.T) {
	multiply := `[{"name":"multiply","arguments":"{\"a\": 12234585, \"b\": 48838483920}"}]`
	london := `[{"name":"get_current_temperature","arguments":"{\"location\": \"London\"}"}]`
	cases := []struct {
		parser, text, tools, want string
	}{
		{"function_gemma", "call:multiply{a:12234585,b:48838483920}", multiplyTools, multiply},
		{"gemma4", "call:multiply{a:12234585,b:48838483920}", multiplyTools, multiply},
		{"glm47", `{"name": "multiply", "arguments": {"a": 12234585, "b": 48838483920}}`, multiplyTools, multiply},
		{"glm47", "multiply a=12234585 b=48838483920", multiplyTools, multiply},
		{"glm47", "multiply<arg_key>a</arg_key><arg_value>12234585</arg_value><arg_key>b</arg_key><arg_value>48838483920</arg_value>", multiplyTools, multiply},
		{"json_tools", `{"name": "multiply", "arguments": {"a": 12234585, "b": 48838483920}}`, multiplyTools, multiply},
		{"minimax_m2", "<invoke name=\"multiply\">\n<parameter name=\"a\">12234585</parameter>\n<parameter name=\"b\">48838483920</parameter>\n</invoke>", multiplyTools, multiply},
		{"qwen3_coder", "<function=multiply>\n<parameter=a>\n12234585\n</parameter>\n<parameter=b>\n48838483920\n</parameter>\n</function>", multiplyTools, multiply},
		{"longcat", "multiply<longcat_arg_key>a</longcat_arg_key>\n<longcat_arg_value>12234585</longcat_arg_value>\n<longcat_arg_key>b</longcat_arg_key>\n<longcat_arg_value>48838483920</longcat_arg_value>", multiplyTools, multiply},
		{"longcat", `{"name": "multiply", "arguments": {"a": 12234585, "b": 48838483920}}`, multiplyTools, multiply},
		{"pythonic", "[multiply(a=12234585, b=48838483920)]", multiplyTools, multiply},
		{"mistral", `multiply[ARGS]{"a": 12234585, "b": 48838483920}`, multiplyTools, multiply},

		{"function_gemma", "call:get_current_temperature{location:<escape>London<escape>}", temperatureTools, london},
		{"gemma4", `call:get_current_temperature{location:<|"|>London<|"|>}`, temperatureTools, london},
		{"glm47", `get_current_temperature<arg_key>location</arg_key><arg_value>"London"</arg_value>`, temperatureTools, london},
		{"json_tools", `{"name": "get_current_temperature", "arguments": {"location": "London"}}`, temperatureTools, london},
		{"minimax_m2", "<invoke name=\"get_current_temperature\">\n<parameter name=\"location\">London</parameter>\n</invoke>", temperatureTools, london},
		{"qwen3_coder", "<function=get_current_temperature>\n<parameter=location>\nLondon\n</parameter>\n</function>", temperatureTools, london},
		{"longcat", "get_current_temperature<longcat_arg_key>location</longcat_arg_key>\n<longcat_arg_value>London</longcat_arg_value>", temperatureTools, london},
		{"longcat", `{"name": "get_current_temperature", "arguments": {"location": "London"}}`, temperatureTools, london},
		{"pythonic", `[get_current_temperature(location="London")]`, temperatureTools, london},
		{"mistral", `get_current_temperature[ARGS]{"location": "London"}`, temperatureTools, london},

		// test_qwen3_coder_single_quoted_params
		{"qwen3_coder", "<function=search><parameter=filters>{'category': 'books', 'in_stock': True}</parameter><parameter=tags>['fiction', 'new']</parameter></function>", searchTools,
			`[{"name":"search","arguments":"{\"filters\": {\"category\": \"books\", \"in_stock\": true}, \"tags\": [\"fiction\", \"new\"]}"}]`},
		{"qwen3_coder", `<function=search><parameter=filters>{"category": "books"}</parameter><parameter=tags>["fiction", "new"]</parameter></function>`, searchTools,
			`[{"name":"search","arguments":"{\"filters\": {\"category\": \"books\"}, \"tags\": [\"fiction\", \"new\"]}"}]`},
		// test_qwen3_coder_iso_date, test_qwen3_coder_partial_number
		{"qwen3_coder", "<function=schedule>\n<parameter=name>\ndeploy\n</parameter>\n<parameter=deadline>\n2025-06-15T10:30:00Z\n</parameter>\n</function>", scheduleTools,
			`[{"name":"schedule","arguments":"{\"name\": \"deploy\", \"deadline\": \"2025-06-15T10:30:00Z\"}"}]`},
		{"qwen3_coder", "<function=log>\n<parameter=msg>\nversion 3.10.5-beta\n</parameter>\n</function>", scheduleTools,
			`[{"name":"log","arguments":"{\"msg\": \"version 3.10.5-beta\"}"}]`},

		// test_gemma4
		{"gemma4", `call:configure{settings:{enabled:true,name:<|"|>test<|"|>}}`, "",
			`[{"name":"configure","arguments":"{\"settings\": {\"enabled\": true, \"name\": \"test\"}}"}]`},
		{"gemma4", `call:tag{items:[<|"|>foo<|"|>,<|"|>bar<|"|>]}`, "",
			`[{"name":"tag","arguments":"{\"items\": [\"foo\", \"bar\"]}"}]`},
		{"gemma4", `call:search{query:<|"|>hello world<|"|>,limit:10,verbose:false}`, "",
			`[{"name":"search","arguments":"{\"query\": \"hello world\", \"limit\": 10, \"verbose\": false}"}]`},
		{"gemma4", `call:glob{pattern:<|"|>README*.md<|"|>}call:glob{pattern:<|"|>CONTRIBUTING.md<|"|>}`, "",
			`[{"name":"glob","arguments":"{\"pattern\": \"README*.md\"}"},{"name":"glob","arguments":"{\"pattern\": \"CONTRIBUTING.md\"}"}]`},
		{"gemma4", `call:search{query:<|"|>weather<|"|>,limit:5}call:configure{settings:{enabled:true,name:<|"|>test<|"|>}}`, "",
			`[{"name":"search","arguments":"{\"query\": \"weather\", \"limit\": 5}"},{"name":"configure","arguments":"{\"settings\": {\"enabled\": true, \"name\": \"test\"}}"}]`},
		{"gemma4", `call:manim-video{mode:<|"|>plan<|"|>,prompt:<|"|>explain KV caching<|"|>}`, "",
			`[{"name":"manim-video","arguments":"{\"mode\": \"plan\", \"prompt\": \"explain KV caching\"}"}]`},
		{"gemma4", `call:skill_manage{action:<|"|>create<|"|>,content:<|"|>use a dict like {key: value} in your code<|"|>}`, "",
			`[{"name":"skill_manage","arguments":"{\"action\": \"create\", \"content\": \"use a dict like {key: value} in your code\"}"}]`},

		// test_kimi_k2
		{"kimi_k2", `<|tool_call_begin|>functions.multiply:0<|tool_call_argument_begin|>{"a": 12234585, "b": 48838483920}<|tool_call_end|>`, "",
			`[{"id":"functions.multiply:0","name":"multiply","arguments":"{\"a\": 12234585, \"b\": 48838483920}"}]`},
		{"kimi_k2", `<|tool_call_begin|>functions.search:0<|tool_call_argument_begin|>{"query": "weather"}<|tool_call_end|><|tool_call_begin|>functions.read_file:1<|tool_call_argument_begin|>{"path": "/tmp/test.txt"}<|tool_call_end|>`, "",
			`[{"id":"functions.search:0","name":"search","arguments":"{\"query\": \"weather\"}"},{"id":"functions.read_file:1","name":"read_file","arguments":"{\"path\": \"/tmp/test.txt\"}"}]`},

		// test_minimax_m2
		{"minimax_m2", "<invoke name=\"search\">\n<parameter name=\"query\">weather</parameter>\n</invoke>\n<invoke name=\"read_file\">\n<parameter name=\"path\">/tmp/test.txt</parameter>\n</invoke>", "",
			`[{"name":"search","arguments":"{\"query\": \"weather\"}"},{"name":"read_file","arguments":"{\"path\": \"/tmp/test.txt\"}"}]`},
	}
	for _, c := range cases {
		got, err := parsedCalls(t, c.parser, c.text, c.tools)
		if err != nil {
			t.Errorf("%s(%q): %v", c.parser, c.text, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s(%q)\n got %s\nwant %s", c.parser, c.text, got, c.want)
		}
	}
}

// TestToolParserValues covers the value conversions of each format: what
// Python's json, ast.literal_eval, float and int give.
func TestToolParserValues(t *testing.T) {
	typed := `[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
		"i": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"}, "s": {"type": "string"},
		"o": {"type": "object"}, "u": {"type": ["integer", "null"]}, "e": {"enum": [1, 2]}}}}}]`
	cases := []struct {
		parser, text, tools, want string
	}{
		// Non-ASCII stays as it is in the arguments string (ensure_ascii=False).
		{"json_tools", `{"name": "f", "arguments": {"city": "Zürich \u00e9", "x": 1.0}}`, "",
			`[{"name":"f","arguments":"{\"city\": \"Zürich é\", \"x\": 1.0}"}]`},
		{"json_tools", `[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"k": [1, 2.5e-7]}}]`, "",
			`[{"name":"f","arguments":"{}"},{"name":"g","arguments":"{\"k\": [1, 2.5e-07]}"}]`},
		{"qwen3_coder", "\n<function=f>\n<parameter=i>\n4.0\n</parameter>\n<parameter=n>\n2.50\n</parameter>\n<parameter=b>\nTrue\n</parameter>\n<parameter=s>\n 7 \n</parameter>\n<parameter=o>\n{\"a\": \"x\ny\"}\n</parameter>\n<parameter=z>\nnull\n</parameter>\n<parameter=q>\n12\n</parameter>\n</function>\n", typed,
			`[{"name":"f","arguments":"{\"i\": 4, \"n\": 2.5, \"b\": true, \"s\": \" 7 \", \"o\": {\"a\": \"x\\ny\"}, \"z\": null, \"q\": \"12\"}"}]`},
		{"minimax_m2", `<invoke name="f"><parameter name="i">12</parameter><parameter name="n">3.0</parameter><parameter name="b">yes</parameter><parameter name="u">none</parameter><parameter name="e">2</parameter><parameter name="o">{"k": 1}</parameter><parameter name="s">5</parameter></invoke>`, typed,
			`[{"name":"f","arguments":"{\"i\": 12, \"n\": 3, \"b\": true, \"u\": null, \"e\": 2, \"o\": {\"k\": 1}, \"s\": \"5\"}"}]`},
		{"pythonic", `[f(a="x, y", b=0x10, c=True, d=None, e='q', f=[1, 2])]`, "",
			`[{"name":"f","arguments":"{\"a\": \"x, y\", \"b\": 16, \"c\": true, \"d\": null, \"e\": \"q\", \"f\": \"[1\"}"}]`},
		{"function_gemma", "call:f{a:1.5,b:<escape>x, y<escape>,c:true,d:word}", "",
			`[{"name":"f","arguments":"{\"a\": 1.5, \"b\": \"x, y\", \"c\": true, \"d\": \"word\"}"}]`},
		{"kimi_k2", "functions.f:3<|tool_call_argument_begin|>{'a': (1, 2)}", "",
			`[{"id":"functions.f:3","name":"f","arguments":"{\"a\": [1, 2]}"}]`},
		{"glm47", "f\n{\"s\": 5, \"n\": \"7\"}", `[{"type": "function", "function": {"name": "f", "parameters": {"properties": {"s": {"type": "string"}}}}}]`,
			`[{"name":"f","arguments":"{\"s\": \"5\", \"n\": 7}"}]`},
		{"glm47", `f a="two words" b=[1,2]`, "", `[{"name":"f","arguments":"{\"a\": \"two words\", \"b\": [1, 2]}"}]`},
		{"glm47", "f just some text", "", `[{"name":"f","arguments":"{\"raw\": \"just some text\"}"}]`},
		{"glm47", "  ", "", `[{"name":"unknown","arguments":"{\"raw\": \"\"}"}]`},
		{"mistral", "  get_weather[ARGS] {\"city\": \"Paris\"}  ", "", `[{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}]`},
	}
	for _, c := range cases {
		got, err := parsedCalls(t, c.parser, c.text, c.tools)
		if err != nil {
			t.Errorf("%s(%q): %v", c.parser, c.text, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s(%q)\n got %s\nwant %s", c.parser, c.text, got, c.want)
		}
	}
}

// TestToolParserErrors: texts mlx_lm's parsers reject (the call is then
// dropped with a warning) give an error, never a panic.
func TestToolParserErrors(t *testing.T) {
	cases := []struct{ parser, text string }{
		{"json_tools", `{"name": "f", "arguments": {`},
		{"json_tools", `{"name": "f"}`},
		{"json_tools", `42`},
		{"qwen3_coder", "<function=f>\n<parameter=a>\n1\n</parameter>\n"},
		{"qwen3_coder", "<function=f"},
		{"qwen3_coder", "<function=f</function>"},
		{"qwen3_coder", "<function=f><parameter=a</parameter></function>"},
		{"mistral", `get_weather[ARGS]{"city": `},
		{"mistral", `just text`},
		// Two calls: the reply's second [TOOL_CALLS] stays in the call's
		// text (mistral's calls run to the end of the reply) and the greedy
		// {.*} takes both, which is not JSON: mlx_lm drops them too.
		{"mistral", `a[ARGS]{"x": 1}[TOOL_CALLS]b[ARGS]{"y": 2}`},
		{"pythonic", `[f(a=1`},
		{"function_gemma", `call:f{a:1`},
		{"function_gemma", `call:f{a}`},
		{"function_gemma", `call:f{a:<escape>open}`},
		{"gemma4", `call:f{a:<|"|>open}`},
		{"gemma4", `call:f{a:{b:1}`},
		{"gemma4", `call:f{a:b}`},
		{"kimi_k2", `functions.f<|tool_call_argument_begin|>{}`},
		{"kimi_k2", `<|tool_call_begin|>functions.f:0{}<|tool_call_end|>`},
		{"minimax_m2", `<invoke name="f"><parameter name="a">1</parameter>`},
		{"longcat", `no keys here`},
		{"pythonic", `[f(a={1})]`}, // a set: json.dumps cannot write it
	}
	for _, c := range cases {
		if got, err := parsedCalls(t, c.parser, c.text, ""); err == nil {
			t.Errorf("%s(%q) = %s, want an error", c.parser, c.text, got)
		}
	}
}

func TestPyLiteralEval(t *testing.T) {
	for in, want := range map[string]string{
		"1_000":                    "1000",
		"-0x1F":                    "-31",
		"0o17":                     "15",
		"1e3":                      "1000.0",
		".5":                       "0.5",
		"'a' \"b\"":                `"ab"`,
		`'\x41\n\u00e9'`:           `"A\né"`,
		`r'\n'`:                    `"\\n"`,
		"(1,)":                     "[1]",
		"(1)":                      "1",
		"()":                       "[]",
		"{1: 'x', True: None}":     `{"1": "x", "true": null}`,
		"[1, [2, {'k': -2.5}],]":   `[1, [2, {"k": -2.5}]]`,
		"  \t12345678901234567890": "12345678901234567890",
		"{}":                       "{}",
	} {
		v, err := pyLiteralEval(in)
		if err != nil {
			t.Errorf("literal_eval(%q): %v", in, err)
			continue
		}
		got, err := pyDumps(v)
		if err != nil || got != want {
			t.Errorf("literal_eval(%q) = %s (%v), want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"London", "1 2", "--1", "01", "[1", "'open", "f(1)", "", "1+2", "3.10.5-beta", "2025-06-15T10:30:00Z"} {
		if v, err := pyLiteralEval(in); err == nil {
			t.Errorf("literal_eval(%q) = %v, want an error", in, v)
		}
	}
	for _, in := range []string{"{1, 2}", "b'x'", "1j"} {
		v, err := pyLiteralEval(in)
		if err != nil {
			t.Errorf("literal_eval(%q): %v", in, err)
		} else if _, err := pyDumps(v); err == nil {
			t.Errorf("json.dumps(literal_eval(%q)) should fail", in)
		}
	}
}

// replyWith feeds text segments through a chat completion of a model whose
// tool calls are in the given format, and returns the reply's content and
// its tool calls (ids of made-up calls replaced by "ID"), and the finish
// reason, from the response or the stream's chunks.
func replyWith(t *testing.T, parser, tools string, stream bool, segments ...string) (content, calls, finish string) {
	t.Helper()
	s := newTestServer(t, func(o *Options) { o.ToolParser = parser })
	rec := httptest.NewRecorder()
	rq := &request{chat: true, stream: stream}
	if tools != "" {
		rq.tools = json.RawMessage(tools)
	}
	c := &completion{s: s, lm: s.cur, rq: rq, w: rec, meta: completionResponse{ID: "chatcmpl-x", Object: "chat.completion"}}
	c.split = newSplitter(nil)
	c.split.addTools(toolMarkers(parser))
	for i, seg := range segments {
		if _, err := c.feed(seg, i == len(segments)-1); err != nil {
			t.Fatal(err)
		}
	}
	c.finishBy = "stop"
	c.finish()
	type fn struct {
		ID       string `json:"id"`
		Index    *int   `json:"index,omitempty"`
		Type     string `json:"type"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	var all []fn
	var text strings.Builder
	bodies := []string{rec.Body.String()}
	if stream {
		bodies = nil
		for _, line := range strings.Split(rec.Body.String(), "\n\n") {
			if data, ok := strings.CutPrefix(line, "data: "); ok && data != "[DONE]" {
				bodies = append(bodies, data)
			}
		}
	}
	for _, b := range bodies {
		var r struct {
			Choices []struct {
				FinishReason *string `json:"finish_reason"`
				Message      *struct {
					Content   *string `json:"content"`
					ToolCalls []fn    `json:"tool_calls"`
				} `json:"message"`
				Delta *struct {
					Content   string `json:"content"`
					ToolCalls []fn   `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(b), &r); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		ch := r.Choices[0]
		if ch.FinishReason != nil {
			finish = *ch.FinishReason
		}
		if m := ch.Message; m != nil {
			if m.Content != nil {
				text.WriteString(*m.Content)
			}
			all = append(all, m.ToolCalls...)
		}
		if d := ch.Delta; d != nil {
			text.WriteString(d.Content)
			all = append(all, d.ToolCalls...)
		}
	}
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for i := range all {
		if uuidRE.MatchString(all[i].ID) {
			all[i].ID = "ID"
		}
		if stream != (all[i].Index != nil) || stream && *all[i].Index != i {
			t.Errorf("call %d: index %v in a stream=%v reply", i, all[i].Index, stream)
		}
		all[i].Index = nil
		if all[i].Type != "function" {
			t.Errorf("call %d: type %q", i, all[i].Type)
		}
	}
	b, _ := json.Marshal(all)
	return text.String(), string(b), finish
}

// TestToolCallReplies: each format's calls, in a reply around text, come
// out as OpenAI tool_calls with finish_reason "tool_calls", streamed or
// not, however the text is cut into segments (here at every byte).
func TestToolCallReplies(t *testing.T) {
	cases := []struct {
		parser, reply, content, calls string
	}{
		{"json_tools", `Sure. <tool_call>{"name": "get", "arguments": {"city": "Zürich"}}</tool_call> ok`, "Sure.  ok",
			`[{"id":"ID","type":"function","function":{"name":"get","arguments":"{\"city\": \"Zürich\"}"}}]`},
		{"qwen3_coder", "Let me check.\n<tool_call>\n<function=get_current_temperature>\n<parameter=location>\nLondon\n</parameter>\n</function>\n</tool_call>", "Let me check.\n",
			`[{"id":"ID","type":"function","function":{"name":"get_current_temperature","arguments":"{\"location\": \"London\"}"}}]`},
		{"mistral", `Hm.[TOOL_CALLS]get_current_temperature[ARGS]{"location": "London"}`, "Hm.",
			`[{"id":"ID","type":"function","function":{"name":"get_current_temperature","arguments":"{\"location\": \"London\"}"}}]`},
		{"pythonic", `<|tool_call_start|>[get_current_temperature(location="London")]<|tool_call_end|>Done.`, "Done.",
			`[{"id":"ID","type":"function","function":{"name":"get_current_temperature","arguments":"{\"location\": \"London\"}"}}]`},
		{"function_gemma", "<start_function_call>call:get_current_temperature{location:<escape>London<escape>}<end_function_call>", "",
			`[{"id":"ID","type":"function","function":{"name":"get_current_temperature","arguments":"{\"location\": \"London\"}"}}]`},
		{"gemma4", `<|tool_call>call:a{x:1}call:b{y:<|"|>z<|"|>}<tool_call|>`, "",
			`[{"id":"ID","type":"function","function":{"name":"a","arguments":"{\"x\": 1}"}},{"id":"ID","type":"function","function":{"name":"b","arguments":"{\"y\": \"z\"}"}}]`},
		{"kimi_k2", `x<|tool_calls_section_begin|><|tool_call_begin|>functions.multiply:0<|tool_call_argument_begin|>{"a": 2}<|tool_call_end|><|tool_calls_section_end|>`, "x",
			`[{"id":"functions.multiply:0","type":"function","function":{"name":"multiply","arguments":"{\"a\": 2}"}}]`},
		{"minimax_m2", "<minimax:tool_call>\n<invoke name=\"search\">\n<parameter name=\"query\">weather</parameter>\n</invoke>\n</minimax:tool_call>", "",
			`[{"id":"ID","type":"function","function":{"name":"search","arguments":"{\"query\": \"weather\"}"}}]`},
		{"longcat", "<longcat_tool_call>f<longcat_arg_key>k</longcat_arg_key><longcat_arg_value>[1]</longcat_arg_value></longcat_tool_call>", "",
			`[{"id":"ID","type":"function","function":{"name":"f","arguments":"{\"k\": [1]}"}}]`},
		{"glm47", "<tool_call>f<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>", "",
			`[{"id":"ID","type":"function","function":{"name":"f","arguments":"{\"k\": \"v\"}"}}]`},
		// Two calls in two sections.
		{"qwen3_coder", "<tool_call>\n<function=a>\n</function>\n</tool_call>\n<tool_call>\n<function=b>\n<parameter=n>\n1\n</parameter>\n</function>\n</tool_call>", "\n",
			`[{"id":"ID","type":"function","function":{"name":"a","arguments":"{}"}},{"id":"ID","type":"function","function":{"name":"b","arguments":"{\"n\": \"1\"}"}}]`},
	}
	for _, c := range cases {
		for _, stream := range []bool{false, true} {
			for cut := 0; cut <= len(c.reply); cut++ {
				segs := []string{c.reply[:cut], c.reply[cut:]}
				content, calls, finish := replyWith(t, c.parser, "", stream, segs...)
				if content != c.content || calls != c.calls || finish != "tool_calls" {
					t.Fatalf("%s stream=%v cut at %d (%q|%q):\ncontent %q, want %q\ncalls %s\n want %s\nfinish %q", c.parser, stream, cut,
						segs[0], segs[1], content, c.content, calls, c.calls, finish)
				}
			}
		}
		// One byte a segment.
		segs := strings.Split(c.reply, "")
		if content, calls, _ := replyWith(t, c.parser, "", true, segs...); content != c.content || calls != c.calls {
			t.Errorf("%s byte by byte: content %q calls %s", c.parser, content, calls)
		}
	}
}

// TestToolCallRepliesMalformed: a call that does not parse is dropped
// from the reply with a warning, as mlx_lm's ToolCallFormatter does, and
// the text around it stays; finish_reason is still "tool_calls", as
// mlx_lm's made_tool_call is set by the tool text, parsed or not.
func TestToolCallRepliesMalformed(t *testing.T) {
	for parser, reply := range map[string]string{
		"qwen3_coder":    "Hi<tool_call>\n<function=f>\n<parameter=a>\n1\n",
		"mistral":        `Hi[TOOL_CALLS]f[ARGS]{"a": `,
		"pythonic":       "Hi<|tool_call_start|>[f(a=1",
		"function_gemma": "Hi<start_function_call>call:f{a:1",
		"gemma4":         `Hi<|tool_call>call:f{a:<|"|>x<tool_call|>`,
		"kimi_k2":        "Hi<|tool_calls_section_begin|>oops<|tool_calls_section_end|>",
		"minimax_m2":     "Hi<minimax:tool_call><invoke name=\"f\">",
	} {
		for _, stream := range []bool{false, true} {
			content, calls, finish := replyWith(t, parser, "", stream, reply)
			if content != "Hi" || calls != "null" || finish != "tool_calls" {
				t.Errorf("%s stream=%v: content %q calls %s finish %q", parser, stream, content, calls, finish)
			}
		}
	}
}

// TestToolCallReplyTypes: the request's tools give the argument types.
func TestToolCallReplyTypes(t *testing.T) {
	reply := "<tool_call>\n<function=multiply>\n<parameter=a>\n6\n</parameter>\n<parameter=b>\n7.5\n</parameter>\n</function>\n</tool_call>"
	_, calls, _ := replyWith(t, "qwen3_coder", multiplyTools, false, reply)
	if want := `[{"id":"ID","type":"function","function":{"name":"multiply","arguments":"{\"a\": 6, \"b\": 7.5}"}}]`; calls != want {
		t.Errorf("typed: %s, want %s", calls, want)
	}
	_, calls, _ = replyWith(t, "qwen3_coder", "", false, reply)
	if want := `[{"id":"ID","type":"function","function":{"name":"multiply","arguments":"{\"a\": \"6\", \"b\": \"7.5\"}"}}]`; calls != want {
		t.Errorf("untyped: %s, want %s", calls, want)
	}
}

func TestToolParserFor(t *testing.T) {
	qwen := "<tool_call>\n<function="
	for cfg, want := range map[string]string{
		"":                                   "qwen3_coder", // no tokenizer_config.json
		`{"eos_token": "x"}`:                 "qwen3_coder",
		`{"tool_parser_type": "glm47"}`:      "glm47",
		`{"tool_parser_type": null}`:         "",
		`{"tool_parser_type": "json_tools"}`: "json_tools",
	} {
		dir := t.TempDir()
		if cfg != "" {
			if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := ToolParserFor(dir, qwen)
		if err != nil || got != want {
			t.Errorf("config %s: %q, %v; want %q", cfg, got, err, want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"tool_parser_type": 3}`), 0o644)
	if _, err := ToolParserFor(dir, qwen); err == nil {
		t.Error("a non-string tool_parser_type is an error")
	}
}
