package kernels

import (
	"runtime"
	"sync"
	"unsafe"
)

// gemmKernel is a register-blocked micro-kernel: it computes an mr×nr block
// of C from a packed A panel [kc][mr] and a packed B panel [kc][nr], storing
// (add=false) or adding (add=true) into c with row stride ldc.
type gemmKernel struct {
	name   string
	mr, nr int
	fn     func(kc int, a, b, c *float32, ldc int, add bool)
}

// Cache blocking: a packed B block [kcBlock][ncBlock] is shared by all
// workers (it sits in L2/L3), each worker packs its own A block
// [mcBlock][kcBlock] and streams B panels past an L1-resident A panel.
const (
	kcBlock = 256
	mcBlock = 96
	ncBlock = 768
)

// sgemmSmall is the flop count (M·N·K) below which the plain loops win over
// packing.
const sgemmSmall = 24 * 24 * 24

// goKernel is the portable micro-kernel: 4×4, sixteen scalar accumulators.
var goKernel = gemmKernel{name: "go4x4", mr: 4, nr: 4, fn: sgemmKernelGo4x4}

func sgemmKernelGo4x4(kc int, a, b, c *float32, ldc int, add bool) {
	A := unsafe.Slice(a, kc*4)
	B := unsafe.Slice(b, kc*4)
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < kc; p++ {
		ap := A[p*4 : p*4+4 : p*4+4]
		bp := B[p*4 : p*4+4 : p*4+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		a0 := ap[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := ap[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := ap[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := ap[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	C := unsafe.Slice(c, 3*ldc+4)
	rows := [4][4]float32{{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}}
	for i := range rows {
		r := C[i*ldc : i*ldc+4 : i*ldc+4]
		if add {
			r[0] += rows[i][0]
			r[1] += rows[i][1]
			r[2] += rows[i][2]
			r[3] += rows[i][3]
		} else {
			copy(r, rows[i][:])
		}
	}
}

// sgemmRef is the reference: plain loops, row-parallel.
func sgemmRef(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, accumulate bool) {
	Parallel(M, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := C[i*ldc : i*ldc+N]
			if !accumulate {
				clear(row)
			}
			for p := 0; p < K; p++ {
				var a float32
				if transA {
					a = A[p*lda+i]
				} else {
					a = A[i*lda+p]
				}
				if a == 0 {
					continue
				}
				if transB {
					for j := range row {
						row[j] += a * B[j*ldb+p]
					}
				} else {
					b := B[p*ldb : p*ldb+N]
					for j := range row {
						row[j] += a * b[j]
					}
				}
			}
		}
	})
}

// packB packs op(B)[p0:p0+kc, j0:j0+nc] into panels of nr columns,
// [nc/nr][kc][nr], zero-padding the last panel.
func packB(dst []float32, transB bool, B []float32, ldb, p0, kc, j0, nc, nr int) {
	for jp := 0; jp < nc; jp += nr {
		w := min(nr, nc-jp)
		pan := dst[jp*kc : jp*kc+kc*nr]
		if !transB {
			for p := 0; p < kc; p++ {
				src := B[(p0+p)*ldb+j0+jp : (p0+p)*ldb+j0+jp+w]
				d := pan[p*nr : p*nr+nr]
				copy(d, src)
				clear(d[w:])
			}
			continue
		}
		j := 0
		for ; j+8 <= w; j += 8 {
			pack8(pan[j:], nr, B, (j0+jp+j)*ldb+p0, ldb, kc)
		}
		for ; j < w; j++ {
			src := B[(j0+jp+j)*ldb+p0 : (j0+jp+j)*ldb+p0+kc]
			for p, v := range src {
				pan[p*nr+j] = v
			}
		}
		if w < nr {
			for p := 0; p < kc; p++ {
				clear(pan[p*nr+w : p*nr+nr])
			}
		}
	}
}

// packA packs op(A)[i0:i0+mc, p0:p0+kc] into panels of mr rows,
// [mc/mr][kc][mr], zero-padding the last panel.
func packA(dst []float32, transA bool, A []float32, lda, i0, mc, p0, kc, mr int) {
	for ip := 0; ip < mc; ip += mr {
		h := min(mr, mc-ip)
		pan := dst[ip*kc : ip*kc+kc*mr]
		if transA {
			for p := 0; p < kc; p++ {
				src := A[(p0+p)*lda+i0+ip : (p0+p)*lda+i0+ip+h]
				d := pan[p*mr : p*mr+mr]
				copy(d, src)
				clear(d[h:])
			}
			continue
		}
		if h == 6 && mr == 6 {
			packA6(pan, A, (i0+ip)*lda+p0, lda, kc)
			continue
		}
		for i := 0; i < h; i++ {
			src := A[(i0+ip+i)*lda+p0 : (i0+ip+i)*lda+p0+kc]
			for p, v := range src {
				pan[p*mr+i] = v
			}
		}
		if h < mr {
			for p := 0; p < kc; p++ {
				clear(pan[p*mr+h : p*mr+mr])
			}
		}
	}
}

// sgemmBlocked is the packed, cache-blocked GEMM around micro-kernel k.
func sgemmBlocked(k *gemmKernel, transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, accumulate bool) {
	mr, nr := k.mr, k.nr
	nc := min(ncBlock, (N+nr-1)/nr*nr)
	kcMax := min(kcBlock, K)
	pb := getScratch(kcMax * nc)
	defer putScratch(pb)
	bufB := *pb
	panels := (M + mr - 1) / mr
	for j0 := 0; j0 < N; j0 += nc {
		ncur := min(nc, N-j0)
		for p0 := 0; p0 < K; p0 += kcBlock {
			kc := min(kcBlock, K-p0)
			add := accumulate || p0 > 0
			// Pack B in parallel, over panels of nr columns.
			nPan := (ncur + nr - 1) / nr
			Parallel(nPan, 4, func(lo, hi int) {
				packB(bufB[lo*nr*kc:], transB, B, ldb, p0, kc, j0+lo*nr, min(hi*nr, ncur)-lo*nr, nr)
			})
			// Each worker takes a contiguous range of A panels.
			Parallel(panels, 1, func(lo, hi int) {
				pa := getScratch(mcBlock/mr*mr*kc + mr*kc)
				defer putScratch(pa)
				bufA := *pa
				var tmp [16 * 64]float32
				mcp := max(1, mcBlock/mr) // panels per A block
				for b0 := lo; b0 < hi; b0 += mcp {
					b1 := min(hi, b0+mcp)
					i0 := b0 * mr
					mc := min(b1*mr, M) - i0
					packA(bufA, transA, A, lda, i0, mc, p0, kc, mr)
					for ip := 0; ip < mc; ip += mr {
						h := min(mr, mc-ip)
						ap := &bufA[ip*kc]
						for jp := 0; jp < ncur; jp += nr {
							w := min(nr, ncur-jp)
							bp := &bufB[jp*kc]
							ci := (i0+ip)*ldc + j0 + jp
							if h == mr && w == nr {
								k.fn(kc, ap, bp, &C[ci], ldc, add)
								continue
							}
							k.fn(kc, ap, bp, &tmp[0], nr, false)
							for i := 0; i < h; i++ {
								row := C[ci+i*ldc : ci+i*ldc+w]
								t := tmp[i*nr : i*nr+w]
								if add {
									for j := range row {
										row[j] += t[j]
									}
								} else {
									copy(row, t)
								}
							}
						}
					}
				}
			})
		}
	}
}

// Sgemm computes C = op(A)·op(B) (+ C when accumulate), with op(A) [M, K],
// op(B) [K, N] and C [M, N]. A is stored [M, K] with row stride lda, or
// [K, M] when transA; B is stored [K, N] with row stride ldb, or [N, K] when
// transB; C has row stride ldc. It uses the widest micro-kernel the CPU
// has (AVX-512, AVX2+FMA, else portable Go), parallel over GOMAXPROCS.
func Sgemm(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, accumulate bool) {
	if M <= 0 || N <= 0 {
		return
	}
	if K <= 0 {
		if !accumulate {
			for i := 0; i < M; i++ {
				clear(C[i*ldc : i*ldc+N])
			}
		}
		return
	}
	if M <= sgemvMaxM {
		_ = C[(M-1)*ldc+N-1]
		sgemmFewRows(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate)
		return
	}
	// The assembly writes through pointers: check the extents up front.
	_ = C[(M-1)*ldc+N-1]
	if transA {
		_ = A[(K-1)*lda+M-1]
	} else {
		_ = A[(M-1)*lda+K-1]
	}
	if transB {
		_ = B[(N-1)*ldb+K-1]
	} else {
		_ = B[(K-1)*ldb+N-1]
	}
	if M*N*K < sgemmSmall {
		sgemmRef(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate)
		return
	}
	sgemmBlocked(bestGemmKernel(), transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate)
}

// packA6 interleaves six rows of A (starting at off, stride lda) into
// pan [kc][6].
func packA6(pan, A []float32, off, lda, kc int) {
	r0 := A[off : off+kc]
	r1 := A[off+lda : off+lda+kc]
	r2 := A[off+2*lda : off+2*lda+kc]
	r3 := A[off+3*lda : off+3*lda+kc]
	r4 := A[off+4*lda : off+4*lda+kc]
	r5 := A[off+5*lda : off+5*lda+kc]
	pan = pan[:6*kc]
	for p := range r0 {
		d := pan[p*6 : p*6+6 : p*6+6]
		d[0], d[1], d[2] = r0[p], r1[p], r2[p]
		d[3], d[4], d[5] = r3[p], r4[p], r5[p]
	}
}

// readSumGo sums x with eight partial sums.
func readSumGo(x []float32) float32 {
	var s [8]float32
	for i := 0; i+8 <= len(x); i += 8 {
		v := x[i : i+8 : i+8]
		s[0] += v[0]
		s[1] += v[1]
		s[2] += v[2]
		s[3] += v[3]
		s[4] += v[4]
		s[5] += v[5]
		s[6] += v[6]
		s[7] += v[7]
	}
	return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7]
}

// sgemvMaxM is the number of rows of op(A) up to which Sgemm runs GEMVs
// (decoding) instead of packing B.
const sgemvMaxM = 4

// sgemvTGo is the portable transposed GEMV.
func sgemvTGo(y, w []float32, ldw, K int, x []float32) {
	for r := range y {
		y[r] = dot4(w[r*ldw:r*ldw+K], x[:K])
	}
}

// sgemvNGo is the portable row-combination GEMV.
func sgemvNGo(y, a, b []float32, ldb int) {
	for p, ap := range a {
		row := b[p*ldb : p*ldb+len(y)]
		for j, v := range row {
			y[j] += ap * v
		}
	}
}

// sgemmFewRows computes Sgemm for M <= sgemvMaxM as GEMVs over B, split
// over cores by output columns.
func sgemmFewRows(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, accumulate bool) {
	// Contiguous copies of the rows of op(A).
	xs := make([]float32, M*K)
	for m := 0; m < M; m++ {
		for p := 0; p < K; p++ {
			if transA {
				xs[m*K+p] = A[p*lda+m]
			} else {
				xs[m*K+p] = A[m*lda+p]
			}
		}
	}
	if transB {
		// Blocks of B rows that stay in L2 while every row of A passes.
		rowsPerBlock := max(8, (256<<10)/(4*K))
		Parallel(N, 32, func(lo, hi int) {
			var tmp []float32
			if accumulate {
				tmp = make([]float32, min(rowsPerBlock, hi-lo))
			}
			for n0 := lo; n0 < hi; n0 += rowsPerBlock {
				rows := min(rowsPerBlock, hi-n0)
				for m := 0; m < M; m++ {
					y := C[m*ldc+n0 : m*ldc+n0+rows]
					if !accumulate {
						sgemvT(y, B[n0*ldb:], ldb, K, xs[m*K:(m+1)*K])
						continue
					}
					sgemvT(tmp[:rows], B[n0*ldb:], ldb, K, xs[m*K:(m+1)*K])
					for j, v := range tmp[:rows] {
						y[j] += v
					}
				}
			}
		})
		return
	}
	// B [K, N] is read row by row: split the K rows over the cores so each
	// streams one contiguous range, with its own partial sums of the M
	// output rows, added together at the end.
	workers := min(runtime.GOMAXPROCS(0), max(1, K/64))
	part := make([][]float32, workers)
	per := (K + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range part {
		p0, p1 := w*per, min(K, (w+1)*per)
		part[w] = make([]float32, M*N)
		if p0 >= p1 {
			continue
		}
		wg.Add(1)
		go func(y []float32, p0, p1 int) {
			defer wg.Done()
			for m := 0; m < M; m++ {
				sgemvN(y[m*N:(m+1)*N], xs[m*K+p0:m*K+p1], B[p0*ldb:], ldb)
			}
		}(part[w], p0, p1)
	}
	wg.Wait()
	for m := 0; m < M; m++ {
		y := C[m*ldc : m*ldc+N]
		if !accumulate {
			clear(y)
		}
		for _, p := range part {
			for j, v := range p[m*N : (m+1)*N] {
				y[j] += v
			}
		}
	}
}

// pack8 interleaves eight rows of src (from off, stride ld, kc long) into
// dst[p·stride : p·stride+8] for p < kc.
func pack8(dst []float32, stride int, src []float32, off, ld, kc int) {
	r0 := src[off : off+kc]
	r1 := src[off+ld : off+ld+kc]
	r2 := src[off+2*ld : off+2*ld+kc]
	r3 := src[off+3*ld : off+3*ld+kc]
	r4 := src[off+4*ld : off+4*ld+kc]
	r5 := src[off+5*ld : off+5*ld+kc]
	r6 := src[off+6*ld : off+6*ld+kc]
	r7 := src[off+7*ld : off+7*ld+kc]
	for p := range r0 {
		d := dst[p*stride : p*stride+8 : p*stride+8]
		d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
		d[4], d[5], d[6], d[7] = r4[p], r5[p], r6[p], r7[p]
	}
}
