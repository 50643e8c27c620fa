// Package cpu is the engine's reference backend: pure Go, parallel over rows
// with kernels.Parallel, matrix products through pkg/kernels. It is the
// default backend and the oracle other backends are tested against.
//
// Floating-point inputs of any width are computed in float32 or wider and
// rounded to the output dtype once, as MLX does for bfloat16 and float16.
// Elementwise ops and reductions work on float64 blocks, which is exact for
// the integer dtypes and gives correctly rounded float32 results for
// add/sub/mul/div/sqrt.
package cpu

import (
	"fmt"
	"math/bits"
	"sync"
	"unsafe"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// Buffer is host memory. Pool buffers have a bucketed capacity; wrapped ones
// alias caller memory (a memory-mapped file) and are never pooled.
type Buffer struct {
	b       []byte
	n       int // requested bytes
	wrapped bool
	mapped  bool // b is an anonymous mapping (hostAlloc), unmapped when dropped
}

// Len returns the requested size in bytes.
func (b *Buffer) Len() int { return b.n }

// Bytes returns the buffer's bytes.
func (b *Buffer) Bytes() []byte { return b.b[:b.n] }

// Backend is the cpu backend. Its zero value is not usable; call New.
type Backend struct {
	mu     sync.Mutex
	free   map[int][]*Buffer // bucket size -> free buffers
	active int64
	peak   int64
	cached int64
	limit  int64 // cache cap; < 0: none
}

// New returns a cpu backend with an empty pool and no cache limit.
func New() *Backend { return &Backend{free: map[int][]*Buffer{}, limit: -1} }

// Name returns "cpu".
func (c *Backend) Name() string { return "cpu" }

// bucket rounds n up to its pool size class: powers of two up to 4 KiB,
// then four classes per octave (at most 25% slack) up to 1 MiB, then 32
// (at most 3% slack, in whole 64 KiB units): large buffers are mostly
// weights and caches that live long, where a quarter of slack would be
// memory held for nothing, while the activations of a step repeat their
// sizes exactly and still find their class in the pool.
func bucket(n int) int {
	if n <= 64 {
		return 64
	}
	if n <= 4096 {
		return 1 << bits.Len(uint(n-1))
	}
	top := 1 << (bits.Len(uint(n-1)) - 1) // largest power of two < n
	step := top / 4
	if n > 1<<20 {
		step = top / 32
	}
	return (n + step - 1) / step * step
}

// Alloc returns a buffer of n bytes from the pool, or a new one.
func (c *Backend) Alloc(n int) (backend.Buffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("cpu: alloc of %d bytes", n)
	}
	size := bucket(n)
	c.mu.Lock()
	var buf *Buffer
	if l := c.free[size]; len(l) > 0 {
		buf = l[len(l)-1]
		c.free[size] = l[:len(l)-1]
		c.cached -= int64(size)
	}
	c.active += int64(size)
	if c.active > c.peak {
		c.peak = c.active
	}
	c.mu.Unlock()
	if buf == nil && size >= mapMin {
		if b, ok := hostAlloc(size); ok {
			buf = &Buffer{b: b, mapped: true}
		}
	}
	if buf == nil {
		// []uint64 backing keeps every buffer 8-byte aligned.
		words := make([]uint64, size/8)
		buf = &Buffer{b: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), size)}
	}
	buf.n = n
	return buf, nil
}

// Free returns a pool buffer to the pool; wrapped buffers are dropped.
func (c *Backend) Free(b backend.Buffer) {
	buf, ok := b.(*Buffer)
	if !ok || buf.wrapped {
		return
	}
	size := len(buf.b)
	c.mu.Lock()
	c.active -= int64(size)
	if c.limit < 0 || c.cached+int64(size) <= c.limit {
		c.free[size] = append(c.free[size], buf)
		c.cached += int64(size)
		buf = nil
	}
	c.mu.Unlock()
	if buf != nil {
		buf.drop()
	}
}

// scratchF32 returns a float32 work buffer of length n (undefined
// contents) and the function that gives it back: large ones come from the
// pool (finer size classes than getF32's powers of two, outside the Go
// heap, counted in the memory statistics), small ones from getF32.
func (c *Backend) scratchF32(n int) ([]float32, func()) {
	if 4*n < mapMin {
		s := getF32(n)
		return s, func() { putF32(s) }
	}
	b, err := c.Alloc(4 * n)
	if err != nil {
		s := make([]float32, n)
		return s, func() {}
	}
	return f32s(b.(*Buffer).Bytes()), func() { c.Free(b) }
}

// mapMin is the size from which pool buffers are anonymous mappings
// outside the Go heap (where the platform has them): weights made in
// memory and large activations then do not count towards the garbage
// collector's heap goal, which would otherwise let garbage grow to the
// size of the weights before a collection (peak RSS near twice the model).
const mapMin = 64 << 10

// drop gives a buffer that left the pool back to the system: a mapping is
// unmapped at once, Go memory is left to the collector.
func (b *Buffer) drop() {
	if b.mapped {
		hostFree(b.b)
		b.b, b.mapped = nil, false
	}
}

// SetCacheLimit caps the pool (negative: no cap) and trims it to the cap.
func (c *Backend) SetCacheLimit(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = n
	if n < 0 {
		return
	}
	for size, l := range c.free {
		for len(l) > 0 && c.cached > n {
			l[len(l)-1].drop()
			l = l[:len(l)-1]
			c.cached -= int64(size)
		}
		c.free[size] = l
	}
}

// WrapHost uses b in place when it is 4-byte aligned (enough for every
// dtype the engine reads from it).
func (c *Backend) WrapHost(b []byte) (backend.Buffer, bool) {
	if len(b) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 != 0 {
		return nil, false
	}
	return &Buffer{b: b, n: len(b), wrapped: true}, true
}

// CopyIn writes src at byte offset off of dst.
func (c *Backend) CopyIn(dst backend.Buffer, off int, src []byte) error {
	d := dst.(*Buffer)
	if off < 0 || off+len(src) > d.n {
		return fmt.Errorf("cpu: copy in of %d bytes at %d overflows a %d-byte buffer", len(src), off, d.n)
	}
	copy(d.b[off:], src)
	return nil
}

// CopyOut reads len(dst) bytes from byte offset off of src.
func (c *Backend) CopyOut(dst []byte, src backend.Buffer, off int) error {
	s := src.(*Buffer)
	if off < 0 || off+len(dst) > s.n {
		return fmt.Errorf("cpu: copy out of %d bytes at %d overflows a %d-byte buffer", len(dst), off, s.n)
	}
	copy(dst, s.b[off:off+len(dst)])
	return nil
}

// ActiveMemory returns the bytes in pool-allocated buffers now in use.
func (c *Backend) ActiveMemory() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.active }

// PeakMemory returns the high-water mark of ActiveMemory.
func (c *Backend) PeakMemory() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.peak }

// ResetPeakMemory sets the peak to the current active memory.
func (c *Backend) ResetPeakMemory() { c.mu.Lock(); c.peak = c.active; c.mu.Unlock() }

// CacheMemory returns the bytes held in the pool.
func (c *Backend) CacheMemory() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.cached }

// ClearCache drops the pool's free buffers.
func (c *Backend) ClearCache() {
	c.mu.Lock()
	for _, l := range c.free {
		for _, b := range l {
			b.drop()
		}
	}
	c.free = map[int][]*Buffer{}
	c.cached = 0
	c.mu.Unlock()
}

// Run computes one primitive.
func (c *Backend) Run(op backend.Op, in []backend.View, out backend.View) error {
	switch o := op.(type) {
	case backend.Copy:
		copyCast(in[0], out)
	case backend.Unary:
		unary(o.Op, in[0], out)
	case backend.Binary:
		binary(o.Op, in[0], in[1], out)
	case backend.Where:
		where(in[0], in[1], in[2], out)
	case backend.Reduce:
		reduce(o.Op, o.Axes, in[0], out)
	case backend.ArgReduce:
		argReduce(o.Op, o.Axis, in[0], out)
	case backend.Scan:
		scan(o, in[0], out)
	case backend.Matmul:
		matmul(in[0], in[1], out)
	case backend.Arange:
		arange(o, out)
	case backend.Gather:
		return gather(o.Axis, in[0], in[1], out)
	case backend.Take:
		return take(o.Axis, in[0], in[1], out)
	case backend.ScatterAdd:
		return scatterAdd(o.Axis, in[0], in[1], in[2], out)
	case backend.RandomBits:
		randomBits(o.Key, out)
	case backend.ArgSort:
		argSort(o.Axis, -1, in[0], out)
	case backend.ArgPartition:
		argSort(o.Axis, o.Kth, in[0], out)
	case backend.QuantizedMatmul:
		return c.quantizedMatmul(o, in[0], in[1], in[2], in[3], out)
	case backend.GatherQMM:
		return gatherQMM(o, in[0], in[1], in[2], in[3], in[4], in[5], out)
	case backend.GatherMM:
		return gatherMM(in[0], in[1], in[2], in[3], out)
	case backend.Dequantize:
		return dequantize(o.Quant, in[0], in[1], in[2], out)
	default:
		return fmt.Errorf("cpu: %s: %w", op.OpName(), backend.ErrUnsupported)
	}
	return nil
}

// typed slices over a buffer

func bytesOf(v backend.View) []byte { return v.Buf.(*Buffer).b }

func f32s(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
func u16s(b []byte) []uint16 {
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}
func i32s(b []byte) []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
func u32s(b []byte) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

func unsafeBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
}

func unsafeBytesU64(w []uint64) []byte {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 8*len(w))
}

var (
	_ backend.Backend         = (*Backend)(nil)
	_ backend.HostWrapper     = (*Backend)(nil)
	_ backend.MemoryStats     = (*Backend)(nil)
	_ backend.FusedAttention  = (*Backend)(nil)
	_ backend.FusedNorm       = (*Backend)(nil)
	_ backend.FusedRoPE       = (*Backend)(nil)
	_ backend.FusedSoftmax    = (*Backend)(nil)
	_ backend.FusedActivation = (*Backend)(nil)
)

func init() {
	backend.Register("cpu", func() (backend.Backend, error) { return New(), nil })
}

// Wrapped reports whether the buffer aliases caller memory (WrapHost).
func (b *Buffer) Wrapped() bool { return b.wrapped }
