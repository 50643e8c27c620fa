//go:build !amd64 && !arm64

package kernels

// No assembly paths outside amd64 yet: every kernel runs its pure-Go path.
var (
	hasAVX512 = false
	hasVNNI   = false
	hasAVX2   = false
)
