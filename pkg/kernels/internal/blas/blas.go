//go:build (linux || darwin) && (amd64 || arm64)

// Package blas loads a system BLAS (OpenBLAS on Linux, Accelerate on macOS)
// at run time through purego, without cgo. The kernels benchmarks use it as
// the peer to measure against; nothing in mlxgo requires it.
package blas

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/ebitengine/purego"
)

const (
	rowMajor = 101
	noTrans  = 111
	trans    = 112
)

var (
	once    sync.Once
	loadErr error
	sgemm   func(order, transA, transB, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	libName string
)

func candidates() []string {
	if runtime.GOOS == "darwin" {
		return []string{"/System/Library/Frameworks/Accelerate.framework/Accelerate"}
	}
	return []string{"libopenblas.so.0", "libopenblas.so", "libopenblas64.so.0"}
}

// Load opens the library once; it returns an error naming the files tried
// when none loads.
func Load() error {
	once.Do(func() {
		for _, name := range candidates() {
			h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL)
			if err != nil {
				loadErr = fmt.Errorf("blas: open %s: %w", name, err)
				continue
			}
			if _, err := purego.Dlsym(h, "cblas_sgemm"); err != nil {
				loadErr = fmt.Errorf("blas: %s has no cblas_sgemm: %w", name, err)
				continue
			}
			purego.RegisterLibFunc(&sgemm, h, "cblas_sgemm")
			libName, loadErr = name, nil
			return
		}
	})
	return loadErr
}

// Name is the library that Load opened.
func Name() string { return libName }

// Sgemm computes C = op(A)·op(B) (+ C when accumulate), row-major, with the
// same argument meaning as kernels.Sgemm. Load must have succeeded.
func Sgemm(transA, transB bool, M, N, K int, A []float32, lda int, B []float32, ldb int, C []float32, ldc int, accumulate bool) {
	ta, tb := int32(noTrans), int32(noTrans)
	if transA {
		ta = trans
	}
	if transB {
		tb = trans
	}
	var beta float32
	if accumulate {
		beta = 1
	}
	var p runtime.Pinner
	p.Pin(&A[0])
	p.Pin(&B[0])
	p.Pin(&C[0])
	sgemm(rowMajor, ta, tb, int32(M), int32(N), int32(K), 1, &A[0], int32(lda), &B[0], int32(ldb), beta, &C[0], int32(ldc))
	p.Unpin()
}
