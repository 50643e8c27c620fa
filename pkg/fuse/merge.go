package fuse

import (
	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/lora"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// addLowRank adds the low-rank product to w [rows, cols] in place:
//
//	w[o, i] = round(w[o, i] + round(scale · Σ_k u[o, k] · v[i, k]))
//
// with u [rows, r] and v [cols, r] row-major: the product u·vᵀ in one
// kernels.Sgemm call (as MLX, a matmul in float32, then scaled), cast to
// the weight's dtype and added in it, as mlx_lm's fuse does.
func addLowRank(w []float32, rows, cols int, u, v []float32, r int, scale float32, dtype st.DType) {
	d := make([]float32, rows*cols)
	kernels.Sgemm(false, true, rows, cols, r, u, r, v, r, d, cols, false)
	kernels.Parallel(rows, 4, func(lo, hi int) {
		for k := lo * cols; k < hi*cols; k++ {
			switch dtype {
			case st.F32:
				w[k] += scale * d[k]
			case st.BF16:
				w[k] = lora.RoundBF16(w[k] + lora.RoundBF16(scale*d[k]))
			default:
				w[k] = lora.RoundF16(w[k] + lora.RoundF16(scale*d[k]))
			}
		}
	})
}

// transpose returns x [n, m] as [m, n].
func transpose(x []float32, n, m int) []float32 {
	out := make([]float32, len(x))
	for i := 0; i < n; i++ {
		for j := 0; j < m; j++ {
			out[j*n+i] = x[i*m+j]
		}
	}
	return out
}
