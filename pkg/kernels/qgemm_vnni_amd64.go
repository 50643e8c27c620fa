//go:build amd64

package kernels

import (
	"sync"
	"unsafe"
)

// The panel path of the int8 kernels for many activation rows (prompt
// processing). The activations are quantized as for the other int8
// kernels (blocks of 32, dx = max|x|/127, rounded block sums: the same
// values), in natural order for 8-bit weights and, for 4-bit ones, with
// each 8 reordered as the 4 even elements then the 4 odd ones. The weights
// are taken in panels of 16 rows: each panel is unpacked once per call to
// u8 in the VNNI layout [K/4][16 rows][4 bytes] (a 16x16 dword transpose
// of the packed rows; 4-bit dwords, 8 elements each, then split into their
// low nibbles, the even elements, and high nibbles, the odd ones: hence
// the activation order) and its scales and biases to f32 [groups][16]. The
// panel, 16·K bytes, stays in L1/L2 while every activation row passes over
// it. The micro-kernel runs 8 activation rows at a time: per 4-element
// step one weight load and 8 VPDPBUSD with each row's 4 int8s broadcast
// from memory; per block of 32 the integer sums are converted and FMAed
// with the rows' dx; per group they are FMAed with the panel's scales and
// the biases with each row's Σx. On Zen 4 the conversions are free next
// to VPDPBUSD but the FMAs are not: per 512 multiply-adds 8 VPDPBUSD and
// 1 + 2/(G/32) FMAs, against about 28 vector operations for
// qgemmTile4VNNI.

//go:noescape
func panelVNNI(dst, src unsafe.Pointer, offs *[16]int, ncol, tailmask int)

//go:noescape
func quantPanelAVX512(x *float32, nblk int, xq *int8, dx, bsum *float32, perm int)

//go:noescape
func panel4VNNI(dst, src unsafe.Pointer, offs *[16]int, ncol, tailmask int)

//go:noescape
func qgemmPanelVNNI(w unsafe.Pointer, s, b *float32, x unsafe.Pointer, xstride int, dx, sum *float32, ng, bpg int, y *float32, ystride, ntok, rowmask int)

//go:noescape
func qgemmPanelT4VNNI(w unsafe.Pointer, s, b *float32, x unsafe.Pointer, xstride int, dx, sum *float32, ng, bpg int, y *float32, ystride, ntok, rowmask int)

const (
	// panelRows weight rows per panel, panelTok activation rows per
	// micro-kernel call.
	panelRows = 16
	panelTok  = 8
	// panelMinM is the M from which qgemvVNNIRun takes the panel path
	// (measured on Zen 4: from 6-8 rows on it beats the 4-row tiles, by
	// 1.5-2.5x from 16 rows on; at 4-5 rows the per-call unpacking of the
	// weights makes it no faster).
	panelMinM = 8
)

// usePanels lets tests turn the panel path off to compare against the
// tile path.
var usePanels = true

// panelActs are the activations prepared for the panel path: xq [Mp][Kp]
// int8 in the order of the panel layout (see above; Mp = M rounded up to
// panelTok, Kp = K rounded up to 128, zero padded), their block scales
// dx and rounded block sums bsum [Mp][K/32], and the same interleaved per
// tile of panelTok rows as the micro-kernel reads them: block scales dxI
// [K/32][panelTok] and group sums sumI [K/G][panelTok].
type panelActs struct {
	xq              []int8
	dx, bsum        []float32
	dxI, sumI       []float32
	kp, nb, ng, ntg int
}

// panelWork is one worker's panel scratch: the VNNI-layout weights and
// the transposed scales and biases [groups][16] (groups rounded up to 16),
// with their widening buffer.
type panelWork struct {
	w      []byte
	st, bt []float32
	tmp    []float32
	offs   [16]int
}

var (
	panelActPool  = sync.Pool{New: func() any { return new(panelActs) }}
	panelWorkPool = sync.Pool{New: func() any { return new(panelWork) }}
)

// prepPanelActs quantizes X [M, K] for the panel path of bits-wide
// weights.
func prepPanelActs(pa *panelActs, X []float32, M, K, G, bits int) {
	perm := 0
	if bits == 4 {
		perm = 1 // the order of the packed 4-bit panels
	}
	nc := (K + 127) / 128
	pa.kp, pa.nb, pa.ng = nc*128, K/32, K/G
	pa.ntg = (M + panelTok - 1) / panelTok
	mp := pa.ntg * panelTok
	pa.xq = grow(pa.xq, mp*pa.kp)
	pa.dx = grow(pa.dx, mp*pa.nb)
	pa.bsum = grow(pa.bsum, mp*pa.nb)
	pa.dxI = grow(pa.dxI, mp*pa.nb)
	pa.sumI = grow(pa.sumI, mp*pa.ng)
	Parallel(mp, 8, func(lo, hi int) {
		for m := lo; m < hi; m++ {
			xq := pa.xq[m*pa.kp : (m+1)*pa.kp]
			dx := pa.dx[m*pa.nb : (m+1)*pa.nb]
			bsum := pa.bsum[m*pa.nb : (m+1)*pa.nb]
			tg, t := m/panelTok, m%panelTok
			if m >= M {
				clear(xq)
				clear(dx)
				clear(bsum)
			} else {
				clear(xq[K:])
				quantPanelAVX512(&X[m*K], len(dx), &xq[0], &dx[0], &bsum[0], perm)
			}
			dxI := pa.dxI[tg*pa.nb*panelTok:]
			for b, v := range dx {
				dxI[b*panelTok+t] = v
			}
			sumI := pa.sumI[tg*pa.ng*panelTok:]
			bpg := G / 32
			for g := 0; g < pa.ng; g++ {
				var s float32
				for _, v := range bsum[g*bpg : g*bpg+bpg] {
					s += v
				}
				sumI[g*panelTok+t] = s
			}
		}
	})
}

// qgemmPanelRun is qgemvVNNIRun on the panel path: the activations are
// prepared once and the panels of all the weights are split over the
// cores as one range.
func qgemmPanelRun(Ys [][]float32, X []float32, M int, qs []*QWeight) {
	q0 := qs[0]
	K, G := q0.K, q0.GroupSize
	pa := panelActPool.Get().(*panelActs)
	defer panelActPool.Put(pa)
	prepPanelActs(pa, X, M, K, G, q0.Bits)
	starts := make([]int, len(qs)+1) // first panel of each weight
	for i, q := range qs {
		starts[i+1] = starts[i] + (q.N+panelRows-1)/panelRows
	}
	np := starts[len(qs)]
	Parallel(np, 1, func(lo, hi int) {
		pw := panelWorkPool.Get().(*panelWork)
		defer panelWorkPool.Put(pw)
		i := 0
		for p := lo; p < hi; p++ {
			for p >= starts[i+1] {
				i++
			}
			n0 := (p - starts[i]) * panelRows
			pw.run(qs[i], Ys[i], n0, M, pa)
		}
	})
}

// run computes the columns [n0, n0+16) of Y [M, N] (fewer at the end of
// q's rows) for the prepared activations.
func (pw *panelWork) run(q *QWeight, Y []float32, n0, M int, pa *panelActs) {
	K, N, G := q.K, q.N, q.GroupSize
	ng := K / G
	rows := min(panelRows, N-n0)
	wstride := K * q.Bits / 8
	// Weights: the VNNI layout of the panel's rows (4-bit: packed, 8
	// elements a dword); rows past N repeat row 0 (their outputs are
	// masked).
	pw.w = grow(pw.w, (K+127)/128*128/4*64)
	_ = q.W[(n0+rows)*wstride/4-1]
	pw.setOffs(rows, wstride)
	src := unsafe.Pointer(&q.W[n0*wstride/4])
	if q.Bits == 4 {
		panel4VNNI(unsafe.Pointer(&pw.w[0]), src, &pw.offs, K/128, int(lowMask(K%128/8)))
	} else {
		panelVNNI(unsafe.Pointer(&pw.w[0]), src, &pw.offs, K/64, int(lowMask(K%64/4)))
	}
	// Scales and biases, transposed to [groups][16] each.
	ngp := (ng + 15) / 16 * 16
	pw.st, pw.bt = grow(pw.st, ngp*16), grow(pw.bt, ngp*16)
	var sp, bp unsafe.Pointer
	if q.ScalesF32 != nil {
		_, _ = q.ScalesF32[(n0+rows)*ng-1], q.BiasesF32[(n0+rows)*ng-1]
		sp, bp = unsafe.Pointer(&q.ScalesF32[n0*ng]), unsafe.Pointer(&q.BiasesF32[n0*ng])
	} else {
		pw.tmp = grow(pw.tmp, 2*rows*ng)
		s, b := pw.tmp[:rows*ng], pw.tmp[rows*ng:]
		halfToF32(s, q.Scales[n0*ng:(n0+rows)*ng], q.Kind)
		halfToF32(b, q.Biases[n0*ng:(n0+rows)*ng], q.Kind)
		sp, bp = unsafe.Pointer(&s[0]), unsafe.Pointer(&b[0])
	}
	pw.setOffs(rows, ng*4)
	panelVNNI(unsafe.Pointer(&pw.st[0]), sp, &pw.offs, ng/16, int(lowMask(ng%16)))
	panelVNNI(unsafe.Pointer(&pw.bt[0]), bp, &pw.offs, ng/16, int(lowMask(ng%16)))
	rowmask := 1<<rows - 1
	nb := pa.nb
	_ = Y[(M-1)*N+n0+rows-1]
	for tg := 0; tg < pa.ntg; tg++ {
		m0 := tg * panelTok
		kern := qgemmPanelVNNI
		if M-m0 <= panelTok/2 {
			kern = qgemmPanelT4VNNI // the last rows: skip 4 padding ones
		}
		kern(unsafe.Pointer(&pw.w[0]), &pw.st[0], &pw.bt[0], unsafe.Pointer(&pa.xq[m0*pa.kp]), pa.kp,
			&pa.dxI[tg*nb*panelTok], &pa.sumI[tg*ng*panelTok], ng, G/32,
			&Y[m0*N+n0], N*4, min(panelTok, M-m0), rowmask)
	}
}

// setOffs sets the row offsets for panelVNNI: r·stride for the rows, 0
// (row 0 again) past them.
func (pw *panelWork) setOffs(rows, stride int) {
	for r := range pw.offs {
		pw.offs[r] = 0
		if r < rows {
			pw.offs[r] = r * stride
		}
	}
}
