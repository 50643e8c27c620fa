package cpu

import (
	"fmt"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// contig returns v itself when contiguous, else a contiguous copy (same dtype).
func contig(v backend.View) backend.View {
	if v.Contiguous() {
		return v
	}
	n := v.Size() * v.DType.Size()
	words := make([]uint64, (n+7)/8)
	buf := &Buffer{b: unsafeBytesU64(words)[:n], n: n}
	out := backend.View{Buf: buf, DType: v.DType, Shape: v.Shape, Strides: backend.RowMajor(v.Shape)}
	map1(v, out, nil)
	return out
}

// matContig returns v when each of its matrices (last two dims) is
// contiguous, whatever the batch strides (zero for broadcast); else a
// contiguous copy.
func matContig(v backend.View) backend.View {
	nd := len(v.Shape)
	if nd >= 2 && (v.Strides[nd-1] == 1 || v.Shape[nd-1] == 1) && (v.Strides[nd-2] == v.Shape[nd-1] || v.Shape[nd-2] == 1) {
		return v
	}
	return contig(v)
}

// batchOffsets returns the element offset of every matrix of v (all dims
// but the last two), in row-major batch order.
func batchOffsets(v backend.View) []int {
	nd := len(v.Shape)
	bs := v.Shape[:nd-2]
	n := backend.Prod(bs)
	offs := make([]int, n)
	idx := make([]int, len(bs))
	for i := 0; i < n; i++ {
		o := v.Offset
		for d := range bs {
			o += idx[d] * v.Strides[d]
		}
		offs[i] = o
		for d := len(bs) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < bs[d] {
				break
			}
			idx[d] = 0
		}
	}
	return offs
}

// matF32 returns an R×C float32 matrix of v at element offset off (row
// stride sr, column stride sc) in Sgemm form, copying only when needed.
func matF32(v backend.View, off, R, C, sr, sc int) (data []float32, ld int, trans bool) {
	if v.DType == backend.Float32 {
		d := f32s(bytesOf(v))
		if sc == 1 || C == 1 {
			if R == 1 {
				sr = C
			}
			return d[off:], sr, false
		}
		if sr == 1 || R == 1 {
			return d[off:], sc, true
		}
	}
	m := backend.View{Buf: v.Buf, DType: v.DType, Shape: []int{R, C}, Strides: []int{sr, sc}, Offset: off}
	return toF32(m), C, false
}

func halfKind(d backend.DType) kernels.HalfKind {
	if d == backend.Float16 {
		return kernels.F16
	}
	return kernels.BF16
}

// mm2d computes Y [M, N] (row stride N) = A·B for the matrices of a and b
// at the given offsets (strides from the views' last two dims).
func mm2d(a backend.View, aOff int, b backend.View, bOff int, M, K, N int, Y []float32) {
	nd := len(a.Shape)
	asr, asc := a.Strides[nd-2], a.Strides[nd-1]
	nb := len(b.Shape)
	bsr, bsc := b.Strides[nb-2], b.Strides[nb-1]
	// half weight stored [N, K] row-major: the Linear layout.
	if (b.DType == backend.BFloat16 || b.DType == backend.Float16) && (bsr == 1 || K == 1) && (bsc == K || N == 1) {
		A, lda, ta := matF32(a, aOff, M, K, asr, asc)
		if ta || lda != K {
			m := backend.View{Buf: a.Buf, DType: a.DType, Shape: []int{M, K}, Strides: []int{asr, asc}, Offset: aOff}
			if a.DType == backend.Float32 {
				A = make([]float32, M*K)
				tmp := backend.View{Buf: &Buffer{b: unsafeBytes(A), n: 4 * M * K}, DType: backend.Float32, Shape: []int{M, K}, Strides: []int{K, 1}}
				map1(m, tmp, nil)
			} else {
				A = toF32(m)
			}
		}
		W := u16s(bytesOf(b))[bOff : bOff+N*K]
		kernels.HGemm(Y, A[:M*K], M, N, K, W, halfKind(b.DType))
		return
	}
	A, lda, ta := matF32(a, aOff, M, K, asr, asc)
	B, ldb, tb := matF32(b, bOff, K, N, bsr, bsc)
	kernels.Sgemm(ta, tb, M, N, K, A, lda, B, ldb, Y, N, false)
}

func matmul(a, b, out backend.View) {
	nd := len(out.Shape)
	M, N := out.Shape[nd-2], out.Shape[nd-1]
	K := a.Shape[nd-1]
	ao, bo := batchOffsets(a), batchOffsets(b)
	direct := out.DType == backend.Float32 && out.Contiguous()
	var Y []float32
	if !direct {
		Y = make([]float32, M*N)
	}
	od := f32s(bytesOf(out))
	for i := range ao {
		if direct {
			Y = od[out.Offset+i*M*N : out.Offset+(i+1)*M*N]
		}
		if K == 0 {
			clear(Y)
		} else {
			mm2d(a, ao[i], b, bo[i], M, K, N, Y)
		}
		if !direct {
			ov := backend.View{Buf: out.Buf, DType: out.DType, Shape: []int{M, N}, Strides: out.Strides[nd-2:], Offset: out.Offset + i*M*N}
			fromF32(Y, ov)
		}
	}
}

// qweight builds the kernels view of one quantized matrix [rows, cols]
// (cols unpacked) at the given element offsets of contiguous w, s, b.
func qweight(q backend.Quant, w, s, b backend.View, wOff, sOff, bOff, rows, cols int) *kernels.QWeight {
	words := cols * q.Bits / 32
	groups := cols / q.GroupSize
	qw := &kernels.QWeight{N: rows, K: cols, Bits: q.Bits, GroupSize: q.GroupSize,
		W: u32s(bytesOf(w))[wOff : wOff+rows*words]}
	if s.DType == backend.Float32 {
		qw.ScalesF32 = f32s(bytesOf(s))[sOff : sOff+rows*groups]
		qw.BiasesF32 = toF32(backend.View{Buf: b.Buf, DType: b.DType, Shape: []int{rows * groups}, Strides: []int{1}, Offset: bOff})
	} else {
		qw.Kind = halfKind(s.DType)
		qw.Scales = u16s(bytesOf(s))[sOff : sOff+rows*groups]
		if b.DType == s.DType {
			qw.Biases = u16s(bytesOf(b))[bOff : bOff+rows*groups]
		} else {
			qw.ScalesF32 = toF32(backend.View{Buf: s.Buf, DType: s.DType, Shape: []int{rows * groups}, Strides: []int{1}, Offset: sOff})
			qw.BiasesF32 = toF32(backend.View{Buf: b.Buf, DType: b.DType, Shape: []int{rows * groups}, Strides: []int{1}, Offset: bOff})
		}
	}
	return qw
}

func checkQuant(q backend.Quant) error {
	if isFP(q) {
		return checkFP(q)
	}
	switch q.Bits {
	case 2, 3, 4, 5, 6, 8:
	default:
		return fmt.Errorf("cpu: quantized bits %d not in {2,3,4,5,6,8}", q.Bits)
	}
	switch q.GroupSize {
	case 32, 64, 128:
	default:
		return fmt.Errorf("cpu: quantization group size %d not in {32,64,128}", q.GroupSize)
	}
	return nil
}

// qmatrix is one quantized matrix [rows, cols] that can widen a row.
type qmatrix interface {
	dims() (rows, cols int)
	DequantizeRow(r int, dst []float32)
}

type affineMat struct{ *kernels.QWeight }

func (a affineMat) dims() (int, int) { return a.N, a.K }

// qmat returns matrix [rows, cols] of w, s, b at the given offsets.
func qmat(q backend.Quant, w, s, b backend.View, wOff, sOff, bOff, rows, cols int) qmatrix {
	if isFP(q) {
		return newFPMat(q, w, s, wOff, sOff, rows, cols)
	}
	return affineMat{qweight(q, w, s, b, wOff, sOff, bOff, rows, cols)}
}

// qmm computes Y [M, outDim] = X [M, inDim] · W(ᵀ) for one quantized matrix.
func qmm(q backend.Quant, transpose bool, m qmatrix, X []float32, M int, Y []float32) {
	rows, cols := m.dims()
	if a, ok := m.(affineMat); ok && transpose {
		kernels.QMatmul(Y, X, M, a.QWeight)
		return
	}
	if transpose && M < 16 {
		// few rows: widen one weight row at a time and dot it with X
		kernels.Parallel(rows, 16, func(lo, hi int) {
			row := getF32(cols)
			defer putF32(row)
			for r := lo; r < hi; r++ {
				m.DequantizeRow(r, row)
				for i := 0; i < M; i++ {
					Y[i*rows+r] = dotF32(row, X[i*cols:(i+1)*cols])
				}
			}
		})
		return
	}
	// widen the matrix (a temporary), then Sgemm
	Wf := getF32(rows * cols)
	defer putF32(Wf)
	kernels.Parallel(rows, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			m.DequantizeRow(r, Wf[r*cols:(r+1)*cols])
		}
	})
	if transpose {
		kernels.Sgemm(false, true, M, rows, cols, X, cols, Wf, cols, Y, rows, false)
		return
	}
	kernels.Sgemm(false, false, M, cols, rows, X, rows, Wf, cols, Y, cols, false)
}

func dotF32(a, b []float32) float32 {
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

func (c *Backend) quantizedMatmul(o backend.QuantizedMatmul, x, w, s, b, out backend.View) error {
	if err := checkQuant(o.Quant); err != nil {
		return err
	}
	w, s, b = matContig(w), matContig(s), matContig(b)
	nd := len(x.Shape)
	M, K := x.Shape[nd-2], x.Shape[nd-1]
	N := out.Shape[nd-1]
	rows, cols := N, K
	if !o.Transpose {
		rows, cols = K, N
	}
	X, doneX := c.inputF32(x)
	defer doneX()
	nbatch := backend.Prod(x.Shape[:nd-2])
	// the product goes straight into a contiguous float32 output, else
	// into pooled scratch that is rounded into out
	Yall, finish := c.outputF32(out, nbatch*M*N)
	defer finish()
	if len(w.Shape) == 2 {
		qw := qmat(o.Quant, w, s, b, w.Offset, s.Offset, b.Offset, rows, cols)
		qmm(o.Quant, o.Transpose, qw, X, nbatch*M, Yall)
	} else {
		wo, so, bo := batchOffsets(w), batchOffsets(s), batchOffsets(b)
		for i := 0; i < nbatch; i++ {
			qw := qmat(o.Quant, w, s, b, wo[i], so[i], bo[i], rows, cols)
			qmm(o.Quant, o.Transpose, qw, X[i*M*K:(i+1)*M*K], M, Yall[i*M*N:(i+1)*M*N])
		}
	}
	return nil
}

// RunQuantizedMatmuls runs transposed affine QuantizedMatmul ops that read
// the same x as one kernel call (kernels.QMatmulMulti: the activations are
// prepared once and the weights' rows split over the cores together);
// other groups run op by op.
func (c *Backend) RunQuantizedMatmuls(ops []backend.QuantizedMatmul, x backend.View, ws [][3]backend.View, outs []backend.View) error {
	grouped := len(ops) > 1
	for i, o := range ops {
		if !o.Transpose || isFP(o.Quant) || len(ws[i][0].Shape) != 2 || o.Quant != ops[0].Quant {
			grouped = false
		}
		if err := checkQuant(o.Quant); err != nil {
			return err
		}
	}
	if !grouped {
		for i, o := range ops {
			if err := c.quantizedMatmul(o, x, ws[i][0], ws[i][1], ws[i][2], outs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	nd := len(x.Shape)
	K := x.Shape[nd-1]
	M := x.Size() / max(K, 1)
	X, doneX := c.inputF32(x)
	defer doneX()
	qs := make([]*kernels.QWeight, len(ops))
	Ys := make([][]float32, len(ops))
	for i, o := range ops {
		w, s, b := matContig(ws[i][0]), matContig(ws[i][1]), matContig(ws[i][2])
		out := outs[i]
		N := out.Shape[len(out.Shape)-1]
		qs[i] = qweight(o.Quant, w, s, b, w.Offset, s.Offset, b.Offset, N, K)
		var finish func()
		Ys[i], finish = c.outputF32(out, M*N)
		defer finish()
	}
	kernels.QMatmulMulti(Ys, X, M, qs)
	return nil
}

// inputF32 returns x's elements as contiguous float32: x's own buffer
// when it is that already, else pooled scratch (done gives it back).
func (c *Backend) inputF32(x backend.View) (X []float32, done func()) {
	if x.DType == backend.Float32 && x.Contiguous() {
		return toF32(x), func() {}
	}
	X, done = c.scratchF32(x.Size())
	widenInto(X, x)
	return X, done
}

// outputF32 returns n float32s to compute out into: out's own buffer when
// it is contiguous float32, else pooled scratch that finish rounds into
// out and gives back (call finish once the values are written).
func (c *Backend) outputF32(out backend.View, n int) (Y []float32, finish func()) {
	if out.DType == backend.Float32 && out.Contiguous() {
		return f32s(bytesOf(out))[out.Offset : out.Offset+n], func() {}
	}
	Y, done := c.scratchF32(n)
	return Y, func() {
		fromF32(Y, out)
		done()
	}
}

func checkIdx(idx []int, n int, what string) error {
	for _, i := range idx {
		if i < 0 || i >= n {
			return fmt.Errorf("cpu: %s index %d out of range [0, %d)", what, i, n)
		}
	}
	return nil
}

func gatherQMM(o backend.GatherQMM, x, w, s, b, lhs, rhs, out backend.View) error {
	if err := checkQuant(o.Quant); err != nil {
		return err
	}
	w, s, b = matContig(w), matContig(s), matContig(b)
	nd := len(x.Shape)
	M, K := x.Shape[nd-2], x.Shape[nd-1]
	N := out.Shape[len(out.Shape)-1]
	rows, cols := N, K
	if !o.Transpose {
		rows, cols = K, N
	}
	X := toF32(x)
	li, ri := toIdx(lhs), toIdx(rhs)
	if err := checkIdx(li, backend.Prod(x.Shape[:nd-2]), "gather_qmm lhs"); err != nil {
		return err
	}
	if err := checkIdx(ri, w.Shape[0], "gather_qmm rhs"); err != nil {
		return err
	}
	wo, so, bo := batchOffsets(w), batchOffsets(s), batchOffsets(b)
	Y := make([]float32, len(li)*M*N)
	// one product per expert over all the rows routed to it (MLX's
	// sorted-indices path): a weight is streamed once, not once per token.
	for e, items := range groupBy(ri) {
		qw := qmat(o.Quant, w, s, b, wo[e], so[e], bo[e], rows, cols)
		Xg := getF32(len(items) * M * K)
		Yg := getF32(len(items) * M * N)
		for j, i := range items {
			copy(Xg[j*M*K:(j+1)*M*K], X[li[i]*M*K:(li[i]+1)*M*K])
		}
		qmm(o.Quant, o.Transpose, qw, Xg, len(items)*M, Yg)
		for j, i := range items {
			copy(Y[i*M*N:(i+1)*M*N], Yg[j*M*N:(j+1)*M*N])
		}
		putF32(Xg)
		putF32(Yg)
	}
	fromF32(Y, out)
	return nil
}

// groupBy maps each distinct value of idx to the positions holding it.
func groupBy(idx []int) map[int][]int {
	g := map[int][]int{}
	for i, v := range idx {
		g[v] = append(g[v], i)
	}
	return g
}

func gatherMM(a, b, lhs, rhs, out backend.View) error {
	nd := len(a.Shape)
	M, K := a.Shape[nd-2], a.Shape[nd-1]
	N := out.Shape[len(out.Shape)-1]
	li, ri := toIdx(lhs), toIdx(rhs)
	ao, bo := batchOffsets(a), batchOffsets(b)
	if err := checkIdx(li, len(ao), "gather_mm lhs"); err != nil {
		return err
	}
	if err := checkIdx(ri, len(bo), "gather_mm rhs"); err != nil {
		return err
	}
	Y := make([]float32, len(li)*M*N)
	// one product per b matrix over all rows routed to it
	for e, items := range groupBy(ri) {
		Ag := getF32(len(items) * M * K)
		for j, i := range items {
			m := backend.View{Buf: a.Buf, DType: a.DType, Shape: []int{M, K}, Strides: a.Strides[nd-2:], Offset: ao[li[i]]}
			dst := backend.View{Buf: &Buffer{b: unsafeBytes(Ag[j*M*K : (j+1)*M*K]), n: 4 * M * K}, DType: backend.Float32, Shape: []int{M, K}, Strides: []int{K, 1}}
			copyCast(m, dst)
		}
		av := backend.View{Buf: &Buffer{b: unsafeBytes(Ag), n: 4 * len(Ag)}, DType: backend.Float32, Shape: []int{len(items) * M, K}, Strides: []int{K, 1}}
		Yg := getF32(len(items) * M * N)
		mm2d(av, 0, b, bo[e], len(items)*M, K, N, Yg)
		for j, i := range items {
			copy(Y[i*M*N:(i+1)*M*N], Yg[j*M*N:(j+1)*M*N])
		}
		putF32(Ag)
		putF32(Yg)
	}
	fromF32(Y, out)
	return nil
}

func dequantize(q backend.Quant, w, s, b, out backend.View) error {
	if err := checkQuant(q); err != nil {
		return err
	}
	w, s, b = contig(w), contig(s), contig(b)
	nd := len(out.Shape)
	cols := out.Shape[nd-1]
	rows := out.Size() / max(cols, 1)
	qw := qmat(q, w, s, b, w.Offset, s.Offset, b.Offset, rows, cols)
	Y := make([]float32, rows*cols)
	kernels.Parallel(rows, 16, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			qw.DequantizeRow(r, Y[r*cols:(r+1)*cols])
		}
	})
	fromF32(Y, out)
	return nil
}
