//go:build linux || darwin

package convert

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dropPages tells the OS that the whole pages inside b, a view of a
// memory-mapped (read-only, shared) source file, are not needed any more:
// they leave the process's resident set and are read again from the page
// cache if touched. Only the pages entirely inside b are dropped, so
// neighbouring data is never affected. b must be file-backed: on anonymous
// memory MADV_DONTNEED would discard the data.
func dropPages(b []byte) {
	page := uintptr(os.Getpagesize())
	if len(b) < int(2*page) {
		return
	}
	start := uintptr(0)
	if off := addr(b) % page; off != 0 {
		start = page - off
	}
	end := (uintptr(len(b)) - start) / page * page
	if end == 0 {
		return
	}
	_ = unix.Madvise(b[start:start+end], unix.MADV_DONTNEED)
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// mapAnon returns n zeroed bytes of anonymous memory outside the Go heap,
// or false when the mapping fails.
func mapAnon(n int) ([]byte, bool) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	return b, err == nil
}

// unmapAnon releases a mapAnon buffer (the whole slice it returned).
func unmapAnon(b []byte) { _ = unix.Munmap(b) }
