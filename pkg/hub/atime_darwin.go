package hub

import (
	"os"
	"syscall"
	"time"
)

func accessTime(st os.FileInfo) time.Time {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return time.Unix(int64(s.Atimespec.Sec), int64(s.Atimespec.Nsec))
	}
	return st.ModTime()
}
