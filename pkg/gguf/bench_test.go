package gguf

import (
	"math/rand/v2"
	"testing"
)

func benchData(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// BenchmarkEncode measures each encoder on a 4096×4096 float32 tensor;
// SetBytes counts the float32 source, so the figure is source GB/s.
func BenchmarkEncode(b *testing.B) {
	x := benchData(4096 * 4096)
	for _, typ := range []Type{F16, BF16, Q8_0, Q4_0} {
		b.Run(typ.String(), func(b *testing.B) {
			dst := make([]byte, 0, 4*len(x))
			b.SetBytes(int64(4 * len(x)))
			for i := 0; i < b.N; i++ {
				var err error
				if dst, err = Encode(dst[:0], typ, x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCeilingF32 is the ceiling the encoders are compared with: the F32
// "encoder" (a little-endian copy of the same source).
func BenchmarkCeilingF32(b *testing.B) {
	x := benchData(4096 * 4096)
	dst := make([]byte, 0, 4*len(x))
	b.SetBytes(int64(4 * len(x)))
	for i := 0; i < b.N; i++ {
		dst, _ = Encode(dst[:0], F32, x)
	}
}
