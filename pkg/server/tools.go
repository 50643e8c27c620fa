package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// InferToolParser names the tool-call format of a chat template as mlx_lm's
// _infer_tool_parser does ("" when it recognises none). mlxgo parses
// replies in each of these formats (ToolParserSupported).
func InferToolParser(template string) string {
	switch {
	case strings.Contains(template, "<minimax:tool_call>"):
		return "minimax_m2"
	case strings.Contains(template, "<|tool_call>") && strings.Contains(template, "<tool_call|>"):
		return "gemma4"
	case strings.Contains(template, "<start_function_call>"):
		return "function_gemma"
	case strings.Contains(template, "<longcat_tool_call>"):
		return "longcat"
	case strings.Contains(template, "<arg_key>"):
		return "glm47"
	case strings.Contains(template, "<|tool_list_start|>"):
		return "pythonic"
	case strings.Contains(template, `<tool_call>\n<function=`) || strings.Contains(template, "<tool_call>\n<function="):
		return "qwen3_coder"
	case strings.Contains(template, "<|tool_calls_section_begin|>"):
		return "kimi_k2"
	case strings.Contains(template, "[TOOL_CALLS]"):
		return "mistral"
	case strings.Contains(template, "<tool_call>") && strings.Contains(template, "tool_call.name"):
		return "json_tools"
	}
	return ""
}

// ToolParserFor picks a model's tool-call format as mlx_lm's tokenizer
// loading does: tokenizer_config.json's "tool_parser_type" when the file
// has that member (null: none), else InferToolParser(template).
func ToolParserFor(modelDir, template string) (string, error) {
	b, err := os.ReadFile(filepath.Join(modelDir, "tokenizer_config.json"))
	if err == nil {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(b, &cfg); err != nil {
			return "", fmt.Errorf("tokenizer_config.json: %w", err)
		}
		if v, ok := cfg["tool_parser_type"]; ok {
			var name *string
			if err := json.Unmarshal(v, &name); err != nil {
				return "", fmt.Errorf("tokenizer_config.json: tool_parser_type: %w", err)
			}
			if name == nil {
				return "", nil
			}
			return *name, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return InferToolParser(template), nil
}

// toolParser is one of mlx_lm's tool_parsers modules: the markers around a
// call in a reply (end == "": the call runs to the end of the reply) and
// parse_tool_call, which reads a call's text (with the request's tools,
// decoded by pyjson) into one or more call dicts with "name", "arguments"
// and maybe "id".
type toolParser struct {
	start, end string
	parse      func(text string, tools any) ([]*pyjson.Object, error)
}

var toolParsers = map[string]toolParser{
	"json_tools":     {"<tool_call>", "</tool_call>", parseJSONTools},
	"qwen3_coder":    {"<tool_call>", "</tool_call>", parseQwen3Coder},
	"mistral":        {"[TOOL_CALLS]", "", parseMistral},
	"pythonic":       {"<|tool_call_start|>", "<|tool_call_end|>", parsePythonic},
	"function_gemma": {"<start_function_call>", "<end_function_call>", parseFunctionGemma},
	"gemma4":         {"<|tool_call>", "<tool_call|>", parseGemma4},
	"kimi_k2":        {"<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", parseKimiK2},
	"minimax_m2":     {"<minimax:tool_call>", "</minimax:tool_call>", parseMinimaxM2},
	"longcat":        {"<longcat_tool_call>", "</longcat_tool_call>", parseLongcat},
	"glm47":          {"<tool_call>", "</tool_call>", parseGLM47},
}

// ToolParserSupported reports whether mlxgo parses replies in this format.
func ToolParserSupported(name string) bool {
	_, ok := toolParsers[name]
	return ok
}

// toolMarkers are the start and end of a tool call in a format's replies.
func toolMarkers(name string) (start, end string) {
	p := toolParsers[name]
	return p.start, p.end
}

// one wraps a single parsed call.
func one(o *pyjson.Object) []*pyjson.Object { return []*pyjson.Object{o} }

// call is the dict(name=..., arguments=...) the parsers return.
func call(name string, args any) *pyjson.Object {
	o := pyjson.NewObject()
	o.Set("name", name)
	o.Set("arguments", args)
	return o
}

// formatToolCalls parses tool-call texts as mlx_lm's ToolCallFormatter
// does: each text goes through the format's parser; a call's arguments
// become json.dumps of them (ensure_ascii=False), "id" is kept or made up,
// and in a stream each call gets an "index". Texts that do not parse are
// dropped with a warning, as mlx_lm does.
func (c *completion) formatToolCalls(texts []string) []json.RawMessage {
	var out []json.RawMessage
	if len(texts) == 0 {
		return nil
	}
	p, ok := toolParsers[c.lm.ToolParser]
	if !ok {
		return nil
	}
	if !c.toolsDecoded {
		c.toolsDecoded = true
		if len(c.rq.tools) > 0 {
			c.tools, _ = pyjson.Decode(c.rq.tools)
		}
	}
	for _, text := range texts {
		calls, err := formatCalls(p, text, c.tools)
		if err != nil {
			c.s.log.Warn(fmt.Sprintf("Failed to parse tool call (%v) — tool text was likely truncated mid-generation.", err))
			continue
		}
		for _, fn := range calls {
			id := uuid4()
			if v, ok := fn.get("id"); ok {
				var s string
				if json.Unmarshal(v, &s) == nil && s != "" {
					id = s
				}
				fn.remove("id")
			}
			call := orderedObject{}
			b, _ := json.Marshal(fn)
			call.set("function", b)
			call.set("type", json.RawMessage(`"function"`))
			idJSON, _ := json.Marshal(id)
			call.set("id", idJSON)
			if c.rq.stream {
				call.set("index", json.RawMessage(fmt.Sprint(c.toolIndex)))
				c.toolIndex++
			}
			b, _ = json.Marshal(call)
			out = append(out, b)
		}
	}
	return out
}

// formatCalls parses one call text and turns each call's arguments into
// their JSON string; any failure drops the whole text.
func formatCalls(p toolParser, text string, tools any) ([]orderedObject, error) {
	calls, err := p.parse(text, tools)
	if err != nil {
		return nil, err
	}
	var out []orderedObject
	for _, fn := range calls {
		if _, ok := fn.Get("arguments"); !ok {
			return nil, fmt.Errorf("KeyError: 'arguments'")
		}
		var o orderedObject
		for _, k := range fn.Keys {
			v := fn.Values[k]
			var b []byte
			if k == "arguments" {
				s, err := pyDumps(v)
				if err != nil {
					return nil, err
				}
				b, _ = json.Marshal(s)
			} else {
				if b, err = pyjson.Marshal(v, pyjson.Options{}); err != nil {
					return nil, err
				}
			}
			o.set(k, b)
		}
		out = append(out, o)
	}
	return out, nil
}

// parseJSONTools is json_tools' parser: json.loads of the text, an object
// or a list of them.
func parseJSONTools(text string, _ any) ([]*pyjson.Object, error) {
	v, err := pyJSONLoads(strings.TrimSpace(text), true)
	if err != nil {
		return nil, err
	}
	return callList(v)
}

// callList takes a parsed dict or list of dicts.
func callList(v any) ([]*pyjson.Object, error) {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	var out []*pyjson.Object
	for _, e := range list {
		o, ok := e.(*pyjson.Object)
		if !ok {
			return nil, fmt.Errorf("tool call is a %T, not an object", e)
		}
		out = append(out, o)
	}
	return out, nil
}

func (o *orderedObject) remove(key string) {
	for i := range *o {
		if (*o)[i].key == key {
			*o = append((*o)[:i], (*o)[i+1:]...)
			return
		}
	}
}
