package engine

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// DType is an element type (see the constants below).
type DType = backend.DType

// Element types.
const (
	Float32  = backend.Float32
	Float16  = backend.Float16
	BFloat16 = backend.BFloat16
	Int32    = backend.Int32
	Uint32   = backend.Uint32
	Uint8    = backend.Uint8
	Bool     = backend.Bool
)

// Array is a node of the computation graph: a dtype and a shape, and either
// data (once evaluated) or a primitive with its inputs. Arrays are
// immutable; ops return new arrays. An Array that failed to build carries
// its error (Err), which every op built on it passes on and Eval returns.
type Array struct {
	dtype DType
	shape []int
	weak  bool // a Go constant: adopts the other operand's dtype
	err   error

	// evaluated state
	st      *storage
	strides []int
	offset  int

	// graph state
	prim   primitive
	inputs []*Array

	// Eval bookkeeping, guarded by evalMu and zero outside Eval
	mark  uint8 // 1 visiting, 2 scheduled in this Eval
	isOut bool  // passed to this Eval
	uses  int32 // consumers still to run in this Eval
}

// storage is a buffer shared by the evaluated arrays that view it.
type storage struct {
	raw  *rawBuf
	refs int // evaluated arrays holding it; guarded by evalMu
}

// rawBuf is what the cleanup of an unreachable storage frees; it never
// points back at the storage.
type rawBuf struct {
	b        backend.Backend
	buf      backend.Buffer
	released atomic.Bool
}

func (r *rawBuf) release() {
	if !r.released.Swap(true) {
		r.b.Free(r.buf)
	}
}

func newStorage(b backend.Backend, buf backend.Buffer) *storage {
	raw := &rawBuf{b: b, buf: buf}
	st := &storage{raw: raw}
	runtime.AddCleanup(st, func(r *rawBuf) { r.release() }, raw)
	return st
}

// Errorf returns an array that carries an error.
func Errorf(format string, args ...any) *Array {
	return &Array{err: fmt.Errorf(format, args...)}
}

func errArray(err error) *Array { return &Array{err: err} }

// Err returns the error the array carries, or nil.
func (a *Array) Err() error {
	if a == nil {
		return errors.New("engine: nil array")
	}
	return a.err
}

// DType returns the element type.
func (a *Array) DType() DType { return a.dtype }

// Shape returns the dims (do not modify).
func (a *Array) Shape() []int { return a.shape }

// NDim returns the rank.
func (a *Array) NDim() int { return len(a.shape) }

// Dim returns dim i; negative i counts from the end.
//
// An array that carries an error (or a nil array) has no dims: Dim returns
// 0 for it, so model code can keep building on it and the error surfaces at
// Eval instead of as a panic. An axis out of range on a real array is a
// programming error and still panics.
func (a *Array) Dim(i int) int {
	if a == nil || a.err != nil {
		return 0
	}
	if i < 0 {
		i += len(a.shape)
	}
	return a.shape[i]
}

// Size returns the element count.
func (a *Array) Size() int { return backend.Prod(a.shape) }

// NBytes returns Size times the element size.
func (a *Array) NBytes() int { return a.Size() * a.dtype.Size() }

// Evaluated reports whether the array holds data.
func (a *Array) Evaluated() bool { return a.st != nil }

func (a *Array) String() string {
	if a.err != nil {
		return "Array(error: " + a.err.Error() + ")"
	}
	return fmt.Sprintf("Array(%v, %s)", a.shape, a.dtype)
}

func (a *Array) view() backend.View {
	return backend.View{Buf: a.st.raw.buf, DType: a.dtype, Shape: a.shape, Strides: a.strides, Offset: a.offset}
}

// newNode builds an unevaluated array.
func newNode(dt DType, shape []int, p primitive, in ...*Array) *Array {
	return &Array{dtype: dt, shape: shape, prim: p, inputs: in}
}

// firstErr returns the first error among arrays (nil arrays count).
func firstErr(arrs ...*Array) error {
	for _, a := range arrs {
		if a == nil {
			return errors.New("engine: nil array")
		}
		if a.err != nil {
			return a.err
		}
	}
	return nil
}

// leaf wraps a fresh buffer as an evaluated array.
func leaf(dt DType, shape []int, st *storage) *Array {
	st.refs++
	return &Array{dtype: dt, shape: shape, st: st, strides: backend.RowMajor(shape)}
}

func checkShape(shape []int, n int, what string) error {
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("engine: %s: negative dim in shape %v", what, shape)
		}
	}
	if backend.Prod(shape) != n {
		return fmt.Errorf("engine: %s: %d elements do not fill shape %v", what, n, shape)
	}
	return nil
}

// fromRaw copies raw bytes into a new evaluated array.
func fromRaw(dt DType, shape []int, raw []byte) *Array {
	evalMu.Lock()
	defer evalMu.Unlock()
	b := defaultBackend
	buf, err := b.Alloc(len(raw))
	if err != nil {
		return errArray(fmt.Errorf("engine: alloc %d bytes: %w", len(raw), err))
	}
	if err := b.CopyIn(buf, 0, raw); err != nil {
		b.Free(buf)
		return errArray(err)
	}
	return leaf(dt, slices.Clone(shape), newStorage(b, buf))
}

func sliceBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(z)))
}

// FromFloat32s copies data into a float32 array of the given shape.
func FromFloat32s(data []float32, shape ...int) *Array {
	if err := checkShape(shape, len(data), "FromFloat32s"); err != nil {
		return errArray(err)
	}
	return fromRaw(Float32, shape, sliceBytes(data))
}

// FromFloat64s rounds data to float32 (MLX's default float type).
func FromFloat64s(data []float64, shape ...int) *Array {
	f := make([]float32, len(data))
	for i, v := range data {
		f[i] = float32(v)
	}
	return FromFloat32s(f, shape...)
}

// FromInt32s copies data into an int32 array.
func FromInt32s(data []int32, shape ...int) *Array {
	if err := checkShape(shape, len(data), "FromInt32s"); err != nil {
		return errArray(err)
	}
	return fromRaw(Int32, shape, sliceBytes(data))
}

// FromUint32s copies data into a uint32 array.
func FromUint32s(data []uint32, shape ...int) *Array {
	if err := checkShape(shape, len(data), "FromUint32s"); err != nil {
		return errArray(err)
	}
	return fromRaw(Uint32, shape, sliceBytes(data))
}

// FromUint8s copies data into a uint8 array.
func FromUint8s(data []uint8, shape ...int) *Array {
	if err := checkShape(shape, len(data), "FromUint8s"); err != nil {
		return errArray(err)
	}
	return fromRaw(Uint8, shape, data)
}

// FromBools copies data into a bool array.
func FromBools(data []bool, shape ...int) *Array {
	if err := checkShape(shape, len(data), "FromBools"); err != nil {
		return errArray(err)
	}
	b := make([]byte, len(data))
	for i, v := range data {
		if v {
			b[i] = 1
		}
	}
	return fromRaw(Bool, shape, b)
}

// FromHalfs copies raw bfloat16 or float16 bits into an array of dtype dt.
func FromHalfs(data []uint16, dt DType, shape ...int) *Array {
	if dt != BFloat16 && dt != Float16 {
		return Errorf("engine: FromHalfs: dtype %s is not a half type", dt)
	}
	if err := checkShape(shape, len(data), "FromHalfs"); err != nil {
		return errArray(err)
	}
	return fromRaw(dt, shape, sliceBytes(data))
}

// FromBytes makes an array over raw little-endian bytes, without copying
// when the backend can use host memory in place (the cpu backend, for
// 4-byte aligned data such as a memory-mapped safetensors tensor). The
// bytes must stay valid and unmodified while the array is in use.
func FromBytes(dt DType, shape []int, raw []byte) *Array {
	for _, d := range shape {
		if d < 0 {
			return Errorf("engine: FromBytes: negative dim in shape %v", shape)
		}
	}
	if need := backend.Prod(shape) * dt.Size(); need != len(raw) {
		return Errorf("engine: FromBytes: %s%v needs %d bytes, got %d", dt, shape, need, len(raw))
	}
	evalMu.Lock()
	b := defaultBackend
	if hw, ok := b.(backend.HostWrapper); ok {
		if buf, ok := hw.WrapHost(raw); ok {
			st := newStorage(b, buf)
			n := int64(len(raw))
			mappedBytes.Add(n)
			runtime.AddCleanup(st, func(n int64) { mappedBytes.Add(-n) }, n)
			a := leaf(dt, slices.Clone(shape), st)
			evalMu.Unlock()
			return a
		}
	}
	evalMu.Unlock()
	return fromRaw(dt, shape, raw)
}

// mappedBytes counts host memory used in place by live FromBytes arrays.
var mappedBytes atomic.Int64

// MappedMemory returns the bytes of caller memory (memory-mapped weights)
// that live arrays use in place. The allocator's ActiveMemory and
// PeakMemory do not include them; mlx_lm's "Peak memory" includes the
// weights, so add this to compare.
func MappedMemory() int64 { return mappedBytes.Load() }

// Scalar returns a weakly typed float32 scalar: in a binary op it takes the
// other operand's dtype, like a Python float in MLX.
func Scalar(v float64) *Array {
	a := scalarRaw(v, Float32)
	a.weak = true
	return a
}

// ScalarOf returns a 0-d array of dtype dt holding v (rounded/truncated).
func ScalarOf(v float64, dt DType) *Array {
	return scalarRaw(v, dt)
}

func scalarRaw(v float64, dt DType) *Array {
	return newNode(dt, nil, fillPrim{v: v})
}

// readAll evaluates a and returns its elements as contiguous bytes of
// dtype dt (converted when different).
func (a *Array) readAll(dt DType) ([]byte, error) {
	out := make([]byte, a.Size()*dt.Size())
	return out, a.readInto(dt, out)
}

// readInto is readAll into out (len(out) = a.Size()·dt.Size()).
func (a *Array) readInto(dt DType, out []byte) error {
	if err := Eval(a); err != nil {
		return err
	}
	evalMu.Lock()
	defer evalMu.Unlock()
	b := a.st.raw.b
	v := a.view()
	n := len(out)
	if n == 0 {
		return nil
	}
	if dt == a.dtype && v.Contiguous() {
		return b.CopyOut(out, v.Buf, v.Offset*dt.Size())
	}
	buf, err := b.Alloc(n)
	if err != nil {
		return err
	}
	defer b.Free(buf)
	dst := backend.View{Buf: buf, DType: dt, Shape: a.shape, Strides: backend.RowMajor(a.shape)}
	if err := b.Run(backend.Copy{}, []backend.View{v}, dst); err != nil {
		return err
	}
	return b.CopyOut(out, buf, 0)
}

func bytesTo[T any](b []byte) []T {
	var z T
	n := len(b) / int(unsafe.Sizeof(z))
	out := make([]T, n)
	copy(sliceBytes(out), b)
	return out
}

// Float32s evaluates a and returns its elements as float32, row-major.
// Float32sInto is Float32s into dst's array when it is large enough (a
// new one otherwise); it returns the filled slice.
func (a *Array) Float32sInto(dst []float32) ([]float32, error) {
	if err := a.Err(); err != nil {
		return nil, err
	}
	n := a.Size()
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	if err := a.readInto(Float32, sliceBytes(dst)); err != nil {
		return nil, err
	}
	return dst, nil
}

func (a *Array) Float32s() ([]float32, error) {
	if err := a.Err(); err != nil {
		return nil, err
	}
	out := make([]float32, a.Size())
	if err := a.readInto(Float32, sliceBytes(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// Float64s is Float32s widened to float64.
func (a *Array) Float64s() ([]float64, error) {
	f, err := a.Float32s()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out, nil
}

// Int32s evaluates a and returns its elements as int32.
func (a *Array) Int32s() ([]int32, error) {
	b, err := a.readAll(Int32)
	if err != nil {
		return nil, err
	}
	return bytesTo[int32](b), nil
}

// Uint32s evaluates a and returns its elements as uint32.
func (a *Array) Uint32s() ([]uint32, error) {
	b, err := a.readAll(Uint32)
	if err != nil {
		return nil, err
	}
	return bytesTo[uint32](b), nil
}

// Bools evaluates a and returns its elements as bools.
func (a *Array) Bools() ([]bool, error) {
	b, err := a.readAll(Bool)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(b))
	for i, v := range b {
		out[i] = v != 0
	}
	return out, nil
}

// Bytes evaluates a and returns its raw contiguous bytes in its own dtype.
func (a *Array) Bytes() ([]byte, error) { return a.readAll(a.dtype) }

// Item returns the single element of a as float64.
func (a *Array) Item() (float64, error) {
	if a == nil {
		return 0, errors.New("engine: nil array")
	}
	if a.err == nil && a.Size() != 1 {
		return 0, fmt.Errorf("engine: Item of an array of shape %v", a.shape)
	}
	f, err := a.Float32s()
	if err != nil {
		return 0, err
	}
	if a.dtype == Int32 || a.dtype == Uint32 {
		i, err := a.Int32s()
		if err != nil {
			return 0, err
		}
		if a.dtype == Uint32 {
			return float64(uint32(i[0])), nil
		}
		return float64(i[0]), nil
	}
	return float64(f[0]), nil
}

// Format prints up to n elements, for debugging.
func (a *Array) Format(n int) string {
	f, err := a.Float32s()
	if err != nil {
		return "error: " + err.Error()
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s%v [", a.dtype, a.shape)
	for i, v := range f {
		if i == n {
			sb.WriteString(" ...")
			break
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		if math.Abs(float64(v)) < 1e4 {
			fmt.Fprintf(&sb, "%.5g", v)
		} else {
			fmt.Fprintf(&sb, "%g", v)
		}
	}
	sb.WriteByte(']')
	return sb.String()
}

// bad returns a when it carries an error, an error array when it is nil,
// and nil when it is usable.
func bad(a *Array) *Array {
	if a == nil {
		return errArray(errors.New("engine: nil array"))
	}
	if a.err != nil {
		return a
	}
	return nil
}
