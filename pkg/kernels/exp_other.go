//go:build !amd64 && !arm64

package kernels

func expSub(s []float32, m float32) (float32, bool) { return 0, false }

func expSum(x []float32, m float32) (float64, bool) { return 0, false }

func sigmoid(dst, src []float32) bool { return false }

func swiglu(x, up []float32, kind int) bool { return false }

func roundHalf(x []float32, kind HalfKind) bool { return false }
