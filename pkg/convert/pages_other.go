//go:build !(linux || darwin)

package convert

// dropPages is a no-op where sources are not memory-mapped.
func dropPages(b []byte) {}

// mapAnon is not available here: buffers come from the Go heap.
func mapAnon(n int) ([]byte, bool) { return nil, false }

func unmapAnon(b []byte) {}
