//go:build !unix

package cpu

// hostAlloc has no anonymous mappings here: pool buffers stay on the Go heap.
func hostAlloc(size int) ([]byte, bool) { return nil, false }

func hostFree(b []byte) {}
