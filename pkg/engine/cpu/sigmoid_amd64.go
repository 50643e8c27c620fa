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
func sigmoidAVX512(dst, src *float32, n int)

// sigmoidFast computes sigmoid32 with AVX-512; false when unavailable.
func sigmoidFast(dst, src []float32) bool {
	if !hasAVX512 || len(src) == 0 {
		return false
	}
	_ = dst[len(src)-1]
	sigmoidAVX512(unsafe.SliceData(dst), unsafe.SliceData(src), len(src))
	return true
}
