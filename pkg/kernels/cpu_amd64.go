//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

// CPU features the assembly paths need, read once at start-up. Tests turn
// them off to exercise the fallbacks on the same machine.
var (
	// hasAVX512: AVX-512 F, BW, VL and DQ (with OS support for ZMM state).
	hasAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512DQ
	// hasVNNI: AVX-512 VNNI (VPDPBUSD) on top of hasAVX512.
	hasVNNI = hasAVX512 && cpu.X86.HasAVX512VNNI
	// hasAVX2: AVX2 and FMA3 (F16C comes with every such CPU).
	hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA
)
