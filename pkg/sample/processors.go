package sample

import "fmt"

// Processor edits a row of raw logits [V] in place, given the token history
// (prompt and generated tokens so far).
type Processor func(history []int, logits []float32)

// ProcessorOptions are mlx_lm's make_logits_processors settings. A zero or
// nil penalty is off; context sizes of 0 mean mlx_lm's default of 20.
type ProcessorOptions struct {
	LogitBias             map[int]float32
	RepetitionPenalty     float64
	RepetitionContextSize int
	PresencePenalty       float64
	PresenceContextSize   int
	FrequencyPenalty      float64
	FrequencyContextSize  int
}

const defaultContextSize = 20

// NewProcessors builds the processors in mlx_lm's order: logit bias,
// repetition penalty, presence penalty, frequency penalty.
func NewProcessors(o ProcessorOptions) ([]Processor, error) {
	var ps []Processor
	if len(o.LogitBias) > 0 {
		bias := o.LogitBias
		ps = append(ps, func(_ []int, logits []float32) {
			for id, b := range bias {
				if id >= 0 && id < len(logits) {
					logits[id] += b
				}
			}
		})
	}
	if o.RepetitionPenalty != 0 {
		if o.RepetitionPenalty < 0 {
			return nil, fmt.Errorf("repetition penalty must be a non-negative float, got %g", o.RepetitionPenalty)
		}
		pen := float32(o.RepetitionPenalty)
		n := contextSize(o.RepetitionContextSize)
		ps = append(ps, func(history []int, logits []float32) {
			// Each distinct token is penalised once (CTRL, as mlx_lm's gather-then-set).
			for _, t := range distinct(lastN(history, n)) {
				if t < 0 || t >= len(logits) {
					continue
				}
				if logits[t] < 0 {
					logits[t] *= pen
				} else {
					logits[t] /= pen
				}
			}
		})
	}
	if o.PresencePenalty != 0 {
		pen := float32(o.PresencePenalty)
		n := contextSize(o.PresenceContextSize)
		ps = append(ps, func(history []int, logits []float32) {
			for _, t := range distinct(lastN(history, n)) {
				if t >= 0 && t < len(logits) {
					logits[t] -= pen
				}
			}
		})
	}
	if o.FrequencyPenalty != 0 {
		pen := float32(o.FrequencyPenalty)
		n := contextSize(o.FrequencyContextSize)
		ps = append(ps, func(history []int, logits []float32) {
			for _, t := range lastN(history, n) {
				if t >= 0 && t < len(logits) {
					logits[t] -= pen
				}
			}
		})
	}
	return ps, nil
}

func contextSize(n int) int {
	if n <= 0 {
		return defaultContextSize
	}
	return n
}

func lastN(h []int, n int) []int {
	if len(h) > n {
		return h[len(h)-n:]
	}
	return h
}

func distinct(ts []int) []int {
	seen := make(map[int]bool, len(ts))
	out := make([]int, 0, len(ts))
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
