package engine

import (
	"fmt"
	"math"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

var posInf = math.Inf(1)

// fusedPrim runs a backend's fused kernel; its gradient is that of the
// composite built from smaller ops (recomputed in the backward pass).
type fusedPrim struct {
	nm        string
	run       func(out *Array, in []*Array) error
	composite func(in []*Array) *Array
}

func (p fusedPrim) name() string                       { return p.nm }
func (p fusedPrim) eval(out *Array, in []*Array) error { return p.run(out, in) }
func (p fusedPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	return vjpGraph([]*Array{p.composite(in)}, in, []*Array{g})
}

func viewPtr(a *Array) *backend.View {
	if a == nil {
		return nil
	}
	v := a.view()
	return &v
}

// compute32 widens half inputs to float32 for a composite.
func compute32(a *Array) *Array {
	if a.dtype == BFloat16 || a.dtype == Float16 {
		return AsType(a, Float32)
	}
	return a
}

// Softmax normalises exp(a) over axis, computed in float32 or wider.
func Softmax(a *Array, axis int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	if !a.dtype.IsFloat() {
		a = AsType(a, Float32)
	}
	if _, ok := defaultBackend.(backend.FusedSoftmax); ok && ax == len(a.shape)-1 {
		return newNode(a.dtype, a.shape, softmaxPrim{}, a)
	}
	return softmaxComposite(a, ax)
}

func softmaxComposite(a *Array, ax int) *Array {
	x := compute32(a)
	e := Exp(Subtract(x, StopGradient(Max(x, true, ax))))
	return AsType(Divide(e, Sum(e, true, ax)), a.dtype)
}

type softmaxPrim struct{}

func (softmaxPrim) name() string { return "Softmax" }
func (softmaxPrim) eval(out *Array, in []*Array) error {
	if err := alloc(out); err != nil {
		return err
	}
	return defaultBackend.(backend.FusedSoftmax).Softmax(in[0].view(), out.view())
}
func (softmaxPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	y := compute32(out)
	g32 := compute32(g)
	r := Multiply(y, Subtract(g32, Sum(Multiply(g32, y), true, -1)))
	return []*Array{AsType(r, in[0].dtype)}
}

// LogSoftmax returns a - logsumexp(a) over axis.
func LogSoftmax(a *Array, axis int) *Array {
	x := compute32(a)
	return AsType(Subtract(x, LogSumExp(x, true, axis)), a.dtype)
}

// RMSNorm returns x · rsqrt(mean(x²) + eps) · weight over the last axis
// (weight [D] or nil), in x's dtype (mx.fast.rms_norm): the normalisation
// runs in float32 and is rounded to x's dtype before the weight is applied.
func RMSNorm(x, weight *Array, eps float32) *Array {
	if err := firstErr(x); err != nil {
		return errArray(err)
	}
	in := []*Array{x}
	if weight != nil {
		if err := firstErr(weight); err != nil {
			return errArray(err)
		}
		if len(x.shape) == 0 || !slices.Equal(weight.shape, x.shape[len(x.shape)-1:]) {
			return Errorf("engine: RMSNorm: weight %v does not match x %v", weight.shape, x.shape)
		}
		in = append(in, weight)
	}
	// normalise in float32, round to x's dtype, then scale in that dtype
	// (MLX's reference rms_norm, and transformers' RMSNorm)
	comp := func(in []*Array) *Array {
		x32 := compute32(in[0])
		y := AsType(Multiply(x32, Rsqrt(Add(Mean(Square(x32), true, -1), Scalar(float64(eps))))), in[0].dtype)
		if len(in) > 1 {
			y = AsType(Multiply(y, in[1]), in[0].dtype)
		}
		return y
	}
	if f, ok := defaultBackend.(backend.FusedNorm); ok {
		return newNode(x.dtype, x.shape, fusedPrim{nm: "RMSNorm", composite: comp, run: func(out *Array, in []*Array) error {
			if err := alloc(out); err != nil {
				return err
			}
			var w *Array
			if len(in) > 1 {
				w = in[1]
			}
			return f.RMSNorm(eps, in[0].view(), viewPtr(w), out.view())
		}}, in...)
	}
	return comp(in)
}

// LayerNorm returns (x − mean)·rsqrt(var + eps)·weight + bias over the last
// axis; weight and bias [D] may be nil (mx.fast.layer_norm).
func LayerNorm(x, weight, bias *Array, eps float32) *Array {
	if err := firstErr(x); err != nil {
		return errArray(err)
	}
	in := []*Array{x}
	hasW, hasB := weight != nil, bias != nil
	for _, p := range []*Array{weight, bias} {
		if p == nil {
			continue
		}
		if err := firstErr(p); err != nil {
			return errArray(err)
		}
		if len(x.shape) == 0 || !slices.Equal(p.shape, x.shape[len(x.shape)-1:]) {
			return Errorf("engine: LayerNorm: parameter %v does not match x %v", p.shape, x.shape)
		}
		in = append(in, p)
	}
	comp := func(in []*Array) *Array {
		x32 := compute32(in[0])
		xc := Subtract(x32, Mean(x32, true, -1))
		dt := in[0].dtype
		y := AsType(Multiply(xc, Rsqrt(Add(Mean(Square(xc), true, -1), Scalar(float64(eps))))), dt)
		i := 1
		if hasW {
			y = AsType(Multiply(y, in[i]), dt)
			i++
		}
		if hasB {
			y = AsType(Add(y, in[i]), dt)
		}
		return y
	}
	if f, ok := defaultBackend.(backend.FusedNorm); ok {
		return newNode(x.dtype, x.shape, fusedPrim{nm: "LayerNorm", composite: comp, run: func(out *Array, in []*Array) error {
			if err := alloc(out); err != nil {
				return err
			}
			var w, b *Array
			i := 1
			if hasW {
				w = in[i]
				i++
			}
			if hasB {
				b = in[i]
			}
			return f.LayerNorm(eps, in[0].view(), viewPtr(w), viewPtr(b), out.view())
		}}, in...)
	}
	return comp(in)
}

// RoPEOptions configure RoPE (mx.fast.rope).
type RoPEOptions struct {
	Dims        int     // features rotated (≤ D, even); the rest pass through
	Traditional bool    // rotate adjacent pairs (2i, 2i+1) instead of halves
	Base        float32 // frequency base (e.g. 10000), ignored with Freqs
	Scale       float32 // position scale (1 for none)
	Offset      int     // position of the first row
	Freqs       *Array  // optional [Dims/2] frequencies: θ_i = pos / Freqs[i]
	// Offsets, if set, is an integer [B] of per-sequence first positions
	// (batched generation with caches of different lengths); Offset is
	// then ignored.
	Offsets *Array
}

// RoPE applies rotary position embeddings to x [..., L, D]: row l is at
// position Offset + l. Computed in float32, returned in x's dtype.
func RoPE(x *Array, o RoPEOptions) *Array {
	if err := firstErr(x); err != nil {
		return errArray(err)
	}
	nd := len(x.shape)
	if nd < 2 {
		return Errorf("engine: RoPE: x must be [..., L, D], got %v", x.shape)
	}
	D := x.shape[nd-1]
	if o.Dims <= 0 || o.Dims > D || o.Dims%2 != 0 {
		return Errorf("engine: RoPE: dims %d must be even and in (0, %d]", o.Dims, D)
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	in := []*Array{x}
	if o.Freqs != nil {
		if err := firstErr(o.Freqs); err != nil {
			return errArray(err)
		}
		if !slices.Equal(o.Freqs.shape, []int{o.Dims / 2}) {
			return Errorf("engine: RoPE: freqs %v, want [%d]", o.Freqs.shape, o.Dims/2)
		}
		in = append(in, o.Freqs)
	}
	hasF, hasO := o.Freqs != nil, o.Offsets != nil
	if hasO {
		if err := firstErr(o.Offsets); err != nil {
			return errArray(err)
		}
		if o.Offsets.dtype.IsFloat() || !slices.Equal(o.Offsets.shape, x.shape[:1]) || nd < 3 {
			return Errorf("engine: RoPE: offsets %s%v must be integers shaped [%d] for x %v", o.Offsets.dtype, o.Offsets.shape, x.shape[0], x.shape)
		}
		in = append(in, o.Offsets)
	}
	// split returns the optional freqs and offsets inputs
	split := func(in []*Array) (f, off *Array) {
		i := 1
		if hasF {
			f = in[i]
			i++
		}
		if hasO {
			off = in[i]
		}
		return f, off
	}
	comp := func(in []*Array) *Array {
		f, off := split(in)
		return ropeComposite(in[0], o, f, off)
	}
	if r, ok := defaultBackend.(backend.FusedRoPE); ok {
		op := backend.RoPE{Dims: o.Dims, Traditional: o.Traditional, Base: o.Base, Scale: o.Scale, Offset: o.Offset}
		return newNode(x.dtype, x.shape, fusedPrim{nm: "RoPE", composite: comp, run: func(out *Array, in []*Array) error {
			if err := alloc(out); err != nil {
				return err
			}
			f, off := split(in)
			return r.RoPE(op, in[0].view(), viewPtr(f), viewPtr(off), out.view())
		}}, in...)
	}
	return comp(in)
}

func ropeComposite(x *Array, o RoPEOptions, freqs, offsets *Array) *Array {
	nd := len(x.shape)
	L, D, half := x.shape[nd-2], x.shape[nd-1], o.Dims/2
	pos := Multiply(Arange(float64(o.Offset), float64(o.Offset+L), 1, Float32), Scalar(float64(o.Scale)))
	var inv *Array
	if freqs != nil {
		inv = Reciprocal(AsType(StopGradient(freqs), Float32))
	} else {
		e := Divide(Arange(0, float64(o.Dims), 2, Float32), Scalar(float64(o.Dims)))
		inv = Power(ScalarOf(float64(o.Base), Float32), Negative(e))
	}
	theta := Multiply(Reshape(pos, L, 1), Reshape(inv, 1, half)) // [L, half]
	if offsets != nil {
		// per-sequence start: θ[b, l] = (offsets[b] + l)·scale·inv
		rel := Multiply(Arange(0, float64(L), 1, Float32), Scalar(float64(o.Scale)))
		st := Multiply(AsType(StopGradient(offsets), Float32), Scalar(float64(o.Scale)))
		p := Add(Reshape(st, -1, 1), Reshape(rel, 1, L)) // [B, L]
		shape := make([]int, nd)
		for i := range shape {
			shape[i] = 1
		}
		shape[0], shape[nd-2], shape[nd-1] = x.shape[0], L, half
		theta = Reshape(Multiply(ExpandDims(p, -1), Reshape(inv, 1, 1, half)), shape...) // [B, 1.., L, half]
	}
	c, s := Cos(theta), Sin(theta)
	x32 := compute32(x)
	var x1, x2 *Array
	if o.Traditional {
		rot := Reshape(SliceAxis(x32, -1, 0, o.Dims), append(slices.Clone(x.shape[:nd-1]), half, 2)...)
		x1 = Squeeze(SliceAxis(rot, -1, 0, 1), -1)
		x2 = Squeeze(SliceAxis(rot, -1, 1, 2), -1)
	} else {
		x1 = SliceAxis(x32, -1, 0, half)
		x2 = SliceAxis(x32, -1, half, o.Dims)
	}
	r1 := Subtract(Multiply(x1, c), Multiply(x2, s))
	r2 := Add(Multiply(x1, s), Multiply(x2, c))
	var y *Array
	if o.Traditional {
		y = Reshape(Stack([]*Array{r1, r2}, -1), append(slices.Clone(x.shape[:nd-1]), o.Dims)...)
	} else {
		y = Concatenate([]*Array{r1, r2}, -1)
	}
	if o.Dims < D {
		y = Concatenate([]*Array{y, SliceAxis(x32, -1, o.Dims, D)}, -1)
	}
	return AsType(y, x.dtype)
}

// AttentionOptions configure ScaledDotProductAttention.
type AttentionOptions struct {
	Scale float32 // usually 1/√Dh
	// Causal hides keys after each query; queries are aligned to the end of
	// the keys (query i sits at key position i + Lk − Lq).
	Causal bool
	// Mask, broadcastable to [B, H, Lq, Lk]: boolean (true = attend) or
	// additive (added to the scaled scores).
	Mask *Array
	// Window > 0 also hides keys more than Window−1 positions before the
	// query (sliding-window attention).
	Window int
	// SoftCap > 0 applies SoftCap·tanh(s/SoftCap) to the scaled scores
	// before masking (Gemma 2).
	SoftCap float32
	// Sinks [H], if set, is one extra logit per head that joins every
	// softmax and carries no value (gpt-oss's attention sinks).
	Sinks *Array
}

// ScaledDotProductAttention computes softmax(q·kᵀ·scale + mask)·v for
// q [B, H, Lq, Dh], k [B, Hk, Lk, Dh], v [B, Hk, Lk, Dv] with H a multiple
// of Hk (grouped-query attention), like mx.fast.scaled_dot_product_attention.
// The cpu path streams over keys with an online softmax and never builds
// the Lq×Lk matrix; gradients come from the composite form.
func ScaledDotProductAttention(q, k, v *Array, o AttentionOptions) *Array {
	if err := firstErr(q, k, v); err != nil {
		return errArray(err)
	}
	if len(q.shape) != 4 || len(k.shape) != 4 || len(v.shape) != 4 {
		return Errorf("engine: ScaledDotProductAttention: q, k, v must be 4-D, got %v %v %v", q.shape, k.shape, v.shape)
	}
	B, H, Lq, D := q.shape[0], q.shape[1], q.shape[2], q.shape[3]
	Hk, Lk := k.shape[1], k.shape[2]
	if k.shape[0] != B || v.shape[0] != B || k.shape[3] != D || v.shape[1] != Hk || v.shape[2] != Lk || Hk == 0 || H%Hk != 0 {
		return Errorf("engine: ScaledDotProductAttention: incompatible q %v, k %v, v %v", q.shape, k.shape, v.shape)
	}
	in := []*Array{q, k, v}
	full := []int{B, H, Lq, Lk}
	if o.Mask != nil {
		if err := firstErr(o.Mask); err != nil {
			return errArray(err)
		}
		if s, err := BroadcastShapes(o.Mask.shape, full); err != nil || !slices.Equal(s, full) {
			return Errorf("engine: ScaledDotProductAttention: mask %v does not broadcast to %v", o.Mask.shape, full)
		}
		in = append(in, o.Mask)
	}
	hasMask, hasSinks := o.Mask != nil, o.Sinks != nil
	if hasSinks {
		if err := firstErr(o.Sinks); err != nil {
			return errArray(err)
		}
		if !slices.Equal(o.Sinks.shape, []int{H}) {
			return Errorf("engine: ScaledDotProductAttention: sinks %v, want [%d]", o.Sinks.shape, H)
		}
		in = append(in, o.Sinks)
	}
	dt := q.dtype
	// split returns the optional mask and sinks inputs
	split := func(in []*Array) (m, sk *Array) {
		i := 3
		if hasMask {
			m = in[i]
			i++
		}
		if hasSinks {
			sk = in[i]
		}
		return m, sk
	}
	comp := func(in []*Array) *Array {
		m, sk := split(in)
		return sdpaComposite(in[0], in[1], in[2], m, sk, o)
	}
	if f, ok := defaultBackend.(backend.FusedAttention); ok {
		op := backend.SDPA{Scale: o.Scale, Causal: o.Causal, Window: o.Window, SoftCap: o.SoftCap}
		if o.Mask != nil {
			op.MaskBool = o.Mask.dtype == Bool
		}
		shape := []int{B, H, Lq, v.shape[3]}
		return newNode(dt, shape, fusedPrim{nm: "ScaledDotProductAttention", composite: comp, run: func(out *Array, in []*Array) error {
			if err := alloc(out); err != nil {
				return err
			}
			m, sk := split(in)
			var mv *backend.View
			if m != nil {
				b := broadcastView(m.view(), full)
				mv = &b
			}
			return f.ScaledDotProductAttention(op, in[0].view(), in[1].view(), in[2].view(), mv, viewPtr(sk), out.view())
		}}, in...)
	}
	return comp(in)
}

func sdpaComposite(q, k, v, mask, sinks *Array, o AttentionOptions) *Array {
	B, H, Lq, D := q.shape[0], q.shape[1], q.shape[2], q.shape[3]
	Hk, Lk, Dv := k.shape[1], k.shape[2], v.shape[3]
	G := H / Hk
	q5 := Reshape(compute32(q), B, Hk, G, Lq, D)
	k5 := ExpandDims(compute32(k), 2)
	v5 := ExpandDims(compute32(v), 2)
	s := Multiply(Matmul(q5, SwapAxes(k5, -1, -2)), Scalar(float64(o.Scale))) // [B, Hk, G, Lq, Lk]
	if o.SoftCap > 0 {
		c := Scalar(float64(o.SoftCap))
		s = Multiply(Tanh(Divide(s, c)), c)
	}
	if mask != nil {
		m := Reshape(BroadcastTo(mask, B, H, Lq, Lk), B, Hk, G, Lq, Lk)
		if mask.dtype == Bool {
			s = Where(m, s, Scalar(math.Inf(-1)))
		} else {
			s = Add(s, AsType(m, Float32))
		}
	}
	if o.Causal || o.Window > 0 {
		qpos := Reshape(Arange(float64(Lk-Lq), float64(Lk), 1, Int32), Lq, 1)
		kpos := Reshape(Arange(0, float64(Lk), 1, Int32), 1, Lk)
		keep := Full([]int{Lq, Lk}, 1, Bool)
		if o.Causal {
			keep = LogicalAnd(keep, LessEqual(kpos, qpos))
		}
		if o.Window > 0 {
			keep = LogicalAnd(keep, Greater(kpos, Subtract(qpos, ScalarOf(float64(o.Window), Int32))))
		}
		s = Where(keep, s, Scalar(math.Inf(-1)))
	}
	if sinks != nil {
		sk := BroadcastTo(Reshape(AsType(sinks, Float32), 1, Hk, G, 1, 1), B, Hk, G, Lq, 1)
		s = Concatenate([]*Array{s, sk}, 4)
	}
	p := softmaxComposite(s, 4)
	if sinks != nil {
		p = SliceAxis(p, 4, 0, Lk)
	}
	// rows with every key hidden give 0, like the fused path
	p = Where(IsNaN(p), Scalar(0), p)
	out := Matmul(p, v5) // [B, Hk, G, Lq, Dv]
	return AsType(Reshape(out, B, H, Lq, Dv), q.dtype)
}

// SiLU returns x·sigmoid(x). On a backend with fused activations it is one
// node, and Multiply(SiLU(g), up) becomes one SwiGLU node (the MLP gate of
// most architectures), with the unfused ops' roundings.
func SiLU(x *Array) *Array {
	f, ok := defaultBackend.(backend.FusedActivation)
	if !ok || x == nil || x.err != nil || x.weak || !x.dtype.IsFloat() {
		return siluComposite(x)
	}
	return newNode(x.dtype, x.shape, fusedPrim{nm: "SiLU", composite: func(in []*Array) *Array { return siluComposite(in[0]) },
		run: func(out *Array, in []*Array) error {
			if err := alloc(out); err != nil {
				return err
			}
			return f.SwiGLU(in[0].view(), nil, out.view())
		}}, x)
}

func siluComposite(x *Array) *Array { return binaryOp(backend.Mul, x, Sigmoid(x)) }

// swiGLU returns the fused silu(x)·up when s is an unevaluated SiLU(x) node
// of up's shape and dtype, else nil.
func swiGLU(s, up *Array) *Array {
	if s == nil || up == nil || s.err != nil || up.err != nil || s.st != nil || up.weak {
		return nil
	}
	p, ok := s.prim.(fusedPrim)
	if !ok || p.nm != "SiLU" || up.dtype != s.dtype || !slices.Equal(up.shape, s.shape) {
		return nil
	}
	f, ok := defaultBackend.(backend.FusedActivation)
	if !ok {
		return nil
	}
	return newNode(s.dtype, s.shape, fusedPrim{nm: "SwiGLU",
		composite: func(in []*Array) *Array { return binaryOp(backend.Mul, siluComposite(in[0]), in[1]) },
		run: func(out *Array, in []*Array) error {
			if err := alloc(out); err != nil {
				return err
			}
			u := in[1].view()
			return f.SwiGLU(in[0].view(), &u, out.view())
		}}, s.inputs[0], up)
}

// ReLU returns max(x, 0).
func ReLU(x *Array) *Array { return Maximum(x, Scalar(0)) }

// GELU returns x·Φ(x) with the exact error function (nn.gelu).
func GELU(x *Array) *Array {
	return Multiply(Multiply(x, Scalar(0.5)), Add(Scalar(1), Erf(Multiply(x, Scalar(1/math.Sqrt2)))))
}

// GELUApprox is the tanh approximation (nn.gelu_approx):
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func GELUApprox(x *Array) *Array {
	inner := Multiply(Scalar(math.Sqrt(2/math.Pi)), Add(x, Multiply(Scalar(0.044715), Power(x, Scalar(3)))))
	return Multiply(Multiply(x, Scalar(0.5)), Add(Scalar(1), Tanh(inner)))
}

// GELUFast is nn.gelu_fast_approx: x·sigmoid(1.702·x).
func GELUFast(x *Array) *Array { return Multiply(x, Sigmoid(Multiply(x, Scalar(1.702)))) }

// Softplus returns log(1 + e^x).
func Softplus(x *Array) *Array { return LogAddExp(x, Scalar(0)) }

// CrossEntropy returns logsumexp(logits) − logits[target] over the last
// axis for integer targets with logits' leading shape (no reduction),
// computed in float32.
func CrossEntropy(logits, targets *Array) *Array {
	if err := firstErr(logits, targets); err != nil {
		return errArray(err)
	}
	nd := len(logits.shape)
	if nd == 0 || !slices.Equal(targets.shape, logits.shape[:nd-1]) || targets.dtype.IsFloat() {
		return Errorf("engine: CrossEntropy: targets %s%v must be integers shaped %v", targets.dtype, targets.shape, logits.shape[:max(nd-1, 0)])
	}
	x := compute32(logits)
	picked := Squeeze(TakeAlongAxis(x, ExpandDims(targets, -1), -1), -1)
	return Subtract(LogSumExp(x, false, -1), picked)
}

// sorting

type argSortPrim struct{ axis, kth int }

func (argSortPrim) name() string { return "ArgSort" }
func (p argSortPrim) eval(out *Array, in []*Array) error {
	if p.kth >= 0 {
		return run(backend.ArgPartition{Kth: p.kth, Axis: p.axis}, out, in[0])
	}
	return run(backend.ArgSort{Axis: p.axis}, out, in[0])
}
func (argSortPrim) vjp(*Array, []*Array, *Array) []*Array { return []*Array{nil} }

// ArgSort returns uint32 indices that sort a ascending along axis.
func ArgSort(a *Array, axis int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	return newNode(Uint32, a.shape, argSortPrim{ax, -1}, a)
}

// ArgPartition returns uint32 indices such that the element at kth is in
// its sorted place, smaller ones before and larger after (negative kth
// counts from the end).
func ArgPartition(a *Array, kth, axis int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	n := a.shape[ax]
	if kth < 0 {
		kth += n
	}
	if kth < 0 || kth >= n {
		return Errorf("engine: ArgPartition: kth out of range for axis of %d", n)
	}
	return newNode(Uint32, a.shape, argSortPrim{ax, kth}, a)
}

// Sort returns a sorted ascending along axis.
func Sort(a *Array, axis int) *Array { return TakeAlongAxis(a, ArgSort(a, axis), axis) }

// TopK returns the k largest values along axis (in ascending order, like
// mx.topk's partition order).
func TopK(a *Array, k, axis int) *Array {
	if e := bad(a); e != nil {
		return e
	}
	ax, err := normAxis(axis, len(a.shape))
	if err != nil {
		return errArray(err)
	}
	n := a.shape[ax]
	if k <= 0 || k > n {
		return errArray(fmt.Errorf("engine: TopK: k=%d out of range for axis of %d", k, n))
	}
	idx := SliceAxis(ArgPartition(a, n-k, ax), ax, n-k, n)
	return TakeAlongAxis(a, idx, ax)
}
