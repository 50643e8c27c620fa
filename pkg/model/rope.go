package model

import (
	"encoding/json"
	"fmt"
	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"math"
)

// RopeConfig is a model's rotary-embedding settings from config.json, read
// from either spelling in the wild: "rope_theta" + "rope_scaling" (most hub
// checkpoints) or transformers 5's "rope_parameters" (which carries
// rope_theta inside, and may be keyed by layer type).
type RopeConfig struct {
	Theta   float64
	Type    string // default, linear, dynamic, llama3, yarn, longrope, ...
	Scaling map[string]any
}

// ParseRope reads the rope settings of config.json fields. layerType picks
// an entry when rope_parameters is keyed by layer type ("full_attention",
// "sliding_attention"); defaultTheta applies when no theta is given.
func ParseRope(fields map[string]json.RawMessage, layerType string, defaultTheta float64) (RopeConfig, error) {
	rc := RopeConfig{Theta: defaultTheta, Type: "default"}
	if raw, ok := fields["rope_theta"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &rc.Theta); err != nil {
			return rc, fmt.Errorf("rope_theta: expected a number: %w", err)
		}
	}
	var scaling map[string]any
	if raw, ok := fields["rope_parameters"]; ok && string(raw) != "null" {
		var params map[string]any
		if err := json.Unmarshal(raw, &params); err != nil {
			return rc, fmt.Errorf("rope_parameters: expected an object: %w", err)
		}
		if sub, ok := params[layerType].(map[string]any); ok && layerType != "" {
			params = sub
		} else if _, flat := params["rope_type"]; !flat {
			if sub, ok := params["full_attention"].(map[string]any); ok {
				params = sub
			}
		}
		scaling = params
		if t, ok := params["rope_theta"].(float64); ok {
			rc.Theta = t
		}
	} else if raw, ok := fields["rope_scaling"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &scaling); err != nil {
			return rc, fmt.Errorf("rope_scaling: expected an object: %w", err)
		}
	}
	if scaling != nil {
		t, _ := scaling["type"].(string)
		if t == "" {
			t, _ = scaling["rope_type"].(string)
		}
		if t != "" {
			rc.Type = t
		}
		rc.Scaling = scaling
	}
	return rc, nil
}

// Rope is a resolved rotary embedding, in MLX fast.rope's terms: either a
// Base (theta) and Scale for positions, or explicit per-pair Periods
// (MLX's "freqs": position angle = pos / period), plus an input scale
// (YaRN/LongRoPE mscale) applied to the rotated dims.
type Rope struct {
	Dims        int
	Traditional bool
	Base        float64   // when Periods is nil
	Scale       float64   // position scale (linear scaling: 1/factor)
	Periods     []float64 // [Dims/2] when not nil
	InputScale  float64   // multiplies x[..., :Dims] before rotating; 1 if none
	dynamic     bool
	maxPos      int
	dynFactor   float64
}

// Resolve builds the rope for dims rotated features, as mlx_lm's initialize_rope.
func (rc RopeConfig) Resolve(dims int, traditional bool, maxPositions int) (*Rope, error) {
	r := &Rope{Dims: dims, Traditional: traditional, Base: rc.Theta, Scale: 1, InputScale: 1}
	f := func(key string, def float64) float64 {
		if v, ok := rc.Scaling[key].(float64); ok {
			return v
		}
		return def
	}
	need := func(key string) (float64, error) {
		v, ok := rc.Scaling[key].(float64)
		if !ok {
			return 0, fmt.Errorf("rope scaling %q needs a numeric %q", rc.Type, key)
		}
		return v, nil
	}
	base := rc.Theta
	half := dims / 2
	plain := make([]float64, half)
	for i := range plain {
		plain[i] = math.Pow(base, float64(2*i)/float64(dims))
	}
	switch rc.Type {
	case "default", "":
	case "linear":
		factor, err := need("factor")
		if err != nil {
			return nil, err
		}
		r.Scale = 1 / factor
	case "dynamic":
		factor, err := need("factor")
		if err != nil {
			return nil, err
		}
		r.dynamic, r.maxPos, r.dynFactor = true, maxPositions, factor
	case "llama3":
		factor, err := need("factor")
		if err != nil {
			return nil, err
		}
		low, high := f("low_freq_factor", 1), f("high_freq_factor", 4)
		old := f("original_max_position_embeddings", 8192)
		lowWave, highWave := old/low, old/high
		r.Periods = make([]float64, half)
		for i, p := range plain {
			wave := 2 * math.Pi * p
			q := p
			if wave > lowWave {
				q = p * factor
			}
			if wave > highWave && wave < lowWave {
				smooth := (old/wave - low) / (high - low)
				q = q / ((1-smooth)/factor + smooth)
			}
			r.Periods[i] = q
		}
	case "yarn", "deepseek_yarn", "telechat3-yarn":
		factor, err := need("factor")
		if err != nil {
			return nil, err
		}
		orig := f("original_max_position_embeddings", 4096)
		betaFast, betaSlow := f("beta_fast", 32), f("beta_slow", 1)
		mscale, mscaleAll := f("mscale", 1), f("mscale_all_dim", 0)
		corr := func(rot float64) float64 {
			return float64(dims) * math.Log(orig/(rot*2*math.Pi)) / (2 * math.Log(base))
		}
		// transformers rounds the correction range outwards unless
		// "truncate" is false (gpt-oss); the clamp applies either way.
		lo, hi := corr(betaFast), corr(betaSlow)
		if t, ok := rc.Scaling["truncate"].(bool); !ok || t {
			lo, hi = math.Floor(lo), math.Ceil(hi)
		}
		lo, hi = max(lo, 0), min(hi, float64(dims-1))
		if lo == hi {
			hi += 0.001
		}
		getM := func(scale, m float64) float64 {
			if scale <= 1 {
				return 1
			}
			return 0.1*m*math.Log(scale) + 1
		}
		r.InputScale = getM(factor, mscale) / getM(factor, mscaleAll)
		r.Periods = make([]float64, half)
		for i, extra := range plain {
			inter := factor * extra
			ramp := math.Min(math.Max((float64(i)-lo)/(hi-lo), 0), 1)
			mask := 1 - ramp
			r.Periods[i] = inter * extra / (inter*mask + extra*(1-mask))
		}
	case "longrope":
		orig, err := need("original_max_position_embeddings")
		if err != nil {
			return nil, err
		}
		long, ok := rc.Scaling["long_factor"].([]any)
		if !ok || len(long) != half {
			return nil, fmt.Errorf("rope scaling longrope needs long_factor with %d entries", half)
		}
		r.Periods = make([]float64, half)
		for i, p := range plain {
			lf, _ := long[i].(float64)
			r.Periods[i] = lf * p
		}
		factor := float64(maxPositions) / orig
		r.InputScale = 1
		if factor > 1 {
			r.InputScale = math.Sqrt(1 + math.Log(factor)/math.Log(orig))
		}
		if m, ok := rc.Scaling["long_mscale"].(float64); ok && m != 0 {
			r.InputScale = m
		}
	case "mrope":
	default:
		return nil, fmt.Errorf("unsupported RoPE type %q", rc.Type)
	}
	return r, nil
}

// BaseFor returns the base to use for a sequence reaching seqLen positions
// (dynamic NTK scaling changes it; other types return Base).
func (r *Rope) BaseFor(seqLen int) float64 {
	if !r.dynamic {
		return r.Base
	}
	n := float64(max(seqLen, r.maxPos))
	return r.Base * math.Pow(r.dynFactor*n/float64(r.maxPos)-(r.dynFactor-1), float64(r.Dims)/float64(r.Dims-2))
}

// InvFreqs returns the angle per position for each rotated pair [Dims/2]
// at the given sequence length: 1/period, or base^(-2i/dims)·scale.
func (r *Rope) InvFreqs(seqLen int) []float64 {
	out := make([]float64, r.Dims/2)
	for i := range out {
		if r.Periods != nil {
			out[i] = 1 / r.Periods[i]
		} else {
			out[i] = r.Scale * math.Pow(r.BaseFor(seqLen), -float64(2*i)/float64(r.Dims))
		}
	}
	return out
}

// NN returns the rope as an nn.RoPE layer.
func (r *Rope) NN() *nn.RoPE {
	l := &nn.RoPE{Dims: r.Dims, Traditional: r.Traditional, Base: r.Base, Scale: r.Scale, InputScale: r.InputScale}
	if r.Periods != nil {
		f := make([]float32, len(r.Periods))
		for i, p := range r.Periods {
			f[i] = float32(p)
		}
		l.Freqs = engine.FromFloat32s(f, len(f))
	}
	if r.dynamic {
		l.BaseFor = r.BaseFor
	}
	return l
}
