package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// qkBlocksFast (scores of 16 keys per transpose-add tree) matches the
// float64 dot products for 1..16 query rows, widths 16..128, key counts
// around the 16-key blocks, strided query, key and score rows; it writes
// no score past n nor outside each row, and the unused rows of the last
// block (NaN here) do not leak into the stored scores.
func TestQKBlocksFast(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 here")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []int{16, 32, 64, 80, 128} {
		for _, rows := range []int{1, 2, 3, 4, 5, 6, 7, 8, 16} {
			for _, n := range []int{1, 5, 15, 16, 17, 31, 33, 64} {
				ldq, lds := d+3, n+5
				q := make([]float32, rows*ldq)
				for i := range q {
					q[i] = float32(rng.NormFloat64())
				}
				// rows of d padded to 16 rows with NaN (tmp nil), or
				// strided rows read in place with the tail through tmp
				inplace := n%2 == 1
				ldk := d
				if inplace {
					ldk = d + 7
				}
				nb := (n + 15) / 16 * 16
				k := make([]float32, nb*ldk)
				for i := range k {
					if i < n*ldk {
						k[i] = float32(rng.NormFloat64())
					} else {
						k[i] = float32(math.NaN())
					}
				}
				var tmp []float32
				if inplace {
					k = k[:(n-1)*ldk+d]
					tmp = make([]float32, 16*d)
					for i := range tmp {
						tmp[i] = float32(math.NaN())
					}
				}
				s := make([]float32, rows*lds)
				for i := range s {
					s[i] = -7
				}
				if !qkBlocksFast(q, ldq, rows, k, ldk, d, n, s, lds, tmp) {
					t.Fatalf("d=%d: qkBlocksFast declined", d)
				}
				for r := 0; r < rows; r++ {
					for j := 0; j < lds; j++ {
						got := s[r*lds+j]
						if j >= n {
							if got != -7 {
								t.Fatalf("d=%d rows=%d n=%d: wrote s[%d][%d]", d, rows, n, r, j)
							}
							continue
						}
						var want, mag float64
						for i := 0; i < d; i++ {
							want += float64(q[r*ldq+i]) * float64(k[j*ldk+i])
							mag += math.Abs(float64(q[r*ldq+i]) * float64(k[j*ldk+i]))
						}
						if math.Abs(float64(got)-want) > 1e-6*mag || got != got {
							t.Fatalf("d=%d rows=%d n=%d: s[%d][%d] = %g, want %g", d, rows, n, r, j, got, want)
						}
					}
				}
			}
		}
	}
	if qkBlocksFast(make([]float32, 40), 40, 1, make([]float32, 16*40), 40, 40, 16, make([]float32, 16), 16, nil) {
		t.Error("a width not a multiple of 16 took the assembly")
	}
}

// qkBlocksBF16 (bfloat16 pairs through VDPBF16PS, keys read in place with
// a row stride, the last n mod 16 through a scratch) matches the float64
// dot products of the same bfloat16 values; it writes no score past n.
func TestQKBlocksBF16(t *testing.T) {
	if !hasAVX512 || !hasBF16Dot {
		t.Skip("no AVX-512 BF16 here")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	bf := func() uint16 { return uint16(math.Float32bits(float32(rng.NormFloat64())) >> 16) }
	wide := func(h uint16) float64 { return float64(math.Float32frombits(uint32(h) << 16)) }
	for _, d := range []int{32, 64, 128} {
		for _, rows := range []int{1, 2, 5, 7, 8, 16} {
			for _, n := range []int{1, 15, 16, 17, 31, 32, 33, 100} {
				ldq, ldk, lds := d+3, 2*d+5, n+5
				q := make([]uint16, rows*ldq)
				for i := range q {
					q[i] = bf()
				}
				k := make([]uint16, (n-1)*ldk+d)
				for i := range k {
					k[i] = bf()
				}
				s := make([]float32, rows*lds)
				for i := range s {
					s[i] = -7
				}
				tmp := make([]uint16, 16*d)
				for i := range tmp {
					tmp[i] = 0x7fc0 // NaN: rows past n never reach a score
				}
				if !qkBlocksBF16(q, ldq, rows, k, ldk, d, n, s, lds, tmp) {
					t.Fatalf("d=%d: qkBlocksBF16 declined", d)
				}
				for r := 0; r < rows; r++ {
					for j := 0; j < lds; j++ {
						got := s[r*lds+j]
						if j >= n {
							if got != -7 {
								t.Fatalf("d=%d rows=%d n=%d: wrote s[%d][%d]", d, rows, n, r, j)
							}
							continue
						}
						var want, mag float64
						for i := 0; i < d; i++ {
							want += wide(q[r*ldq+i]) * wide(k[j*ldk+i])
							mag += math.Abs(wide(q[r*ldq+i]) * wide(k[j*ldk+i]))
						}
						if math.Abs(float64(got)-want) > 1e-6*mag || got != got {
							t.Fatalf("d=%d rows=%d n=%d: s[%d][%d] = %g, want %g", d, rows, n, r, j, got, want)
						}
					}
				}
			}
		}
	}
	if qkBlocksBF16(make([]uint16, 48), 48, 1, make([]uint16, 48), 48, 48, 1, make([]float32, 1), 1, make([]uint16, 16*48)) {
		t.Error("a width not a multiple of 32 took the assembly")
	}
}

// pvFast and pvFastHalf (output rows kept in registers across the keys;
// float32, bfloat16 and float16 values) match the float64 sums for 1..16 rows, widths with partial 64-column
// passes and partial 16-lane vectors, strided rows; they add to what o
// held and leave the padding of each row alone.
func TestPVFast(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 here")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, kind := range []int{0, 1, 2} {
		for _, d := range []int{8, 16, 32, 40, 64, 80, 128, 136} {
			for _, rows := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 16} {
				for _, n := range []int{1, 2, 17, 64} {
					ldo, ldp, ldv := d+5, n+3, d+7
					o := make([]float32, rows*ldo)
					for i := range o {
						o[i] = float32(rng.NormFloat64())
					}
					o0 := append([]float32(nil), o...)
					p := make([]float32, rows*ldp)
					for i := range p {
						p[i] = rng.Float32()
					}
					v := make([]float32, (n-1)*ldv+d)
					vh := make([]uint16, len(v))
					for i := range v {
						v[i] = float32(rng.NormFloat64())
						switch kind {
						case 1:
							vh[i] = uint16(math.Float32bits(v[i]) >> 16)
							v[i] = math.Float32frombits(uint32(vh[i]) << 16)
						case 2:
							vh[i] = kernels.F32ToF16(v[i])
							v[i] = kernels.F16ToF32(vh[i])
						}
					}
					ok := false
					if kind > 0 {
						ok = pvFastHalf(o, ldo, rows, p, ldp, vh, ldv, n, d, kind)
					} else {
						ok = pvFast(o, ldo, rows, p, ldp, v, ldv, n, d)
					}
					if !ok {
						t.Fatal("pvFast declined")
					}
					for r := 0; r < rows; r++ {
						for i := 0; i < ldo; i++ {
							got := o[r*ldo+i]
							if i >= d {
								if got != o0[r*ldo+i] {
									t.Fatalf("d=%d rows=%d n=%d: wrote o[%d][%d]", d, rows, n, r, i)
								}
								continue
							}
							want, mag := float64(o0[r*ldo+i]), math.Abs(float64(o0[r*ldo+i]))
							for j := 0; j < n; j++ {
								want += float64(p[r*ldp+j]) * float64(v[j*ldv+i])
								mag += math.Abs(float64(p[r*ldp+j]) * float64(v[j*ldv+i]))
							}
							if math.Abs(float64(got)-want) > 1e-6*mag {
								t.Fatalf("kind=%d d=%d rows=%d n=%d: o[%d][%d] = %g, want %g", kind, d, rows, n, r, i, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// scaleMaxFast and scaleFast match their scalar loops exactly (NaNs
// skipped by the max, −inf kept) at lengths around the vector widths.
func TestScaleMaxFast(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 here")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for n := 1; n <= 70; n++ {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64() * 10)
		}
		if n > 3 {
			s[n/3] = float32(math.NaN())
			s[n/2] = float32(math.Inf(-1))
		}
		if n > 64 {
			// the largest, then a NaN in the same lane, then more
			s[0], s[32] = 1000, float32(math.NaN())
		}
		want := append([]float32(nil), s...)
		wm := float32(math.Inf(-1))
		for i, x := range want {
			want[i] = x * 0.37
			if want[i] > wm {
				wm = want[i]
			}
		}
		m, ok := scaleMaxFast(s, 0.37)
		if !ok || m != wm {
			t.Fatalf("n=%d: max %g, want %g", n, m, wm)
		}
		for i := range s {
			if s[i] != want[i] && !(s[i] != s[i] && want[i] != want[i]) {
				t.Fatalf("n=%d: s[%d] = %g, want %g", n, i, s[i], want[i])
			}
			want[i] *= 1.7
		}
		scaleF32(s, 1.7)
		for i := range s {
			if s[i] != want[i] && !(s[i] != s[i] && want[i] != want[i]) {
				t.Fatalf("n=%d: scaled s[%d] = %g, want %g", n, i, s[i], want[i])
			}
		}
	}
	nan := []float32{float32(math.NaN()), float32(math.NaN())}
	if m, _ := scaleMaxFast(nan, 1); !math.IsInf(float64(m), -1) {
		t.Errorf("max of NaNs = %g, want -inf", m)
	}
}

// The few-query path with its block kernels matches the per-key loops it
// replaced (and the AVX-512-free loops) within float32 rounding: GQA
// groups, several query positions (causal), sliding window, bool and
// additive masks, soft cap, sinks, strided cache views with an offset,
// head widths off the 16-lane grid.
func TestSDPASmallKernels(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(7, 8))
	fill := func(shape []int, strides []int, n int) backend.View {
		buf, _ := c.Alloc(4 * n)
		f := f32s(buf.(*Buffer).Bytes())
		for i := range f {
			f[i] = float32(rng.NormFloat64())
		}
		return backend.View{Buf: buf, DType: backend.Float32, Shape: shape, Strides: strides}
	}
	type cfg struct {
		H, Hk, Lq, Lk, D int
		o                backend.SDPA
		mask             string
		sinks, bf16, qT  bool
		f16              bool
	}
	var cases []cfg
	for _, d := range []int{32, 64, 80, 128, 40} {
		for _, lk := range []int{1, 17, 100} {
			cases = append(cases,
				cfg{H: 14, Hk: 2, Lq: 1, Lk: lk, D: d, o: backend.SDPA{Scale: 0.125}},
				cfg{H: 8, Hk: 1, Lq: 2, Lk: lk + 1, D: d, o: backend.SDPA{Scale: 0.2, Causal: true}},
				cfg{H: 4, Hk: 4, Lq: 3, Lk: lk + 2, D: d, o: backend.SDPA{Scale: 0.3, Causal: true, Window: 7}},
				cfg{H: 6, Hk: 2, Lq: 1, Lk: lk, D: d, o: backend.SDPA{Scale: 0.3, SoftCap: 5}, sinks: true},
				cfg{H: 6, Hk: 3, Lq: 2, Lk: lk, D: d, o: backend.SDPA{Scale: 0.3, MaskBool: true}, mask: "bool"},
				cfg{H: 6, Hk: 3, Lq: 2, Lk: lk, D: d, o: backend.SDPA{Scale: 0.3}, mask: "add"},
				cfg{H: 14, Hk: 2, Lq: 1, Lk: lk, D: d, o: backend.SDPA{Scale: 0.125}, bf16: true},
				cfg{H: 8, Hk: 1, Lq: 2, Lk: lk + 1, D: d, o: backend.SDPA{Scale: 0.2, Causal: true}, bf16: true},
				cfg{H: 4, Hk: 2, Lq: 3, Lk: lk + 2, D: d, o: backend.SDPA{Scale: 0.2, Causal: true}, bf16: true, qT: true},
				cfg{H: 14, Hk: 2, Lq: 1, Lk: lk, D: d, o: backend.SDPA{Scale: 0.125}, f16: true},
			)
		}
	}
	for _, cs := range cases {
		name := fmt.Sprintf("%+v", cs)
		B, capT := 2, cs.Lk+9
		// queries as a [B, Lq, H, D] buffer, or [B, H, D, Lq] (qT)
		qst := []int{cs.Lq * cs.H * cs.D, cs.D, cs.H * cs.D, 1}
		if cs.qT {
			qst = []int{cs.H * cs.D * cs.Lq, cs.D * cs.Lq, 1, cs.Lq}
		}
		q := fill([]int{B, cs.H, cs.Lq, cs.D}, qst, B*cs.H*cs.Lq*cs.D)
		// caches as [B, T, Hk, D] buffers seen as [B, Hk, Lk, D] from position 3
		cst := []int{capT * cs.Hk * cs.D, cs.D, cs.Hk * cs.D, 1}
		k := fill([]int{B, cs.Hk, cs.Lk, cs.D}, cst, B*capT*cs.Hk*cs.D)
		v := fill([]int{B, cs.Hk, cs.Lk, cs.D}, cst, B*capT*cs.Hk*cs.D)
		k.Offset, v.Offset = 3*cs.Hk*cs.D, 3*cs.Hk*cs.D
		if cs.f16 {
			// the same values rounded to float16
			for _, x := range []*backend.View{&q, &k, &v} {
				f := f32s(bytesOf(*x))
				h := make([]byte, 2*len(f))
				for i, y := range f {
					b := kernels.F32ToF16(y)
					h[2*i], h[2*i+1] = byte(b), byte(b>>8)
				}
				x.Buf, x.DType = &Buffer{b: h, n: len(h)}, backend.Float16
			}
		}
		if cs.bf16 {
			// the same values rounded to bfloat16
			for _, x := range []*backend.View{&q, &k, &v} {
				f := f32s(bytesOf(*x))
				h := make([]byte, 2*len(f))
				for i, y := range f {
					b := math.Float32bits(y) >> 16
					h[2*i], h[2*i+1] = byte(b), byte(b>>8)
				}
				x.Buf, x.DType = &Buffer{b: h, n: len(h)}, backend.BFloat16
			}
		}
		var mask, sinks *backend.View
		if cs.mask != "" {
			m := fill([]int{B, cs.H, cs.Lq, cs.Lk}, backend.RowMajor([]int{B, cs.H, cs.Lq, cs.Lk}), B*cs.H*cs.Lq*cs.Lk)
			if cs.mask == "bool" {
				f := f32s(m.Buf.(*Buffer).Bytes())
				for i := range f {
					f[i] = float32(math.Float32bits(f[i]) & 1) // some rows all hidden
					if i%3 == 0 {
						f[i] = 1
					}
				}
			}
			mask = &m
		}
		if cs.sinks {
			s := fill([]int{cs.H}, []int{1}, cs.H)
			sinks = &s
		}
		run := func(kern, avx bool) []float32 {
			out := fill([]int{B, cs.H, cs.Lq, cs.D}, backend.RowMajor([]int{B, cs.H, cs.Lq, cs.D}), B*cs.H*cs.Lq*cs.D)
			savedK, savedA, savedU, savedW := sdpaKernels, hasAVX512, useKernels, sdpaSmallWork
			sdpaKernels, hasAVX512, useKernels, sdpaSmallWork = kern, avx && savedA, avx && savedU, 1<<40
			defer func() { sdpaKernels, hasAVX512, useKernels, sdpaSmallWork = savedK, savedA, savedU, savedW }()
			if err := c.ScaledDotProductAttention(cs.o, q, k, v, mask, sinks, out); err != nil {
				t.Fatal(err)
			}
			return append([]float32(nil), f32s(out.Buf.(*Buffer).Bytes())...)
		}
		got, old, portable := run(true, true), run(false, true), run(true, false)
		for i := range got {
			for _, w := range []float32{old[i], portable[i]} {
				if d := math.Abs(float64(got[i] - w)); d > 2e-6*(1+math.Abs(float64(w))) || got[i] != got[i] {
					t.Fatalf("%s: out[%d] = %g, want %g", name, i, got[i], w)
				}
			}
		}
	}
}
