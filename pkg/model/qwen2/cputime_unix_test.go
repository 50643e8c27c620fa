//go:build unix

package qwen2_test

import (
	"syscall"
	"time"
)

// cpuTime is this process's user+system CPU time: on a shared machine
// CPU-seconds per token say what the code costs when wall time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
