//go:build !((linux || darwin) && (amd64 || arm64))

// Package blas loads a system BLAS at run time through purego; on this
// platform it has none.
package blas

import "errors"

// Load always fails here.
func Load() error { return errors.New("blas: no system BLAS loader on this platform") }

// Name is empty here.
func Name() string { return "" }

// Sgemm panics: Load failed.
func Sgemm(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, accumulate bool) {
	panic("blas: not loaded")
}
