//go:build amd64

package cpu

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasAVX512 gates the AVX-512 elementwise kernels (tests turn it off to
// check the Go fallback on the same machine).
var hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ

//go:noescape
func dotAVX512(a, b *float32, n int) float32

//go:noescape
func axpyAVX512(y *float32, a float32, x *float32, n int)

// dotFast is dotF32 with AVX-512 (a different summation order).
func dotFast(a, b []float32) (float32, bool) {
	if !hasAVX512 || len(a) == 0 {
		return 0, false
	}
	_ = b[len(a)-1]
	return dotAVX512(unsafe.SliceData(a), unsafe.SliceData(b), len(a)), true
}

// axpyFast is axpyF32 with AVX-512.
func axpyFast(y []float32, a float32, x []float32) bool {
	if !hasAVX512 || len(y) == 0 {
		return false
	}
	_ = x[len(y)-1]
	axpyAVX512(unsafe.SliceData(y), a, unsafe.SliceData(x), len(y))
	return true
}

//go:noescape
func dotRowsAVX512(q *float32, ldq, rows int, k *float32, d int, s *float32, lds int)

//go:noescape
func axpyRowsAVX512(o *float32, ldo, rows int, p *float32, ldp int, v *float32, d int)

// dotRowsFast sets s[r·lds] = q[r·ldq:][:d]·k[:d] for r < rows with
// AVX-512 when d is a multiple of 16; false otherwise.
func dotRowsFast(q []float32, ldq, rows int, k []float32, d int, s []float32, lds int) bool {
	if !hasAVX512 || d <= 0 || d%16 != 0 || rows <= 0 {
		return false
	}
	_, _, _ = q[(rows-1)*ldq+d-1], k[d-1], s[(rows-1)*lds]
	dotRowsAVX512(unsafe.SliceData(q), ldq, rows, unsafe.SliceData(k), d, unsafe.SliceData(s), lds)
	return true
}

// axpyRowsFast does o[r·ldo:][:d] += p[r·ldp]·v[:d] for r < rows with
// AVX-512 when d is a multiple of 16; false otherwise.
func axpyRowsFast(o []float32, ldo, rows int, p []float32, ldp int, v []float32, d int) bool {
	if !hasAVX512 || d <= 0 || d%16 != 0 || rows <= 0 {
		return false
	}
	_, _, _ = o[(rows-1)*ldo+d-1], p[(rows-1)*ldp], v[d-1]
	axpyRowsAVX512(unsafe.SliceData(o), ldo, rows, unsafe.SliceData(p), ldp, unsafe.SliceData(v), d)
	return true
}

//go:noescape
func sumSqF64AVX512(x *float32, n int) float64

//go:noescape
func scaleF64AVX512(x *float32, n int, r float64)

//go:noescape
func mulF32AVX512(x, w *float32, n int)

// sumSqF64 is Σ x², squares and sums in float64 (AVX-512 when present; the
// summation order differs from a sequential loop only below float64's
// precision).
func sumSqF64(x []float32) float64 {
	if hasAVX512 && len(x) > 0 {
		return sumSqF64AVX512(unsafe.SliceData(x), len(x))
	}
	return sumSqF64Go(x)
}

// scaleF64 sets x[i] = float32(float64(x[i])·r).
func scaleF64(x []float32, r float64) {
	if hasAVX512 && len(x) > 0 {
		scaleF64AVX512(unsafe.SliceData(x), len(x), r)
		return
	}
	scaleF64Go(x, r)
}

// mulF32 sets x[i] *= w[i] (len(w) >= len(x)).
func mulF32(x, w []float32) {
	if hasAVX512 && len(x) > 0 {
		_ = w[len(x)-1]
		mulF32AVX512(unsafe.SliceData(x), unsafe.SliceData(w), len(x))
		return
	}
	mulF32Go(x, w)
}

//go:noescape
func binF32AVX512(x, y *float32, n, op int)

// binFast sets x[i] = x[i] op y[i] (op: 0 add, 1 sub, 2 mul, 3 div) with
// AVX-512; false when unavailable.
func binFast(x, y []float32, op int) bool {
	if !hasAVX512 || len(x) == 0 {
		return false
	}
	_ = y[len(x)-1]
	binF32AVX512(unsafe.SliceData(x), unsafe.SliceData(y), len(x), op)
	return true
}
