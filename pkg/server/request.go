package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// request is a parsed and validated completion request, with mlx_lm's
// defaults filled in.
type request struct {
	chat bool
	// chat: the messages (content lists joined, tool-call arguments
	// parsed), tools and role_mapping; text: prompt, as text or token ids.
	messages    json.RawMessage
	lastRole    string
	tools       json.RawMessage
	roleMapping map[string]string
	prompt      string
	promptIDs   []int

	stream       bool
	includeUsage bool
	model        string // as sent; "default_model" when absent
	adapter      string
	draftModel   string
	maxTokens    int
	numDraft     int

	temp, topP, minP          float64
	topK                      int
	xtcProbability, xtcThresh float64
	repetitionPenalty         float64
	repetitionContext         int
	presencePenalty           float64
	presenceContext           int
	frequencyPenalty          float64
	frequencyContext          int
	logitBias                 map[int]float32
	logprobs                  bool
	topLogprobs               int
	seed                      *uint64
	stop                      []string
	templateKwargs            map[string]json.RawMessage
}

// badRequest is a request error answered with HTTP 400.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, a ...any) error { return &badRequest{fmt.Sprintf(format, a...)} }

// fields reads the request body's members; a null member counts as absent.
type fields map[string]json.RawMessage

func (f fields) get(name string) (json.RawMessage, bool) {
	v, ok := f[name]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

func kind(v json.RawMessage) string {
	switch v[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 'n':
		return "null"
	}
	return "a number"
}

func (f fields) boolean(name string, def bool) (bool, error) {
	v, ok := f.get(name)
	if !ok {
		return def, nil
	}
	var b bool
	if v[0] != 't' && v[0] != 'f' || json.Unmarshal(v, &b) != nil {
		return false, badf("%s must be a boolean, got %s", name, kind(v))
	}
	return b, nil
}

func (f fields) str(name, def string) (string, error) {
	v, ok := f.get(name)
	if !ok {
		return def, nil
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", badf("%s must be a string, got %s", name, kind(v))
	}
	return s, nil
}

// integer reads an integer in [lo, hi] (hi < lo: no upper bound); a number
// with a fraction or exponent is refused, as Python's isinstance(x, int).
func (f fields) integer(name string, def, lo, hi int) (int, error) {
	v, ok := f.get(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || n > math.MaxInt32 || n < math.MinInt32 {
		if kind(v) == "a number" && !bytes.ContainsAny(v, ".eE") {
			return 0, badf("%s is out of range: %s", name, v)
		}
		return 0, badf("%s must be an integer, got %s", name, kindOrValue(v))
	}
	if int(n) < lo {
		return 0, badf("%s must be at least %d, got %d", name, lo, n)
	}
	if hi >= lo && int(n) > hi {
		return 0, badf("%s must be at most %d, got %d", name, hi, n)
	}
	return int(n), nil
}

// number reads a number in [lo, hi] (NaN bounds: none).
func (f fields) number(name string, def, lo, hi float64) (float64, error) {
	v, ok := f.get(name)
	if !ok {
		return def, nil
	}
	var x float64
	if kind(v) != "a number" || json.Unmarshal(v, &x) != nil {
		return 0, badf("%s must be a number, got %s", name, kind(v))
	}
	if x < lo {
		return 0, badf("%s must be at least %g, got %g", name, lo, x)
	}
	if x > hi {
		return 0, badf("%s must be at most %g, got %g", name, hi, x)
	}
	return x, nil
}

func kindOrValue(v json.RawMessage) string {
	if kind(v) == "a number" {
		return string(v)
	}
	return kind(v)
}

// parseRequest reads a completion request body as mlx_lm's do_POST and
// validate_model_parameters do; d holds the server defaults.
func parseRequest(body []byte, chat bool, d *Options) (*request, error) {
	var f fields
	if err := json.Unmarshal(body, &f); err != nil {
		var any any
		if json.Unmarshal(body, &any) == nil {
			return nil, badf("Request should be a JSON dictionary")
		}
		return nil, badf("Invalid JSON in request body: %v", err)
	}
	if f == nil {
		return nil, badf("Request should be a JSON dictionary")
	}
	rq := &request{chat: chat}
	var err error
	inf := math.Inf(1)
	check := func(e error) {
		if err == nil {
			err = e
		}
	}
	var e error
	rq.stream, e = f.boolean("stream", false)
	check(e)
	if v, ok := f.get("stream_options"); ok {
		var so map[string]json.RawMessage
		if json.Unmarshal(v, &so) != nil || so == nil {
			check(badf("stream_options must be an object, got %s", kind(v)))
		} else {
			rq.includeUsage, e = fields(so).boolean("include_usage", false)
			if e != nil {
				check(badf("stream_options.%s", e))
			}
		}
	}
	rq.model, e = f.str("model", "default_model")
	check(e)
	rq.draftModel, e = f.str("draft_model", "default_model")
	check(e)
	rq.adapter, e = f.str("adapters", "")
	check(e)
	rq.numDraft, e = f.integer("num_draft_tokens", d.NumDraftTokens, 1, 0)
	check(e)
	rq.maxTokens, e = f.integer("max_tokens", d.MaxTokens, 0, -1)
	check(e)
	if _, ok := f.get("max_completion_tokens"); ok {
		rq.maxTokens, e = f.integer("max_completion_tokens", 0, 0, -1)
		check(e)
	}
	rq.temp, e = f.number("temperature", d.Temp, 0, inf)
	check(e)
	rq.topP, e = f.number("top_p", d.TopP, 0, 1)
	check(e)
	rq.topK, e = f.integer("top_k", d.TopK, 0, -1)
	check(e)
	rq.minP, e = f.number("min_p", d.MinP, 0, 1)
	check(e)
	rq.repetitionPenalty, e = f.number("repetition_penalty", 0, 0, inf)
	check(e)
	rq.repetitionContext, e = f.integer("repetition_context_size", 20, 0, -1)
	check(e)
	rq.presencePenalty, e = f.number("presence_penalty", 0, -inf, inf)
	check(e)
	rq.presenceContext, e = f.integer("presence_context_size", 20, 0, -1)
	check(e)
	rq.frequencyPenalty, e = f.number("frequency_penalty", 0, -inf, inf)
	check(e)
	rq.frequencyContext, e = f.integer("frequency_context_size", 20, 0, -1)
	check(e)
	rq.xtcProbability, e = f.number("xtc_probability", 0, 0, 1)
	check(e)
	rq.xtcThresh, e = f.number("xtc_threshold", 0.1, 0, 0.5)
	check(e)
	rq.logprobs, e = f.boolean("logprobs", false)
	check(e)
	rq.topLogprobs, e = f.integer("top_logprobs", -1, -1, 11)
	check(e)
	if v, ok := f.get("seed"); ok {
		var n int64
		if kind(v) != "a number" || bytes.ContainsAny(v, ".eE") || json.Unmarshal(v, &n) != nil {
			check(badf("seed must be an integer, got %s", kindOrValue(v)))
		} else {
			s := uint64(n)
			rq.seed = &s
		}
	}
	if v, ok := f.get("logit_bias"); ok {
		var raw map[string]float64
		if json.Unmarshal(v, &raw) != nil || raw == nil {
			check(badf("logit_bias must be a dict of int to float"))
		} else {
			rq.logitBias = map[int]float32{}
			for k, b := range raw {
				id, err := strconv.Atoi(k)
				if err != nil || id < 0 {
					check(badf("logit_bias must be a dict of int to float: key %q is not a token id", k))
					break
				}
				rq.logitBias[id] = float32(b)
			}
		}
	}
	if v, ok := f.get("chat_template_kwargs"); ok {
		if json.Unmarshal(v, &rq.templateKwargs) != nil || rq.templateKwargs == nil {
			check(badf("chat_template_kwargs must be an object, got %s", kind(v)))
		}
	}
	if v, ok := f.get("stop"); ok {
		var one string
		switch {
		case json.Unmarshal(v, &one) == nil:
			if one != "" {
				rq.stop = []string{one}
			}
		case json.Unmarshal(v, &rq.stop) == nil:
			rq.stop = slicesDeleteEmpty(rq.stop)
		default:
			check(badf("stop must be a string or a list of strings, got %s", kind(v)))
		}
	}
	if err != nil {
		return nil, err
	}
	if chat {
		err = rq.parseChat(f)
	} else {
		err = rq.parseText(f)
	}
	return rq, err
}

func slicesDeleteEmpty(s []string) []string {
	out := s[:0]
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

func (rq *request) parseText(f fields) error {
	v, ok := f.get("prompt")
	if !ok {
		return badf("Request did not contain a prompt")
	}
	if json.Unmarshal(v, &rq.prompt) == nil {
		return nil
	}
	if json.Unmarshal(v, &rq.promptIDs) == nil && len(rq.promptIDs) > 0 {
		return nil
	}
	return badf("prompt must be a string (or a non-empty list of token ids), got %s", kind(v))
}

func (rq *request) parseChat(f fields) error {
	v, ok := f.get("messages")
	if !ok {
		return badf("Request did not contain messages")
	}
	var msgs []json.RawMessage
	if json.Unmarshal(v, &msgs) != nil {
		return badf("messages must be a list of message objects, got %s", kind(v))
	}
	if len(msgs) == 0 {
		return badf("messages must not be empty")
	}
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		pm, role, err := processMessage(m)
		if err != nil {
			return badf("messages[%d]%s", i, err)
		}
		out[i], rq.lastRole = pm, role
	}
	rq.messages, _ = json.Marshal(out)
	if t, ok := f.get("tools"); ok {
		var list []json.RawMessage
		if json.Unmarshal(t, &list) != nil {
			return badf("tools must be a list of tool objects, got %s", kind(t))
		}
		if len(list) > 0 {
			rq.tools = t
		}
	}
	if rm, ok := f.get("role_mapping"); ok {
		if json.Unmarshal(rm, &rq.roleMapping) != nil {
			return badf("role_mapping must be an object of strings, got %s", kind(rm))
		}
	}
	return nil
}

// processMessage is mlx_lm's process_message_content for one message: a
// content list of text parts is joined, null content becomes "", and
// tool_calls' string arguments are parsed into objects. The other members
// and their order are kept (templates may iterate over them).
func processMessage(m json.RawMessage) (json.RawMessage, string, error) {
	var obj orderedObject
	if err := json.Unmarshal(m, &obj); err != nil {
		return nil, "", fmt.Errorf(" must be an object, got %s", kind(m))
	}
	var role string
	rv, ok := obj.get("role")
	if !ok || json.Unmarshal(rv, &role) != nil {
		return nil, "", fmt.Errorf(".role must be a string")
	}
	content, ok := obj.get("content")
	switch {
	case !ok || string(content) == "null":
		obj.set("content", json.RawMessage(`""`))
	case content[0] == '"':
	case content[0] == '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if json.Unmarshal(content, &parts) != nil {
			return nil, "", fmt.Errorf(".content must be a string or a list of content parts")
		}
		var sb strings.Builder
		for j, p := range parts {
			if p.Type != "text" || p.Text == nil {
				return nil, "", fmt.Errorf(".content[%d]: Only 'text' content type is supported.", j)
			}
			sb.WriteString(*p.Text)
		}
		b, _ := json.Marshal(sb.String())
		obj.set("content", b)
	default:
		return nil, "", fmt.Errorf(".content must be a string, a list of content parts or null, got %s", kind(content))
	}
	if tc, ok := obj.get("tool_calls"); ok && string(tc) != "null" {
		var calls []orderedObject
		if json.Unmarshal(tc, &calls) != nil {
			return nil, "", fmt.Errorf(".tool_calls must be a list of objects")
		}
		for j := range calls {
			fn, ok := calls[j].get("function")
			if !ok {
				continue
			}
			var f orderedObject
			if json.Unmarshal(fn, &f) != nil {
				return nil, "", fmt.Errorf(".tool_calls[%d].function must be an object", j)
			}
			if args, ok := f.get("arguments"); ok && args[0] == '"' {
				var s string
				json.Unmarshal(args, &s)
				if s != "" {
					if !json.Valid([]byte(s)) {
						return nil, "", fmt.Errorf(".tool_calls[%d].function.arguments is not valid JSON", j)
					}
					f.set("arguments", json.RawMessage(s))
				}
			}
			b, _ := json.Marshal(f)
			calls[j].set("function", b)
		}
		b, _ := json.Marshal(calls)
		obj.set("tool_calls", b)
	}
	b, err := json.Marshal(obj)
	return b, role, err
}

// orderedObject is a JSON object that keeps its members' order.
type orderedObject []member

type member struct {
	key string
	val json.RawMessage
}

func (o orderedObject) get(key string) (json.RawMessage, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

func (o *orderedObject) set(key string, v json.RawMessage) {
	for i := range *o {
		if (*o)[i].key == key {
			(*o)[i].val = v
			return
		}
	}
	*o = append(*o, member{key, v})
}

func (o *orderedObject) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("not an object")
	}
	*o = (*o)[:0]
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		o.set(t.(string), v)
	}
	_, err = dec.Token()
	return err
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
