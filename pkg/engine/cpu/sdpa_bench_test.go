package cpu

import (
	"fmt"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// BenchmarkSDPAFewRows times decode attention (14 query heads, 2 kv heads,
// Dh 64, bf16 cache views of a 8192-position buffer) on the few-query path
// (with its block kernels, and with the per-key loops they replace) and on
// the blocked path, by cache length: where the threshold belongs.
func BenchmarkSDPAFewRows(b *testing.B) {
	c := New()
	const H, Hk, D, capT = 14, 2, 64, 8192
	mk := func(shape []int, dt backend.DType) backend.View {
		n := backend.Prod(shape)
		buf, _ := c.Alloc(n * dt.Size())
		bs := buf.(*Buffer).Bytes()
		for i := range bs {
			bs[i] = byte(i*7) & 0x3f
		}
		return backend.View{Buf: buf, DType: dt, Shape: shape, Strides: backend.RowMajor(shape)}
	}
	q := mk([]int{1, H, 1, D}, backend.BFloat16)
	kb := mk([]int{1, Hk, capT, D}, backend.BFloat16)
	vb := mk([]int{1, Hk, capT, D}, backend.BFloat16)
	out := mk([]int{1, H, 1, D}, backend.BFloat16)
	for _, lk := range []int{32, 64, 256, 1024, 4096} {
		k, v := kb, vb
		k.Shape, v.Shape = []int{1, Hk, lk, D}, []int{1, Hk, lk, D}
		for _, path := range []string{"small", "small-perkey", "blocked"} {
			b.Run(fmt.Sprintf("Lk=%d/%s", lk, path), func(b *testing.B) {
				saved, savedK := sdpaSmallWork, sdpaKernels
				sdpaSmallWork, sdpaKernels = 1<<40, path == "small"
				if path == "blocked" {
					sdpaSmallWork = 0
				}
				defer func() { sdpaSmallWork, sdpaKernels = saved, savedK }()
				for b.Loop() {
					if err := c.ScaledDotProductAttention(backend.SDPA{Scale: 0.125}, q, k, v, nil, nil, out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
