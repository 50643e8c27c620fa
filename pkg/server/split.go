package server

import "strings"

// Text states of a reply, as mlx_lm's TextStateMachine names them.
const (
	stateNormal    = "normal"
	stateReasoning = "reasoning"
	stateTool      = "tool"
	// toolEnd is the piece that marks the end of a tool call's text.
	toolEnd = "tool_end"
)

// piece is text generated in one state.
type piece struct {
	state, text string
}

// edge is a marker that, found in the text of a state, is cut out and moves
// to the state to (to == "": a stop sequence, which ends the reply).
type edge struct {
	marker, to string
}

// splitter follows the decoded text of a reply as mlx_lm's server does:
// stop sequences end it and are cut out, and with a thinking model
// <think>...</think> moves text between the "normal" and "reasoning"
// states. Text that may be the start of a marker is held back until the
// next segment tells. Unlike mlx_lm, which matches stop sequences on the
// token ids they encode to, a stop sequence is found in the text however it
// was tokenized.
type splitter struct {
	state string
	edges map[string][]edge
	buf   string
}

func newSplitter(stops []string) *splitter {
	sp := &splitter{state: stateNormal, edges: map[string][]edge{}}
	for _, w := range stops {
		sp.edges[stateNormal] = append(sp.edges[stateNormal], edge{w, ""})
	}
	return sp
}

// addThinking adds the <think> and </think> transitions; stop sequences
// apply in both states.
func (sp *splitter) addThinking() {
	stops := sp.edges[stateNormal]
	sp.edges[stateNormal] = append([]edge{{"<think>", stateReasoning}}, stops...)
	sp.edges[stateReasoning] = append([]edge{{"</think>", stateNormal}}, stops...)
}

// addTools adds the tool-call markers: from normal (and reasoning) text
// start begins a tool call, which end finishes (end == "": the call runs to
// the end of the reply).
func (sp *splitter) addTools(start, end string) {
	for _, st := range []string{stateNormal, stateReasoning} {
		if st == stateReasoning && sp.edges[stateReasoning] == nil {
			continue
		}
		sp.edges[st] = append([]edge{{start, stateTool}}, sp.edges[st]...)
	}
	var stops []edge
	for _, e := range sp.edges[stateNormal] {
		if e.to == "" {
			stops = append(stops, e)
		}
	}
	if end != "" {
		sp.edges[stateTool] = append([]edge{{end, stateNormal}}, stops...)
	} else {
		sp.edges[stateTool] = stops
	}
}

// step takes the next text segment and returns the text that is known not
// to be part of a marker, and whether a stop sequence was found.
func (sp *splitter) step(text string) ([]piece, bool) {
	sp.buf += text
	var out []piece
	add := func(s string) {
		if s == "" {
			return
		}
		if n := len(out); n > 0 && out[n-1].state == sp.state {
			out[n-1].text += s
			return
		}
		out = append(out, piece{sp.state, s})
	}
	for {
		at, which := -1, edge{}
		for _, e := range sp.edges[sp.state] {
			if i := strings.Index(sp.buf, e.marker); i >= 0 && (at < 0 || i < at || i == at && len(e.marker) > len(which.marker)) {
				at, which = i, e
			}
		}
		if at < 0 {
			break
		}
		add(sp.buf[:at])
		sp.buf = sp.buf[at+len(which.marker):]
		if which.to == "" {
			sp.buf = ""
			return out, true
		}
		if sp.state == stateTool {
			out = append(out, piece{toolEnd, ""})
		}
		sp.state = which.to
	}
	hold := 0
	for _, e := range sp.edges[sp.state] {
		for n := min(len(e.marker)-1, len(sp.buf)); n > hold; n-- {
			if strings.HasSuffix(sp.buf, e.marker[:n]) {
				hold = n
				break
			}
		}
	}
	add(sp.buf[:len(sp.buf)-hold])
	sp.buf = sp.buf[len(sp.buf)-hold:]
	return out, false
}

// flush returns the text held back, at the end of the reply.
func (sp *splitter) flush() []piece {
	if sp.buf == "" {
		return nil
	}
	p := []piece{{sp.state, sp.buf}}
	sp.buf = ""
	return p
}
