//go:build arm64

package kernels

func init() {
	// forEachLevel's extra level on arm64: NEON off, the pure-Go paths.
	archGoLevel = func() (restore func()) {
		saved := hasNEON
		hasNEON = false
		return func() { hasNEON = saved }
	}
}
