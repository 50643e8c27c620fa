package optim

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// mat is a float64 reference matrix [r, c].
type mat struct {
	r, c int
	v    []float64
}

func randMat(rng *rand.Rand, r, c int) mat {
	m := mat{r, c, make([]float64, r*c)}
	for i := range m.v {
		m.v[i] = rng.NormFloat64()
	}
	return m
}

func (m mat) arr() *engine.Array { return engine.FromFloat64s(m.v, m.r, m.c) }

func (m mat) mapv(f func(i int, x float64) float64) mat {
	out := mat{m.r, m.c, make([]float64, len(m.v))}
	for i, x := range m.v {
		out.v[i] = f(i, x)
	}
	return out
}

func matmul(a, b mat) mat {
	out := mat{a.r, b.c, make([]float64, a.r*b.c)}
	for i := 0; i < a.r; i++ {
		for k := 0; k < a.c; k++ {
			for j := 0; j < b.c; j++ {
				out.v[i*b.c+j] += a.v[i*a.c+k] * b.v[k*b.c+j]
			}
		}
	}
	return out
}

func transpose(a mat) mat {
	out := mat{a.c, a.r, make([]float64, len(a.v))}
	for i := 0; i < a.r; i++ {
		for j := 0; j < a.c; j++ {
			out.v[j*a.r+i] = a.v[i*a.c+j]
		}
	}
	return out
}

func rmsOf(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s / float64(len(v)))
}

// refStep is a float64 transcription of mlx.optimizers for one parameter.
type refStep func(p, g mat, state []mat, lr float64, step int) (mat, []mat)

func refAdam(b1, b2, eps, wd float64, bc bool) refStep {
	return func(p, g mat, st []mat, lr float64, step int) (mat, []mat) {
		if st == nil {
			st = []mat{g.mapv(func(int, float64) float64 { return 0 }), g.mapv(func(int, float64) float64 { return 0 })}
		}
		if wd != 0 {
			p = p.mapv(func(_ int, x float64) float64 { return x * (1 - lr*wd) })
		}
		m := g.mapv(func(i int, x float64) float64 { return b1*st[0].v[i] + (1-b1)*x })
		v := g.mapv(func(i int, x float64) float64 { return b2*st[1].v[i] + (1-b2)*x*x })
		return p.mapv(func(i int, x float64) float64 {
			if bc {
				c1 := lr / (1 - math.Pow(b1, float64(step)))
				c2 := 1 / math.Sqrt(1-math.Pow(b2, float64(step)))
				return x - c1*m.v[i]/(math.Sqrt(v.v[i])*c2+eps)
			}
			return x - lr*m.v[i]/(math.Sqrt(v.v[i])+eps)
		}), []mat{m, v}
	}
}

func refSGD(mom, wd, damp float64, nest bool) refStep {
	return func(p, g mat, st []mat, lr float64, _ int) (mat, []mat) {
		if st == nil {
			st = []mat{g.mapv(func(int, float64) float64 { return 0 })}
		}
		g = g.mapv(func(i int, x float64) float64 { return x + wd*p.v[i] })
		v := g.mapv(func(i int, x float64) float64 {
			if damp > 0 {
				return mom*st[0].v[i] + (1-damp)*x
			}
			return mom*st[0].v[i] + x
		})
		return p.mapv(func(i int, x float64) float64 {
			u := v.v[i]
			if nest {
				u = g.v[i] + mom*v.v[i]
			}
			return x - lr*u
		}), []mat{v}
	}
}

func refAdafactor() refStep { // defaults: relative step, scale parameter, no beta_1
	return func(p, g mat, st []mat, _ float64, step int) (mat, []mat) {
		if st == nil {
			st = []mat{{1, p.r, make([]float64, p.r)}, {1, p.c, make([]float64, p.c)}}
		}
		rel := math.Min(1e-2, 1/math.Sqrt(float64(step)))
		lr := math.Max(1e-3, rmsOf(p.v)) * rel
		beta2 := 1 - math.Pow(float64(step), -0.8)
		upd := g.mapv(func(_ int, x float64) float64 { return x*x + 1e-30 })
		row, col := make([]float64, p.r), make([]float64, p.c)
		for i := 0; i < p.r; i++ {
			for j := 0; j < p.c; j++ {
				row[i] += upd.v[i*p.c+j] / float64(p.c)
				col[j] += upd.v[i*p.c+j] / float64(p.r)
			}
		}
		rowMean := 0.0
		for i := range row {
			row[i] = beta2*st[0].v[i] + (1-beta2)*row[i]
			rowMean += row[i] / float64(p.r)
		}
		for j := range col {
			col[j] = beta2*st[1].v[j] + (1-beta2)*col[j]
		}
		u := g.mapv(func(k int, x float64) float64 {
			i, j := k/p.c, k%p.c
			return x / math.Sqrt(row[i]/rowMean) / math.Sqrt(col[j])
		})
		clipDiv := math.Max(1, rmsOf(u.v)/1.0)
		return p.mapv(func(k int, x float64) float64 { return x - lr*u.v[k]/clipDiv }),
			[]mat{{1, p.r, row}, {1, p.c, col}}
	}
}

func refMuon(mom, wd float64) refStep {
	return func(p, g mat, st []mat, lr float64, _ int) (mat, []mat) {
		if st == nil {
			st = []mat{g.mapv(func(int, float64) float64 { return 0 })}
		}
		g = g.mapv(func(i int, x float64) float64 { return x + wd*p.v[i] })
		v := g.mapv(func(i int, x float64) float64 { return mom*st[0].v[i] + (1-mom)*x })
		u := g.mapv(func(i int, x float64) float64 { return x*(1-mom) + v.v[i]*mom })
		x := u
		tr := x.r > x.c
		if tr {
			x = transpose(x)
		}
		n := 0.0
		for _, e := range x.v {
			n += e * e
		}
		x = x.mapv(func(_ int, e float64) float64 { return e / (math.Sqrt(n) + 1e-7) })
		for range 5 {
			A := matmul(x, transpose(x))
			AA := matmul(A, A)
			B := A.mapv(func(i int, e float64) float64 { return -4.7750*e + 2.0315*AA.v[i] })
			BX := matmul(B, x)
			x = x.mapv(func(i int, e float64) float64 { return 3.4445*e + BX.v[i] })
		}
		if tr {
			x = transpose(x)
		}
		rate := lr * math.Sqrt(math.Max(1, float64(u.r)/float64(u.c)))
		return p.mapv(func(i int, e float64) float64 { return e - rate*x.v[i] }), []mat{v}
	}
}

func TestOptimizersMatchMLXFormulas(t *testing.T) {
	sched, _ := LinearSchedule(1e-2, 5e-3, 3)
	cases := []struct {
		name string
		cfg  map[string]any
		ref  refStep
		tol  float64
	}{
		{"adam", nil, refAdam(0.9, 0.999, 1e-8, 0, false), 1e-5},
		{"adam", map[string]any{"bias_correction": true, "betas": []any{0.8, 0.99}}, refAdam(0.8, 0.99, 1e-8, 0, true), 1e-5},
		{"adamw", map[string]any{"weight_decay": 0.1}, refAdam(0.9, 0.999, 1e-8, 0.1, false), 1e-5},
		{"sgd", nil, refSGD(0, 0, 0, false), 1e-5},
		{"sgd", map[string]any{"momentum": 0.9, "weight_decay": 0.01, "nesterov": true}, refSGD(0.9, 0.01, 0, true), 1e-5},
		{"sgd", map[string]any{"momentum": 0.5, "dampening": 0.2}, refSGD(0.5, 0, 0.2, false), 1e-5},
		{"adafactor", nil, refAdafactor(), 1e-5},
		{"muon", nil, refMuon(0.95, 0.01), 1e-4},
	}
	for _, c := range cases {
		rng := rand.New(rand.NewPCG(1, 2))
		p := randMat(rng, 5, 3)
		opt, err := New(c.name, sched, c.cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		params := []*engine.Array{p.arr()}
		var st []mat
		for step := 1; step <= 3; step++ {
			g := randMat(rng, 5, 3)
			lr := float64(sched(step - 1))
			p, st = c.ref(p, g, st, lr, step)
			params, err = opt.Update(params, []*engine.Array{g.arr()})
			if err != nil {
				t.Fatal(err)
			}
			if err := engine.Eval(append(params, opt.State()...)...); err != nil {
				t.Fatal(err)
			}
			if float64(opt.LearningRate()) != float64(float32(lr)) {
				t.Errorf("%s step %d: learning rate %v, want %v", c.name, step, opt.LearningRate(), lr)
			}
		}
		got, _ := params[0].Float64s()
		for i := range got {
			if math.Abs(got[i]-p.v[i]) > c.tol*math.Max(1, math.Abs(p.v[i])) {
				t.Fatalf("%s %v: param[%d] = %.7g, reference %.7g", c.name, c.cfg, i, got[i], p.v[i])
			}
		}
		if opt.Step() != 3 {
			t.Errorf("%s: step %d", c.name, opt.Step())
		}
	}
}

func TestOptimizerConfigErrors(t *testing.T) {
	bad := []struct {
		name string
		cfg  map[string]any
		want string
	}{
		{"adam", map[string]any{"betas": []any{0.9}}, "betas"},
		{"adam", map[string]any{"betas": []any{1.0, 0.9}}, "[0, 1)"},
		{"adam", map[string]any{"lr": 1}, `unknown key "lr"`},
		{"sgd", map[string]any{"nesterov": true}, "Nesterov"},
		{"sgd", map[string]any{"momentum": "fast"}, "expected a number"},
		{"rmsprop", nil, "expected adam"},
	}
	for _, b := range bad {
		if _, err := New(b.name, Constant(1), b.cfg); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s %v: error %v, want %q", b.name, b.cfg, err, b.want)
		}
	}
}

func TestClipGradNorm(t *testing.T) {
	g := []*engine.Array{engine.FromFloat32s([]float32{3, 4}, 2), engine.FromFloat32s([]float32{12}, 1)}
	clipped, norm := ClipGradNorm(g, 6.5)
	if err := engine.Eval(append(clipped, norm)...); err != nil {
		t.Fatal(err)
	}
	n, _ := norm.Item()
	a, _ := clipped[0].Float32s()
	if math.Abs(n-13) > 1e-5 || math.Abs(float64(a[1])-2) > 1e-5 {
		t.Fatalf("norm %v, clipped %v", n, a)
	}
}
