// Package sample turns a model's next-token scores into a token, the way
// mlx_lm's sample_utils does: logits processors (logit bias, repetition,
// presence and frequency penalties) edit raw logits given the token history;
// the logits are normalised to log-probabilities; then the sampler's filters
// run in mlx_lm's fixed order (top-p, min-p, XTC, top-k) on the untempered
// log-probabilities, and the token is drawn from softmax(logprobs / temp).
// temp == 0 is argmax.
//
// Everything works on one row of scores, []float32 of length V (vocabulary).
package sample

import (
	"fmt"
	"github.com/mlxgo/mlxgo/pkg/kernels"
	"math"
	"math/rand/v2"
	"sort"
)

// Options are the sampler settings, with mlx_lm's names and meanings.
type Options struct {
	Temp            float64 // 0 means greedy (argmax)
	TopP            float64 // active when 0 < TopP < 1
	MinP            float64 // active when != 0; in [0, 1]
	MinTokensToKeep int     // for min-p; at least 1 (0 is taken as 1)
	TopK            int     // active when > 0; must be < V
	XTCProbability  float64 // in [0, 1]; active when > 0
	XTCThreshold    float64 // in [0, 0.5]
	// XTCSpecialTokens are never removed by XTC (mlx_lm passes newline and EOS ids).
	XTCSpecialTokens []int
	// Seed seeds the random source; nil draws a random seed.
	Seed *uint64
}

// Sampler draws one token from a row of log-probabilities.
type Sampler struct {
	opts Options
	rng  *rand.Rand
	buf  []float32
	idx  []int
}

// New validates opts as mlx_lm does and returns a sampler.
func New(opts Options) (*Sampler, error) {
	if opts.Temp < 0 {
		return nil, fmt.Errorf("temp must be >= 0, got %g", opts.Temp)
	}
	if opts.MinTokensToKeep == 0 {
		opts.MinTokensToKeep = 1
	}
	if opts.MinP != 0 && !(opts.MinP >= 0 && opts.MinP <= 1) {
		return nil, fmt.Errorf("min-p has to be a float in the [0, 1] interval, but is %g", opts.MinP)
	}
	if opts.MinTokensToKeep < 1 {
		return nil, fmt.Errorf("min-tokens-to-keep has to be a positive integer, but is %d", opts.MinTokensToKeep)
	}
	if opts.TopK < 0 {
		return nil, fmt.Errorf("top-k has to be >= 0 (0 turns it off), but is %d", opts.TopK)
	}
	if opts.XTCProbability > 0 {
		if !(opts.XTCThreshold >= 0 && opts.XTCThreshold <= 0.5) {
			return nil, fmt.Errorf("xtc-threshold has to be a float in the [0, 0.5] interval, but is %g", opts.XTCThreshold)
		}
		if opts.XTCProbability > 1 {
			return nil, fmt.Errorf("xtc-probability has to be a float in the [0, 1] interval, but is %g", opts.XTCProbability)
		}
	}
	var seed uint64
	if opts.Seed != nil {
		seed = *opts.Seed
	} else {
		seed = rand.Uint64()
	}
	return &Sampler{opts: opts, rng: rand.New(rand.NewPCG(seed, 0x6d6c78676f))}, nil
}

// Greedy reports whether the sampler is argmax.
func (s *Sampler) Greedy() bool { return s.opts.Temp == 0 }

// Sample returns a token id drawn from logprobs [V]. logprobs is not modified.
func (s *Sampler) Sample(logprobs []float32) (int, error) {
	if len(logprobs) == 0 {
		return 0, fmt.Errorf("sample: empty logprobs")
	}
	if s.opts.Temp == 0 {
		return Argmax(logprobs), nil
	}
	lp := append(s.buf[:0], logprobs...)
	s.buf = lp
	o := s.opts
	if o.TopP > 0 && o.TopP < 1 {
		s.topP(lp, o.TopP)
	}
	if o.MinP != 0 {
		s.minP(lp, o.MinP, o.MinTokensToKeep)
	}
	if o.XTCProbability > 0 {
		s.xtc(lp, o.XTCProbability, o.XTCThreshold, o.XTCSpecialTokens)
	}
	if o.TopK > 0 {
		if o.TopK >= len(lp) {
			return 0, fmt.Errorf("top-k has to be an integer in the (0, %d) interval, but is %d", len(lp), o.TopK)
		}
		s.topK(lp, o.TopK)
	}
	return s.categorical(lp, 1/o.Temp), nil
}

// Argmax returns the index of the largest value (the first one on ties).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// LogSoftmax turns logits into log-probabilities in place: x - logsumexp(x).
func LogSoftmax(x []float32) {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	if math.IsInf(float64(m), -1) {
		return
	}
	// Σ e^(x−m) on the SIMD kernel where there is one (a decode step's
	// vocabulary of 150k: ~0.1 ms instead of ~1.5 ms), float64 otherwise.
	sum, ok := kernels.ExpSum(x, m)
	if !ok {
		sum = 0
		for _, v := range x {
			sum += math.Exp(float64(v - m))
		}
	}
	lse := m + float32(math.Log(sum))
	for i := range x {
		x[i] -= lse
	}
}

var negInf = float32(math.Inf(-1))

// sortedAscending returns the indices of lp ordered by ascending value.
func (s *Sampler) sortedAscending(lp []float32) []int {
	idx := s.idx[:0]
	for i := range lp {
		idx = append(idx, i)
	}
	s.idx = idx
	sort.SliceStable(idx, func(a, b int) bool { return lp[idx[a]] < lp[idx[b]] })
	return idx
}

// topP keeps tokens whose cumulative probability, summed in ascending order,
// exceeds 1 - p (transformers' rule, as mlx_lm apply_top_p).
func (s *Sampler) topP(lp []float32, p float64) {
	idx := s.sortedAscending(lp)
	var cum float32
	for _, i := range idx {
		cum += float32(math.Exp(float64(lp[i])))
		if !(cum > float32(1-p)) {
			lp[i] = negInf
		}
	}
}

// minP drops tokens with logprob < max + ln(minP), keeping at least keep
// tokens (the most likely ones).
func (s *Sampler) minP(lp []float32, minP float64, keep int) {
	top := negInf
	for _, v := range lp {
		top = max(top, v)
	}
	thresh := top + float32(math.Log(minP))
	var protect []int
	if keep > 1 {
		idx := s.sortedAscending(lp)
		protect = idx[max(0, len(idx)-keep):]
	}
	saved := make([]float32, len(protect))
	for j, i := range protect {
		saved[j] = lp[i]
	}
	for i, v := range lp {
		if v < thresh {
			lp[i] = negInf
		}
	}
	for j, i := range protect {
		lp[i] = saved[j]
	}
}

// xtc ("exclude top choices"): with probability prob, removes every token
// whose probability is above the smallest probability that exceeds threshold,
// sparing the special tokens.
func (s *Sampler) xtc(lp []float32, prob, threshold float64, special []int) {
	if s.rng.Float64() > prob {
		return
	}
	probs := softmax(lp)
	minAbove := math.Inf(1)
	for _, p := range probs {
		if p > threshold && p < minAbove {
			minAbove = p
		}
	}
	spared := make(map[int]bool, len(special))
	for _, t := range special {
		spared[t] = true
	}
	for i, p := range probs {
		if p > minAbove && !spared[i] {
			lp[i] = negInf
		}
	}
}

// topK keeps the k most likely tokens.
func (s *Sampler) topK(lp []float32, k int) {
	idx := s.sortedAscending(lp)
	for _, i := range idx[:len(idx)-k] {
		lp[i] = negInf
	}
}

func softmax(lp []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range lp {
		m = math.Max(m, float64(v))
	}
	out := make([]float64, len(lp))
	var sum float64
	for i, v := range lp {
		out[i] = math.Exp(float64(v) - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// categorical draws from softmax(lp * scale) with the Gumbel-max trick, as
// mx.random.categorical does: argmax(lp*scale + g), g ~ Gumbel(0, 1).
func (s *Sampler) categorical(lp []float32, scale float64) int {
	best, bestV := 0, math.Inf(-1)
	for i, v := range lp {
		if math.IsInf(float64(v), -1) {
			continue
		}
		u := s.rng.Float64()
		for u == 0 {
			u = s.rng.Float64()
		}
		g := -math.Log(-math.Log(u))
		if x := float64(v)*scale + g; x > bestV {
			best, bestV = i, x
		}
	}
	return best
}
