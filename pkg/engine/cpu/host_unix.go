//go:build unix && !linux

package cpu

import "syscall"

// hostAlloc maps size zeroed bytes outside the Go heap.
func hostAlloc(size int) ([]byte, bool) {
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, false
	}
	return b, true
}

// hostFree unmaps a hostAlloc buffer.
func hostFree(b []byte) { _ = syscall.Munmap(b) }
