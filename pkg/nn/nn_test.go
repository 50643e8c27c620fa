package nn_test

import (
	"math"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"github.com/mlxgo/mlxgo/pkg/quant"
)

func vals(t *testing.T, a *engine.Array) []float32 {
	t.Helper()
	f, err := engine.AsType(a, engine.Float32).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// relDiff is max |a − b| / max |b|.
func relDiff(a, b []float32) float64 {
	var m float64
	for _, v := range b {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return maxDiff(a, b) / m
}

func randn(seed uint64, shape ...int) *engine.Array {
	k := engine.NewKey(seed)
	return engine.RandomNormal(shape, 0, 1, engine.Float32, &k)
}

// quantize packs w [rows, cols] with MLX's encoder (pkg/quant).
func quantize(t *testing.T, w *engine.Array, gs, bits int) (q, s, b *engine.Array) {
	t.Helper()
	f := vals(t, w)
	rows, cols := w.Dim(0), w.Dim(1)
	pc := quant.PackedCols(cols, bits)
	qq := make([]uint32, rows*pc)
	ss := make([]float32, rows*cols/gs)
	bb := make([]float32, len(ss))
	if err := quant.QuantizeF32(f, cols, quant.Options{Bits: bits, GroupSize: gs}, qq, ss, bb); err != nil {
		t.Fatal(err)
	}
	return engine.FromUint32s(qq, rows, pc), engine.FromFloat32s(ss, rows, cols/gs), engine.FromFloat32s(bb, rows, cols/gs)
}

// matmulT is x [M, K] · w [N, K]ᵀ in float64.
func matmulT(x, w []float32, M, N, K int) []float32 {
	out := make([]float32, M*N)
	for m := range M {
		for n := range N {
			var acc float64
			for k := range K {
				acc += float64(x[m*K+k]) * float64(w[n*K+k])
			}
			out[m*N+n] = float32(acc)
		}
	}
	return out
}

func TestLinear(t *testing.T) {
	x, w, b := randn(1, 2, 3, 64), randn(2, 40, 64), randn(3, 40)
	y := (&nn.Linear{Weight: w, Bias: b}).Forward(x)
	if got := y.Shape(); len(got) != 3 || got[2] != 40 {
		t.Fatalf("shape %v", got)
	}
	want := matmulT(vals(t, x), vals(t, w), 6, 40, 64)
	bv := vals(t, b)
	for i := range want {
		want[i] += bv[i%40]
	}
	if d := maxDiff(vals(t, y), want); d > 1e-4 {
		t.Errorf("linear max diff %g", d)
	}
}

func TestQuantizedLinearAndEmbedding(t *testing.T) {
	for _, bits := range []int{4, 8} {
		w := randn(4, 48, 128)
		q, s, b := quantize(t, w, 64, bits)
		deq := vals(t, engine.Dequantize(q, s, b, 64, bits)) // [48, 128]
		x := randn(5, 1, 3, 128)
		want := matmulT(vals(t, x), deq, 3, 48, 128)
		ql := &nn.QuantizedLinear{Weight: q, Scales: s, Biases: b, GroupSize: 64, Bits: bits, Exact: true}
		if d := maxDiff(vals(t, ql.Forward(x)), want); d > 1e-4 {
			t.Errorf("%d-bit exact: max diff %g", bits, d)
		}
		ql.Exact = false
		// The kernels may round activations to int8 (blocks of 32): error
		// ≤ Σ|scale·q|·step/2, a few percent of |y| at most here.
		if d := relDiff(vals(t, ql.Forward(x)), want); d > 8e-2 {
			t.Errorf("%d-bit kernel: rel diff %g", bits, d)
		} else {
			t.Logf("%d-bit QuantizedMatmul vs dequantized matmul: rel diff %g", bits, d)
		}
		// The embedding dequantizes only the gathered rows.
		e := &nn.QuantizedEmbedding{Weight: q, Scales: s, Biases: b, GroupSize: 64, Bits: bits}
		ids := engine.FromInt32s([]int32{3, 0, 47, 3}, 2, 2)
		got := vals(t, e.Forward(ids))
		for i, id := range []int{3, 0, 47, 3} {
			if d := maxDiff(got[i*128:(i+1)*128], deq[id*128:(id+1)*128]); d != 0 {
				t.Errorf("%d-bit embedding row %d differs by %g", bits, id, d)
			}
		}
		e.Exact = true
		if d := maxDiff(vals(t, e.AsLinear(x)), want); d > 1e-4 {
			t.Errorf("%d-bit AsLinear exact: max diff %g", bits, d)
		}
	}
}

func TestEmbeddingCast(t *testing.T) {
	w := engine.AsType(randn(6, 10, 8), engine.BFloat16)
	f32 := engine.Float32
	e := &nn.Embedding{Weight: w, Cast: &f32}
	y := e.Forward(engine.FromInt32s([]int32{1, 9}, 2))
	if y.DType() != engine.Float32 || y.Dim(1) != 8 {
		t.Fatalf("dtype %v shape %v", y.DType(), y.Shape())
	}
	if d := maxDiff(vals(t, y)[8:], vals(t, w)[72:80]); d != 0 {
		t.Errorf("row 9 differs by %g", d)
	}
}

func TestNorms(t *testing.T) {
	x := randn(7, 3, 16)
	w := randn(8, 16)
	xv, wv := vals(t, x), vals(t, w)
	rms := vals(t, (&nn.RMSNorm{Weight: w, Eps: 1e-5}).Forward(x))
	one := vals(t, (&nn.RMSNorm{Weight: w, Eps: 1e-5, OnePlus: true}).Forward(x))
	ln := vals(t, (&nn.LayerNorm{Weight: w, Bias: w, Eps: 1e-5}).Forward(x))
	for r := range 3 {
		row := xv[r*16 : (r+1)*16]
		var ss, mean float64
		for _, v := range row {
			ss += float64(v * v)
			mean += float64(v)
		}
		mean /= 16
		var vr float64
		for _, v := range row {
			vr += (float64(v) - mean) * (float64(v) - mean)
		}
		inv := 1 / math.Sqrt(ss/16+1e-5)
		linv := 1 / math.Sqrt(vr/16+1e-5)
		for i, v := range row {
			want := float64(v) * inv * float64(wv[i])
			wantOne := float64(v) * inv * (1 + float64(wv[i]))
			wantLN := (float64(v)-mean)*linv*float64(wv[i]) + float64(wv[i])
			if math.Abs(float64(rms[r*16+i])-want) > 1e-5 || math.Abs(float64(one[r*16+i])-wantOne) > 1e-5 || math.Abs(float64(ln[r*16+i])-wantLN) > 1e-5 {
				t.Fatalf("row %d col %d: rms %g/%g, 1+w %g/%g, layernorm %g/%g", r, i, rms[r*16+i], want, one[r*16+i], wantOne, ln[r*16+i], wantLN)
			}
		}
	}
}

func TestRoPE(t *testing.T) {
	x := randn(9, 1, 2, 5, 8) // [B, H, L, Dh]
	r := &nn.RoPE{Dims: 4, Base: 10000, Scale: 1}
	y := vals(t, r.Forward(x, 3))
	xv := vals(t, x)
	for h := range 2 {
		for l := range 5 {
			o := (h*5 + l) * 8
			pos := float64(l + 3)
			for i := range 2 { // non-traditional: pairs (i, i+2) of the 4 rotated dims
				th := pos * math.Pow(10000, -float64(2*i)/4)
				a, b := float64(xv[o+i]), float64(xv[o+i+2])
				wa, wb := a*math.Cos(th)-b*math.Sin(th), a*math.Sin(th)+b*math.Cos(th)
				if math.Abs(float64(y[o+i])-wa) > 1e-4 || math.Abs(float64(y[o+i+2])-wb) > 1e-4 {
					t.Fatalf("h %d l %d pair %d: got %g %g want %g %g", h, l, i, y[o+i], y[o+i+2], wa, wb)
				}
			}
			if maxDiff(y[o+4:o+8], xv[o+4:o+8]) != 0 {
				t.Fatalf("unrotated dims changed")
			}
		}
	}
	// InputScale multiplies only the rotated dims.
	r.InputScale = 2
	y2 := vals(t, r.Forward(x, 3))
	for i := range y2 {
		want := y[i]
		if i%8 < 4 {
			want *= 2
		}
		if math.Abs(float64(y2[i]-want)) > 1e-5 {
			t.Fatalf("input scale: index %d got %g want %g", i, y2[i], want)
		}
	}
}

func TestCausalMaskAndSoftCap(t *testing.T) {
	m, err := nn.CausalMask(2, 3, 3).Bools()
	if err != nil {
		t.Fatal(err)
	}
	// queries at 3, 4 over keys 0..4, window 3.
	want := []bool{false, true, true, true, false, false, false, true, true, true}
	for i := range want {
		if m[i] != want[i] {
			t.Fatalf("mask %v, want %v", m, want)
		}
	}
	s := vals(t, nn.SoftCap(engine.FromFloat32s([]float32{-100, 0, 1}, 3), 5))
	if math.Abs(float64(s[0])+5) > 1e-4 || s[1] != 0 || math.Abs(float64(s[2])-5*math.Tanh(0.2)) > 1e-6 {
		t.Errorf("softcap %v", s)
	}
}

// TestSwitchGLU compares the gathered expert MLP with a per-token loop
// over dense experts, float and quantized (exact).
func TestSwitchGLU(t *testing.T) {
	const E, D, I, K, T = 4, 64, 32, 2, 3
	gate, up, down := randn(10, E, I, D), randn(11, E, I, D), randn(12, E, D, I)
	x := randn(13, T, D)
	idx := []int32{0, 2, 3, 1, 2, 2}
	indices := engine.FromInt32s(idx, T, K)
	g := &nn.SwitchGLU{GateProj: &nn.SwitchLinear{Weight: gate}, UpProj: &nn.SwitchLinear{Weight: up}, DownProj: &nn.SwitchLinear{Weight: down}}
	got := vals(t, g.Forward(x, indices)) // [T, K, D]
	xv, gv, uv, dv := vals(t, x), vals(t, gate), vals(t, up), vals(t, down)
	want := make([]float32, T*K*D)
	for tok := range T {
		for k := range K {
			e := int(idx[tok*K+k])
			a := matmulT(xv[tok*D:(tok+1)*D], gv[e*I*D:(e+1)*I*D], 1, I, D)
			u := matmulT(xv[tok*D:(tok+1)*D], uv[e*I*D:(e+1)*I*D], 1, I, D)
			for i := range a {
				s := float64(a[i])
				a[i] = float32(s / (1 + math.Exp(-s)) * float64(u[i]))
			}
			copy(want[(tok*K+k)*D:], matmulT(a, dv[e*D*I:(e+1)*D*I], 1, D, I))
		}
	}
	if d := maxDiff(got, want); d > 1e-3 {
		t.Errorf("switch glu max diff %g", d)
	}
	ql := func(w *engine.Array) nn.SwitchLayer {
		var qs, ss, bs []*engine.Array
		for e := range E {
			q, s, b := quantize(t, engine.Squeeze(engine.SliceAxis(w, 0, e, e+1), 0), 32, 8)
			qs, ss, bs = append(qs, q), append(ss, s), append(bs, b)
		}
		return &nn.QuantizedSwitchLinear{Weight: engine.Stack(qs, 0), Scales: engine.Stack(ss, 0), Biases: engine.Stack(bs, 0), GroupSize: 32, Bits: 8, Exact: true}
	}
	qg := &nn.SwitchGLU{GateProj: ql(gate), UpProj: ql(up), DownProj: ql(down)}
	qgot := vals(t, qg.Forward(x, indices))
	// 8-bit weights: close to the float result.
	if d := relDiff(qgot, want); d > 2e-2 {
		t.Errorf("quantized switch glu rel diff %g", d)
	}
	for _, p := range []nn.SwitchLayer{qg.GateProj, qg.UpProj, qg.DownProj} {
		p.(*nn.QuantizedSwitchLinear).Exact = false
	}
	// GatherQMM may round activations to int8 (see QuantizedLinear.Exact).
	if d := relDiff(vals(t, qg.Forward(x, indices)), qgot); d > 8e-2 {
		t.Errorf("GatherQMM vs dequantized GatherMM rel diff %g", d)
	} else {
		t.Logf("GatherQMM vs dequantized GatherMM rel diff %g", d)
	}
}
