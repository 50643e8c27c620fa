package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// rowsRef applies f to each last-axis row.
func rowsRef(x tensor, f func(row []float64) []float64) tensor {
	D := x.shape[len(x.shape)-1]
	out := tensor{x.shape, make([]float64, 0, len(x.data))}
	for i := 0; i < len(x.data); i += D {
		out.data = append(out.data, f(x.data[i:i+D])...)
	}
	return out
}

func softmaxRow(r []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range r {
		m = math.Max(m, v)
	}
	var s float64
	o := make([]float64, len(r))
	for i, v := range r {
		o[i] = math.Exp(v - m)
		s += o[i]
	}
	for i := range o {
		o[i] /= s
	}
	return o
}

func TestSoftmaxFamily(t *testing.T) {
	x := randT(3, 7)
	xt := x.permute(1, 0) // softmax over rows of the transposed view
	near(t, "Softmax", Softmax(Transpose(x.arr()), -1), rowsRef(xt, softmaxRow), 1e-7, 1e-6)
	near(t, "Softmax/axis0", Transpose(Softmax(x.arr(), 0)), rowsRef(xt, softmaxRow), 1e-7, 1e-6)
	near(t, "softmaxComposite", softmaxComposite(x.arr(), 1), rowsRef(x, softmaxRow), 1e-7, 1e-6)
	xr := x.roundTo(BFloat16)
	near(t, "Softmax/bf16", Softmax(x.arrAs(BFloat16), -1), rowsRef(xr, softmaxRow), 2e-3, 8e-3)
	lsm := rowsRef(x, func(r []float64) []float64 {
		s := softmaxRow(r)
		for i := range s {
			s[i] = math.Log(s[i])
		}
		return s
	})
	near(t, "LogSoftmax", LogSoftmax(x.arr(), -1), lsm, 1e-6, 1e-6)
	gradCheck(t, "Softmax", func(xs []*Array) *Array { return Softmax(xs[0], -1) }, x)
	gradCheck(t, "Softmax/axis0", func(xs []*Array) *Array { return Softmax(xs[0], 0) }, x)
	gradCheck(t, "LogSoftmax", func(xs []*Array) *Array { return LogSoftmax(xs[0], -1) }, x)

	// cross-entropy with int targets
	tg := []int32{6, 0, 3}
	ce := CrossEntropy(x.arr(), FromInt32s(tg, 3))
	want := tensor{[]int{3}, nil}
	for i := 0; i < 3; i++ {
		want.data = append(want.data, -lsm.at(i, int(tg[i])))
	}
	near(t, "CrossEntropy", ce, want, 1e-6, 1e-6)
	gradCheck(t, "CrossEntropy", func(xs []*Array) *Array { return CrossEntropy(xs[0], FromInt32s(tg, 3)) }, x)
	if CrossEntropy(x.arr(), FromInt32s([]int32{1}, 1)).Err() == nil {
		t.Error("CrossEntropy with mis-shaped targets did not fail")
	}
}

func TestNorms(t *testing.T) {
	x, w, b := randT(2, 3, 8), randT(8), randT(8)
	const eps = 1e-5
	rmsDT := func(x, w tensor, dt DType) tensor {
		return rowsRef(x, func(r []float64) []float64 {
			var ss float64
			for _, v := range r {
				ss += v * v
			}
			s := 1 / math.Sqrt(ss/float64(len(r))+eps)
			o := make([]float64, len(r))
			for i, v := range r {
				// normalised value rounded to the dtype before the weight
				n := tensor{[]int{1}, []float64{v * s}}.roundTo(dt).data[0]
				o[i] = n * w.data[i]
			}
			return o
		})
	}
	rms := func(x, w tensor) tensor { return rmsDT(x, w, Float32) }
	ln := func(x, w, b tensor) tensor {
		return rowsRef(x, func(r []float64) []float64 {
			var m, v float64
			for _, e := range r {
				m += e
			}
			m /= float64(len(r))
			for _, e := range r {
				v += (e - m) * (e - m)
			}
			s := 1 / math.Sqrt(v/float64(len(r))+eps)
			o := make([]float64, len(r))
			for i, e := range r {
				o[i] = (e-m)*s*w.data[i] + b.data[i]
			}
			return o
		})
	}
	xt := x.permute(1, 0, 2)
	near(t, "RMSNorm", RMSNorm(Transpose(x.arr(), 1, 0, 2), w.arr(), eps), rms(xt, w), 1e-6, 1e-5)
	near(t, "LayerNorm", LayerNorm(Transpose(x.arr(), 1, 0, 2), w.arr(), b.arr(), eps), ln(xt, w, b), 1e-6, 1e-5)
	ones := tensor{[]int{8}, []float64{1, 1, 1, 1, 1, 1, 1, 1}}
	zeros := tensor{[]int{8}, make([]float64, 8)}
	near(t, "RMSNorm/noweight", RMSNorm(x.arr(), nil, eps), rms(x, ones), 1e-6, 1e-5)
	near(t, "LayerNorm/noaffine", LayerNorm(x.arr(), nil, nil, eps), ln(x, ones, zeros), 1e-6, 1e-5)
	// bf16 activations and weight: computed in float32, rounded once
	xr, wr := x.roundTo(BFloat16), w.roundTo(BFloat16)
	got := RMSNorm(x.arrAs(BFloat16), w.arrAs(BFloat16), eps)
	if got.DType() != BFloat16 {
		t.Errorf("RMSNorm(bf16) dtype %s", got.DType())
	}
	near(t, "RMSNorm/bf16", got, rmsDT(xr, wr, BFloat16), 1e-2, 4e-3)
	near(t, "RMSNorm/bf16-composite", RMSNorm(x.arrAs(BFloat16), w.arrAs(BFloat16), eps).prim.(fusedPrim).composite(
		[]*Array{x.arrAs(BFloat16), w.arrAs(BFloat16)}), rmsDT(xr, wr, BFloat16), 1e-2, 4e-3)
	// rows split over the cores (a large input), and the fused bf16 kernel
	// equal bit for bit to its composite (same roundings)
	xl, wl := randT(300, 2, 128), randT(128)
	near(t, "RMSNorm/large", RMSNorm(Transpose(xl.arr(), 1, 0, 2), wl.arr(), eps), rms(xl.permute(1, 0, 2), wl), 1e-6, 1e-5)
	for _, in := range [][2]tensor{{x, w}, {xl, wl}} {
		xb, wb := in[0].arrAs(BFloat16), in[1].arrAs(BFloat16)
		f := RMSNorm(xb, wb, eps)
		c := f.prim.(fusedPrim).composite([]*Array{xb, wb})
		if ok, err := AllClose(f, c, 0, 0); err != nil || !ok {
			t.Errorf("RMSNorm(bf16 %v): fused differs from composite (%v)", in[0].shape, err)
		}
	}
	gradCheck(t, "RMSNorm", func(xs []*Array) *Array { return RMSNorm(xs[0], xs[1], eps) }, randT(2, 5), randT(5))
	gradCheck(t, "LayerNorm", func(xs []*Array) *Array { return LayerNorm(xs[0], xs[1], xs[2], eps) }, randT(2, 5), randT(5), randT(5))
	if RMSNorm(x.arr(), randT(7).arr(), eps).Err() == nil {
		t.Error("RMSNorm with a mis-shaped weight did not fail")
	}
}

// ropeRef rotates x [..., L, D] like mx.fast.rope.
func ropeRef(x tensor, o RoPEOptions, freqs []float64) tensor {
	nd := len(x.shape)
	L, D := x.shape[nd-2], x.shape[nd-1]
	half := o.Dims / 2
	scale := float64(o.Scale)
	if scale == 0 {
		scale = 1
	}
	out := tensor{x.shape, append([]float64(nil), x.data...)}
	for r := 0; r < len(x.data)/D; r++ {
		pos := float64(o.Offset+r%L) * scale
		row := out.data[r*D : (r+1)*D]
		for i := 0; i < half; i++ {
			inv := math.Pow(float64(o.Base), -2*float64(i)/float64(o.Dims))
			if freqs != nil {
				inv = 1 / freqs[i]
			}
			th := pos * inv
			a, b := i, i+half
			if o.Traditional {
				a, b = 2*i, 2*i+1
			}
			x1, x2 := row[a], row[b]
			row[a] = x1*math.Cos(th) - x2*math.Sin(th)
			row[b] = x1*math.Sin(th) + x2*math.Cos(th)
		}
	}
	return out
}

func TestRoPE(t *testing.T) {
	x := randT(2, 3, 5, 8) // [B, H, L, Dh]
	freqs := randPos(3)
	for _, o := range []RoPEOptions{
		{Dims: 8, Base: 10000, Scale: 1},
		{Dims: 8, Traditional: true, Base: 10000, Scale: 1, Offset: 7},
		{Dims: 6, Base: 500, Scale: 0.5, Offset: 3},
		{Dims: 6, Traditional: true, Base: 500, Scale: 1, Offset: 2},
	} {
		near(t, "RoPE", RoPE(x.arr(), o), ropeRef(x, o, nil), 1e-5, 1e-5)
		near(t, "ropeComposite", ropeComposite(x.arr(), o, nil, nil), ropeRef(x, o, nil), 1e-5, 1e-5)
		gradCheck(t, "RoPE", func(xs []*Array) *Array { return RoPE(xs[0], o) }, randT(1, 2, 3, 8))
	}
	// custom frequencies, transposed input ([B, L, H, Dh] -> [B, H, L, Dh])
	o := RoPEOptions{Dims: 6, Scale: 1, Offset: 4, Freqs: freqs.arr()}
	xl := randT(2, 5, 3, 8)
	near(t, "RoPE/freqs", RoPE(Transpose(xl.arr(), 0, 2, 1, 3), o), ropeRef(xl.permute(0, 2, 1, 3), o, freqs.data), 1e-5, 1e-5)
	gradCheck(t, "RoPE/freqs", func(xs []*Array) *Array { return RoPE(Transpose(xs[0], 0, 2, 1, 3), o) }, randT(1, 3, 2, 8))
	// per-sequence offsets: batch entry b starts at offs[b]
	offs := []int32{3, 17}
	ob := RoPEOptions{Dims: 6, Base: 10000, Scale: 0.5, Traditional: true, Offsets: FromInt32s(offs, 2)}
	var wantO []float64
	for bi, st := range offs {
		xb := tensor{[]int{1, 3, 5, 8}, x.data[bi*120 : (bi+1)*120]}
		oo := ob
		oo.Offset = int(st)
		wantO = append(wantO, ropeRef(xb, oo, nil).data...)
	}
	near(t, "RoPE/offsets", RoPE(x.arr(), ob), tensor{x.shape, wantO}, 1e-5, 1e-5)
	near(t, "ropeComposite/offsets", ropeComposite(x.arr(), ob, nil, ob.Offsets), tensor{x.shape, wantO}, 1e-5, 1e-5)
	gradCheck(t, "RoPE/offsets", func(xs []*Array) *Array { return RoPE(xs[0], ob) }, randT(2, 1, 3, 8))
	if RoPE(x.arr(), RoPEOptions{Dims: 8, Base: 1, Offsets: FromInt32s([]int32{1, 2, 3}, 3)}).Err() == nil {
		t.Error("RoPE with offsets for the wrong batch did not fail")
	}
	// a large transposed input: rows split over the cores
	xb := randT(2, 48, 6, 128)
	o = RoPEOptions{Dims: 96, Base: 10000, Scale: 1, Offset: 5}
	near(t, "RoPE/large", RoPE(Transpose(xb.arr(), 0, 2, 1, 3), o), ropeRef(xb.permute(0, 2, 1, 3), o, nil), 1e-5, 1e-5)
	xr := x.roundTo(BFloat16)
	o = RoPEOptions{Dims: 8, Base: 10000, Scale: 1, Offset: 11}
	near(t, "RoPE/bf16", RoPE(x.arrAs(BFloat16), o), ropeRef(xr, o, nil), 1e-2, 8e-3)
}

// sdpaRef is the textbook attention in float64.
func sdpaRef(q, k, v tensor, mask *tensor, o AttentionOptions) tensor {
	return sdpaRefSinks(q, k, v, mask, nil, o)
}

func sdpaRefSinks(q, k, v tensor, mask *tensor, sinks []float64, o AttentionOptions) tensor {
	B, H, Lq, D := q.shape[0], q.shape[1], q.shape[2], q.shape[3]
	Hk, Lk, Dv := k.shape[1], k.shape[2], v.shape[3]
	out := tensor{[]int{B, H, Lq, Dv}, make([]float64, B*H*Lq*Dv)}
	var mb tensor
	if mask != nil {
		mb = mask.broadcast(B, H, Lq, Lk)
	}
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			hk := h / (H / Hk)
			for i := 0; i < Lq; i++ {
				qpos := i + Lk - Lq
				s := make([]float64, Lk)
				for j := range s {
					var d float64
					for e := 0; e < D; e++ {
						d += q.at(b, h, i, e) * k.at(b, hk, j, e)
					}
					d *= float64(o.Scale)
					if o.SoftCap > 0 {
						d = float64(o.SoftCap) * math.Tanh(d/float64(o.SoftCap))
					}
					if mask != nil {
						mv := mb.at(b, h, i, j)
						if o.Mask.DType() == Bool {
							if mv == 0 {
								d = math.Inf(-1)
							}
						} else {
							d += mv
						}
					}
					if (o.Causal && j > qpos) || (o.Window > 0 && j <= qpos-o.Window) {
						d = math.Inf(-1)
					}
					s[j] = d
				}
				if sinks != nil {
					s = append(s, sinks[h])
				}
				p := softmaxRow(s)[:Lk]
				for e := 0; e < Dv; e++ {
					var acc float64
					for j := range p {
						acc += p[j] * v.at(b, hk, j, e)
					}
					out.data[((b*H+h)*Lq+i)*Dv+e] = acc
				}
			}
		}
	}
	return out
}

func TestScaledDotProductAttention(t *testing.T) {
	B, H, Hk, Lq, Lk, D := 2, 4, 2, 3, 6, 8
	q, k, v := randT(B, H, Lq, D), randT(B, Hk, Lk, D), randT(B, Hk, Lk, D)
	scale := float32(1 / math.Sqrt(float64(D)))
	boolMask := tensor{[]int{B, 1, Lq, Lk}, make([]float64, B*Lq*Lk)}
	for i := range boolMask.data {
		if rng.IntN(4) != 0 || i%Lk == 0 {
			boolMask.data[i] = 1
		}
	}
	addMask := randT(Lq, Lk)
	cases := []struct {
		name string
		o    AttentionOptions
		mask *tensor
	}{
		{"plain", AttentionOptions{Scale: scale}, nil},
		{"causal", AttentionOptions{Scale: scale, Causal: true}, nil},
		{"window", AttentionOptions{Scale: scale, Causal: true, Window: 3}, nil},
		{"softcap", AttentionOptions{Scale: scale, Causal: true, SoftCap: 0.7}, nil},
		{"additive", AttentionOptions{Scale: scale, Mask: addMask.arr()}, &addMask},
		{"bool", AttentionOptions{Scale: scale, Mask: AsType(boolMask.arr(), Bool)}, &boolMask},
	}
	for _, c := range cases {
		want := sdpaRef(q, k, v, c.mask, c.o)
		near(t, "SDPA/"+c.name, ScaledDotProductAttention(q.arr(), k.arr(), v.arr(), c.o), want, 1e-5, 1e-5)
		var m *Array
		if c.mask != nil {
			m = c.o.Mask
		}
		near(t, "sdpaComposite/"+c.name, sdpaComposite(q.arr(), k.arr(), v.arr(), m, nil, c.o), want, 1e-5, 1e-5)
	}
	// keys and values read through views: a [B, Lk, Hk, D] layout transposed
	kt := randT(B, Lk, Hk, D)
	vt := randT(B, Lk, Hk, D)
	o := AttentionOptions{Scale: scale, Causal: true}
	near(t, "SDPA/views", ScaledDotProductAttention(q.arr(), Transpose(kt.arr(), 0, 2, 1, 3), Transpose(vt.arr(), 0, 2, 1, 3), o),
		sdpaRef(q, kt.permute(0, 2, 1, 3), vt.permute(0, 2, 1, 3), nil, o), 1e-5, 1e-5)
	// bf16 inputs
	qr, kr, vr := q.roundTo(BFloat16), k.roundTo(BFloat16), v.roundTo(BFloat16)
	near(t, "SDPA/bf16", ScaledDotProductAttention(q.arrAs(BFloat16), k.arrAs(BFloat16), v.arrAs(BFloat16), o),
		sdpaRef(qr, kr, vr, nil, o), 1e-2, 8e-3)
	// gradients through the composite form
	gq, gk, gv := randT(1, 2, 2, 4), randT(1, 1, 3, 4), randT(1, 1, 3, 4)
	for _, c := range []AttentionOptions{{Scale: 0.5, Causal: true}, {Scale: 0.5, SoftCap: 1, Mask: randT(2, 3).arr()}} {
		gradCheck(t, "SDPA", func(xs []*Array) *Array { return ScaledDotProductAttention(xs[0], xs[1], xs[2], c) }, gq, gk, gv)
	}
	// attention sinks (gpt-oss): fused, composite and gradient
	sinks := randT(H)
	os := AttentionOptions{Scale: scale, Causal: true, Window: 4, Sinks: sinks.arr()}
	wantS := sdpaRefSinks(q, k, v, nil, sinks.data, os)
	near(t, "SDPA/sinks", ScaledDotProductAttention(q.arr(), k.arr(), v.arr(), os), wantS, 1e-5, 1e-5)
	near(t, "sdpaComposite/sinks", sdpaComposite(q.arr(), k.arr(), v.arr(), nil, sinks.arr(), os), wantS, 1e-5, 1e-5)
	gs := AttentionOptions{Scale: 0.5, Causal: true, Sinks: randT(2).arr()}
	gradCheck(t, "SDPA/sinks", func(xs []*Array) *Array { return ScaledDotProductAttention(xs[0], xs[1], xs[2], gs) }, gq, gk, gv)
	// both cpu paths: many query rows per kv head (blocked, through Sgemm)
	// and one query per head (decode) over transposed bf16 views
	// (80 query rows × 2 heads per kv head: several blocks, whose causal
	// key ranges differ)
	for _, c := range [][2]int{{20, 24}, {1, 24}, {80, 84}} {
		lq, lk := c[0], c[1]
		q2, k2, v2 := randT(B, H, lq, D), randT(B, lk, Hk, D), randT(B, lk, Hk, D)
		m2 := tensor{[]int{lq, lk}, make([]float64, lq*lk)}
		for i := range m2.data {
			if rng.IntN(3) != 0 || i%lk == 0 {
				m2.data[i] = 1
			}
		}
		kp, vp := k2.permute(0, 2, 1, 3), v2.permute(0, 2, 1, 3)
		for _, c := range []AttentionOptions{{Scale: scale, Causal: true}, {Scale: scale, Mask: AsType(m2.arr(), Bool)}} {
			var mt *tensor
			if c.Mask != nil {
				mt = &m2
			}
			name := fmt.Sprintf("SDPA/Lq=%d/mask=%v", lq, mt != nil)
			near(t, name, ScaledDotProductAttention(q2.arr(), Transpose(k2.arr(), 0, 2, 1, 3), Transpose(v2.arr(), 0, 2, 1, 3), c),
				sdpaRef(q2, kp, vp, mt, c), 1e-5, 1e-5)
			near(t, name+"/bf16", ScaledDotProductAttention(q2.arrAs(BFloat16), Transpose(k2.arrAs(BFloat16), 0, 2, 1, 3), Transpose(v2.arrAs(BFloat16), 0, 2, 1, 3), c),
				sdpaRef(q2.roundTo(BFloat16), kp.roundTo(BFloat16), vp.roundTo(BFloat16), mt, c), 1e-2, 8e-3)
		}
	}
	// decode with a head size the AVX-512 row kernels take (a multiple of 16)
	qd, kd, vd := randT(1, 4, 1, 32), randT(1, 2, 70, 32), randT(1, 2, 70, 32)
	near(t, "SDPA/decode-Dh32", ScaledDotProductAttention(qd.arr(), kd.arr(), vd.arr(), o), sdpaRef(qd, kd, vd, nil, o), 1e-5, 1e-5)
	near(t, "SDPA/decode-Dh32/bf16", ScaledDotProductAttention(qd.arrAs(BFloat16), kd.arrAs(BFloat16), vd.arrAs(BFloat16), o),
		sdpaRef(qd.roundTo(BFloat16), kd.roundTo(BFloat16), vd.roundTo(BFloat16), nil, o), 1e-2, 8e-3)
	if ScaledDotProductAttention(q.arr(), randT(B, 3, Lk, D).arr(), randT(B, 3, Lk, D).arr(), o).Err() == nil {
		t.Error("SDPA with H not a multiple of Hk did not fail")
	}
}

func TestStopGradient(t *testing.T) {
	x := randT(3)
	g, err := Grad(func(p []*Array) *Array {
		return Sum(Multiply(p[0], StopGradient(p[0])), false)
	})([]*Array{x.arr()})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "StopGradient", g[0], x, 1e-7, 1e-7) // d(x·sg(x))/dx = sg(x)
}

func TestVJPAndUnusedParams(t *testing.T) {
	x, y, z := randT(2, 3), randT(2, 3), randT(4)
	cot := randT(2, 3)
	outs, vjps, err := VJP(func(p []*Array) []*Array { return []*Array{Multiply(p[0], p[1])} },
		[]*Array{x.arr(), y.arr(), z.arr()}, []*Array{cot.arr()})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "VJP/out", outs[0], zip(x, y, func(a, b float64) float64 { return a * b }), 1e-6, 1e-6)
	near(t, "VJP/x", vjps[0], zip(cot, y, func(a, b float64) float64 { return a * b }), 1e-6, 1e-6)
	near(t, "VJP/y", vjps[1], zip(cot, x, func(a, b float64) float64 { return a * b }), 1e-6, 1e-6)
	near(t, "VJP/unused", vjps[2], tensor{[]int{4}, make([]float64, 4)}, 0, 0)
	// a parameter used twice accumulates
	g, err := Grad(func(p []*Array) *Array { return Sum(Add(Multiply(p[0], p[0]), p[0]), false) })([]*Array{x.arr()})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "Grad/reuse", g[0], x.mapT(func(v float64) float64 { return 2*v + 1 }), 1e-6, 1e-6)
}

func TestValueAndGradAux(t *testing.T) {
	x := randT(4)
	outs, g, err := ValueAndGradAux(func(p []*Array) []*Array {
		return []*Array{Sum(Square(p[0]), false), ScalarOf(4, Int32)}
	})([]*Array{x.arr()})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "aux grad", g[0], x.mapT(func(v float64) float64 { return 2 * v }), 1e-6, 1e-6)
	if n, _ := outs[1].Item(); n != 4 {
		t.Errorf("aux output = %v", n)
	}
}

// SwiGLU: Multiply(SiLU(g), up) fuses into one node that equals the
// unfused graph (Sigmoid, Multiply, Multiply) bit for bit in every float
// dtype, for transposed views and for inputs split over the cores, and
// differentiates through its composite.
func TestSwiGLUFused(t *testing.T) {
	// {5000, 1}: transposed to one row of 5000, split into blocks over
	// the cores (a decode step's MLP row)
	for _, shape := range [][]int{{3, 5}, {70, 1100}, {5000, 1}} {
		g, u := randT(shape...), randT(shape...)
		for _, dt := range []DType{Float32, BFloat16, Float16} {
			ga, ua := Transpose(g.arrAs(dt), 1, 0), Transpose(u.arrAs(dt), 1, 0)
			fused := Multiply(SiLU(ga), ua)
			if p, ok := fused.prim.(fusedPrim); testBackend == "cpu" && (!ok || p.nm != "SwiGLU") {
				t.Fatalf("Multiply(SiLU(g), up) is not one SwiGLU node: %T", fused.prim)
			}
			unfused := binaryOp(backend.Mul, binaryOp(backend.Mul, ga, Sigmoid(ga)), ua)
			if ok, err := AllClose(fused, unfused, 0, 0); err != nil || !ok {
				t.Errorf("SwiGLU %v %s differs from the unfused ops (%v)", shape, dt, err)
			}
			// operands the other way round, and SiLU alone
			if ok, err := AllClose(Multiply(ua, SiLU(ga)), unfused, 0, 0); err != nil || !ok {
				t.Errorf("Multiply(up, SiLU(g)) %v %s differs (%v)", shape, dt, err)
			}
			if ok, err := AllClose(SiLU(ga), binaryOp(backend.Mul, ga, Sigmoid(ga)), 0, 0); err != nil || !ok {
				t.Errorf("SiLU %v %s differs from x·sigmoid(x) (%v)", shape, dt, err)
			}
		}
		want := zip(g, u, func(a, b float64) float64 { return a / (1 + math.Exp(-a)) * b })
		near(t, "SwiGLU/f32", Multiply(SiLU(g.arr()), u.arr()), want, 1e-6, 2e-6)
	}
	// broadcasting up is not fused but still right
	g, u := randT(2, 4), randT(4)
	near(t, "SwiGLU/broadcast", Multiply(SiLU(g.arr()), u.arr()),
		zip(g, tensor{[]int{2, 4}, append(append([]float64{}, u.data...), u.data...)}, func(a, b float64) float64 { return a / (1 + math.Exp(-a)) * b }), 1e-6, 2e-6)
	gradCheck(t, "SwiGLU", func(xs []*Array) *Array { return Multiply(SiLU(xs[0]), xs[1]) }, randT(2, 3), randT(2, 3))
}

// TestRoPEAngleCache runs RoPE calls that share some parameters and differ
// in one (offset, length, base, scale, dims) back to back, then repeats
// the first: the backend keeps the last angle table, and each call must
// still match the reference for its own options.
func TestRoPEAngleCache(t *testing.T) {
	x := randT(1, 2, 3, 8)
	x1 := randT(1, 2, 1, 8)
	base := RoPEOptions{Dims: 8, Base: 10000, Scale: 1, Offset: 5}
	steps := []struct {
		x tensor
		o RoPEOptions
	}{
		{x, base},
		{x, base}, // same table
		{x1, base},
		{x, RoPEOptions{Dims: 8, Base: 10000, Scale: 1, Offset: 6}},
		{x, RoPEOptions{Dims: 8, Base: 500, Scale: 1, Offset: 5}},
		{x, RoPEOptions{Dims: 8, Base: 10000, Scale: 0.5, Offset: 5}},
		{x, RoPEOptions{Dims: 6, Base: 10000, Scale: 1, Offset: 5}},
		{x, base},
	}
	for i, s := range steps {
		near(t, fmt.Sprintf("RoPE call %d", i), RoPE(s.x.arr(), s.o), ropeRef(s.x, s.o, nil), 1e-5, 1e-5)
	}
}
