//go:build !amd64

package cpu

func qkBlocksFast(q []float32, ldq, rows int, k []float32, ldk, d, n int, s []float32, lds int, tmp []float32) bool {
	return false
}

func pvFast(o []float32, ldo, rows int, p []float32, ldp int, v []float32, ldv, n, d int) bool {
	return false
}

func pvFastHalf(o []float32, ldo, rows int, p []float32, ldp int, v []uint16, ldv, n, d, kind int) bool {
	return false
}

func scaleMaxFast(s []float32, sc float32) (float32, bool) { return 0, false }

func scaleFast(s []float32, a float32) bool { return false }

func qkBlocksBF16(q []uint16, ldq, rows int, k []uint16, ldk, d, n int, s []float32, lds int, tmp []uint16) bool {
	return false
}

// hasBF16Dot is false off amd64.
var hasBF16Dot = false
