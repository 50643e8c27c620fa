package engine

import (
	"fmt"
	"slices"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

type matmulPrim struct{}

func (matmulPrim) name() string { return "Matmul" }
func (matmulPrim) eval(out *Array, in []*Array) error {
	return run(backend.Matmul{}, out, in[0], in[1])
}
func (matmulPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	a, b := in[0], in[1]
	res := []*Array{nil, nil}
	if a.dtype.IsFloat() {
		res[0] = AsType(Matmul(g, SwapAxes(b, -1, -2)), a.dtype)
	}
	if b.dtype.IsFloat() {
		res[1] = AsType(Matmul(SwapAxes(a, -1, -2), g), b.dtype)
	}
	return res
}

// Matmul is the matrix product a·b: [..., M, K]·[..., K, N] -> [..., M, N]
// with batch dims broadcast; a 1-D operand is a row (a) or column (b)
// vector, squeezed from the result as numpy does. Transposed operands
// (views) are read in place.
func Matmul(a, b *Array) *Array {
	if err := firstErr(a, b); err != nil {
		return errArray(err)
	}
	if len(a.shape) == 0 || len(b.shape) == 0 {
		return Errorf("engine: Matmul of a scalar")
	}
	if len(a.shape) == 1 {
		return Squeeze(Matmul(ExpandDims(a, 0), b), -2)
	}
	if len(b.shape) == 1 {
		return Squeeze(Matmul(a, ExpandDims(b, 1)), -1)
	}
	na, nb := len(a.shape), len(b.shape)
	M, K, K2, N := a.shape[na-2], a.shape[na-1], b.shape[nb-2], b.shape[nb-1]
	if K != K2 {
		return Errorf("engine: Matmul: inner dims differ: %v · %v", a.shape, b.shape)
	}
	if nb == 2 && na > 2 {
		// x [..., M, K] · W [K, N]: fold the batch into M, one 2-D product
		// (and a 2-D weight gradient, not a per-batch one summed after).
		lead := a.shape[:na-1]
		y := Matmul(Reshape(a, -1, K), b)
		return Reshape(y, append(slices.Clone(lead), N)...)
	}
	batch, err := BroadcastShapes(a.shape[:na-2], b.shape[:nb-2])
	if err != nil {
		return Errorf("engine: Matmul: batch dims of %v and %v do not broadcast", a.shape, b.shape)
	}
	// Operands keep their dtypes (a bfloat16 weight is widened inside the
	// kernel, never copied); the result has the promoted dtype.
	dt := promote(a, b)
	a = BroadcastTo(a, append(slices.Clone(batch), M, K)...)
	b = BroadcastTo(b, append(slices.Clone(batch), K, N)...)
	return newNode(dt, append(slices.Clone(batch), M, N), matmulPrim{}, a, b)
}

// quantized

func checkQuant(groupSize, bits int) error {
	switch bits {
	case 2, 3, 4, 5, 6, 8:
	default:
		return fmt.Errorf("engine: quantization bits %d not in {2,3,4,5,6,8}", bits)
	}
	switch groupSize {
	case 32, 64, 128:
	default:
		return fmt.Errorf("engine: quantization group size %d not in {32,64,128}", groupSize)
	}
	return nil
}

// fpModes are MLX's float quantization modes: group size and bits.
var fpModes = map[string][2]int{"mxfp4": {32, 4}, "mxfp8": {32, 8}, "nvfp4": {16, 4}}

// checkQWeight validates packed w [..., rows, cols·bits/32] with scales and
// biases [..., rows, cols/groupSize] (float modes: uint8 scales, no
// biases) and returns rows, cols, the backend descriptor and the biases
// input to pass (scales again for float modes, which have none).
func checkQWeight(w, scales, biases *Array, groupSize, bits int, mode string) (int, int, backend.Quant, *Array, error) {
	var q backend.Quant
	if mode == "" {
		mode = "affine"
	}
	fp, isFP := fpModes[mode]
	switch {
	case isFP:
		if groupSize == 0 {
			groupSize = fp[0]
		}
		if bits == 0 {
			bits = fp[1]
		}
		if groupSize != fp[0] || bits != fp[1] {
			return 0, 0, q, nil, fmt.Errorf("engine: mode %s uses group size %d and %d bits, got %d and %d", mode, fp[0], fp[1], groupSize, bits)
		}
		if biases != nil {
			return 0, 0, q, nil, fmt.Errorf("engine: mode %s has no biases", mode)
		}
		if scales.dtype != Uint8 {
			return 0, 0, q, nil, fmt.Errorf("engine: mode %s needs uint8 scales, got %s", mode, scales.dtype)
		}
		biases = scales
	case mode == "affine":
		if err := checkQuant(groupSize, bits); err != nil {
			return 0, 0, q, nil, err
		}
		if biases == nil {
			return 0, 0, q, nil, fmt.Errorf("engine: affine quantization needs biases")
		}
		if !scales.dtype.IsFloat() || !biases.dtype.IsFloat() {
			return 0, 0, q, nil, fmt.Errorf("engine: scales and biases must be float, got %s and %s", scales.dtype, biases.dtype)
		}
	default:
		return 0, 0, q, nil, fmt.Errorf("engine: unknown quantization mode %q (affine, mxfp4, mxfp8 or nvfp4)", mode)
	}
	if err := firstErr(biases); err != nil {
		return 0, 0, q, nil, err
	}
	if w.dtype != Uint32 {
		return 0, 0, q, nil, fmt.Errorf("engine: quantized weight must be uint32, got %s", w.dtype)
	}
	if len(w.shape) < 2 {
		return 0, 0, q, nil, fmt.Errorf("engine: quantized weight must be at least 2-D, got %v", w.shape)
	}
	nd := len(w.shape)
	rows, cols := w.shape[nd-2], w.shape[nd-1]*32/bits
	want := append(slices.Clone(w.shape[:nd-1]), cols/groupSize)
	if cols%groupSize != 0 || !slices.Equal(scales.shape, want) || !slices.Equal(biases.shape, want) {
		return 0, 0, q, nil, fmt.Errorf("engine: quantized weight %v (%s, %d bits, group %d) needs scales and biases %v, got %v and %v",
			w.shape, mode, bits, groupSize, want, scales.shape, biases.shape)
	}
	q = backend.Quant{GroupSize: groupSize, Bits: bits, Mode: mode}
	return rows, cols, q, biases, nil
}

type qmmPrim struct {
	q         backend.Quant
	transpose bool
}

func (qmmPrim) name() string { return "QuantizedMatmul" }
func (p qmmPrim) eval(out *Array, in []*Array) error {
	return run(backend.QuantizedMatmul{Quant: p.q, Transpose: p.transpose}, out, in...)
}
func (p qmmPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	dx := QuantizedMatmulMode(g, in[1], in[2], biasesIn(p.q, in[3]), !p.transpose, p.q.GroupSize, p.q.Bits, p.q.Mode)
	return []*Array{AsType(dx, in[0].dtype), nil, nil, nil}
}

// biasesIn turns the biases input back into the argument (nil for the
// float modes, which pass scales in its place).
func biasesIn(q backend.Quant, b *Array) *Array {
	if _, ok := fpModes[q.Mode]; ok {
		return nil
	}
	return b
}

// QuantizedMatmul multiplies x [..., K] by an MLX affine-quantized matrix:
// with transpose, w is [N, K·bits/32] and the result x·Wᵀ is [..., N] (the
// Linear layout); without, w is [K, N·bits/32] and the result is x·W.
// scales and biases are [rows, cols/groupSize]; w may carry batch dims that
// broadcast with x's. Differentiable with respect to x only.
func QuantizedMatmul(x, w, scales, biases *Array, transpose bool, groupSize, bits int) *Array {
	if biases == nil {
		return Errorf("engine: QuantizedMatmul: affine quantization needs biases")
	}
	return QuantizedMatmulMode(x, w, scales, biases, transpose, groupSize, bits, "affine")
}

// QuantizedMatmulMode is QuantizedMatmul for any MLX quantization mode
// (mx.quantized_matmul's mode): "affine", or the float modes "mxfp4",
// "mxfp8" and "nvfp4" with uint8 scales and nil biases (groupSize and bits
// 0 mean the mode's defaults). nvfp4's optional global scale is not
// supported.
func QuantizedMatmulMode(x, w, scales, biases *Array, transpose bool, groupSize, bits int, mode string) *Array {
	if err := firstErr(x, w, scales); err != nil {
		return errArray(err)
	}
	rows, cols, q, biases, err := checkQWeight(w, scales, biases, groupSize, bits, mode)
	if err != nil {
		return errArray(fmt.Errorf("QuantizedMatmul: %w", err))
	}
	groupSize, bits = q.GroupSize, q.Bits
	K, N := cols, rows
	if !transpose {
		K, N = rows, cols
	}
	if len(x.shape) == 0 || x.shape[len(x.shape)-1] != K {
		return Errorf("engine: QuantizedMatmul: x %v does not match weight with K=%d", x.shape, K)
	}
	if len(x.shape) == 1 {
		return Squeeze(QuantizedMatmulMode(ExpandDims(x, 0), w, scales, biasesIn(q, biases), transpose, groupSize, bits, mode), 0)
	}
	dt := x.dtype
	if !dt.IsFloat() {
		return Errorf("engine: QuantizedMatmul: x must be float, got %s", dt)
	}
	dt = promote(x, scales)
	nx := len(x.shape)
	M := x.shape[nx-2]
	if len(w.shape) > 2 {
		nw := len(w.shape)
		batch, err := BroadcastShapes(x.shape[:nx-2], w.shape[:nw-2])
		if err != nil {
			return Errorf("engine: QuantizedMatmul: batch dims of x %v and w %v do not broadcast", x.shape, w.shape)
		}
		x = BroadcastTo(x, append(slices.Clone(batch), M, K)...)
		w = BroadcastTo(w, append(slices.Clone(batch), w.shape[nw-2:]...)...)
		scales = BroadcastTo(scales, append(slices.Clone(batch), scales.shape[nw-2:]...)...)
		biases = BroadcastTo(biases, append(slices.Clone(batch), biases.shape[nw-2:]...)...)
	}
	shape := append(slices.Clone(x.shape[:len(x.shape)-1]), N)
	return newNode(dt, shape, qmmPrim{q, transpose}, x, w, scales, biases)
}

type dequantPrim struct{ q backend.Quant }

func (dequantPrim) name() string { return "Dequantize" }
func (p dequantPrim) eval(out *Array, in []*Array) error {
	return run(backend.Dequantize{Quant: p.q}, out, in...)
}
func (dequantPrim) vjp(*Array, []*Array, *Array) []*Array { return []*Array{nil, nil, nil} }

// Dequantize unpacks MLX affine-quantized w [..., rows, cols·bits/32] to
// scales' dtype: w = scale·q + bias per group of the last axis.
func Dequantize(w, scales, biases *Array, groupSize, bits int) *Array {
	if biases == nil {
		return Errorf("engine: Dequantize: affine quantization needs biases")
	}
	return DequantizeMode(w, scales, biases, groupSize, bits, "affine")
}

// DequantizeMode is Dequantize for any MLX mode (see QuantizedMatmulMode);
// the float modes give float32.
func DequantizeMode(w, scales, biases *Array, groupSize, bits int, mode string) *Array {
	if err := firstErr(w, scales); err != nil {
		return errArray(err)
	}
	_, cols, q, biases, err := checkQWeight(w, scales, biases, groupSize, bits, mode)
	if err != nil {
		return errArray(fmt.Errorf("Dequantize: %w", err))
	}
	dt := scales.dtype
	if _, ok := fpModes[q.Mode]; ok {
		dt = Float32
	}
	shape := append(slices.Clone(w.shape[:len(w.shape)-1]), cols)
	return newNode(dt, shape, dequantPrim{q}, w, scales, biases)
}

// gatherIndices resolves GatherMM/GatherQMM indices: nil lhs ranges over
// a's batch, nil rhs over b's; both broadcast to the output batch shape.
func gatherIndices(abatch, bbatch []int, lhs, rhs *Array) (*Array, *Array, []int, error) {
	if lhs == nil {
		lhs = Reshape(Arange(0, float64(backend.Prod(abatch)), 1, Uint32), abatch...)
	}
	if rhs == nil {
		rhs = Reshape(Arange(0, float64(backend.Prod(bbatch)), 1, Uint32), bbatch...)
	}
	if err := firstErr(lhs, rhs); err != nil {
		return nil, nil, nil, err
	}
	if lhs.dtype.IsFloat() || rhs.dtype.IsFloat() {
		return nil, nil, nil, fmt.Errorf("engine: gather indices must be integers")
	}
	batch, err := BroadcastShapes(lhs.shape, rhs.shape)
	if err != nil {
		return nil, nil, nil, err
	}
	return BroadcastTo(lhs, batch...), BroadcastTo(rhs, batch...), batch, nil
}

// scatterBatch adds d [batch..., M, K] into zeros [n, M, K] at the flat
// batch indices idx, then reshapes to shape.
func scatterBatch(d, idx *Array, n int, shape []int) *Array {
	nd := len(d.shape)
	mk := d.shape[nd-2] * d.shape[nd-1]
	nb := d.Size() / max(mk, 1)
	d2 := Reshape(d, nb, mk)
	i2 := BroadcastTo(Reshape(idx, nb, 1), nb, mk)
	return Reshape(ScatterAddAxis(Zeros([]int{n, mk}, d.dtype), i2, d2, 0), shape...)
}

type gatherQMMPrim struct {
	q         backend.Quant
	transpose bool
}

func (gatherQMMPrim) name() string { return "GatherQMM" }
func (p gatherQMMPrim) eval(out *Array, in []*Array) error {
	return run(backend.GatherQMM{Quant: p.q, Transpose: p.transpose}, out, in...)
}
func (p gatherQMMPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	x, w, s, b, lhs, rhs := in[0], in[1], in[2], in[3], in[4], in[5]
	dsel := GatherQMMMode(g, w, s, biasesIn(p.q, b), nil, rhs, !p.transpose, p.q.GroupSize, p.q.Bits, p.q.Mode)
	nx := backend.Prod(x.shape[:len(x.shape)-2])
	dx := scatterBatch(AsType(dsel, x.dtype), lhs, nx, x.shape)
	return []*Array{dx, nil, nil, nil, nil, nil}
}

// GatherQMM is MLX's gather_qmm, the expert matmul of quantized MoE layers:
// for each output batch index i, x[lhs[i]] · W[rhs[i]](ᵀ), where x is
// [..., M, K] with its batch dims flattened, w is [E, rows, cols·bits/32]
// and lhs, rhs are integer arrays whose broadcast shape is the output's
// batch shape. A nil lhs ranges over x's batch, a nil rhs over E.
// Differentiable with respect to x.
func GatherQMM(x, w, scales, biases, lhs, rhs *Array, transpose bool, groupSize, bits int) *Array {
	if biases == nil {
		return Errorf("engine: GatherQMM: affine quantization needs biases")
	}
	return GatherQMMMode(x, w, scales, biases, lhs, rhs, transpose, groupSize, bits, "affine")
}

// GatherQMMMode is GatherQMM for any MLX mode (see QuantizedMatmulMode).
func GatherQMMMode(x, w, scales, biases, lhs, rhs *Array, transpose bool, groupSize, bits int, mode string) *Array {
	if err := firstErr(x, w, scales); err != nil {
		return errArray(err)
	}
	rows, cols, q, biases, err := checkQWeight(w, scales, biases, groupSize, bits, mode)
	if err != nil {
		return errArray(fmt.Errorf("GatherQMM: %w", err))
	}
	if len(w.shape) != 3 || len(x.shape) < 2 {
		return Errorf("engine: GatherQMM: need x [..., M, K] and w [E, N, K'], got %v and %v", x.shape, w.shape)
	}
	K, N := cols, rows
	if !transpose {
		K, N = rows, cols
	}
	nx := len(x.shape)
	if x.shape[nx-1] != K {
		return Errorf("engine: GatherQMM: x %v does not match weight with K=%d", x.shape, K)
	}
	lhs, rhs, batch, err := gatherIndices(x.shape[:nx-2], w.shape[:1], lhs, rhs)
	if err != nil {
		return errArray(fmt.Errorf("GatherQMM: %w", err))
	}
	shape := append(slices.Clone(batch), x.shape[nx-2], N)
	return newNode(promote(x, scales), shape, gatherQMMPrim{q, transpose},
		x, w, scales, biases, lhs, rhs)
}

type gatherMMPrim struct{}

func (gatherMMPrim) name() string { return "GatherMM" }
func (gatherMMPrim) eval(out *Array, in []*Array) error {
	return run(backend.GatherMM{}, out, in...)
}
func (gatherMMPrim) vjp(out *Array, in []*Array, g *Array) []*Array {
	a, b, lhs, rhs := in[0], in[1], in[2], in[3]
	na, nb := len(a.shape), len(b.shape)
	da := GatherMM(g, SwapAxes(b, -1, -2), nil, rhs)
	db := GatherMM(SwapAxes(a, -1, -2), g, lhs, nil)
	return []*Array{
		scatterBatch(AsType(da, a.dtype), lhs, backend.Prod(a.shape[:na-2]), a.shape),
		scatterBatch(AsType(db, b.dtype), rhs, backend.Prod(b.shape[:nb-2]), b.shape),
		nil, nil,
	}
}

// GatherMM is MLX's gather_mm: out[i] = a[lhs[i]] · b[rhs[i]] with a
// [..., M, K], b [..., K, N] (batch dims flattened) and integer index
// arrays broadcast to the output batch shape (nil = range over the batch).
func GatherMM(a, b, lhs, rhs *Array) *Array {
	if err := firstErr(a, b); err != nil {
		return errArray(err)
	}
	na, nb := len(a.shape), len(b.shape)
	if na < 2 || nb < 2 || a.shape[na-1] != b.shape[nb-2] {
		return Errorf("engine: GatherMM: cannot multiply %v by %v", a.shape, b.shape)
	}
	lhs, rhs, batch, err := gatherIndices(a.shape[:na-2], b.shape[:nb-2], lhs, rhs)
	if err != nil {
		return errArray(fmt.Errorf("GatherMM: %w", err))
	}
	dt := promote(a, b)
	shape := append(slices.Clone(batch), a.shape[na-2], b.shape[nb-1])
	return newNode(dt, shape, gatherMMPrim{}, a, b, lhs, rhs)
}
