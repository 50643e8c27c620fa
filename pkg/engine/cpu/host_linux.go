//go:build linux

package cpu

import (
	"os"

	"golang.org/x/sys/unix"
)

// hugePages asks for transparent huge pages on pool mappings (fewer TLB
// misses when a weight matrix is streamed); MLXGO_NO_HUGEPAGES=1 turns it off.
var hugePages = os.Getenv("MLXGO_NO_HUGEPAGES") == ""

// hostAlloc maps size zeroed bytes outside the Go heap.
func hostAlloc(size int) ([]byte, bool) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, false
	}
	if hugePages {
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	}
	return b, true
}

// hostFree unmaps a hostAlloc buffer.
func hostFree(b []byte) { _ = unix.Munmap(b) }
