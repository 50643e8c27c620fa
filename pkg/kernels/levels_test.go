package kernels

import "testing"

// archGoLevel, when an architecture's test file sets it, turns that
// architecture's assembly paths off and returns the function that turns
// them back on (arm64: NEON).
var archGoLevel func() (restore func())

// forEachLevel runs fn once per instruction-set level this CPU has: as
// detected, then with AVX-512 off (AVX2 paths), then with every assembly
// path off (pure Go), so each fast path is checked against the same
// references as its fallback on one machine. On arm64 the levels are
// native (NEON) and go.
func forEachLevel(t *testing.T, fn func(t *testing.T)) {
	saved512, savedVNNI, saved2 := hasAVX512, hasVNNI, hasAVX2
	defer func() { hasAVX512, hasVNNI, hasAVX2 = saved512, savedVNNI, saved2 }()
	t.Run("native", fn)
	if saved512 && saved2 {
		hasAVX512, hasVNNI = false, false
		t.Run("avx2", fn)
	}
	if saved512 || saved2 {
		hasAVX512, hasVNNI, hasAVX2 = false, false, false
		t.Run("go", fn)
	}
	if archGoLevel != nil {
		restore := archGoLevel()
		defer restore()
		t.Run("go", fn)
	}
}
