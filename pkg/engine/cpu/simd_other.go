//go:build !amd64

package cpu

// hasAVX512 is false off amd64 (there is no assembly).
var hasAVX512 = false

func dotFast(a, b []float32) (float32, bool) { return 0, false }

func axpyFast(y []float32, a float32, x []float32) bool { return false }

func dotRowsFast(q []float32, ldq, rows int, k []float32, d int, s []float32, lds int) bool {
	return false
}

func axpyRowsFast(o []float32, ldo, rows int, p []float32, ldp int, v []float32, d int) bool {
	return false
}

func sumSqF64(x []float32) float64 { return sumSqF64Go(x) }

func scaleF64(x []float32, r float64) { scaleF64Go(x, r) }

func mulF32(x, w []float32) { mulF32Go(x, w) }

func binFast(x, y []float32, op int) bool { return false }
