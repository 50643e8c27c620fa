//go:build !amd64

package cpu

// hasAVX512 is false off amd64 (there is no assembly).
var hasAVX512 = false

func sigmoidFast(dst, src []float32) bool { return false }
