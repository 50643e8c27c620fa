package generate

import (
	"fmt"

	"github.com/mlxgo/mlxgo/pkg/model"
)

// nextSpeculative is mlx_lm's speculative_generate_step: the draft model
// proposes up to NumDraftTokens tokens one at a time, the main model scores
// them all in one call, and draft tokens are accepted while the main model's
// sampled token equals them (exact match, not rejection sampling); the first
// mismatch is replaced by the main model's token. Both caches are trimmed
// back to the accepted tokens.
func (g *Generator) nextSpeculative() (Token, error) {
	if len(g.queue) > 0 {
		t := g.queue[0]
		g.queue = g.queue[1:]
		return t, nil
	}
	if !g.started {
		g.started = true
		if err := g.prefill(g.o.Draft, g.draftCaches, &g.draftPending, 1); err != nil {
			return Token{}, fmt.Errorf("draft model: %w", err)
		}
		if err := g.prefill(g.m, g.caches, &g.pending, 1); err != nil {
			return Token{}, err
		}
	}
	numDraft := g.o.NumDraftTokens
	if g.o.MaxTokens >= 0 {
		numDraft = min(numDraft, g.o.MaxTokens-g.n)
	}

	// Draft: each step feeds the previous token and samples the next.
	// history is the prompt, the accepted tokens and the drafts so far.
	history := g.history
	drafts := make([]int, 0, numDraft)
	for range numDraft {
		rows, err := forwardRows(g.o.Draft, g.draftCaches, g.draftPending, 1, nil)
		if err != nil {
			return Token{}, fmt.Errorf("draft model: %w", err)
		}
		t, err := g.sample(rows[0], history)
		if err != nil {
			return Token{}, err
		}
		drafts = append(drafts, t.ID)
		history = append(history[:len(history):len(history)], t.ID)
		g.draftPending = append(g.draftPending[:0], t.ID)
	}

	// Verify: the main model sees its pending token and every draft and
	// predicts numDraft+1 positions.
	input := append(append([]int(nil), g.pending...), drafts...)
	rows, err := forwardRows(g.m, g.caches, input, numDraft+1, nil)
	if err != nil {
		return Token{}, err
	}
	out := make([]Token, 0, numDraft+1)
	n := 0
	for ; n <= numDraft; n++ {
		h := append(g.history[:len(g.history):len(g.history)], drafts[:n]...)
		t, err := g.sample(rows[n], h)
		if err != nil {
			return Token{}, err
		}
		if n < numDraft && t.ID == drafts[n] {
			t.FromDraft = true
			out = append(out, t)
			continue
		}
		out = append(out, t)
		break
	}
	if n > numDraft {
		n = numDraft // every draft accepted, and the main model's extra token
	}
	if g.o.MaxTokens >= 0 && g.n+len(out) > g.o.MaxTokens {
		out = out[:g.o.MaxTokens-g.n]
	}
	last := out[len(out)-1].ID

	// Rewind: the main model consumed pending + numDraft drafts, of which
	// the first n drafts stand; the draft model consumed its pending and
	// drafts[:numDraft-1], of which drafts[:n] stand.
	if k := numDraft - n; k > 0 {
		if got := trim(g.caches, k); got != k {
			return Token{}, fmt.Errorf("generate: trimming the main cache by %d tokens trimmed %d", k, got)
		}
	}
	if k := numDraft - n - 1; k > 0 {
		if got := trim(g.draftCaches, k); got != k {
			return Token{}, fmt.Errorf("generate: trimming the draft cache by %d tokens trimmed %d", k, got)
		}
	}
	g.pending = append(g.pending[:0], last)
	if n == numDraft && numDraft > 0 {
		// The last draft token was sampled but never fed to the draft model.
		g.draftPending = append(g.draftPending[:0], drafts[numDraft-1], last)
	} else {
		g.draftPending = append(g.draftPending[:0], last)
	}
	g.queue = out[1:]
	return out[0], nil
}

// trim drops the last n tokens of every cache and returns the least any
// cache dropped.
func trim(caches []model.Cache, n int) int {
	least := n
	for _, c := range caches {
		least = min(least, c.Trim(n))
	}
	return least
}
