//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package safetensors

import (
	"io"
	"os"
)

// mapFile reads the whole of f into memory where mmap is not available.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}

func advise(data []byte, begin, end int64, release bool) {}
