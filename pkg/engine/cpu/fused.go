package cpu

import (
	"math"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// Softmax over the last axis, computed in float64.
func (c *Backend) Softmax(x, out backend.View) error {
	ax := len(x.Shape) - 1
	n := x.Shape[ax]
	lines(x.Shape, ax, [][]int{x.Strides, out.Strides}, []int{x.Offset, out.Offset}, func(offs []int) {
		v := make([]float64, n)
		load(v, x, offs[0], x.Strides[ax])
		m := math.Inf(-1)
		for _, e := range v {
			m = math.Max(m, e)
		}
		var s float64
		for i, e := range v {
			v[i] = math.Exp(e - m)
			s += v[i]
		}
		for i := range v {
			v[i] /= s
		}
		store(v, out, offs[1], out.Strides[ax])
	})
	return nil
}

// RMSNorm: y = x · rsqrt(mean(x²) + eps) · weight over the last axis.
func (c *Backend) RMSNorm(eps float32, x backend.View, w *backend.View, out backend.View) error {
	return c.norm(false, eps, x, w, nil, out)
}

// LayerNorm: y = (x − mean) · rsqrt(var + eps) · weight + bias.
func (c *Backend) LayerNorm(eps float32, x backend.View, w, b *backend.View, out backend.View) error {
	return c.norm(true, eps, x, w, b, out)
}

func vec(v *backend.View, n int) []float64 {
	if v == nil {
		return nil
	}
	d := make([]float64, n)
	load(d, *v, v.Offset, v.Strides[len(v.Strides)-1])
	return d
}

func (c *Backend) norm(center bool, eps float32, x backend.View, w, b *backend.View, out backend.View) error {
	ax := len(x.Shape) - 1
	n := x.Shape[ax]
	wv, bv := vec(w, n), vec(b, n)
	lines(x.Shape, ax, [][]int{x.Strides, out.Strides}, []int{x.Offset, out.Offset}, func(offs []int) {
		v := make([]float64, n)
		load(v, x, offs[0], x.Strides[ax])
		var mean float64
		if center {
			for _, e := range v {
				mean += e
			}
			mean /= float64(n)
		}
		var ss float64
		for _, e := range v {
			ss += (e - mean) * (e - mean)
		}
		r := 1 / math.Sqrt(ss/float64(n)+float64(eps))
		for i := range v {
			v[i] = (v[i] - mean) * r
			if wv != nil {
				v[i] *= wv[i]
			}
			if bv != nil {
				v[i] += bv[i]
			}
		}
		store(v, out, offs[1], out.Strides[ax])
	})
	return nil
}

// RoPE rotates feature pairs of x [..., L, D] by position.
func (c *Backend) RoPE(o backend.RoPE, x backend.View, freqs *backend.View, out backend.View) error {
	nd := len(x.Shape)
	D := x.Shape[nd-1]
	half := o.Dims / 2
	inv := make([]float64, half)
	if freqs != nil {
		f := vec(freqs, half)
		for i := range inv {
			inv[i] = 1 / f[i]
		}
	} else {
		for i := range inv {
			inv[i] = math.Pow(float64(o.Base), -float64(2*i)/float64(o.Dims))
		}
	}
	lax := nd - 2
	xs, os := x.Strides[nd-1], out.Strides[nd-1]
	// iterate over rows; the row index along axis -2 is the position.
	shape := append([]int(nil), x.Shape...)
	shape[nd-1] = 1
	// pass a third "operand" whose offset counts the position
	pstr := make([]int, nd)
	if nd >= 2 {
		pstr[lax] = 1
	}
	positions(shape, [][]int{x.Strides, out.Strides, pstr}, []int{x.Offset, out.Offset, 0}, func(offs []int) {
		pos := float64(o.Offset+offs[2]) * float64(o.Scale)
		v := make([]float64, D)
		load(v, x, offs[0], xs)
		for i := 0; i < half; i++ {
			th := pos * inv[i]
			cs, sn := math.Cos(th), math.Sin(th)
			var a, b int
			if o.Traditional {
				a, b = 2*i, 2*i+1
			} else {
				a, b = i, i+half
			}
			x1, x2 := v[a], v[b]
			v[a] = x1*cs - x2*sn
			v[b] = x1*sn + x2*cs
		}
		store(v, out, offs[1], os)
	})
	return nil
}

// rowsF32 returns an R×C matrix as float32 rows with row stride ld.
func rowsF32(v backend.View, off, R, C, sr, sc int) ([]float32, int) {
	d, ld, tr := matF32(v, off, R, C, sr, sc)
	if tr {
		m := backend.View{Buf: v.Buf, DType: v.DType, Shape: []int{R, C}, Strides: []int{sr, sc}, Offset: off}
		d = make([]float32, R*C)
		tmp := backend.View{Buf: &Buffer{b: unsafeBytes(d), n: 4 * R * C}, DType: backend.Float32, Shape: []int{R, C}, Strides: []int{C, 1}}
		map1(m, tmp, nil)
		ld = C
	}
	return d, ld
}

func dot(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	n := len(a)
	b = b[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// ScaledDotProductAttention with an online softmax: one pass over the keys
// per query, never an Lq×Lk score matrix.
func (c *Backend) ScaledDotProductAttention(o backend.SDPA, q, k, v backend.View, mask *backend.View, out backend.View) error {
	B, H, Lq, D := q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]
	Hk, Lk, Dv := k.Shape[1], k.Shape[2], v.Shape[3]
	group := H / Hk
	Y := make([]float32, B*H*Lq*Dv)
	kernels.Parallel(B*Hk, 1, func(lo, hi int) {
		mrow := make([]float64, Lk)
		acc := make([]float64, Dv)
		for bh := lo; bh < hi; bh++ {
			b, hk := bh/Hk, bh%Hk
			K, ldk := rowsF32(k, k.Offset+b*k.Strides[0]+hk*k.Strides[1], Lk, D, k.Strides[2], k.Strides[3])
			V, ldv := rowsF32(v, v.Offset+b*v.Strides[0]+hk*v.Strides[1], Lk, Dv, v.Strides[2], v.Strides[3])
			for g := 0; g < group; g++ {
				h := hk*group + g
				Q, ldq := rowsF32(q, q.Offset+b*q.Strides[0]+h*q.Strides[1], Lq, D, q.Strides[2], q.Strides[3])
				for i := 0; i < Lq; i++ {
					qpos := i + Lk - Lq
					qi := Q[i*ldq : i*ldq+D]
					if mask != nil {
						mo := mask.Offset + b*mask.Strides[0] + h*mask.Strides[1] + i*mask.Strides[2]
						load(mrow, *mask, mo, mask.Strides[3])
					}
					m := math.Inf(-1)
					var l float64
					clear(acc)
					for j := 0; j < Lk; j++ {
						if o.Causal && j > qpos {
							break
						}
						if o.Window > 0 && j <= qpos-o.Window {
							continue
						}
						if mask != nil && o.MaskBool && mrow[j] == 0 {
							continue
						}
						s := float64(dot(qi, K[j*ldk:j*ldk+D])) * float64(o.Scale)
						if o.SoftCap > 0 {
							s = float64(o.SoftCap) * math.Tanh(s/float64(o.SoftCap))
						}
						if mask != nil && !o.MaskBool {
							s += mrow[j]
						}
						if math.IsInf(s, -1) {
							continue
						}
						if s > m {
							f := math.Exp(m - s)
							l *= f
							for d := range acc {
								acc[d] *= f
							}
							m = s
						}
						p := math.Exp(s - m)
						l += p
						vj := V[j*ldv : j*ldv+Dv]
						for d := range acc {
							acc[d] += p * float64(vj[d])
						}
					}
					y := Y[((b*H+h)*Lq+i)*Dv : ((b*H+h)*Lq+i+1)*Dv]
					for d := range y {
						if l > 0 {
							y[d] = float32(acc[d] / l)
						} else {
							y[d] = 0
						}
					}
				}
			}
		}
	})
	fromF32(Y, out)
	return nil
}
