//go:build !amd64 && !arm64

package kernels

// hgemvRows sets y[r] = W[r]·x for the rows of W [rows, K] (halves of kind).
func hgemvRows(y []float32, W []uint16, x []float32, rows, K int, kind HalfKind) {
	hgemvRowsGo(y, W, x, rows, K, kind)
}

// halfToF32 widens src into dst[:len(src)].
func halfToF32(dst []float32, src []uint16, kind HalfKind) { halfToF32Go(dst, src, kind) }

// f32ToHalf narrows src into dst[:len(src)].
func f32ToHalf(dst []uint16, src []float32, kind HalfKind) { f32ToHalfGo(dst, src, kind) }
