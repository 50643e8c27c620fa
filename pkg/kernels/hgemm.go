package kernels

// hgemmRef is the reference: widen a row, f32 dot products.
func hgemmRef(Y, X []float32, M, N, K int, W []uint16, kind HalfKind) {
	Parallel(N, 16, func(lo, hi int) {
		row := make([]float32, K)
		for n := lo; n < hi; n++ {
			halfToF32Go(row, W[n*K:(n+1)*K], kind)
			for m := 0; m < M; m++ {
				x := X[m*K : (m+1)*K]
				var s float32
				for k, w := range row {
					s += w * x[k]
				}
				Y[m*N+n] = s
			}
		}
	})
}

// hgemvRowsGo is the portable GEMV over rows of halves.
func hgemvRowsGo(y []float32, W []uint16, x []float32, rows, K int, kind HalfKind) {
	row := make([]float32, K)
	for r := 0; r < rows; r++ {
		halfToF32Go(row, W[r*K:(r+1)*K], kind)
		y[r] = dot4(row, x)
	}
}

// hgemmGemmMinM is the number of activation rows from which HGemm widens
// blocks of W to f32 and runs Sgemm rather than GEMVs.
const hgemmGemmMinM = 16

// HGemm computes Y [M, N] = X [M, K] · Wᵀ for a half-precision W [N, K].
// For few rows it streams W once per block of rows (AVX-512 widening dot
// products where the CPU has them); for many it widens blocks of W to f32
// and calls Sgemm.
func HGemm(Y, X []float32, M, N, K int, W []uint16, kind HalfKind) {
	if M <= 0 || N <= 0 {
		return
	}
	if K <= 0 {
		clear(Y[:M*N])
		return
	}
	// The assembly reads and writes through pointers: check the extents.
	_, _, _ = Y[M*N-1], X[M*K-1], W[N*K-1]
	if M >= hgemmGemmMinM {
		nb := max(64, min(N, (1<<20)/K))
		buf := make([]float32, nb*K)
		for n0 := 0; n0 < N; n0 += nb {
			rows := min(nb, N-n0)
			HalfToF32Slice(buf[:rows*K], W[n0*K:(n0+rows)*K], kind)
			Sgemm(false, true, M, rows, K, X, K, buf, K, Y[n0:], N, false)
		}
		return
	}
	// Blocks of rows that stay in L2 while every activation row passes.
	rowsPerBlock := max(8, (256<<10)/(2*K))
	Parallel(N, 32, func(lo, hi int) {
		for n0 := lo; n0 < hi; n0 += rowsPerBlock {
			rows := min(rowsPerBlock, hi-n0)
			w := W[n0*K : (n0+rows)*K]
			for m := 0; m < M; m++ {
				hgemvRows(Y[m*N+n0:m*N+n0+rows], w, X[m*K:(m+1)*K], rows, K, kind)
			}
		}
	})
}
