package qwen3_next

import (
	"fmt"
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// GatedDeltaNet is Qwen3-Next's linear attention (transformers'
// Qwen3NextGatedDeltaNet): projections to q, k (Nk heads of Dk), v, z (Nv
// heads of Dv) and per-value-head b, a; a causal depthwise convolution
// (kernel K) and SiLU over [q, k, v]; L2-normalised q (· Dk^-½) and k;
// the gated delta rule over a state S [Dk, Dv] per value head,
//
//	S ← S·exp(g_t);  S ← S + k_t ⊗ β_t(v_t − Sᵀk_t);  o_t = Sᵀq_t
//
// with β = sigmoid(b), g = −exp(A_log)·softplus(a + dt_bias), computed in
// float32; then an RMSNorm of o gated by silu(z), and out_proj.
type GatedDeltaNet struct {
	InProjQKVZ nn.Layer      // in_proj_qkvz [Nk·(2Dk + 2·(Nv/Nk)·Dv), D]
	InProjBA   nn.Layer      // in_proj_ba [2·Nv, D]
	Conv1d     Conv1d        // conv1d
	ALog       *engine.Array // A_log [Nv]
	DtBias     *engine.Array // dt_bias [Nv]
	Norm       nn.RMSNorm    // norm [Dv] (plain w, gated)
	OutProj    nn.Layer      // out_proj [D, Nv·Dv]
	nk, nv     int
	dk, dv     int
	kernel     int
}

// Conv1d is the depthwise convolution's weight [C, K, 1] (mlx_lm's
// layout; the hub's [C, 1, K] holds the same w[c, j]).
type Conv1d struct {
	Weight *engine.Array
}

// LinearCache is a linear-attention layer's state across Forward calls
// (mlx_lm's ArraysCache of size 2): the last K−1 convolution inputs and the
// delta-rule state.
type LinearCache struct {
	Conv   *engine.Array // [B, K−1, C]
	SSM    *engine.Array // [B, Nv, Dk, Dv] float32
	offset int
}

// Offset is the number of tokens seen.
func (c *LinearCache) Offset() int { return c.offset }

// Update is not used by linear layers; it returns error arrays.
func (c *LinearCache) Update(k, v *engine.Array) (*engine.Array, *engine.Array) {
	err := engine.Errorf("qwen3_next: LinearCache holds a recurrent state, not keys and values")
	return err, err
}

// Trimmable is false: a recurrent state cannot drop tokens.
func (c *LinearCache) Trimmable() bool { return false }

// Trim drops nothing.
func (c *LinearCache) Trim(n int) int { return 0 }

// State returns the convolution and recurrent states (mlx_lm's
// ArraysCache.state order).
func (c *LinearCache) State() []*engine.Array { return []*engine.Array{c.Conv, c.SSM} }

// Meta is empty.
func (c *LinearCache) Meta() []string { return nil }

func newGatedDeltaNet(w *model.Weights, p string, c *Config) *GatedDeltaNet {
	g := &GatedDeltaNet{nk: c.LinearNumKeyHeads, nv: c.LinearNumValueHeads, dk: c.LinearKeyHeadDim, dv: c.LinearValueHeadDim, kernel: c.LinearConvKernelDim}
	D, keyDim, valDim := c.HiddenSize, g.nk*g.dk, g.nv*g.dv
	C := 2*keyDim + valDim
	w.Linear(&g.InProjQKVZ, p+".in_proj_qkvz", D, 2*keyDim+2*valDim, false)
	w.Linear(&g.InProjBA, p+".in_proj_ba", D, 2*g.nv, false)
	w.Tensor(&g.Conv1d.Weight, p+".conv1d.weight", C, g.kernel, 1)
	w.Tensor(&g.ALog, p+".A_log", g.nv)
	w.Tensor(&g.DtBias, p+".dt_bias", g.nv)
	w.RMSNorm(&g.Norm, p+".norm", g.dv, c.RMSNormEps)
	w.Linear(&g.OutProj, p+".out_proj", valDim, D, false)
	return g
}

// forward maps x [B, L, D] to [B, L, D], continuing from c (nil: no cache).
func (g *GatedDeltaNet) forward(x *engine.Array, c *LinearCache) *engine.Array {
	B, L := x.Dim(0), x.Dim(1)
	r := g.nv / g.nk
	keyDim, valDim := g.nk*g.dk, g.nv*g.dv
	C := 2*keyDim + valDim
	qkvz := engine.Reshape(g.InProjQKVZ.Forward(x), B, L, g.nk, 2*g.dk+2*r*g.dv)
	parts := engine.SplitAt(qkvz, []int{g.dk, 2 * g.dk, 2*g.dk + r*g.dv}, -1) // q, k [B, L, Nk, Dk]; v, z [B, L, Nk, r·Dv]
	ba := engine.Split(engine.Reshape(g.InProjBA.Forward(x), B, L, g.nk, 2*r), 2, -1)
	if len(parts) != 4 || len(ba) != 2 {
		return engine.Errorf("qwen3_next: linear attention projections: %v %v", parts[0].Err(), ba[0].Err())
	}
	b := engine.Reshape(ba[0], B, L, g.nv) // [B, L, Nv]
	a := engine.Reshape(ba[1], B, L, g.nv) // [B, L, Nv]
	z := engine.Reshape(parts[3], B, L, g.nv, g.dv)
	mixed := engine.Concatenate([]*engine.Array{ // [B, L, C]
		engine.Reshape(parts[0], B, L, keyDim), engine.Reshape(parts[1], B, L, keyDim), engine.Reshape(parts[2], B, L, valDim),
	}, -1)

	// Causal depthwise convolution over [state | mixed].
	var state *engine.Array
	if c != nil && c.Conv != nil {
		state = c.Conv
	} else {
		state = engine.Zeros([]int{B, g.kernel - 1, C}, mixed.DType())
	}
	ci := engine.Concatenate([]*engine.Array{state, mixed}, 1)                            // [B, K−1+L, C]
	wt := engine.Transpose(engine.Reshape(g.Conv1d.Weight, C, g.kernel), 1, 0)            // [K, C]
	conv := engine.Multiply(engine.SliceAxis(ci, 1, 0, L), engine.SliceAxis(wt, 0, 0, 1)) // [B, L, C]
	for j := 1; j < g.kernel; j++ {
		conv = engine.Add(conv, engine.Multiply(engine.SliceAxis(ci, 1, j, j+L), engine.SliceAxis(wt, 0, j, j+1)))
	}
	conv = engine.SiLU(conv)
	qkv := engine.SplitAt(conv, []int{keyDim, 2 * keyDim}, -1)
	if len(qkv) != 3 {
		return qkv[0] // an error
	}

	f32 := engine.Float32
	heads := func(t *engine.Array, n, d int) *engine.Array { // [B, L, n·d] -> [B, Nv, L, d] float32
		t = engine.AsType(engine.Reshape(t, B, L, n, d), f32)
		if n != g.nv {
			t = engine.Repeat(t, g.nv/n, 2)
		}
		return engine.Transpose(t, 0, 2, 1, 3)
	}
	q := l2norm(heads(qkv[0], g.nk, g.dk))
	q = engine.Multiply(q, engine.ScalarOf(1/math.Sqrt(float64(g.dk)), f32))
	k := l2norm(heads(qkv[1], g.nk, g.dk))
	v := heads(qkv[2], g.nv, g.dv)
	beta := engine.Transpose(engine.Sigmoid(engine.AsType(b, f32)), 0, 2, 1) // [B, Nv, L]
	decay := engine.Multiply(engine.Negative(engine.Exp(engine.AsType(g.ALog, f32))),
		engine.Softplus(engine.Add(engine.AsType(a, f32), engine.AsType(g.DtBias, f32))))
	decay = engine.Exp(engine.Transpose(decay, 0, 2, 1)) // [B, Nv, L] = exp(g)

	var S *engine.Array // [B, Nv, Dk, Dv]
	if c != nil && c.SSM != nil {
		S = c.SSM
	} else {
		S = engine.Zeros([]int{B, g.nv, g.dk, g.dv}, f32)
	}
	outs := make([]*engine.Array, L)
	for t := range L {
		qt := engine.SliceAxis(q, 2, t, t+1)                                    // [B, Nv, 1, Dk]
		kt := engine.SliceAxis(k, 2, t, t+1)                                    // [B, Nv, 1, Dk]
		vt := engine.SliceAxis(v, 2, t, t+1)                                    // [B, Nv, 1, Dv]
		gt := engine.ExpandDims(engine.SliceAxis(decay, 2, t, t+1), -1)         // [B, Nv, 1, 1]
		bt := engine.ExpandDims(engine.SliceAxis(beta, 2, t, t+1), -1)          // [B, Nv, 1, 1]
		S = engine.Multiply(S, gt)                                              // decay
		delta := engine.Multiply(engine.Subtract(vt, engine.Matmul(kt, S)), bt) // β(v − Sᵀk) [B, Nv, 1, Dv]
		S = engine.Add(S, engine.Matmul(engine.SwapAxes(kt, -1, -2), delta))    // S + k ⊗ δ
		outs[t] = engine.Matmul(qt, S)                                          // Sᵀq [B, Nv, 1, Dv]
	}
	o := engine.Transpose(engine.Concatenate(outs, 2), 0, 2, 1, 3) // [B, L, Nv, Dv]
	o = engine.AsType(o, x.DType())

	// Gated RMSNorm: w·rmsnorm(o) ⊙ silu(z), the gating in float32 as
	// transformers (and mlx_lm's _precise_swiglu) compute it.
	o = engine.Multiply(engine.AsType(g.Norm.Forward(o), f32), engine.SiLU(engine.AsType(z, f32)))
	o = engine.AsType(o, x.DType())
	out := g.OutProj.Forward(engine.Reshape(o, B, L, valDim)) // [B, L, D]
	if c != nil {
		c.Conv = engine.SliceAxis(ci, 1, L, L+g.kernel-1)
		c.SSM = S
		c.offset += L
		if err := engine.Eval(out, c.Conv, c.SSM); err != nil {
			return engine.Errorf("qwen3_next: linear attention: %v", err)
		}
	}
	return out
}

// l2norm is x·(Σx² + 1e-6)^-½ over the last axis (transformers' l2norm).
func l2norm(x *engine.Array) *engine.Array {
	ss := engine.Sum(engine.Square(x), true, -1)
	return engine.Multiply(x, engine.Rsqrt(engine.Add(ss, engine.ScalarOf(1e-6, x.DType()))))
}

func init() { model.RegisterCacheClass("ArraysCache", loadLinearCache) }

// SaveCache is mlx_lm's ArraysCache of size 2 (mlx_lm/models/cache.py as of
// ml-explore/mlx-lm 11a6ce75, whose state is (cache, left_padding,
// lengths)): "0.0" the convolution state [B, K−1, C], "0.1" the delta-rule
// state in mlx_lm's layout [B, Nv, Dv, Dk] float32, and "1", "2" empty
// float32 arrays for no left padding and no lengths; no meta_state.
func (c *LinearCache) SaveCache() (model.SavedCache, error) {
	if c.Conv == nil || c.SSM == nil {
		return model.SavedCache{}, fmt.Errorf("qwen3_next: LinearCache is empty")
	}
	none := engine.Zeros([]int{0}, engine.Float32)
	return model.SavedCache{Class: "ArraysCache", Arrays: map[string]*engine.Array{
		"0.0": c.Conv, "0.1": engine.SwapAxes(c.SSM, -1, -2), "1": none, "2": none,
	}}, nil
}

// RestoreOffset sets the number of tokens seen, which ArraysCache files do
// not record.
func (c *LinearCache) RestoreOffset(n int) { c.offset = n }

// loadLinearCache reads an ArraysCache of size 2 in either layout mlx_lm
// has written: (cache, left_padding, lengths) as SaveCache writes, or, up
// to mlx-lm v0.31.3, the cache list alone ("0" convolution, "1" delta-rule
// state).
func loadLinearCache(s model.SavedCache) (model.Cache, error) {
	if len(s.Meta) != 0 {
		return nil, fmt.Errorf("ArraysCache has no meta_state, got %d values", len(s.Meta))
	}
	const what = "the convolution state [B, K−1, C] and the delta-rule state [B, Nv, Dv, Dk]"
	var st []*engine.Array
	var err error
	if _, old := s.Arrays["0"]; old {
		st, err = s.Expect(what, "0", "1")
	} else {
		st, err = s.Expect(what+", and empty left_padding and lengths", "0.0", "0.1", "1", "2")
		if err == nil && (st[2].Size() != 0 || st[3].Size() != 0) {
			err = fmt.Errorf("tensors %q and %q: a batched ArraysCache (left padding %v, lengths %v) cannot be loaded", s.Name("1"), s.Name("2"), st[2].Shape(), st[3].Shape())
		}
	}
	if err != nil {
		return nil, err
	}
	conv, ssm := st[0], st[1]
	if conv.NDim() != 3 || ssm.NDim() != 4 || conv.Dim(0) != ssm.Dim(0) || !conv.DType().IsFloat() || !ssm.DType().IsFloat() {
		return nil, fmt.Errorf("ArraysCache state: convolution %s%v and delta-rule %s%v, want float [B, K−1, C] and [B, Nv, Dv, Dk]", conv.DType(), conv.Shape(), ssm.DType(), ssm.Shape())
	}
	c := &LinearCache{Conv: engine.Copy(conv), SSM: engine.AsType(engine.SwapAxes(ssm, -1, -2), engine.Float32)}
	if err := engine.Eval(c.Conv, c.SSM); err != nil {
		return nil, err
	}
	return c, nil
}
