//go:build amd64

package cpu

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func qkBlocksAVX512(q *float32, qnext, rows int, k *float32, ldk, nv, n int, s *float32, lds int)

//go:noescape
func pvAVX512(o *float32, ldo, rows int, p *float32, ldp int, v unsafe.Pointer, ldv, n int, m uint64, kind int)

// qkBlocksFast sets s[r·lds+j] = q[r·ldq:][:d]·k[j·ldk:][:d] for
// r < rows, j < n with AVX-512, 16 keys at a time. With tmp nil, k must
// hold ⌈n/16⌉·16 rows (the rows past n are read, never stored); else the
// last n mod 16 keys go through tmp (16·d). False (nothing done) without
// AVX-512 or when d is not a positive multiple of 16.
func qkBlocksFast(q []float32, ldq, rows int, k []float32, ldk, d, n int, s []float32, lds int, tmp []float32) bool {
	if !hasAVX512 || d <= 0 || d%16 != 0 || rows <= 0 || n <= 0 {
		return false
	}
	_, _ = q[(rows-1)*ldq+d-1], s[(rows-1)*lds+n-1]
	if tmp == nil {
		_ = k[((n+15)/16*16-1)*ldk+d-1]
		qkBlocksAVX512(unsafe.SliceData(q), 4*(ldq-d), rows, unsafe.SliceData(k), ldk, d/16, n, unsafe.SliceData(s), lds)
		return true
	}
	_ = k[(n-1)*ldk+d-1]
	n16 := n &^ 15
	if n16 > 0 {
		qkBlocksAVX512(unsafe.SliceData(q), 4*(ldq-d), rows, unsafe.SliceData(k), ldk, d/16, n16, unsafe.SliceData(s), lds)
	}
	if n16 < n {
		tmp = tmp[:16*d]
		for j := n16; j < n; j++ {
			copy(tmp[(j-n16)*d:(j-n16+1)*d], k[j*ldk:j*ldk+d])
		}
		qkBlocksAVX512(unsafe.SliceData(q), 4*(ldq-d), rows, unsafe.SliceData(tmp), d, d/16, n-n16, &s[n16], lds)
	}
	return true
}

// pvFast adds Σ_{j<n} p[r·ldp+j]·v[j·ldv:][:d] to o[r·ldo:][:d] for
// r < rows with AVX-512, keeping the output rows in registers across the
// keys (seven rows and 64 columns per pass). False (nothing done) without
// AVX-512.
func pvFast(o []float32, ldo, rows int, p []float32, ldp int, v []float32, ldv, n, d int) bool {
	if !hasAVX512 || d <= 0 || rows <= 0 {
		return false
	}
	if n > 0 {
		_ = v[(n-1)*ldv+d-1]
		pvRuns(o, ldo, rows, p, ldp, unsafe.Pointer(unsafe.SliceData(v)), 4, ldv, n, d, 0)
	}
	return true
}

// pvFastHalf is pvFast with v in bfloat16 (kind 1) or float16 (kind 2),
// widened as it is read.
func pvFastHalf(o []float32, ldo, rows int, p []float32, ldp int, v []uint16, ldv, n, d, kind int) bool {
	if !hasAVX512 || d <= 0 || rows <= 0 || kind < 1 || kind > 2 {
		return false
	}
	if n > 0 {
		_ = v[(n-1)*ldv+d-1]
		pvRuns(o, ldo, rows, p, ldp, unsafe.Pointer(unsafe.SliceData(v)), 2, ldv, n, d, kind)
	}
	return true
}

// pvRuns calls pvAVX512 on groups of at most seven rows and 64 columns
// (v: the first of n rows of d elements of size es, ldv elements apart).
func pvRuns(o []float32, ldo, rows int, p []float32, ldp int, v unsafe.Pointer, es, ldv, n, d, kind int) {
	_, _ = o[(rows-1)*ldo+d-1], p[(rows-1)*ldp+n-1]
	for r0 := 0; r0 < rows; r0 += 7 {
		nr := min(7, rows-r0)
		for c0 := 0; c0 < d; c0 += 64 {
			var m uint64
			for q := 0; q < 4; q++ {
				if w := min(16, d-c0-16*q); w > 0 {
					m |= (1<<w - 1) << (16 * q)
				}
			}
			pvAVX512(&o[r0*ldo+c0], ldo, nr, &p[r0*ldp], ldp, unsafe.Add(v, c0*es), ldv*es, n, m, kind)
		}
	}
}

//go:noescape
func scaleMaxAVX512(s *float32, n int, sc float32) float32

//go:noescape
func scaleAVX512(s *float32, n int, a float32)

// scaleMaxFast sets s[i] *= sc and returns the largest result (NaNs
// skipped) with AVX-512; false when unavailable.
func scaleMaxFast(s []float32, sc float32) (float32, bool) {
	if !hasAVX512 || len(s) == 0 {
		return 0, false
	}
	return scaleMaxAVX512(unsafe.SliceData(s), len(s), sc), true
}

// scaleFast sets s[i] *= a with AVX-512; false when unavailable.
func scaleFast(s []float32, a float32) bool {
	if !hasAVX512 || len(s) == 0 {
		return false
	}
	scaleAVX512(unsafe.SliceData(s), len(s), a)
	return true
}

//go:noescape
func qkBF16AVX512(q *uint16, qnext, rows int, k *uint16, ldk, nv, n int, s *float32, lds int)

// hasBF16Dot gates qkBlocksBF16 (VDPBF16PS).
var hasBF16Dot = cpu.X86.HasAVX512BF16

// qkBlocksBF16 is qkBlocksFast for bfloat16 queries and keys: s[r·lds+j]
// = q[r·ldq:][:d]·k[j·ldk:][:d] for r < rows, j < n, the keys read in
// place (ldk apart) and multiplied in pairs by VDPBF16PS (exact products,
// float32 sums; subnormal inputs count as 0). The last n mod 16 keys go
// through tmp (16·d). False (nothing done) without AVX-512 BF16 or when d
// is not a positive multiple of 32.
func qkBlocksBF16(q []uint16, ldq, rows int, k []uint16, ldk, d, n int, s []float32, lds int, tmp []uint16) bool {
	if !hasAVX512 || !hasBF16Dot || d <= 0 || d%32 != 0 || rows <= 0 || n <= 0 {
		return false
	}
	_, _, _ = q[(rows-1)*ldq+d-1], k[(n-1)*ldk+d-1], s[(rows-1)*lds+n-1]
	n16 := n &^ 15
	if n16 > 0 {
		qkBF16AVX512(unsafe.SliceData(q), 2*(ldq-d), rows, unsafe.SliceData(k), ldk, d/32, n16, unsafe.SliceData(s), lds)
	}
	if n16 < n {
		tmp = tmp[:16*d]
		for j := n16; j < n; j++ {
			copy(tmp[(j-n16)*d:(j-n16+1)*d], k[j*ldk:j*ldk+d])
		}
		qkBF16AVX512(unsafe.SliceData(q), 2*(ldq-d), rows, unsafe.SliceData(tmp), d, d/32, n-n16, &s[n16], lds)
	}
	return true
}
