package cpu

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// Softmax over the last axis, computed in float32 like MLX.
func (c *Backend) Softmax(x, out backend.View) error {
	ax := len(x.Shape) - 1
	n := x.Shape[ax]
	rows := x.Size() / max(n, 1)
	if n == 0 {
		return nil
	}
	X := toF32(x)
	Y := getF32(len(X))
	defer putF32(Y)
	kernels.Parallel(rows, max(1, 4096/n), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			y := Y[r*n : (r+1)*n]
			copy(y, X[r*n:(r+1)*n])
			m := float32(math.Inf(-1))
			for _, e := range y {
				if e > m || e != e {
					m = e
				}
			}
			if math.IsInf(float64(m), -1) || m != m {
				for j := range y {
					y[j] = float32(math.NaN())
				}
				continue
			}
			softmaxInPlace(y, m)
		}
	})
	fromF32(Y, out)
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
	if !center && b == nil && allFloat(x, out) && (w == nil || allFloat(*w)) {
		rmsNorm32(eps, x, w, out)
		return nil
	}
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
		// like MLX (and transformers): normalise in float32, round to the
		// output dtype, then apply weight and bias in that dtype
		dt := out.DType
		for i := range v {
			v[i] = roundTo(dt, (v[i]-mean)*r)
			if wv != nil {
				v[i] = roundTo(dt, v[i]*wv[i])
			}
			if bv != nil {
				v[i] += bv[i]
			}
		}
		store(v, out, offs[1], out.Strides[ax])
	})
	return nil
}

// rmsNorm32 is RMSNorm on float32 rows, with the same arithmetic as norm
// (sum of squares in float64, x·r rounded to the output dtype, then the
// weight product rounded again) but without per-row allocation, and on the
// calling goroutine for small inputs.
func rmsNorm32(eps float32, x backend.View, w *backend.View, out backend.View) {
	ax := len(x.Shape) - 1
	n := x.Shape[ax]
	var wv []float32
	if w != nil {
		wv = getF32(n)
		defer putF32(wv)
		load32(wv, *w, w.Offset, w.Strides[len(w.Strides)-1])
	}
	dt := out.DType
	shape := slices.Clone(x.Shape)
	shape[ax] = 1
	nl := backend.Prod(shape)
	row := func(buf []float32, xo, oo int) {
		load32(buf, x, xo, x.Strides[ax])
		ss := sumSqF64(buf)
		r := 1 / math.Sqrt(ss/float64(n)+float64(eps))
		scaleF64(buf, r)
		roundF32(dt, buf)
		if wv != nil {
			mulF32(buf, wv)
		}
		store32(buf, out, oo, out.Strides[ax])
	}
	if nl*n < parallelWork {
		buf := getF32(n)
		defer putF32(buf)
		idx := make([]int, len(shape))
		for l := 0; l < nl; l++ {
			xo, oo := x.Offset, out.Offset
			for d := range shape {
				xo += idx[d] * x.Strides[d]
				oo += idx[d] * out.Strides[d]
			}
			row(buf, xo, oo)
			for d := len(shape) - 1; d >= 0; d-- {
				idx[d]++
				if idx[d] < shape[d] {
					break
				}
				idx[d] = 0
			}
		}
		return
	}
	lines(x.Shape, ax, [][]int{x.Strides, out.Strides}, []int{x.Offset, out.Offset}, func(offs []int) {
		buf := getF32(n)
		row(buf, offs[0], offs[1])
		putF32(buf)
	})
}

// RoPE rotates feature pairs of x [..., L, D] by position.
func (c *Backend) RoPE(o backend.RoPE, x backend.View, freqs, offsets *backend.View, out backend.View) error {
	nd := len(x.Shape)
	D := x.Shape[nd-1]
	half := o.Dims / 2
	var inv []float64 // nil: from o.Base and o.Dims
	if freqs != nil {
		inv = make([]float64, half)
		f := vec(freqs, half)
		for i := range inv {
			inv[i] = 1 / f[i]
		}
	}
	if offsets == nil {
		cs, sn := ropeAngles(o, inv, x.Shape[nd-2])
		ropeTable(cs, sn, half, o, x, out)
		return nil
	}
	if inv == nil {
		inv = ropeInv(o)
	}
	lax := nd - 2
	xs, os := x.Strides[nd-1], out.Strides[nd-1]
	// iterate over rows; the row index along axis -2 is the position.
	shape := append([]int(nil), x.Shape...)
	shape[nd-1] = 1
	// extra "operands" whose offsets count the row and the batch entry
	pstr := make([]int, nd)
	pstr[lax] = 1
	bstr := make([]int, nd)
	bstr[0] = 1
	var offs0 []int
	if offsets != nil {
		offs0 = toIdx(*offsets)
		if len(offs0) != x.Shape[0] {
			return fmt.Errorf("cpu: rope offsets has %d entries for batch %d", len(offs0), x.Shape[0])
		}
	}
	positions(shape, [][]int{x.Strides, out.Strides, pstr, bstr}, []int{x.Offset, out.Offset, 0, 0}, func(offs []int) {
		start := o.Offset
		if offs0 != nil {
			start = offs0[offs[3]]
		}
		pos := float64(start+offs[2]) * float64(o.Scale)
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

// ropeAngles returns the cosines and sines [L, dims/2] of positions
// o.Offset.. under the inverse frequencies inv (nil: ropeInv(o)). Without
// explicit frequencies (then the table follows from o) the last one is kept: a
// decode step rotates q and k of every layer at the same position, so the
// 48 calls of a 24-layer step compute it once.
func ropeAngles(o backend.RoPE, inv []float64, L int) (cs, sn []float64) {
	cacheable := inv == nil
	if cacheable {
		ropeCache.Lock()
		defer ropeCache.Unlock()
		if e := &ropeCache.e; e.cs != nil && e.o == o && e.L == L {
			return e.cs, e.sn
		}
	}
	if inv == nil {
		inv = ropeInv(o)
	}
	half := len(inv)
	cs, sn = make([]float64, L*half), make([]float64, L*half)
	for l := 0; l < L; l++ {
		pos := float64(o.Offset+l) * float64(o.Scale)
		for i := range inv {
			th := pos * inv[i]
			cs[l*half+i], sn[l*half+i] = math.Cos(th), math.Sin(th)
		}
	}
	if cacheable {
		ropeCache.e = ropeEntry{o: o, L: L, cs: cs, sn: sn}
	}
	return cs, sn
}

// ropeInv is the inverse frequencies base^(−2i/dims), i < dims/2.
func ropeInv(o backend.RoPE) []float64 {
	inv := make([]float64, o.Dims/2)
	for i := range inv {
		inv[i] = math.Pow(float64(o.Base), -float64(2*i)/float64(o.Dims))
	}
	return inv
}

// ropeCache is ropeAngles' last table (read-only once stored).
var ropeCache struct {
	sync.Mutex
	e ropeEntry
}

type ropeEntry struct {
	o      backend.RoPE
	L      int
	cs, sn []float64
}

// ropeTable is RoPE with one start position for the whole batch: the
// angles of the L positions are computed once (not once per head and batch
// entry), rows are rotated with the same float64 arithmetic as the general
// path, serially when small.
func ropeTable(cs, sn []float64, half int, o backend.RoPE, x, out backend.View) {
	nd := len(x.Shape)
	D := x.Shape[nd-1]
	rows := x.Size() / max(D, 1)
	float := allFloat(x, out)
	work := func(lo, hi int) {
		var v []float64
		var v32 []float32
		if float {
			v32 = getF32(D)
			defer putF32(v32)
		} else {
			v = make([]float64, D)
		}
		idx := make([]int, nd-1)
		r := lo
		for d := nd - 2; d >= 0; d-- {
			idx[d] = r % x.Shape[d]
			r /= x.Shape[d]
		}
		for r := lo; r < hi; r++ {
			xo, oo := x.Offset, out.Offset
			for d := 0; d < nd-1; d++ {
				xo += idx[d] * x.Strides[d]
				oo += idx[d] * out.Strides[d]
			}
			l := idx[nd-2]
			c, s := cs[l*half:(l+1)*half], sn[l*half:(l+1)*half]
			if v32 != nil {
				// float rows: widened to float32 (exact in float64), the
				// same float64 rotation, rounded to float32 as store would
				load32(v32, x, xo, x.Strides[nd-1])
				for i := 0; i < half; i++ {
					a, b := i, i+half
					if o.Traditional {
						a, b = 2*i, 2*i+1
					}
					x1, x2 := float64(v32[a]), float64(v32[b])
					v32[a] = float32(x1*c[i] - x2*s[i])
					v32[b] = float32(x1*s[i] + x2*c[i])
				}
				store32(v32, out, oo, out.Strides[nd-1])
			} else {
				load(v, x, xo, x.Strides[nd-1])
				for i := 0; i < half; i++ {
					a, b := i, i+half
					if o.Traditional {
						a, b = 2*i, 2*i+1
					}
					x1, x2 := v[a], v[b]
					v[a] = x1*c[i] - x2*s[i]
					v[b] = x1*s[i] + x2*c[i]
				}
				store(v, out, oo, out.Strides[nd-1])
			}
			for d := nd - 2; d >= 0; d-- {
				idx[d]++
				if idx[d] < x.Shape[d] {
					break
				}
				idx[d] = 0
			}
		}
	}
	if rows*D < parallelWork {
		work(0, rows)
		return
	}
	kernels.Parallel(rows, max(1, 4096/max(D, 1)), work)
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

// ScaledDotProductAttention works on blocks of at most sdpaBlock query
// rows of one kv head (the query heads of a GQA group together): scores
// [rows, Lk] = Q·Kᵀ and out = P·V through kernels.Sgemm, softmax per row
// in between. Memory is O(rows·Lk), never Lq×Lk.
func (c *Backend) ScaledDotProductAttention(o backend.SDPA, q, k, v backend.View, mask, sinks *backend.View, out backend.View) error {
	B, H, Lq, D := q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]
	Hk, Lk, Dv := k.Shape[1], k.Shape[2], v.Shape[3]
	G := H / Hk
	var sink []float64
	if sinks != nil {
		sink = vec(sinks, H)
	}
	rows := G * Lq // query rows per kv head, ordered (i, g): a block holds few positions
	if rows <= sdpaSmallRows && rows*Lk*max(D, Dv) <= sdpaSmallWork {
		// (faster than the blocked path at every cache length measured:
		// BenchmarkSDPAFewRows)
		sdpaSmall(o, q, k, v, mask, sink, out)
		return nil
	}
	nblk := (rows + sdpaBlock - 1) / sdpaBlock
	Y := getF32(B * H * Lq * Dv)
	defer putF32(Y)
	kv := make([]struct {
		K, V     []float32
		ldk, ldv int
	}, B*Hk)
	kernels.Parallel(B*Hk, 1, func(lo, hi int) {
		for bh := lo; bh < hi; bh++ {
			b, hk := bh/Hk, bh%Hk
			e := &kv[bh]
			e.K, e.ldk = rowsF32(k, k.Offset+b*k.Strides[0]+hk*k.Strides[1], Lk, D, k.Strides[2], k.Strides[3])
			e.V, e.ldv = rowsF32(v, v.Offset+b*v.Strides[0]+hk*v.Strides[1], Lk, Dv, v.Strides[2], v.Strides[3])
		}
	})
	kernels.Parallel(B*Hk*nblk, 1, func(lo, hi int) {
		bq := min(sdpaBlock, rows)
		Q, S, O := getF32(bq*D), getF32(bq*Lk), getF32(bq*Dv)
		defer func() { putF32(Q); putF32(S); putF32(O) }()
		mrow := make([]float64, Lk)
		for task := lo; task < hi; task++ {
			bh, blk := task/nblk, task%nblk
			b, hk := bh/Hk, bh%Hk
			r0 := blk * sdpaBlock
			nr := min(sdpaBlock, rows-r0)
			e := kv[bh]
			for r := 0; r < nr; r++ {
				h, i := hk*G+(r0+r)%G, (r0+r)/G
				qo := q.Offset + b*q.Strides[0] + h*q.Strides[1] + i*q.Strides[2]
				if q.DType == backend.Float32 || q.DType == backend.BFloat16 || q.DType == backend.Float16 {
					load32(Q[r*D:(r+1)*D], q, qo, q.Strides[3])
				} else {
					qv := backend.View{Buf: q.Buf, DType: q.DType, Shape: []int{D}, Strides: q.Strides[3:], Offset: qo}
					copy(Q[r*D:(r+1)*D], toF32(qv))
				}
			}
			// causal: keys past the block's last query position are
			// hidden from every row of it, so they are not computed
			nk := Lk
			if o.Causal {
				nk = max(0, min(Lk, (r0+nr-1)/G+Lk-Lq+1))
			}
			sgemmRows(true, nr, nk, D, Q, D, e.K, e.ldk, S, Lk)
			for r := 0; r < nr; r++ {
				h, i := hk*G+(r0+r)%G, (r0+r)/G
				if mask != nil {
					mo := mask.Offset + b*mask.Strides[0] + h*mask.Strides[1] + i*mask.Strides[2]
					load(mrow, *mask, mo, mask.Strides[3])
				}
				sk := math.Inf(-1)
				if sink != nil {
					sk = sink[h]
				}
				sdpaRow(o, S[r*Lk:r*Lk+nk], i+Lk-Lq, mask != nil, mrow, sk)
			}
			if nk == 0 {
				clear(O[:nr*Dv])
			} else {
				sgemmRows(false, nr, Dv, nk, S, Lk, e.V, e.ldv, O, Dv)
			}
			for r := 0; r < nr; r++ {
				h, i := hk*G+(r0+r)%G, (r0+r)/G
				copy(Y[((b*H+h)*Lq+i)*Dv:((b*H+h)*Lq+i+1)*Dv], O[r*Dv:(r+1)*Dv])
			}
		}
	})
	fromF32(Y, out)
	return nil
}

const sdpaBlock = 64

// The few-query path (decode: one query row per head, the query heads of a
// GQA group together) runs when a kv head has at most sdpaSmallRows query
// rows (sdpaSmallWork, a bound on rows·Lk·D, is for the benchmark).
var (
	sdpaSmallRows = 16
	sdpaSmallWork = 1 << 40
)

// sdpaSmall is attention for few query rows: it reads each key and value
// row once, straight from the cache's buffer (widening sdpaChunk rows at
// a time where a kernel cannot read them in place, never the whole
// cache), in one pass per kv head with pooled scratch, serially unless the
// work is large enough to split kv heads over the cores. With AVX-512 the
// scores of a kv head's query rows come 16 keys at a time (qkBlocksFast;
// qkBlocksBF16 for bfloat16 queries and keys), and P·V keeps the output
// rows in registers across all keys (pvFast, pvFastHalf).
func sdpaSmall(o backend.SDPA, q, k, v backend.View, mask *backend.View, sink []float64, out backend.View) {
	B, H, Lq, D := q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]
	Hk, Lk, Dv := k.Shape[1], k.Shape[2], v.Shape[3]
	G := H / Hk
	rows := G * Lq
	// bfloat16 queries and keys: scores in bfloat16 pairs, keys read in
	// place
	bfDot := sdpaKernels && hasBF16Dot && q.DType == backend.BFloat16 && k.DType == backend.BFloat16 &&
		k.Strides[3] == 1 && D%32 == 0
	head := func(bh int, Q, S, kr, O []float32, mrow []float64, hq []uint16) {
		b, hk := bh/Hk, bh%Hk
		kb := k.Offset + b*k.Strides[0] + hk*k.Strides[1]
		if bfDot && Lk > 0 {
			qs, qc := u16s(bytesOf(q)), q.Strides[3]
			for r := 0; r < rows; r++ {
				h, i := hk*G+r/Lq, r%Lq
				qo, hr := q.Offset+b*q.Strides[0]+h*q.Strides[1]+i*q.Strides[2], hq[r*D:(r+1)*D]
				if qc == 1 {
					copy(hr, qs[qo:qo+D])
					continue
				}
				for c := range hr {
					hr[c] = qs[qo+c*qc]
				}
			}
			if qkBlocksBF16(hq, D, rows, u16s(bytesOf(k))[kb:], k.Strides[2], D, Lk, S, Lk, hq[rows*D:]) {
				goto softmax
			}
		}
		for r := 0; r < rows; r++ {
			h, i := hk*G+r/Lq, r%Lq
			load32(Q[r*D:(r+1)*D], q, q.Offset+b*q.Strides[0]+h*q.Strides[1]+i*q.Strides[2], q.Strides[3])
		}
		if sdpaKernels && k.DType == backend.Float32 && k.Strides[3] == 1 && Lk > 0 &&
			qkBlocksFast(Q, D, rows, f32s(bytesOf(k))[kb:], k.Strides[2], D, Lk, S, Lk, kr) {
			// (float32 keys read in place)
			goto softmax
		}
		for j0 := 0; j0 < Lk; j0 += sdpaChunk {
			n := loadRows(kr, k, kb, j0, min(sdpaChunk, Lk-j0), D)
			if sdpaKernels && qkBlocksFast(Q, D, rows, kr, D, D, n, S[j0:], Lk, nil) {
				continue
			}
			for jj := 0; jj < n; jj++ {
				j, kj := j0+jj, kr[jj*D:(jj+1)*D]
				if dotRowsFast(Q, D, rows, kj, D, S[j:], Lk) {
					continue
				}
				for r := 0; r < rows; r++ {
					S[r*Lk+j] = dot32(Q[r*D:(r+1)*D], kj)
				}
			}
		}
	softmax:
		for r := 0; r < rows; r++ {
			h, i := hk*G+r/Lq, r%Lq
			if mask != nil {
				mo := mask.Offset + b*mask.Strides[0] + h*mask.Strides[1] + i*mask.Strides[2]
				load(mrow, *mask, mo, mask.Strides[3])
			}
			sk := math.Inf(-1)
			if sink != nil {
				sk = sink[h]
			}
			sdpaRow(o, S[r*Lk:(r+1)*Lk], i+Lk-Lq, mask != nil, mrow, sk)
		}
		clear(O)
		vb := v.Offset + b*v.Strides[0] + hk*v.Strides[1]
		if sdpaKernels && (v.DType == backend.BFloat16 || v.DType == backend.Float16) && v.Strides[3] == 1 && Lk > 0 &&
			pvFastHalf(O, Dv, rows, S, Lk, u16s(bytesOf(v))[vb:], v.Strides[2], Lk, Dv, pvKind(v.DType)) {
			// (the values widened as the kernel reads them)
			goto store
		}
		if sdpaKernels && v.DType == backend.Float32 && v.Strides[3] == 1 && Lk > 0 &&
			pvFast(O, Dv, rows, S, Lk, f32s(bytesOf(v))[vb:], v.Strides[2], Lk, Dv) {
			goto store
		}
		for j0 := 0; j0 < Lk; j0 += sdpaChunk {
			n := loadRows(kr, v, vb, j0, min(sdpaChunk, Lk-j0), Dv)
			if sdpaKernels && pvFast(O, Dv, rows, S[j0:], Lk, kr, Dv, n, Dv) {
				continue
			}
			for jj := 0; jj < n; jj++ {
				j, vr := j0+jj, kr[jj*Dv:(jj+1)*Dv]
				if axpyRowsFast(O, Dv, rows, S[j:], Lk, vr, Dv) {
					continue
				}
				for r := 0; r < rows; r++ {
					if p := S[r*Lk+j]; p != 0 {
						if !axpyFast(O[r*Dv:(r+1)*Dv], p, vr) {
							axpyF32(O[r*Dv:(r+1)*Dv], p, vr)
						}
					}
				}
			}
		}
	store:
		for r := 0; r < rows; r++ {
			h, i := hk*G+r/Lq, r%Lq
			store32(O[r*Dv:(r+1)*Dv], out, out.Offset+b*out.Strides[0]+h*out.Strides[1]+i*out.Strides[2], out.Strides[3])
		}
	}
	task := func(lo, hi int) {
		Q, S, kr, O := getF32(rows*D), getF32(rows*Lk), getF32(sdpaChunk*max(D, Dv)), getF32(rows*Dv)
		var mrow []float64
		if mask != nil {
			mrow = make([]float64, Lk)
		}
		var hq []uint16
		if bfDot {
			// bfloat16 query rows, then 16 key rows for the last block
			hb := getF32((rows + 16) * D / 2)
			defer putF32(hb)
			hq = u16s(unsafeBytes(hb))
		}
		for bh := lo; bh < hi; bh++ {
			head(bh, Q, S, kr, O, mrow, hq)
		}
		putF32(Q)
		putF32(S)
		putF32(kr)
		putF32(O)
	}
	if B*Hk > 1 && B*Hk*rows*Lk*max(D, Dv) >= parallelWork {
		kernels.Parallel(B*Hk, 1, task)
		return
	}
	task(0, B*Hk)
}

// pvKind is pvFastHalf's kind for a half-precision dtype.
func pvKind(d backend.DType) int {
	if d == backend.Float16 {
		return 2
	}
	return 1
}

// sdpaKernels picks the block kernels of the few-query path (qkBlocksFast,
// pvFast) where they run; off, it takes the per-key loops (tests and
// BenchmarkSDPAFewRows compare the two).
var sdpaKernels = true

// sdpaChunk is how many key or value rows the few-query path widens at a
// time (one conversion call when the rows are contiguous).
const sdpaChunk = 64

// loadRows widens rows j0..j0+n of the [.., T, d] view x (base: the
// element offset of its row 0) into dst as n contiguous rows of d.
func loadRows(dst []float32, x backend.View, base, j0, n, d int) int {
	nd := len(x.Strides)
	rs, cs := x.Strides[nd-2], x.Strides[nd-1]
	if cs == 1 && (rs == d || n == 1) {
		load32(dst[:n*d], x, base+j0*rs, 1)
		return n
	}
	for jj := 0; jj < n; jj++ {
		load32(dst[jj*d:(jj+1)*d], x, base+(j0+jj)*rs, cs)
	}
	return n
}

// parallelWork is the number of multiply-adds below which a fused op runs
// on the calling goroutine: fanning out costs a few microseconds, more on a
// loaded machine, and decode-sized ops finish in less.
const parallelWork = 1 << 16

// dot32 is a·b, with AVX-512 where the CPU has it.
func dot32(a, b []float32) float32 {
	if d, ok := dotFast(a, b); ok {
		return d
	}
	return dotF32(a, b)
}

// axpyF32 is y += a·x.
func axpyF32(y []float32, a float32, x []float32) {
	n := len(y)
	x = x[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		y[i] += a * x[i]
		y[i+1] += a * x[i+1]
		y[i+2] += a * x[i+2]
		y[i+3] += a * x[i+3]
	}
	for ; i < n; i++ {
		y[i] += a * x[i]
	}
}

// sgemmRows is C = A·op(B) for few rows: below 16 rows it calls Sgemm on
// slices of at most 4 rows, which pkg/kernels runs as fast GEMVs (its
// general path is several times slower for 5-15 rows).
func sgemmRows(transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int) {
	if M >= 16 {
		kernels.Sgemm(false, transB, M, N, K, A, lda, B, ldb, C, ldc, false)
		return
	}
	for r := 0; r < M; r += 4 {
		m := min(4, M-r)
		kernels.Sgemm(false, transB, m, N, K, A[r*lda:], lda, B, ldb, C[r*ldc:], ldc, false)
	}
}

// sdpaRow turns raw scores q·k of the query at key position qpos into
// softmax weights in place (hidden keys get 0; a row with every key hidden
// is all 0). sink (−inf for none) is a logit that joins the softmax and is
// dropped.
func sdpaRow(o backend.SDPA, s []float32, qpos int, hasMask bool, mrow []float64, sink float64) {
	neg := float32(math.Inf(-1))
	lo, hi := 0, len(s)
	if o.Causal {
		hi = min(hi, qpos+1)
	}
	if o.Window > 0 {
		lo = max(lo, qpos-o.Window+1)
	}
	sc, cp := o.Scale, o.SoftCap
	m, done := neg, false
	if cp <= 0 && !hasMask && lo < hi {
		// the plain case (decode): scale and max in one vector pass
		if m, done = scaleMaxFast(s[lo:hi], sc); done {
			fillF32(s[:lo], neg)
			fillF32(s[hi:], neg)
		} else {
			m = neg
		}
	}
	for j := range s {
		if done {
			break
		}
		if j < lo || j >= hi {
			s[j] = neg
			continue
		}
		x := s[j] * sc
		if cp > 0 {
			x = cp * float32(math.Tanh(float64(x/cp)))
		}
		if hasMask {
			if o.MaskBool {
				if mrow[j] == 0 {
					x = neg
				}
			} else {
				x += float32(mrow[j])
			}
		}
		s[j] = x
		if x > m {
			m = x
		}
	}
	if !math.IsInf(sink, -1) {
		sk := float32(sink)
		m = max(m, sk)
		sum, ok := expSubFast(s, m)
		if !ok {
			for j, x := range s {
				p := expf(x - m)
				s[j] = p
				sum += p
			}
		}
		scaleF32(s, 1/(sum+expf(sk-m)))
		return
	}
	if m == neg {
		clear(s)
		return
	}
	softmaxInPlace(s, m)
}

// softmaxInPlace normalises exp(s − m) (m = max s) in float32.
func softmaxInPlace(s []float32, m float32) {
	sum, ok := expSubFast(s, m)
	if !ok {
		for j, x := range s {
			p := expf(x - m)
			s[j] = p
			sum += p
		}
	}
	scaleF32(s, 1/sum)
}

// scaleF32 sets s[i] *= a.
func scaleF32(s []float32, a float32) {
	if scaleFast(s, a) {
		return
	}
	for j := range s {
		s[j] *= a
	}
}

// fillF32 sets every element of s to x.
func fillF32(s []float32, x float32) {
	for j := range s {
		s[j] = x
	}
}

// roundTo rounds x to the precision of dt (floats only).
func roundTo(dt backend.DType, x float64) float64 {
	switch dt {
	case backend.Float32:
		return float64(float32(x))
	case backend.BFloat16:
		return float64(math.Float32frombits(uint32(kernels.F32ToBF16(float32(x))) << 16))
	case backend.Float16:
		return float64(kernels.F16ToF32(kernels.F32ToF16(float32(x))))
	}
	return x
}
