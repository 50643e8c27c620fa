//go:build amd64

package kernels

import "unsafe"

//go:noescape
func qgemvVNNI(bits, rows int, w unsafe.Pointer, wstride int, s, b unsafe.Pointer, sbstride, kind int, xq, dxl, sumx unsafe.Pointer, nchunk, ngroups int, idx unsafe.Pointer, smask, sstep, bmask int, y *float32, tail, wm1, wm2, tsmask int, widx unsafe.Pointer)

//go:noescape
func qgemmTile4VNNI(bits, rows int, w unsafe.Pointer, wstride int, s, b unsafe.Pointer, sbstride, kind int, xq, dxl, sumx unsafe.Pointer, nchunk, ngroups int, idx unsafe.Pointer, smask, sstep, bmask int, y *float32, tail, wm1, wm2, tsmask int, widx unsafe.Pointer)

//go:noescape
func quantActAVX512(x *float32, nblk int, bits int, xq *int8, dx, bsum *float32)

//go:noescape
func dequantAVX512(bits, rows int, w unsafe.Pointer, K int, s, b unsafe.Pointer, kind, G int, dst *float32)

// dequantFast dequantizes rows [n0, n0+rows) of a 4- or 8-bit W into dst
// with AVX-512; it reports whether it could.
func dequantFast(q *QWeight, n0, rows int, dst []float32) bool {
	if !hasAVX512 || (q.Bits != 4 && q.Bits != 8) || (q.ScalesF32 == nil && q.Kind > F16) {
		return false
	}
	ng := q.K / q.GroupSize
	_ = dst[rows*q.K-1]
	_ = q.W[(n0+rows)*q.K*q.Bits/32-1]
	kind := int(q.Kind)
	var sp, bp unsafe.Pointer
	if q.ScalesF32 != nil {
		kind = 2
		_, _ = q.ScalesF32[(n0+rows)*ng-1], q.BiasesF32[(n0+rows)*ng-1]
		sp, bp = unsafe.Pointer(&q.ScalesF32[n0*ng]), unsafe.Pointer(&q.BiasesF32[n0*ng])
	} else {
		_, _ = q.Scales[(n0+rows)*ng-1], q.Biases[(n0+rows)*ng-1]
		sp, bp = unsafe.Pointer(&q.Scales[n0*ng]), unsafe.Pointer(&q.Biases[n0*ng])
	}
	dequantAVX512(q.Bits, rows, unsafe.Pointer(&q.W[n0*q.K*q.Bits/32]), q.K, sp, bp, kind, q.GroupSize, &dst[0])
	return true
}

// quantAct quantizes activations for the int8 kernels (see prepAct); it
// reports whether bsum already holds the rounded sums (roundedSums).
func quantAct(x []float32, bits int, xq []int8, dx, bsum []float32) bool {
	if hasAVX512 && len(dx) > 0 {
		quantActAVX512(&x[0], len(dx), bits, &xq[0], &dx[0], &bsum[0])
		return true
	}
	quantActGo(x, bits, xq, dx, bsum)
	return false
}

//go:noescape
func qgemvAVX2(bits, rows int, w unsafe.Pointer, wstride int, sf, bf *float32, ng int, xq, dxl, dx, sumx unsafe.Pointer, nchunk int, idx unsafe.Pointer, sstep int, y *float32)

// qgemvFast runs QMatmul on the int8 kernels (AVX-512 VNNI, else AVX2 for
// K a multiple of 128 and M < qmatmulGemmMinM) when the CPU and the weight's format allow; it
// reports whether it did.
func qgemvFast(Y, X []float32, M int, q *QWeight) bool {
	if !vnniOK(q) {
		if hasAVX2 && !hasVNNI && (q.Bits == 4 || q.Bits == 8) && (q.ScalesF32 != nil || q.Kind <= F16) &&
			q.K%128 == 0 && M < qmatmulGemmMinM {
			qgemvAVX2Run(Y, X, M, q)
			return true
		}
		return false
	}
	qgemvVNNIRun([][]float32{Y}, X, M, []*QWeight{q})
	return true
}

// qmatmulMultiFast is QMatmulMulti on the VNNI kernels: the weights share
// K, bits and group size; it reports whether it could run them.
func qmatmulMultiFast(Ys [][]float32, X []float32, M int, qs []*QWeight) bool {
	for _, q := range qs {
		if !vnniOK(q) || q.K != qs[0].K || q.Bits != qs[0].Bits || q.GroupSize != qs[0].GroupSize {
			return false
		}
	}
	qgemvVNNIRun(Ys, X, M, qs)
	return true
}

// vnniOK says whether the AVX-512 VNNI kernels take q.
func vnniOK(q *QWeight) bool {
	return hasVNNI && (q.Bits == 4 || q.Bits == 8) && (q.ScalesF32 != nil || q.Kind <= F16)
}

// vnniPlan is one weight's pointers, strides and masks for the VNNI kernels.
type vnniPlan struct {
	q                       *QWeight
	wp, sp, bp              unsafe.Pointer
	wstride, sbstride, kind int
	smask, sstep, bmask     int
	tail, wm1, wm2, tsmask  int
	rowsPerBlock            int
}

func newVNNIPlan(q *QWeight) vnniPlan {
	K, G := q.K, q.GroupSize
	ng := K / G
	p := vnniPlan{q: q, kind: int(q.Kind)}
	esz := 2
	if q.ScalesF32 != nil {
		p.kind, esz = 2, 4
		p.sp, p.bp = unsafe.Pointer(unsafe.SliceData(q.ScalesF32)), unsafe.Pointer(unsafe.SliceData(q.BiasesF32))
	} else {
		p.sp, p.bp = unsafe.Pointer(unsafe.SliceData(q.Scales)), unsafe.Pointer(unsafe.SliceData(q.Biases))
	}
	p.wstride = K * q.Bits / 8
	p.sbstride = ng * esz
	p.wp = unsafe.Pointer(unsafe.SliceData(q.W))
	p.smask, p.sstep, p.bmask = 1<<(128/G)-1, 128/G*esz, 1<<(ng%16)-1
	// A partial last chunk: masks for its weight bytes and scales.
	p.tail = K % 128
	if p.tail > 0 {
		tb := p.tail * q.Bits / 8
		p.wm1 = int(lowMask(min(64, tb)))
		p.wm2 = int(lowMask(max(0, tb-64)))
		p.tsmask = int(lowMask(p.tail / G))
	}
	// Blocks of rows small enough to stay in L2 while every activation row
	// passes over them.
	const blockBytes = 256 << 10
	p.rowsPerBlock = max(8, blockBytes/p.wstride)
	return p
}

// qgemvVNNIRun computes Ys[i] [M, N_i] = X [M, K] · qs[i]ᵀ for weights of
// one K, bit width and group size: the activations are prepared once and
// the rows of all the weights are split over the cores as one range.
func qgemvVNNIRun(Ys [][]float32, X []float32, M int, qs []*QWeight) {
	if usePanels && M >= panelMinM {
		// Many activation rows: the panel path (qgemm_vnni_amd64.go).
		qgemmPanelRun(Ys, X, M, qs)
		return
	}
	q0 := qs[0]
	K, G := q0.K, q0.GroupSize
	ng := K / G
	sc := getActScratch(M)
	defer actPool.Put(sc)
	acts := sc.acts
	prepActs(acts, X, K, q0.Bits, G)
	idx := &sc.idx
	*idx = [32]int32{}
	for l := 0; l < 16; l++ {
		if q0.Bits == 4 {
			idx[l] = int32(8 * l / G)
		} else {
			idx[l] = int32(4 * l / G)
			idx[16+l] = int32((64 + 4*l) / G)
		}
	}
	// The same lane indexes in words, for the bf16 VPERMW widening: the
	// high word of lane l is scale idx[l], the low word is zeroed.
	widx := &sc.widx
	*widx = [64]uint16{}
	for l := 0; l < 32; l++ {
		widx[2*l+1] = uint16(idx[l])
	}
	// Whole tiles of tileRows activation rows go through the multi-row
	// kernel (unless tiled is off); the rows left over, one at a time.
	nt := 0
	if useTiles && M >= tileMinM {
		nt = M / tileRows
	}
	var tl tiledActs
	if nt > 0 {
		tl = sc.tile(acts[:nt*tileRows], K, q0.Bits, ng)
	}
	var plans [4]vnniPlan
	ps := plans[:0]
	total := 0
	for _, q := range qs {
		ps = append(ps, newVNNIPlan(q))
		total += q.N
	}
	run := func(p *vnniPlan, Y []float32, lo, hi int) {
		q, N := p.q, p.q.N
		var yt []float32
		if nt > 0 {
			yt = make([]float32, min(p.rowsPerBlock, hi-lo)*tileRows)
		}
		for n0 := lo; n0 < hi; n0 += p.rowsPerBlock {
			rows := min(p.rowsPerBlock, hi-n0)
			for t := 0; t < nt; t++ {
				qgemmTile4VNNI(q.Bits, rows, unsafe.Add(p.wp, n0*p.wstride), p.wstride,
					unsafe.Add(p.sp, n0*p.sbstride), unsafe.Add(p.bp, n0*p.sbstride), p.sbstride, p.kind,
					unsafe.Pointer(&tl.xq[t*tl.xqStride]), unsafe.Pointer(&tl.dxl[t*tl.dxlStride]), unsafe.Pointer(&tl.sumx[t*tl.sumStride]),
					K/128, ng, unsafe.Pointer(&idx[0]), p.smask, p.sstep, p.bmask, &yt[0],
					p.tail, p.wm1, p.wm2, p.tsmask, unsafe.Pointer(&widx[0]))
				for r := 0; r < tileRows; r++ {
					y := Y[(t*tileRows+r)*N+n0 : (t*tileRows+r)*N+n0+rows]
					for i := range y {
						y[i] = yt[i*tileRows+r]
					}
				}
			}
			for m := nt * tileRows; m < M; m++ {
				a := &acts[m]
				qgemvVNNI(q.Bits, rows, unsafe.Add(p.wp, n0*p.wstride), p.wstride,
					unsafe.Add(p.sp, n0*p.sbstride), unsafe.Add(p.bp, n0*p.sbstride), p.sbstride, p.kind,
					unsafe.Pointer(&a.xq[0]), unsafe.Pointer(&a.dxl[0]), unsafe.Pointer(&a.sumx[0]),
					K/128, ng, unsafe.Pointer(&idx[0]), p.smask, p.sstep, p.bmask, &Y[m*N+n0],
					p.tail, p.wm1, p.wm2, p.tsmask, unsafe.Pointer(&widx[0]))
			}
		}
	}
	Parallel(total, 32, func(lo, hi int) {
		off := 0
		for i := range ps {
			n := ps[i].q.N
			if a, b := max(lo, off), min(hi, off+n); a < b {
				run(&ps[i], Ys[i], a-off, b-off)
			}
			off += n
		}
	})
}

// tileRows is the number of activation rows qgemmTile4VNNI takes at once;
// tileMinM the M from which qgemvFast uses it.
const (
	tileRows = 4
	tileMinM = 4
)

// useTiles lets tests turn the multi-row kernel off to compare against the
// one-row path.
var useTiles = true

// tiledActs holds tiles of tileRows prepared activation rows interleaved
// for qgemmTile4VNNI: per 128-chunk the rows' int8s (128 each) and lane
// multipliers (16 or 32 each), per 16 weight groups the rows' Σx (16 each,
// zero past the last group). Tile t starts at t·xqStride, t·dxlStride and
// t·sumStride.
type tiledActs struct {
	xq                             []int8
	dxl, sumx                      []float32
	xqStride, dxlStride, sumStride int
}

// tile interleaves acts (a multiple of tileRows rows, prepared by prepAct
// for K, bits and ng groups) into the scratch's tile buffers.
func (sc *actScratch) tile(acts []qact, K, bits, ng int) tiledActs {
	nc := (K + 127) / 128
	lanes := 16
	if bits == 8 {
		lanes = 32
	}
	nsb := ng/16 + 1
	nt := len(acts) / tileRows
	tl := tiledActs{xqStride: nc * 128 * tileRows, dxlStride: nc * lanes * tileRows, sumStride: nsb * 16 * tileRows}
	sc.txq = grow(sc.txq, nt*tl.xqStride)
	sc.tdxl = grow(sc.tdxl, nt*tl.dxlStride)
	sc.tsum = grow(sc.tsum, nt*tl.sumStride)
	tl.xq, tl.dxl, tl.sumx = sc.txq, sc.tdxl, sc.tsum
	clear(tl.sumx)
	for m := range acts {
		t, r := m/tileRows, m%tileRows
		a := &acts[m]
		for c := 0; c < nc; c++ {
			o := t*tl.xqStride + (c*tileRows+r)*128
			copy(tl.xq[o:o+128], a.xq[c*128:c*128+128])
			o = t*tl.dxlStride + (c*tileRows+r)*lanes
			copy(tl.dxl[o:o+lanes], a.dxl[c*lanes:c*lanes+lanes])
		}
		for b := 0; b*16 < ng; b++ {
			o := t*tl.sumStride + (b*tileRows+r)*16
			copy(tl.sumx[o:o+16], a.sumx[b*16:min(ng, b*16+16)])
		}
	}
	return tl
}

// lowMask has the n low bits set (n <= 64).
func lowMask(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<uint(n) - 1
}

// qgemvAVX2Run is qgemvFast on AVX2: per block of rows it widens the scales
// and biases to f32, then runs every activation row over the block.
func qgemvAVX2Run(Y, X []float32, M int, q *QWeight) {
	K, N, G := q.K, q.N, q.GroupSize
	ng := K / G
	sc := getActScratch(M)
	defer actPool.Put(sc)
	acts := sc.acts
	prepActs(acts, X, K, q.Bits, G)
	var idx [32]int32
	for l := 0; l < 16; l++ {
		idx[l] = int32(8 * l / G) // 4-bit: lane l of the chunk
	}
	if q.Bits == 8 {
		for h := 0; h < 4; h++ {
			for l := 0; l < 8; l++ {
				idx[h*8+l] = int32(32 * h / G) // 8-bit: quarter h's group
			}
		}
	}
	wstride := K * q.Bits / 8
	wp := unsafe.Pointer(unsafe.SliceData(q.W))
	rowsPerBlock := max(8, (256<<10)/wstride)
	Parallel(N, 32, func(lo, hi int) {
		rb := min(rowsPerBlock, hi-lo)
		sf, bf := make([]float32, rb*ng+8), make([]float32, rb*ng+8)
		for n0 := lo; n0 < hi; n0 += rowsPerBlock {
			rows := min(rowsPerBlock, hi-n0)
			if q.ScalesF32 != nil {
				copy(sf, q.ScalesF32[n0*ng:(n0+rows)*ng])
				copy(bf, q.BiasesF32[n0*ng:(n0+rows)*ng])
			} else {
				halfToF32(sf, q.Scales[n0*ng:(n0+rows)*ng], q.Kind)
				halfToF32(bf, q.Biases[n0*ng:(n0+rows)*ng], q.Kind)
			}
			for m := range acts {
				a := &acts[m]
				qgemvAVX2(q.Bits, rows, unsafe.Add(wp, n0*wstride), wstride, &sf[0], &bf[0], ng,
					unsafe.Pointer(&a.xq[0]), unsafe.Pointer(&a.dxl[0]), unsafe.Pointer(&a.dx[0]), unsafe.Pointer(&a.sumx[0]),
					K/128, unsafe.Pointer(&idx[0]), 128/G*4, &Y[m*N+n0])
			}
		}
	})
}
