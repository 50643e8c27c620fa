package model

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
)

func fields(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseRopeSpellings(t *testing.T) {
	old := fields(t, `{"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}`)
	neu := fields(t, `{"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}`)
	a, err := ParseRope(old, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseRope(neu, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	if a.Theta != 500000 || b.Theta != 500000 || a.Type != "llama3" || b.Type != "llama3" {
		t.Fatalf("old %+v new %+v", a, b)
	}
	ra, _ := a.Resolve(64, false, 131072)
	rb, _ := b.Resolve(64, false, 131072)
	for i, v := range ra.InvFreqs(1) {
		if v != rb.InvFreqs(1)[i] {
			t.Fatalf("spellings disagree at %d", i)
		}
	}
	// Layer-typed rope_parameters (gemma3 in transformers 5).
	typed := fields(t, `{"rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}`)
	full, _ := ParseRope(typed, "full_attention", 1)
	slide, _ := ParseRope(typed, "sliding_attention", 1)
	if full.Theta != 1e6 || full.Type != "linear" || slide.Theta != 1e4 || slide.Type != "default" {
		t.Fatalf("typed: full %+v sliding %+v", full, slide)
	}
	none, _ := ParseRope(fields(t, `{}`), "", 10000)
	if none.Theta != 10000 || none.Type != "default" {
		t.Fatalf("defaults %+v", none)
	}
	if _, err := ParseRope(fields(t, `{"rope_theta": "x"}`), "", 1); err == nil {
		t.Fatal("bad rope_theta accepted")
	}
}

// hfLlama3 is transformers' _compute_llama3_parameters, written from its formula.
func hfLlama3(base float64, dim int, factor, low, high, old float64) []float64 {
	out := make([]float64, dim/2)
	lowWave, highWave := old/low, old/high
	for i := range out {
		inv := 1 / math.Pow(base, float64(2*i)/float64(dim))
		wave := 2 * math.Pi / inv
		scaled := inv
		if wave > lowWave {
			scaled = inv / factor
		}
		smooth := (old/wave - low) / (high - low)
		smoothed := (1-smooth)*scaled/factor + smooth*scaled
		if !(wave < highWave) && !(wave > lowWave) {
			scaled = smoothed
		}
		out[i] = scaled
	}
	return out
}

// hfYarn is transformers' _compute_yarn_parameters.
func hfYarn(base float64, dim int, factor, orig, betaFast, betaSlow float64, truncate bool) ([]float64, float64) {
	corrDim := func(rot float64) float64 {
		return float64(dim) * math.Log(orig/(rot*2*math.Pi)) / (2 * math.Log(base))
	}
	low, high := corrDim(betaFast), corrDim(betaSlow)
	if truncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = math.Max(low, 0), math.Min(high, float64(dim-1))
	if low == high {
		high += 0.001
	}
	out := make([]float64, dim/2)
	for i := range out {
		pos := math.Pow(base, float64(2*i)/float64(dim))
		extra, inter := 1/pos, 1/(factor*pos)
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		ef := 1 - ramp
		out[i] = inter*(1-ef) + extra*ef
	}
	return out, 0.1*math.Log(factor) + 1
}

func closeAll(t *testing.T, name string, got, want []float64) {
	t.Helper()
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %g, want %g", name, i, got[i], want[i])
		}
	}
}

func TestRopeMatchesTransformers(t *testing.T) {
	rc := RopeConfig{Theta: 500000, Type: "llama3", Scaling: map[string]any{"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192.0}}
	r, err := rc.Resolve(128, false, 131072)
	if err != nil {
		t.Fatal(err)
	}
	closeAll(t, "llama3", r.InvFreqs(10), hfLlama3(500000, 128, 32, 1, 4, 8192))

	yc := RopeConfig{Theta: 1e6, Type: "yarn", Scaling: map[string]any{"factor": 4.0, "original_max_position_embeddings": 32768.0}}
	y, err := yc.Resolve(128, false, 131072)
	if err != nil {
		t.Fatal(err)
	}
	want, att := hfYarn(1e6, 128, 4, 32768, 32, 1, true)
	closeAll(t, "yarn", y.InvFreqs(10), want)
	if math.Abs(y.InputScale-att) > 1e-12 {
		t.Fatalf("yarn attention factor %g, want %g", y.InputScale, att)
	}
	// gpt-oss: "truncate": false keeps the correction range fractional.
	for _, trunc := range []bool{true, false} {
		gc := RopeConfig{Theta: 150000, Type: "yarn", Scaling: map[string]any{"factor": 32.0, "original_max_position_embeddings": 4096.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": trunc}}
		g, err := gc.Resolve(64, false, 131072)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := hfYarn(150000, 64, 32, 4096, 32, 1, trunc)
		closeAll(t, fmt.Sprintf("yarn truncate=%v", trunc), g.InvFreqs(1), want)
	}

	lin, _ := RopeConfig{Theta: 10000, Type: "linear", Scaling: map[string]any{"factor": 2.0}}.Resolve(8, true, 0)
	closeAll(t, "linear", lin.InvFreqs(1), []float64{0.5, 0.5 * math.Pow(10000, -0.25), 0.5 * math.Pow(10000, -0.5), 0.5 * math.Pow(10000, -0.75)})

	dyn, _ := RopeConfig{Theta: 10000, Type: "dynamic", Scaling: map[string]any{"factor": 2.0}}.Resolve(8, false, 100)
	if dyn.BaseFor(50) != 10000 {
		t.Fatalf("dynamic base below max positions = %g", dyn.BaseFor(50))
	}
	if want := 10000 * math.Pow(2*200.0/100-1, 8.0/6); math.Abs(dyn.BaseFor(200)-want) > 1e-6 {
		t.Fatalf("dynamic base at 200 = %g, want %g", dyn.BaseFor(200), want)
	}
	if _, err := (RopeConfig{Theta: 1, Type: "weird"}).Resolve(8, false, 0); err == nil {
		t.Fatal("unknown rope type accepted")
	}
	if _, err := (RopeConfig{Theta: 1, Type: "llama3", Scaling: map[string]any{}}).Resolve(8, false, 0); err == nil {
		t.Fatal("llama3 without factor accepted")
	}
}
