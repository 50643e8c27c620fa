package cpu

import (
	"math/bits"
	"sync"
)

// scratch pools float32 work buffers by power-of-two size, so hot kernels
// (attention's score rows) neither allocate nor zero memory on every call.
var scratch [40]sync.Pool

// getF32 returns a slice of length n with undefined contents.
func getF32(n int) []float32 {
	if n == 0 {
		return nil
	}
	c := bits.Len(uint(n - 1))
	if p, ok := scratch[c].Get().(*[]float32); ok {
		s := (*p)[:n]
		*p = nil
		holders.Put(p)
		return s
	}
	return make([]float32, n, 1<<c)
}

// putF32 gives a slice from getF32 back.
func putF32(s []float32) {
	if cap(s) == 0 || cap(s)&(cap(s)-1) != 0 {
		return
	}
	p, ok := holders.Get().(*[]float32)
	if !ok {
		p = new([]float32)
	}
	*p = s[:cap(s)]
	scratch[bits.Len(uint(cap(s)-1))].Put(p)
}

// holders recycles the *[]float32 boxes the pools hold (a pool stores
// pointers; boxing a slice afresh on every put would allocate).
var holders sync.Pool
