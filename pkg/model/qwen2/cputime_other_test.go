//go:build !unix

package qwen2_test

import "time"

// cpuTime is not measured here (the cpu_ms/tok metric reads 0).
func cpuTime() time.Duration { return 0 }
