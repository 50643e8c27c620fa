//go:build linux || darwin || freebsd || netbsd || openbsd

package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the whole of f read-only. The returned slice must not be
// written to. size must be > 0.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return unix.Munmap(data) }, nil
}

// advise passes a paging hint for data[begin:end] (rounded out to pages).
// Hints are best effort: errors are ignored.
func advise(data []byte, begin, end int64, release bool) {
	page := int64(os.Getpagesize())
	begin = begin / page * page
	if end > int64(len(data)) {
		end = int64(len(data))
	}
	if end <= begin {
		return
	}
	advice := unix.MADV_WILLNEED
	if release {
		advice = unix.MADV_DONTNEED
	}
	_ = unix.Madvise(data[begin:end], advice)
}
