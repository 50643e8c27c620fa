package quant

import (
	"math/rand/v2"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// BenchmarkQuantizeBF16 quantizes a 4096×4096 bf16 matrix to 4 bits, group
// 64 (mlx_lm's default); MB/s is source (bf16) bytes per second.
func BenchmarkQuantizeBF16(b *testing.B) {
	for _, bits := range []int{4, 8, 3} {
		b.Run(map[int]string{3: "3bit", 4: "4bit", 8: "8bit"}[bits], func(b *testing.B) {
			benchQuant(b, 4096, 4096, Options{Bits: bits, GroupSize: 64})
		})
	}
}

func benchQuant(b *testing.B, rows, cols int, o Options) {
	rng := rand.New(rand.NewPCG(1, 1))
	w := make([]uint16, rows*cols)
	for i := range w {
		w[i] = kernels.F32ToBF16(float32(rng.NormFloat64() * 0.02))
	}
	nG := rows * cols / o.GroupSize
	q := make([]uint32, rows*PackedCols(cols, o.Bits))
	s, bi := make([]uint16, nG), make([]uint16, nG)
	b.SetBytes(int64(2 * len(w)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := QuantizeHalf(w, kernels.BF16, cols, o, q, s, bi); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadBF16 is the ceiling for the benchmark above: widening the
// same bf16 matrix to float32 and summing it, on the same cores.
func BenchmarkReadBF16(b *testing.B) {
	rows, cols := 4096, 4096
	w := make([]uint16, rows*cols)
	for i := range w {
		w[i] = uint16(i)
	}
	b.SetBytes(int64(2 * len(w)))
	sink := make([]float32, rows)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		kernels.Parallel(rows, 16, func(lo, hi int) {
			buf := make([]float32, cols)
			for r := lo; r < hi; r++ {
				kernels.HalfToF32Slice(buf, w[r*cols:(r+1)*cols], kernels.BF16)
				var acc float32
				for _, v := range buf {
					acc += v
				}
				sink[r] = acc
			}
		})
	}
}
