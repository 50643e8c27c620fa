//go:build !amd64 && !arm64

package kernels

// qgemvFast has no assembly outside amd64.
func qgemvFast(Y, X []float32, M int, q *QWeight) bool { return false }

// quantAct quantizes activations for the int8 kernels (see prepAct).
func quantAct(x []float32, bits int, xq []int8, dx, bsum []float32) bool {
	quantActGo(x, bits, xq, dx, bsum)
	return false
}

// dequantFast has no assembly outside amd64.
func dequantFast(q *QWeight, n0, rows int, dst []float32) bool { return false }

// qmatmulMultiFast has no assembly outside amd64.
func qmatmulMultiFast(Ys [][]float32, X []float32, M int, qs []*QWeight) bool { return false }
