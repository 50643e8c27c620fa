//go:build !(linux || darwin)

package convert

// dropPages is a no-op where sources are not memory-mapped.
func dropPages(b []byte) {}
