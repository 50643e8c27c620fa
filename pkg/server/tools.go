package server

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// InferToolParser names the tool-call format of a chat template as mlx_lm's
// _infer_tool_parser does ("" when it recognises none). mlxgo parses
// "json_tools" replies; ToolParserSupported tells.
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

// ToolParserSupported reports whether mlxgo parses replies in this format.
func ToolParserSupported(name string) bool { return name == "json_tools" }

// toolMarkers are the start and end of a tool call in a format's replies.
func toolMarkers(name string) (start, end string) {
	if name == "json_tools" {
		return "<tool_call>", "</tool_call>"
	}
	return "", ""
}

// formatToolCalls parses tool-call texts as mlx_lm's json_tools parser and
// ToolCallFormatter do: each text is a JSON object (or a list of them) with
// "name" and "arguments"; the arguments become a JSON string, "id" is kept or
// made up, and in a stream each call gets an "index". Texts that do not
// parse are dropped with a warning, as mlx_lm does.
func (c *completion) formatToolCalls(texts []string) []json.RawMessage {
	var out []json.RawMessage
	for _, text := range texts {
		calls, err := parseJSONToolCall(text)
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

// parseJSONToolCall reads one tool call text: an object or a list of
// objects, each with "arguments" turned into Python's json.dumps of them.
func parseJSONToolCall(text string) ([]orderedObject, error) {
	text = strings.TrimSpace(text)
	var calls []orderedObject
	if strings.HasPrefix(text, "[") {
		if err := json.Unmarshal([]byte(text), &calls); err != nil {
			return nil, err
		}
	} else {
		var one orderedObject
		if err := json.Unmarshal([]byte(text), &one); err != nil {
			return nil, err
		}
		calls = []orderedObject{one}
	}
	for i := range calls {
		args, ok := calls[i].get("arguments")
		if !ok {
			return nil, fmt.Errorf("KeyError: 'arguments'")
		}
		v, err := pyjson.Decode(args)
		if err != nil {
			return nil, err
		}
		s, err := pyjson.Marshal(v, pyjson.Options{})
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(string(s))
		calls[i].set("arguments", b)
	}
	return calls, nil
}

func (o *orderedObject) remove(key string) {
	for i := range *o {
		if (*o)[i].key == key {
			*o = append((*o)[:i], (*o)[i+1:]...)
			return
		}
	}
}
