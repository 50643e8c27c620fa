// Package backend holds the types shared by the engine and its compute
// backends (cpu, and later cuda and metal): dtypes, buffers, strided views,
// the primitive descriptors a backend runs, and the small Backend contract.
//
// A backend allocates buffers, copies bytes in and out of them, and runs one
// primitive on evaluated inputs into an allocated output. Everything else
// (graph building, autodiff, composite ops, memory release) lives in the
// engine. Fused fast paths are optional interfaces (FusedAttention,
// FusedNorm, FusedRoPE, FusedSoftmax, FusedActivation): a backend that lacks one gets the
// engine's composite of smaller primitives.
package backend

import (
	"errors"
	"fmt"
)

// DType is an element type.
type DType uint8

// The element types of the engine.
const (
	Float32 DType = iota
	Float16
	BFloat16
	Int32
	Uint32
	Uint8
	Bool
)

// Size returns the bytes per element.
func (d DType) Size() int {
	switch d {
	case Float32, Int32, Uint32:
		return 4
	case Float16, BFloat16:
		return 2
	default:
		return 1
	}
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == Float32 || d == Float16 || d == BFloat16 }

// IsInt reports whether d is an integer type (bool excluded).
func (d DType) IsInt() bool { return d == Int32 || d == Uint32 || d == Uint8 }

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case BFloat16:
		return "bfloat16"
	case Int32:
		return "int32"
	case Uint32:
		return "uint32"
	case Uint8:
		return "uint8"
	case Bool:
		return "bool"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Buffer is backend-owned memory. Only the backend that made it looks inside.
type Buffer interface {
	// Len is the usable size in bytes.
	Len() int
}

// View is a strided window on a buffer: element (i0, i1, ...) lives at
// element offset Offset + Σ ik·Strides[k]. Strides may be zero (broadcast).
type View struct {
	Buf     Buffer
	DType   DType
	Shape   []int
	Strides []int // in elements
	Offset  int   // in elements
}

// Size returns the number of elements.
func (v View) Size() int { return Prod(v.Shape) }

// Contiguous reports whether v is row-major with no gaps.
func (v View) Contiguous() bool {
	s := 1
	for i := len(v.Shape) - 1; i >= 0; i-- {
		if v.Shape[i] != 1 && v.Strides[i] != s {
			return false
		}
		s *= v.Shape[i]
	}
	return true
}

// Prod returns the product of dims (1 for none).
func Prod(dims []int) int {
	p := 1
	for _, d := range dims {
		p *= d
	}
	return p
}

// RowMajor returns the contiguous strides of shape.
func RowMajor(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// ErrUnsupported is returned by Run for a primitive the backend lacks.
var ErrUnsupported = errors.New("primitive not supported by backend")

// Backend is the contract every compute backend fills.
type Backend interface {
	Name() string
	// Alloc returns a buffer of at least nbytes.
	Alloc(nbytes int) (Buffer, error)
	// Free gives a buffer back (to a pool, typically).
	Free(Buffer)
	// CopyIn writes src into dst at byte offset off.
	CopyIn(dst Buffer, off int, src []byte) error
	// CopyOut reads len(dst) bytes of src from byte offset off.
	CopyOut(dst []byte, src Buffer, off int) error
	// Run computes op on evaluated inputs into out, whose buffer is
	// allocated (out may be a strided window, e.g. for Copy into a slice).
	Run(op Op, in []View, out View) error
}

// QuantizedMatmulGrouper is implemented by backends that can run several
// transposed QuantizedMatmul ops reading the same activations as one job
// (the engine groups a layer's q, k and v projections, or gate and up).
// x [..., M, K] is the shared input; ws[i] holds op i's weight, scales and
// biases; outs[i] its output [..., M, N_i], allocated. The results must be
// those of Run on each op.
type QuantizedMatmulGrouper interface {
	RunQuantizedMatmuls(ops []QuantizedMatmul, x View, ws [][3]View, outs []View) error
}

// HostWrapper is implemented by backends that can use host memory in place
// (the cpu backend over a memory-mapped file). ok is false when b cannot be
// used directly (e.g. misaligned) and the caller must copy.
type HostWrapper interface {
	WrapHost(b []byte) (buf Buffer, ok bool)
}

// MemoryStats is implemented by backends whose allocator tracks usage.
type MemoryStats interface {
	ActiveMemory() int64 // bytes in live buffers made by Alloc
	PeakMemory() int64   // high-water mark of ActiveMemory since reset
	ResetPeakMemory()
	CacheMemory() int64 // bytes held in the pool for reuse
	ClearCache()
	// SetCacheLimit caps CacheMemory (negative: no cap, the default);
	// freed buffers beyond it go back to the system.
	SetCacheLimit(bytes int64)
}

// FusedAttention computes scaled dot-product attention in one pass.
// q [B, H, Lq, Dh], k and v [B, Hk, Lk, Dh(v)], mask nil or broadcast
// (zero strides) to [B, H, Lq, Lk], sinks nil or [H] (one extra logit per
// head that joins every softmax and takes no value); out [B, H, Lq, Dv]
// contiguous.
type FusedAttention interface {
	ScaledDotProductAttention(op SDPA, q, k, v View, mask, sinks *View, out View) error
}

// FusedNorm computes RMSNorm and LayerNorm over the last axis. weight and
// bias may be nil.
type FusedNorm interface {
	RMSNorm(eps float32, x View, weight *View, out View) error
	LayerNorm(eps float32, x View, weight, bias *View, out View) error
}

// FusedRoPE applies rotary embeddings; see the RoPE descriptor. offsets,
// when given, is an integer [B]: row l of batch entry b sits at position
// offsets[b] + l (op.Offset is then ignored).
type FusedRoPE interface {
	RoPE(op RoPE, x View, freqs, offsets *View, out View) error
}

// FusedActivation computes gated activations in one pass: out = silu(x)
// (up nil) or silu(x)·up, with silu(x) = x·sigmoid(x). x, up and out have
// one shape and one float dtype, and each step is rounded to that dtype as
// the unfused ops (Sigmoid, then two Multiplies) would round it.
type FusedActivation interface {
	SwiGLU(x View, up *View, out View) error
}

// FusedSoftmax computes softmax over the last axis.
type FusedSoftmax interface {
	Softmax(x View, out View) error
}
