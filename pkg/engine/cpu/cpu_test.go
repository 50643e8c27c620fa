package cpu

import (
	"math"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
)

// Known-answer vectors from Random123's kat_vectors (threefry2x32, 20 rounds).
func TestThreefryKAT(t *testing.T) {
	cases := []struct{ c0, c1, k0, k1, w0, w1 uint32 }{
		{0, 0, 0, 0, 0x6b200159, 0x99ba4efe},
		{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x1cb996fc, 0xbb002be7},
		{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xc4923a9c, 0x483df7a0},
	}
	for _, c := range cases {
		a, b := Threefry2x32([2]uint32{c.k0, c.k1}, c.c0, c.c1)
		if a != c.w0 || b != c.w1 {
			t.Errorf("threefry(%08x %08x, key %08x %08x) = %08x %08x, want %08x %08x", c.c0, c.c1, c.k0, c.k1, a, b, c.w0, c.w1)
		}
	}
}

func TestPool(t *testing.T) {
	for _, n := range []int{1, 64, 65, 4096, 4097, 5000, 1 << 20, 1<<20 + 1, 68067328, 3 << 30} {
		b := bucket(n)
		if b < n || (n > 64 && b > n+n/4+64) || (n > 1<<20 && b > n+n/32) {
			t.Errorf("bucket(%d) = %d", n, b)
		}
	}
	c := New()
	x, _ := c.Alloc(1000)
	y, _ := c.Alloc(3000)
	if c.ActiveMemory() != int64(bucket(1000)+bucket(3000)) {
		t.Errorf("active %d", c.ActiveMemory())
	}
	c.Free(x)
	z, _ := c.Alloc(900) // same bucket: reused
	if z.(*Buffer) != x.(*Buffer) || z.Len() != 900 {
		t.Error("pool did not reuse a freed buffer of the same bucket")
	}
	c.Free(y)
	c.Free(z)
	if c.ActiveMemory() != 0 || c.PeakMemory() != int64(bucket(1000)+bucket(3000)) || c.CacheMemory() == 0 {
		t.Errorf("active %d peak %d cache %d", c.ActiveMemory(), c.PeakMemory(), c.CacheMemory())
	}
	c.ClearCache()
	if c.CacheMemory() != 0 {
		t.Error("ClearCache kept buffers")
	}
	c.SetCacheLimit(int64(bucket(3000)))
	p, _ := c.Alloc(3000)
	q, _ := c.Alloc(3000)
	c.Free(p)
	c.Free(q) // over the cap: dropped
	if c.CacheMemory() != int64(bucket(3000)) || c.ActiveMemory() != 0 {
		t.Errorf("with a cap: cache %d active %d", c.CacheMemory(), c.ActiveMemory())
	}
	c.SetCacheLimit(0)
	if c.CacheMemory() != 0 {
		t.Error("SetCacheLimit(0) kept buffers")
	}
	if err := c.Run(unknownOp{}, nil, backend.View{}); err == nil {
		t.Error("unknown op did not fail")
	}
}

type unknownOp struct{}

func (unknownOp) OpName() string { return "Unknown" }

func TestExpf(t *testing.T) {
	worst := 0.0
	for x := -87.0; x <= 88.0; x += 0.0137 {
		xf := float32(x)
		want := math.Exp(float64(xf))
		got := float64(expf(xf))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 3e-7 {
		t.Errorf("expf max relative error %g", worst)
	}
	if expf(float32(math.Inf(-1))) != 0 || expf(-100) != 0 || !math.IsInf(float64(expf(100)), 1) {
		t.Error("expf limits wrong")
	}
}

// The AVX-512 sigmoid and the Go one agree with float64 to a few ulp on
// every length (masked tails), at the clamps, and both pass NaN through.
func TestSigmoid32(t *testing.T) {
	for _, n := range []int{1, 5, 16, 17, 31, 100, 1029} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*1.7)) * 30
		}
		x[0] = -100
		if n > 2 {
			x[1], x[2] = 100, 0
		}
		for _, fast := range []bool{true, false} {
			saved := useKernels
			useKernels = fast
			y := make([]float32, n)
			sigmoid32(y, x)
			useKernels = saved
			for i, v := range x {
				want := 1 / (1 + math.Exp(-float64(v)))
				if d := math.Abs(float64(y[i]) - want); d > 4e-7*want+1e-38 {
					t.Fatalf("n=%d fast=%v: sigmoid(%g) = %g, want %g", n, fast, v, y[i], want)
				}
			}
		}
	}
	nan := []float32{float32(math.NaN()), 1}
	sigmoid32(nan, nan)
	if !math.IsNaN(float64(nan[0])) {
		t.Errorf("sigmoid(NaN) = %g", nan[0])
	}
}

// The AVX-512 dot and axpy match the Go loops (to float32 summation error)
// on every length, masked tails included.
func TestDotAxpy(t *testing.T) {
	for _, n := range []int{1, 7, 16, 31, 32, 33, 64, 100} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(math.Sin(float64(i))), float32(math.Cos(float64(3*i)))
		}
		var want float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		if got := dot32(a, b); math.Abs(float64(got)-want) > 1e-5 {
			t.Errorf("dot32 n=%d = %g, want %g", n, got, want)
		}
		y, ref := make([]float32, n+1), make([]float32, n+1)
		y[n], ref[n] = 7, 7 // past the end: untouched
		for _, fast := range []bool{true, false} {
			copy(y, b)
			if !fast || !axpyFast(y[:n], 0.5, a) {
				axpyF32(y[:n], 0.5, a)
			}
			for i := range n {
				ref[i] = b[i] + 0.5*a[i]
			}
			for i := range y {
				if math.Abs(float64(y[i]-ref[i])) > 1e-6 {
					t.Fatalf("axpy n=%d fast=%v: y[%d] = %g, want %g", n, fast, i, y[i], ref[i])
				}
			}
		}
	}
}

// Large pool buffers live outside the Go heap where the platform allows:
// usable in full, reused from the pool, and unmapped when the pool drops
// them (ClearCache, a cache limit).
func TestPoolLargeBuffers(t *testing.T) {
	c := New()
	b, err := c.Alloc(3 * mapMin / 2)
	if err != nil {
		t.Fatal(err)
	}
	buf := b.(*Buffer)
	bs := buf.Bytes()
	for i := range bs {
		bs[i] = byte(i)
	}
	if bs[len(bs)-1] != byte(len(bs)-1) || len(bs) != 3*mapMin/2 {
		t.Fatalf("large buffer not usable: len %d", len(bs))
	}
	c.Free(b)
	b2, _ := c.Alloc(3 * mapMin / 2)
	if b2.(*Buffer) != buf {
		t.Error("a freed large buffer was not reused")
	}
	c.Free(b2)
	c.ClearCache()
	if c.CacheMemory() != 0 || buf.mapped {
		t.Errorf("ClearCache kept a mapping: cache %d, mapped %v", c.CacheMemory(), buf.mapped)
	}
	// a cache limit below the buffer: dropped on Free
	c.SetCacheLimit(0)
	b3, _ := c.Alloc(2 * mapMin)
	c.Free(b3)
	if c.CacheMemory() != 0 || b3.(*Buffer).mapped {
		t.Errorf("a buffer over the cache limit was kept: cache %d", c.CacheMemory())
	}
}

// The AVX-512 exp(x − m) of the softmax loops matches float64 on every
// length and gives exactly 0 for −inf and far-negative inputs, like expf.
func TestExpSub(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 100} {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(math.Sin(float64(i))) * 20
		}
		s[0] = float32(math.Inf(-1))
		if n > 1 {
			s[1] = -200
		}
		want := make([]float64, n)
		var wsum float64
		for i, v := range s {
			want[i] = math.Exp(float64(v) - 3)
			wsum += want[i]
		}
		got := append([]float32(nil), s...)
		sum, ok := expSubFast(got, 3)
		if !ok {
			t.Skip("no AVX-512 here")
		}
		if got[0] != 0 || (n > 1 && got[1] != 0) {
			t.Errorf("n=%d: exp(-inf), exp(-203) = %g, %g, want 0", n, got[0], got[min(1, n-1)])
		}
		for i := range got {
			// x − m is rounded to float32 first: e^x's relative error grows by |x − m|·2⁻²⁴
			if tol := (4e-7 + math.Abs(float64(s[i])-3)*6e-8) * want[i]; math.Abs(float64(got[i])-want[i]) > tol+1e-30 {
				t.Fatalf("n=%d: exp(%g-3) = %g, want %g", n, s[i], got[i], want[i])
			}
		}
		if math.Abs(float64(sum)-wsum) > 1e-5*wsum {
			t.Errorf("n=%d: sum %g, want %g", n, sum, wsum)
		}
	}
}

// dotRows and axpyRows (the attention kernels for several query rows of
// one key or value row) match the scalar loops, strides included.
func TestDotAxpyRows(t *testing.T) {
	const rows, d, ldq, lds = 7, 48, 53, 5
	q, k := make([]float32, rows*ldq), make([]float32, d)
	for i := range q {
		q[i] = float32(math.Sin(float64(i)))
	}
	for i := range k {
		k[i] = float32(math.Cos(float64(2 * i)))
	}
	s := make([]float32, rows*lds)
	if !dotRowsFast(q, ldq, rows, k, d, s, lds) {
		t.Skip("no AVX-512 here")
	}
	for r := 0; r < rows; r++ {
		var want float64
		for i := 0; i < d; i++ {
			want += float64(q[r*ldq+i]) * float64(k[i])
		}
		if math.Abs(float64(s[r*lds])-want) > 1e-5 {
			t.Errorf("dotRows row %d = %g, want %g", r, s[r*lds], want)
		}
		for j := 1; j < lds; j++ {
			if s[r*lds+j] != 0 {
				t.Errorf("dotRows wrote s[%d]", r*lds+j)
			}
		}
	}
	o := make([]float32, rows*ldq)
	copy(o, q)
	if !axpyRowsFast(o, ldq, rows, s, lds, k, d) {
		t.Fatal("axpyRowsFast unavailable after dotRowsFast ran")
	}
	for r := 0; r < rows; r++ {
		for i := 0; i < ldq; i++ {
			want := q[r*ldq+i]
			if i < d {
				want += s[r*lds] * k[i]
			}
			if math.Abs(float64(o[r*ldq+i]-want)) > 1e-6 {
				t.Fatalf("axpyRows o[%d][%d] = %g, want %g", r, i, o[r*ldq+i], want)
			}
		}
	}
	if dotRowsFast(q, ldq, rows, k, 40, s, lds) || axpyRowsFast(o, ldq, rows, s, lds, k, 40) {
		t.Error("a width not a multiple of 16 took the assembly")
	}
}
