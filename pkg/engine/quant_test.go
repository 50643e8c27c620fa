package engine

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// qmat is a test quantization of w [rows, cols]: packed words, scales and
// biases as stored (rounded to sdt), and the dequantized float64 matrix.
type qmat struct {
	w              []uint32
	scales, biases tensor
	deq            tensor
}

// quantizeRef follows the documented MLX encoder (scale = (max−min)/n,
// bias = min) with LSB-first bit packing; every other group uses a
// negative scale (edge = max) to exercise that decoder path.
func quantizeRef(w tensor, groupSize, bits int, sdt DType) qmat {
	rows, cols := w.shape[0], w.shape[1]
	n := float64(int(1)<<bits - 1)
	groups := cols / groupSize
	q := qmat{
		w:      make([]uint32, rows*cols*bits/32),
		scales: tensor{[]int{rows, groups}, make([]float64, rows*groups)},
		biases: tensor{[]int{rows, groups}, make([]float64, rows*groups)},
		deq:    tensor{[]int{rows, cols}, make([]float64, rows*cols)},
	}
	for r := 0; r < rows; r++ {
		for g := 0; g < groups; g++ {
			vals := w.data[r*cols+g*groupSize : r*cols+(g+1)*groupSize]
			lo, hi := slices.Min(vals), slices.Max(vals)
			s, b := (hi-lo)/n, lo
			if g%2 == 1 {
				s, b = -s, hi
			}
			sb := tensor{[]int{2}, []float64{s, b}}.roundTo(sdt)
			s, b = sb.data[0], sb.data[1]
			q.scales.data[r*groups+g], q.biases.data[r*groups+g] = s, b
			for k, v := range vals {
				qv := math.Max(0, math.Min(n, math.RoundToEven((v-b)/s)))
				col := g*groupSize + k
				bit := (r*cols + col) * bits
				word, off := bit/32, bit%32
				q.w[word] |= uint32(qv) << off
				if off+bits > 32 {
					q.w[word+1] |= uint32(qv) >> (32 - off)
				}
				q.deq.data[r*cols+col] = s*qv + b
			}
		}
	}
	return q
}

func (q qmat) arrays(sdt DType) (*Array, *Array, *Array) {
	rows := q.scales.shape[0]
	return FromUint32s(q.w, rows, len(q.w)/rows), q.scales.arrAs(sdt), q.biases.arrAs(sdt)
}

func TestQuantized(t *testing.T) {
	for _, bits := range []int{2, 3, 4, 5, 6, 8} {
		for _, gs := range []int{32, 64, 128} {
			sdt := BFloat16
			if gs == 64 {
				sdt = Float32
			}
			name := fmt.Sprintf("b%d/g%d/%s", bits, gs, sdt)
			N, K := 6, 128
			wt := randT(N, K)
			q := quantizeRef(wt, gs, bits, sdt)
			w, s, b := q.arrays(sdt)
			near(t, "Dequantize/"+name, AsType(Dequantize(w, s, b, gs, bits), Float32), q.deq.roundTo(sdt), 1e-6, 1e-6)
			x := randT(2, 3, K)
			nearQ(t, "QuantizedMatmul/"+name, QuantizedMatmul(x.arr(), w, s, b, true, gs, bits), x, q.deq)
			// transpose=false: w [K', N'] with K' = N rows, quantized along N' = K
			xs := randT(4, N)
			near(t, "QuantizedMatmul/noT/"+name, QuantizedMatmul(xs.arr(), w, s, b, false, gs, bits), matmulT(xs, q.deq), 1e-4, 1e-5)
		}
	}
	// bf16 activations, transposed x view, and gradient wrt x
	N, K, gs, bits := 5, 64, 32, 4
	q := quantizeRef(randT(N, K), gs, bits, BFloat16)
	w, s, b := q.arrays(BFloat16)
	xT := randT(K, 3)
	want := matmulT(xT.permute(1, 0), q.deq.permute(1, 0))
	near(t, "QuantizedMatmul/view", QuantizedMatmul(Transpose(xT.arr()), w, s, b, true, gs, bits), want, 1e-4, 1e-5)
	xr := xT.permute(1, 0).roundTo(BFloat16)
	got := QuantizedMatmul(AsType(Transpose(xT.arr()), BFloat16), w, s, b, true, gs, bits)
	if got.DType() != BFloat16 {
		t.Errorf("QuantizedMatmul(bf16) dtype %s", got.DType())
	}
	near(t, "QuantizedMatmul/bf16", got, matmulT(xr, q.deq.permute(1, 0)), 2e-2, 8e-3)
	gradCheck(t, "QuantizedMatmul", func(xs []*Array) *Array { return QuantizedMatmul(xs[0], w, s, b, true, gs, bits) }, randT(2, K))
	// bad inputs are errors naming what was expected
	if err := QuantizedMatmul(randT(2, 60).arr(), w, s, b, true, gs, bits).Err(); err == nil {
		t.Error("QuantizedMatmul with a wrong K did not fail")
	}
	if err := Dequantize(w, s, b, 64, bits).Err(); err == nil {
		t.Error("Dequantize with the wrong group size did not fail")
	}
	if err := Dequantize(w, s, b, gs, 7).Err(); err == nil {
		t.Error("Dequantize with 7 bits did not fail")
	}
}

// nearQ checks y = x·deqᵀ allowing for pkg/kernels' int8 activation path
// (x rounded to int8 in blocks of 32, like llama.cpp), measured at about
// 0.1% of Σ|x·w|: the bound is 0.3%. A packing or scale bug is off by
// several percent of Σ|x·w| (the size of the values themselves).
func nearQ(t *testing.T, name string, got *Array, x, deq tensor) {
	t.Helper()
	K, N := deq.shape[1], deq.shape[0]
	want := matmulT(x, deq.permute(1, 0).broadcast(append(append([]int{}, x.shape[:len(x.shape)-2]...), K, N)...))
	g := mustF(t, got)
	for i, w := range want.data {
		n, m := i%N, i/N
		var sa float64
		for k := 0; k < K; k++ {
			sa += math.Abs(deq.data[n*K+k] * x.data[m*K+k])
		}
		tol := 3e-3*sa + 1e-5*math.Abs(w)
		if math.Abs(g[i]-w) > tol {
			t.Errorf("%s: [%d] = %g, want %g ± %g", name, i, g[i], w, tol)
			return
		}
	}
}

func TestGatherQMM(t *testing.T) {
	E, N, K, gs, bits := 3, 4, 64, 64, 4
	experts := make([]qmat, E)
	var ws []uint32
	var ss, bs []float64
	for e := range experts {
		experts[e] = quantizeRef(randT(N, K), gs, bits, Float32)
		ws = append(ws, experts[e].w...)
		ss = append(ss, experts[e].scales.data...)
		bs = append(bs, experts[e].biases.data...)
	}
	w := FromUint32s(ws, E, N, K*bits/32)
	s := FromFloat64s(ss, E, N, K/gs)
	b := FromFloat64s(bs, E, N, K/gs)
	// mlx_lm SwitchGLU layout: x [B, L, 1, 1, K], indices [B, L, top-k]
	B, L, top := 2, 3, 2
	x := randT(B, L, 1, 1, K)
	ids := []int32{0, 2, 1, 1, 2, 0, 0, 1, 2, 2, 1, 0}
	idx := FromInt32s(ids, B, L, top)
	got := GatherQMM(x.arr(), w, s, b, nil, idx, true, gs, bits)
	want := tensor{[]int{B, L, top, 1, N}, nil}
	for bl := 0; bl < B*L; bl++ {
		xr := tensor{[]int{1, K}, x.data[bl*K : (bl+1)*K]}
		for j := 0; j < top; j++ {
			e := ids[bl*top+j]
			want.data = append(want.data, matmulT(xr, experts[e].deq.permute(1, 0)).data...)
		}
	}
	near(t, "GatherQMM", got, want, 1e-4, 1e-5)
	gradCheck(t, "GatherQMM", func(xs []*Array) *Array { return GatherQMM(xs[0], w, s, b, nil, idx, true, gs, bits) }, randT(B, L, 1, 1, K))
	// explicit lhs indices
	lhs := FromUint32s([]uint32{1, 0, 1}, 3)
	rhs := FromUint32s([]uint32{2, 2, 0}, 3)
	x2 := randT(2, 1, K)
	want2 := tensor{[]int{3, 1, N}, nil}
	for i, li := range []int{1, 0, 1} {
		xr := tensor{[]int{1, K}, x2.data[li*K : (li+1)*K]}
		want2.data = append(want2.data, matmulT(xr, experts[[]int{2, 2, 0}[i]].deq.permute(1, 0)).data...)
	}
	near(t, "GatherQMM/lhs", GatherQMM(x2.arr(), w, s, b, lhs, rhs, true, gs, bits), want2, 1e-4, 1e-5)
	gradCheck(t, "GatherQMM/lhs", func(xs []*Array) *Array { return GatherQMM(xs[0], w, s, b, lhs, rhs, true, gs, bits) }, x2)
	if err := Eval(GatherQMM(x2.arr(), w, s, b, lhs, FromUint32s([]uint32{5}, 1), true, gs, bits)); err == nil {
		t.Error("GatherQMM with an expert index out of range did not fail")
	}
}

func TestGatherMM(t *testing.T) {
	a, bw := randT(2, 3, 4), randT(3, 4, 5) // a batch 2, b batch 3 experts
	lhs := FromInt32s([]int32{0, 1, 1, 0}, 4)
	rhs := FromInt32s([]int32{2, 0, 2, 1}, 4)
	want := tensor{[]int{4, 3, 5}, nil}
	for i, li := range []int{0, 1, 1, 0} {
		ri := []int{2, 0, 2, 1}[i]
		want.data = append(want.data, matmulT(tensor{[]int{3, 4}, a.data[li*12 : li*12+12]}, tensor{[]int{4, 5}, bw.data[ri*20 : ri*20+20]}).data...)
	}
	near(t, "GatherMM", GatherMM(a.arr(), bw.arr(), lhs, rhs), want, 1e-5, 1e-5)
	// bf16 experts read in the Linear layout through a transposed view
	bT := bw.permute(0, 2, 1) // [3, 5, 4]
	br := bT.roundTo(BFloat16)
	wantH := tensor{[]int{4, 3, 5}, nil}
	for i, li := range []int{0, 1, 1, 0} {
		ri := []int{2, 0, 2, 1}[i]
		wantH.data = append(wantH.data, matmulT(tensor{[]int{3, 4}, a.data[li*12 : li*12+12]}, tensor{[]int{5, 4}, br.data[ri*20 : ri*20+20]}.permute(1, 0)).data...)
	}
	near(t, "GatherMM/bf16", GatherMM(a.arr(), SwapAxes(bT.arrAs(BFloat16), -1, -2), lhs, rhs), wantH, 1e-5, 1e-5)
	gradCheck(t, "GatherMM", func(xs []*Array) *Array { return GatherMM(xs[0], xs[1], lhs, rhs) }, a, bw)
}
