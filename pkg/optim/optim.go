package optim

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// Optimizer updates a fixed, ordered list of parameters from their
// gradients, with mlx.optimizers' semantics: the learning rate comes from
// the schedule at the step count before the update (0 first), then the
// step count is incremented, then each parameter is updated (so per-
// parameter rules that read the step, like Adam's bias correction, see 1
// on the first update).
type Optimizer interface {
	// Update returns the new parameters (lazy arrays; Eval them with the
	// state) for params and grads in the same order. The list must keep its
	// order and shapes across calls.
	Update(params, grads []*engine.Array) ([]*engine.Array, error)
	// State returns the arrays the next Update reads (to Eval with the new params).
	State() []*engine.Array
	// Step is the number of updates so far.
	Step() int
	// LearningRate is the rate the last update used.
	LearningRate() float32
}

// rule is one optimizer's per-parameter update.
type rule interface {
	init(p *engine.Array) []*engine.Array
	apply(g, p *engine.Array, state []*engine.Array, lr float32, step int) (*engine.Array, []*engine.Array)
}

type optimizer struct {
	rule     rule
	schedule Schedule
	step     int
	lr       float32
	state    [][]*engine.Array
}

func (o *optimizer) Update(params, grads []*engine.Array) ([]*engine.Array, error) {
	if len(params) != len(grads) {
		return nil, fmt.Errorf("optimizer: %d parameters but %d gradients", len(params), len(grads))
	}
	if o.state == nil {
		o.state = make([][]*engine.Array, len(params))
		for i, p := range params {
			o.state[i] = o.rule.init(p)
		}
	} else if len(o.state) != len(params) {
		return nil, fmt.Errorf("optimizer: parameter list changed from %d to %d entries", len(o.state), len(params))
	}
	o.lr = o.schedule(o.step)
	o.step++
	out := make([]*engine.Array, len(params))
	for i, p := range params {
		if grads[i] == nil {
			out[i] = p
			continue
		}
		out[i], o.state[i] = o.rule.apply(grads[i], p, o.state[i], o.lr, o.step)
		if err := out[i].Err(); err != nil {
			return nil, fmt.Errorf("optimizer: parameter %d: %w", i, err)
		}
	}
	return out, nil
}

func (o *optimizer) State() []*engine.Array {
	var s []*engine.Array
	for _, st := range o.state {
		s = append(s, st...)
	}
	return s
}

func (o *optimizer) Step() int             { return o.step }
func (o *optimizer) LearningRate() float32 { return o.lr }

var (
	mul = engine.Multiply
	add = engine.Add
	sub = engine.Subtract
	div = engine.Divide
	sc  = engine.Scalar
)

// Adam: m = b1·m + (1-b1)·g; v = b2·v + (1-b2)·g²; without bias correction
// (MLX's default) p -= lr·m/(√v + eps).
type adam struct {
	b1, b2, eps    float64
	biasCorrection bool
	weightDecay    float64 // AdamW's decoupled decay; 0 for Adam
}

func (a *adam) init(p *engine.Array) []*engine.Array {
	return []*engine.Array{engine.ZerosLike(p), engine.ZerosLike(p)}
}

func (a *adam) apply(g, p *engine.Array, st []*engine.Array, lr float32, step int) (*engine.Array, []*engine.Array) {
	if a.weightDecay != 0 {
		p = mul(p, sc(1-float64(lr)*a.weightDecay))
	}
	m := add(mul(sc(a.b1), st[0]), mul(sc(1-a.b1), g))
	v := add(mul(sc(a.b2), st[1]), mul(sc(1-a.b2), engine.Square(g)))
	if a.biasCorrection {
		c1 := float64(lr) / (1 - math.Pow(a.b1, float64(step)))
		c2 := 1 / math.Sqrt(1-math.Pow(a.b2, float64(step)))
		return sub(p, div(mul(sc(c1), m), add(mul(engine.Sqrt(v), sc(c2)), sc(a.eps)))), []*engine.Array{m, v}
	}
	return sub(p, div(mul(sc(float64(lr)), m), add(engine.Sqrt(v), sc(a.eps)))), []*engine.Array{m, v}
}

// SGD with optional momentum, dampening, Nesterov and L2 weight decay.
type sgd struct {
	momentum, weightDecay, dampening float64
	nesterov                         bool
}

func (s *sgd) init(p *engine.Array) []*engine.Array { return []*engine.Array{engine.ZerosLike(p)} }

func (s *sgd) apply(g, p *engine.Array, st []*engine.Array, lr float32, _ int) (*engine.Array, []*engine.Array) {
	if s.weightDecay != 0 {
		g = add(g, mul(sc(s.weightDecay), p))
	}
	if s.momentum <= 0 {
		return sub(p, mul(sc(float64(lr)), g)), st
	}
	v := mul(sc(s.momentum), st[0])
	if s.dampening > 0 {
		v = add(v, mul(sc(1-s.dampening), g))
	} else {
		v = add(v, g)
	}
	update := v
	if s.nesterov {
		update = add(g, mul(sc(s.momentum), v))
	}
	return sub(p, mul(sc(float64(lr)), update)), []*engine.Array{v}
}

// Adafactor with MLX's defaults (relative step sizes: the learning rate is
// ignored unless relative_step is false).
type adafactor struct {
	eps0, eps1, clip, decayRate   float64
	beta1                         *float64
	weightDecay                   float64
	scaleParam, relStep, warmInit bool
}

func (a *adafactor) init(p *engine.Array) []*engine.Array {
	var st []*engine.Array
	if p.NDim() >= 2 {
		sh := p.Shape()
		row := engine.Zeros(sh[:len(sh)-1], p.DType())
		col := engine.Zeros(append(append([]int{}, sh[:len(sh)-2]...), sh[len(sh)-1]), p.DType())
		st = append(st, row, col)
	} else {
		st = append(st, engine.ZerosLike(p))
	}
	if a.beta1 != nil {
		st = append(st, engine.ZerosLike(p))
	}
	return st
}

func rms(x *engine.Array) *engine.Array { return engine.Sqrt(engine.Mean(engine.Square(x), false)) }

func (a *adafactor) apply(g, p *engine.Array, st []*engine.Array, lr float32, step int) (*engine.Array, []*engine.Array) {
	factored := g.NDim() >= 2
	pRMS := rms(p)
	var rel *engine.Array
	if a.relStep {
		minStep := 1e-2
		if a.warmInit {
			minStep = 1e-6 * float64(step)
		}
		rel = sc(math.Min(minStep, 1/math.Sqrt(float64(step))))
	} else {
		rel = sc(float64(lr))
	}
	lrArr := rel
	if a.scaleParam {
		lrArr = mul(engine.Maximum(sc(a.eps1), pRMS), rel)
	}
	beta2 := 1 - math.Pow(float64(step), a.decayRate)
	update := add(engine.Square(g), sc(a.eps0))
	var next []*engine.Array
	if factored {
		row := add(mul(sc(beta2), st[0]), mul(sc(1-beta2), engine.Mean(update, false, -1)))
		col := add(mul(sc(beta2), st[1]), mul(sc(1-beta2), engine.Mean(update, false, -2)))
		next = append(next, row, col)
		r := engine.Rsqrt(div(row, engine.Mean(row, true, -1)))
		c := engine.Rsqrt(col)
		update = mul(mul(engine.ExpandDims(r, -1), engine.ExpandDims(c, -2)), g)
	} else {
		v := add(mul(sc(beta2), st[0]), mul(sc(1-beta2), update))
		next = append(next, v)
		update = mul(engine.Rsqrt(v), g)
	}
	update = div(update, engine.Maximum(sc(1), div(rms(update), sc(a.clip))))
	update = mul(lrArr, update)
	if a.beta1 != nil {
		m := add(mul(sc(*a.beta1), st[len(st)-1]), mul(sc(1-*a.beta1), update))
		next = append(next, m)
		update = m
	}
	if a.weightDecay != 0 {
		p = add(p, mul(p, mul(sc(-a.weightDecay), lrArr)))
	}
	return sub(p, update), next
}

// Muon: momentum, then Newton-Schulz orthogonalisation for matrices.
type muon struct {
	momentum, weightDecay float64
	nesterov              bool
	nsSteps               int
}

func (m *muon) init(p *engine.Array) []*engine.Array { return []*engine.Array{engine.ZerosLike(p)} }

func newtonSchulz(x *engine.Array, steps int) *engine.Array {
	const a, b, c = 3.4445, -4.7750, 2.0315
	transpose := x.Dim(-2) > x.Dim(-1)
	if transpose {
		x = engine.Transpose(x)
	}
	x = div(x, add(engine.Sqrt(engine.Sum(engine.Square(x), true)), sc(1e-7)))
	for range steps {
		A := engine.Matmul(x, engine.Transpose(x))
		B := add(mul(sc(b), A), mul(sc(c), engine.Matmul(A, A)))
		x = add(mul(sc(a), x), engine.Matmul(B, x))
	}
	if transpose {
		x = engine.Transpose(x)
	}
	return x
}

func (m *muon) apply(g, p *engine.Array, st []*engine.Array, lr float32, _ int) (*engine.Array, []*engine.Array) {
	if m.weightDecay != 0 {
		g = add(g, mul(sc(m.weightDecay), p))
	}
	v := add(mul(sc(m.momentum), st[0]), mul(sc(1-m.momentum), g))
	update := v
	if m.nesterov {
		update = add(mul(g, sc(1-m.momentum)), mul(v, sc(m.momentum)))
	}
	rate := float64(lr)
	if update.NDim() >= 2 {
		shape := update.Shape()
		u := update
		if len(shape) > 2 {
			u = engine.Reshape(u, shape[0], -1)
		}
		u = newtonSchulz(u, m.nsSteps)
		update = engine.Reshape(u, shape...)
		rate *= math.Sqrt(math.Max(1, float64(shape[len(shape)-2])/float64(shape[len(shape)-1])))
	}
	return sub(p, mul(sc(rate), update)), []*engine.Array{v}
}

// New builds the named optimizer ("adam", "adamw", "sgd", "adafactor",
// "muon") over a schedule, with mlx_lm's YAML optimizer_config entries for
// it (unknown keys are an error naming them).
func New(name string, schedule Schedule, config map[string]any) (Optimizer, error) {
	c := cfgReader{name: name, m: config}
	var r rule
	switch name {
	case "adam", "adamw":
		betas := c.floats("betas", []float64{0.9, 0.999})
		wd := 0.0
		if name == "adamw" {
			wd = c.float("weight_decay", 0.01)
		}
		ad := &adam{eps: c.float("eps", 1e-8), biasCorrection: c.bool("bias_correction", false), weightDecay: wd}
		if len(betas) == 2 {
			ad.b1, ad.b2 = betas[0], betas[1]
		} else {
			c.fail("betas: expected two numbers")
		}
		if ad.b1 < 0 || ad.b1 >= 1 || ad.b2 < 0 || ad.b2 >= 1 {
			c.fail(fmt.Sprintf("betas must lie in [0, 1), got %v", betas))
		}
		r = ad
	case "sgd":
		s := &sgd{momentum: c.float("momentum", 0), weightDecay: c.float("weight_decay", 0), dampening: c.float("dampening", 0), nesterov: c.bool("nesterov", false)}
		if s.nesterov && (s.momentum <= 0 || s.dampening != 0) {
			c.fail("Nesterov momentum requires a momentum and zero dampening")
		}
		r = s
	case "adafactor":
		eps := c.floats("eps", []float64{1e-30, 1e-3})
		af := &adafactor{clip: c.float("clip_threshold", 1), decayRate: c.float("decay_rate", -0.8),
			weightDecay: c.float("weight_decay", 0), scaleParam: c.bool("scale_parameter", true),
			relStep: c.bool("relative_step", true), warmInit: c.bool("warmup_init", false)}
		if len(eps) == 2 {
			af.eps0, af.eps1 = eps[0], eps[1]
		} else {
			c.fail("eps: expected two numbers")
		}
		if v, ok := config["beta_1"]; ok && v != nil {
			b := c.float("beta_1", 0)
			af.beta1 = &b
		}
		r = af
	case "muon":
		r = &muon{momentum: c.float("momentum", 0.95), weightDecay: c.float("weight_decay", 0.01),
			nesterov: c.bool("nesterov", true), nsSteps: int(c.float("ns_steps", 5))}
	default:
		return nil, fmt.Errorf("optimizer %q: expected adam, adamw, sgd, adafactor or muon", name)
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return &optimizer{rule: r, schedule: schedule}, nil
}

// cfgReader reads typed optimizer_config entries and remembers what was
// used, so unknown keys and bad values are reported.
type cfgReader struct {
	name string
	m    map[string]any
	used map[string]bool
	errs []string
}

func (c *cfgReader) mark(k string) (any, bool) {
	if c.used == nil {
		c.used = map[string]bool{}
	}
	c.used[k] = true
	v, ok := c.m[k]
	return v, ok && v != nil
}

func (c *cfgReader) fail(msg string) { c.errs = append(c.errs, msg) }

func toFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case float64:
		return t, true
	case float32:
		return float64(t), true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	}
	return 0, false
}

func (c *cfgReader) float(k string, def float64) float64 {
	v, ok := c.mark(k)
	if !ok {
		return def
	}
	f, ok := toFloat(v)
	if !ok {
		c.fail(fmt.Sprintf("%s: expected a number, got %v", k, v))
		return def
	}
	return f
}

func (c *cfgReader) bool(k string, def bool) bool {
	v, ok := c.mark(k)
	if !ok {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		c.fail(fmt.Sprintf("%s: expected true or false, got %v", k, v))
		return def
	}
	return b
}

func (c *cfgReader) floats(k string, def []float64) []float64 {
	v, ok := c.mark(k)
	if !ok {
		return def
	}
	list, ok := v.([]any)
	if !ok {
		c.fail(fmt.Sprintf("%s: expected a list of numbers, got %v", k, v))
		return def
	}
	out := make([]float64, len(list))
	for i, e := range list {
		f, ok := toFloat(e)
		if !ok {
			c.fail(fmt.Sprintf("%s: expected a list of numbers, got %v", k, v))
			return def
		}
		out[i] = f
	}
	return out
}

func (c *cfgReader) finish() error {
	for k := range c.m {
		if !c.used[k] {
			c.fail(fmt.Sprintf("unknown key %q", k))
		}
	}
	if len(c.errs) > 0 {
		return fmt.Errorf("optimizer_config.%s: %s", c.name, c.errs[0])
	}
	return nil
}

// ClipGradNorm scales grads so their global L2 norm is at most maxNorm,
// as mlx.optimizers.clip_grad_norm; it returns the clipped grads and the
// original norm.
func ClipGradNorm(grads []*engine.Array, maxNorm float64) ([]*engine.Array, *engine.Array) {
	var sq *engine.Array
	for _, g := range grads {
		s := engine.Sum(engine.Square(g), false)
		if sq == nil {
			sq = s
		} else {
			sq = add(sq, s)
		}
	}
	if sq == nil {
		return grads, sc(0)
	}
	norm := engine.Sqrt(sq)
	f := engine.Minimum(div(sc(maxNorm), add(norm, sc(1e-6))), sc(1))
	out := make([]*engine.Array, len(grads))
	for i, g := range grads {
		out[i] = mul(g, f)
	}
	return out, norm
}
