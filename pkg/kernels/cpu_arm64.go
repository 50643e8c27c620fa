//go:build arm64

package kernels

// CPU features on arm64. Advanced SIMD (NEON) is part of every ARMv8-A
// core, so hasNEON starts true; tests turn it off to exercise the pure-Go
// fallbacks on the same machine. The amd64 flags exist so shared code and
// tests compile; they stay false.
var (
	hasNEON   = true
	hasAVX512 = false
	hasVNNI   = false
	hasAVX2   = false
)
