package sample

import (
	"math"
	"testing"
)

func logprobsOf(probs ...float64) []float32 {
	lp := make([]float32, len(probs))
	for i, p := range probs {
		lp[i] = float32(math.Log(p))
	}
	return lp
}

func seed(s uint64) *uint64 { return &s }

// counts draws n samples and returns how often each token came up.
func counts(t *testing.T, s *Sampler, lp []float32, n int) []int {
	t.Helper()
	c := make([]int, len(lp))
	for range n {
		tok, err := s.Sample(lp)
		if err != nil {
			t.Fatal(err)
		}
		c[tok]++
	}
	return c
}

func TestGreedyIsArgmax(t *testing.T) {
	s, _ := New(Options{})
	tok, _ := s.Sample([]float32{-3, -0.5, -0.7, -2})
	if tok != 1 {
		t.Fatalf("greedy picked %d, want 1", tok)
	}
}

func TestCategoricalFollowsDistribution(t *testing.T) {
	probs := []float64{0.5, 0.3, 0.15, 0.05}
	s, _ := New(Options{Temp: 1, Seed: seed(1)})
	const n = 40000
	c := counts(t, s, logprobsOf(probs...), n)
	for i, p := range probs {
		got := float64(c[i]) / n
		sd := math.Sqrt(p * (1 - p) / n)
		if math.Abs(got-p) > 5*sd {
			t.Errorf("token %d: frequency %.4f, want %.4f ± %.4f", i, got, p, 5*sd)
		}
	}
}

func TestTemperatureSharpens(t *testing.T) {
	// softmax(lp/0.5) of probs (0.6, 0.4) is (0.36, 0.16)/0.52.
	s, _ := New(Options{Temp: 0.5, Seed: seed(2)})
	const n = 40000
	c := counts(t, s, logprobsOf(0.6, 0.4), n)
	want := 0.36 / 0.52
	got := float64(c[0]) / n
	if math.Abs(got-want) > 0.01 {
		t.Errorf("temp 0.5: P(token 0) = %.4f, want %.4f", got, want)
	}
}

func TestFiltersKeepTheRightSets(t *testing.T) {
	probs := []float64{0.05, 0.4, 0.1, 0.3, 0.15}
	cases := []struct {
		name string
		opts Options
		keep []bool
	}{
		// ascending: 0.05, 0.1, 0.15, 0.3, 0.4 -> cumulative 0.05 0.15 0.30 0.60 1.0; top-p 0.7 keeps cum > 0.3
		{"top-p", Options{TopP: 0.7}, []bool{false, true, false, true, false}},
		{"top-p keeps boundary+", Options{TopP: 0.75}, []bool{false, true, false, true, true}},
		{"min-p", Options{MinP: 0.3}, []bool{false, true, false, true, true}},
		{"min-p keep 4", Options{MinP: 0.9, MinTokensToKeep: 4}, []bool{false, true, true, true, true}},
		{"top-k", Options{TopK: 2}, []bool{false, true, false, true, false}},
		// XTC always on: tokens above threshold 0.12 are 0.4, 0.3, 0.15; all but the least likely (0.15) go.
		{"xtc", Options{XTCProbability: 1, XTCThreshold: 0.12}, []bool{true, false, true, false, true}},
		{"xtc spares special", Options{XTCProbability: 1, XTCThreshold: 0.12, XTCSpecialTokens: []int{1}}, []bool{true, true, true, false, true}},
		// order: top-p 0.75 keeps {1,3,4}, then top-k 1 keeps {1}
		{"top-p then top-k", Options{TopP: 0.75, TopK: 1}, []bool{false, true, false, false, false}},
	}
	for _, c := range cases {
		c.opts.Temp = 1
		c.opts.Seed = seed(3)
		s, err := New(c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := counts(t, s, logprobsOf(probs...), 3000)
		for i, k := range c.keep {
			if k != (got[i] > 0) {
				t.Errorf("%s: token %d sampled %d times, want kept=%v (counts %v)", c.name, i, got[i], k, got)
			}
		}
	}
}

func TestSampleLeavesInputAlone(t *testing.T) {
	lp := logprobsOf(0.5, 0.5)
	s, _ := New(Options{Temp: 1, TopK: 1, Seed: seed(4)})
	if _, err := s.Sample(lp); err != nil {
		t.Fatal(err)
	}
	if math.IsInf(float64(lp[0]), -1) || math.IsInf(float64(lp[1]), -1) {
		t.Fatalf("Sample modified its input: %v", lp)
	}
}

func TestSeedIsReproducible(t *testing.T) {
	lp := logprobsOf(0.25, 0.25, 0.25, 0.25)
	a, _ := New(Options{Temp: 1, Seed: seed(9)})
	b, _ := New(Options{Temp: 1, Seed: seed(9)})
	for i := range 50 {
		x, _ := a.Sample(lp)
		y, _ := b.Sample(lp)
		if x != y {
			t.Fatalf("draw %d differs with the same seed: %d vs %d", i, x, y)
		}
	}
}

func TestBadOptions(t *testing.T) {
	bad := []Options{
		{Temp: -1},
		{Temp: 1, MinP: 1.5},
		{Temp: 1, MinTokensToKeep: -2},
		{Temp: 1, XTCProbability: 0.5, XTCThreshold: 0.7},
		{Temp: 1, XTCProbability: 1.5, XTCThreshold: 0.1},
		{Temp: 1, TopK: -1},
	}
	for _, o := range bad {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted bad options", o)
		}
	}
	s, _ := New(Options{Temp: 1, TopK: 4})
	if _, err := s.Sample(logprobsOf(0.5, 0.5)); err == nil {
		t.Error("top-k >= vocabulary size accepted")
	}
}

func TestLogSoftmax(t *testing.T) {
	x := []float32{1, 2, 3}
	LogSoftmax(x)
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v))
	}
	if math.Abs(sum-1) > 1e-6 || math.Abs(float64(x[2]-x[0])-2) > 1e-6 {
		t.Fatalf("LogSoftmax gave %v", x)
	}
}

func TestProcessors(t *testing.T) {
	ps, err := NewProcessors(ProcessorOptions{
		LogitBias:         map[int]float32{0: 1},
		RepetitionPenalty: 2,
		PresencePenalty:   0.5,
		FrequencyPenalty:  0.25,
	})
	if err != nil {
		t.Fatal(err)
	}
	logits := []float32{1, -1, 4, 3}
	history := []int{1, 2, 2}
	for _, p := range ps {
		p(history, logits)
	}
	// token 0: bias only = 2; token 1: -1*2 -0.5 -0.25 = -2.75;
	// token 2: 4/2 - 0.5 - 2*0.25 = 1; token 3 untouched.
	want := []float32{2, -2.75, 1, 3}
	for i := range want {
		if math.Abs(float64(logits[i]-want[i])) > 1e-6 {
			t.Fatalf("logits %v, want %v", logits, want)
		}
	}
}

func TestPenaltyContextWindow(t *testing.T) {
	ps, _ := NewProcessors(ProcessorOptions{FrequencyPenalty: 1, FrequencyContextSize: 2})
	logits := []float32{0, 0, 0}
	ps[0]([]int{0, 0, 1, 2}, logits)
	if logits[0] != 0 || logits[1] != -1 || logits[2] != -1 {
		t.Fatalf("context size 2 penalised %v", logits)
	}
	if _, err := NewProcessors(ProcessorOptions{RepetitionPenalty: -1}); err == nil {
		t.Fatal("negative repetition penalty accepted")
	}
}
