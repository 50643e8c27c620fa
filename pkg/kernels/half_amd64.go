//go:build amd64

package kernels

import "unsafe"

//go:noescape
func hgemvAVX512(rows int, w unsafe.Pointer, K, kind int, x, y *float32)

//go:noescape
func halfToF32AVX512(dst *float32, src *uint16, n, kind int)

//go:noescape
func f32ToHalfAVX512(dst *uint16, src *float32, n, kind int)

//go:noescape
func hgemvAVX2(rows int, w unsafe.Pointer, K, kind int, x, y *float32)

//go:noescape
func halfToF32AVX2(dst *float32, src *uint16, n, kind int)

//go:noescape
func f32ToHalfAVX2(dst *uint16, src *float32, n, kind int)

// hgemvRows sets y[r] = W[r]·x for the rows of W [rows, K] (halves of kind).
func hgemvRows(y []float32, W []uint16, x []float32, rows, K int, kind HalfKind) {
	if hasAVX512 && rows > 0 && K > 0 {
		hgemvAVX512(rows, unsafe.Pointer(&W[0]), K, int(kind), &x[0], &y[0])
		return
	}
	if hasAVX2 && rows > 0 && K >= 8 {
		_, _, _ = W[rows*K-1], x[K-1], y[rows-1]
		hgemvAVX2(rows, unsafe.Pointer(&W[0]), K, int(kind), &x[0], &y[0])
		k8 := K &^ 7
		if k8 < K {
			var tail [8]float32
			for r := 0; r < rows; r++ {
				halfToF32Go(tail[:K-k8], W[r*K+k8:(r+1)*K], kind)
				y[r] += dot4(tail[:K-k8], x[k8:K])
			}
		}
		return
	}
	hgemvRowsGo(y, W, x, rows, K, kind)
}

// halfToF32 widens src into dst[:len(src)].
func halfToF32(dst []float32, src []uint16, kind HalfKind) {
	if hasAVX512 && len(src) > 0 {
		_ = dst[len(src)-1]
		halfToF32AVX512(&dst[0], &src[0], len(src), int(kind))
		return
	}
	if n8 := len(src) &^ 7; hasAVX2 && n8 > 0 {
		_ = dst[len(src)-1]
		halfToF32AVX2(&dst[0], &src[0], n8, int(kind))
		halfToF32Go(dst[n8:], src[n8:], kind)
		return
	}
	halfToF32Go(dst, src, kind)
}

// f32ToHalf narrows src into dst[:len(src)].
func f32ToHalf(dst []uint16, src []float32, kind HalfKind) {
	if hasAVX512 && len(src) > 0 {
		_ = dst[len(src)-1]
		f32ToHalfAVX512(&dst[0], &src[0], len(src), int(kind))
		return
	}
	if n8 := len(src) &^ 7; hasAVX2 && n8 > 0 {
		_ = dst[len(src)-1]
		f32ToHalfAVX2(&dst[0], &src[0], n8, int(kind))
		f32ToHalfGo(dst[n8:], src[n8:], kind)
		return
	}
	f32ToHalfGo(dst, src, kind)
}
