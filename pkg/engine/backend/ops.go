package backend

// Op describes one primitive for Backend.Run. Inputs arrive as evaluated
// views (any strides, including zero strides for broadcast) whose shapes
// the engine has already broadcast to what the op needs; out is allocated.
type Op interface{ OpName() string }

// UnaryOp names an elementwise function of one input.
type UnaryOp uint8

// Unary functions.
const (
	Neg UnaryOp = iota
	Abs
	Exp
	Log
	Log1p
	Expm1
	Sqrt
	Rsqrt
	Square
	Tanh
	Sigmoid
	Sin
	Cos
	Erf
	ErfInv
	Sign
	Floor
	Ceil
	Round // half to even, like MLX
	LogicalNot
	Reciprocal
)

// BinaryOp names an elementwise function of two inputs.
type BinaryOp uint8

// Binary functions. Comparisons and logical ops write bool outputs.
const (
	Add BinaryOp = iota
	Sub
	Mul
	Div
	Pow
	Maximum
	Minimum
	Equal
	NotEqual
	Less
	LessEqual
	Greater
	GreaterEqual
	LogicalAnd
	LogicalOr
	FloorDivide
	Remainder
	LogAddExp
	Atan2
)

// ReduceOp names a reduction.
type ReduceOp uint8

// Reductions. ArgMax/ArgMin are only valid in ArgReduce.
const (
	Sum ReduceOp = iota
	Product
	Max
	Min
	ArgMax
	ArgMin
)

// Copy copies (and casts, when dtypes differ) in[0] into out.
type Copy struct{}

// Unary applies Op elementwise; out dtype may differ (bool for LogicalNot).
type Unary struct{ Op UnaryOp }

// Binary applies Op elementwise on two same-shape inputs.
type Binary struct{ Op BinaryOp }

// Where picks in[1] where in[0] (bool) is true, else in[2].
type Where struct{}

// Reduce reduces in[0] over Axes; out has the input's rank with 1 on Axes.
type Reduce struct {
	Op   ReduceOp
	Axes []int
}

// ArgReduce writes uint32 indices of the max/min along Axis (out keeps the
// axis with size 1). Ties pick the first.
type ArgReduce struct {
	Op   ReduceOp
	Axis int
}

// Scan is a cumulative reduction (Sum, Product, Max, Min) along Axis.
type Scan struct {
	Op        ReduceOp
	Axis      int
	Reverse   bool
	Inclusive bool
}

// Matmul: in[0] [..., M, K], in[1] [..., K, N] with equal batch shapes,
// possibly of different float dtypes (a half weight with float32
// activations); out [..., M, N] contiguous in the promoted dtype.
type Matmul struct{}

// Arange fills out (1-D) with Start + i·Step.
type Arange struct{ Start, Step float64 }

// Gather is take_along_axis: out[..., i, ...] = in[0][..., in[1][..., i, ...], ...]
// along Axis; in[1] has out's shape, in[0] matches it except on Axis.
// Negative indices count from the end.
type Gather struct{ Axis int }

// Take: out = in[0] indexed on Axis by in[1] (any shape):
// out.shape = a.shape[:Axis] + idx.shape + a.shape[Axis+1:].
type Take struct{ Axis int }

// ScatterAdd: out = in[0] with in[2] added at in[1] along Axis
// (take_along_axis layout: in[1] and in[2] have the same shape).
type ScatterAdd struct{ Axis int }

// RandomBits fills out (uint32) with threefry2x32 bits of Key and the flat
// element index.
type RandomBits struct{ Key [2]uint32 }

// ArgPartition writes uint32 indices that partition in[0] along Axis so the
// element at Kth is in sorted position, smaller ones before it.
type ArgPartition struct{ Kth, Axis int }

// ArgSort writes uint32 indices that sort in[0] ascending along Axis (stable).
type ArgSort struct{ Axis int }

// Quant describes an MLX quantized weight. Mode "" or "affine": w =
// scale·q + bias per group (bits 2-8, groups 32/64/128). Float modes have
// no biases (the op's biases input repeats scales and is ignored) and
// uint8 scales: "mxfp4" (E2M1 values, group 32, E8M0 scales), "mxfp8"
// (E4M3 values, group 32, E8M0 scales), "nvfp4" (E2M1, group 16, E4M3
// scales).
type Quant struct {
	GroupSize int
	Bits      int
	Mode      string
}

// QuantizedMatmul: in = x [..., M, K], w packed uint32, scales, biases.
// Transpose: w is [N, K·Bits/32] (out = x·Wᵀ); else w is [K, N·Bits/32]
// (out = x·W). w, scales, biases may carry equal leading batch dims that
// match x's batch dims.
type QuantizedMatmul struct {
	Quant
	Transpose bool
}

// GatherQMM: in = x [Bx..., M, K], w [E, N, K·Bits/32] (transposed form) or
// [E, K, N·Bits/32], scales, biases [E, ...], lhs, rhs uint32/int32 index
// arrays with the output's batch shape: out[b] = x[lhs[b]] · W[rhs[b]](ᵀ),
// x batch flattened.
type GatherQMM struct {
	Quant
	Transpose bool
}

// GatherMM: like GatherQMM for plain weights: in = a [Ba..., M, K],
// b [Bb..., K, N], lhs, rhs.
type GatherMM struct{}

// Dequantize: in = w, scales, biases; out float [.., K].
type Dequantize struct{ Quant }

// Softmax over the last axis (fused).
type Softmax struct{}

// RMSNorm over the last axis (fused); in = x, optional weight.
type RMSNorm struct{ Eps float32 }

// LayerNorm over the last axis (fused); in = x, optional weight, bias.
type LayerNorm struct{ Eps float32 }

// RoPE rotates the first Dims features of x [..., L, D] at positions
// Offset..Offset+L-1. Traditional rotates adjacent pairs (2i, 2i+1);
// otherwise the halves (i, i+Dims/2). Frequencies are Base^(-2i/Dims) times
// Scale on positions, or 1/freqs[i] when a freqs input is given.
type RoPE struct {
	Dims        int
	Traditional bool
	Base        float32
	Scale       float32
	Offset      int
}

// SDPA: scaled dot-product attention options.
type SDPA struct {
	Scale    float32
	Causal   bool // query i (aligned to the end of keys) sees keys ≤ i+Lk-Lq
	Window   int  // >0: also hide keys older than Window positions
	SoftCap  float32
	MaskBool bool // mask input is boolean (true = keep) rather than additive
}

func (Copy) OpName() string            { return "Copy" }
func (Unary) OpName() string           { return "Unary" }
func (Binary) OpName() string          { return "Binary" }
func (Where) OpName() string           { return "Where" }
func (Reduce) OpName() string          { return "Reduce" }
func (ArgReduce) OpName() string       { return "ArgReduce" }
func (Scan) OpName() string            { return "Scan" }
func (Matmul) OpName() string          { return "Matmul" }
func (Arange) OpName() string          { return "Arange" }
func (Gather) OpName() string          { return "Gather" }
func (Take) OpName() string            { return "Take" }
func (ScatterAdd) OpName() string      { return "ScatterAdd" }
func (RandomBits) OpName() string      { return "RandomBits" }
func (ArgPartition) OpName() string    { return "ArgPartition" }
func (ArgSort) OpName() string         { return "ArgSort" }
func (QuantizedMatmul) OpName() string { return "QuantizedMatmul" }
func (GatherQMM) OpName() string       { return "GatherQMM" }
func (GatherMM) OpName() string        { return "GatherMM" }
func (Dequantize) OpName() string      { return "Dequantize" }
func (Softmax) OpName() string         { return "Softmax" }
func (RMSNorm) OpName() string         { return "RMSNorm" }
func (LayerNorm) OpName() string       { return "LayerNorm" }
func (RoPE) OpName() string            { return "RoPE" }
func (SDPA) OpName() string            { return "SDPA" }
