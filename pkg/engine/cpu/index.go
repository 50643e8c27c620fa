package cpu

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/kernels"
)

func arange(o backend.Arange, out backend.View) {
	n := out.Size()
	st := out.Strides[0]
	kernels.Parallel(n, 1<<14, func(lo, hi int) {
		var buf [block]float64
		for s := lo; s < hi; s += block {
			x := buf[:min(block, hi-s)]
			for i := range x {
				x[i] = o.Start + float64(s+i)*o.Step
			}
			store(x, out, out.Offset+s*st, st)
		}
	})
}

// idxAt reads one integer index.
func idxAt(v backend.View, off int) int {
	b := bytesOf(v)
	switch v.DType {
	case backend.Int32:
		return int(i32s(b)[off])
	case backend.Uint32:
		return int(u32s(b)[off])
	case backend.Uint8, backend.Bool:
		return int(b[off])
	}
	var x [1]float64
	load(x[:], v, off, 0)
	return int(x[0])
}

func gather(axis int, a, idx, out backend.View) error {
	es := a.DType.Size()
	n := a.Shape[axis]
	astr := slices.Clone(a.Strides)
	astr[axis] = 0
	ab, ob := bytesOf(a), bytesOf(out)
	var bad atomic.Bool
	positions(out.Shape, [][]int{idx.Strides, astr, out.Strides}, []int{idx.Offset, a.Offset, out.Offset}, func(offs []int) {
		i := idxAt(idx, offs[0])
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			bad.Store(true)
			return
		}
		src := (offs[1] + i*a.Strides[axis]) * es
		copy(ob[offs[2]*es:offs[2]*es+es], ab[src:src+es])
	})
	if bad.Load() {
		return fmt.Errorf("cpu: take_along_axis index out of range [0, %d)", n)
	}
	return nil
}

func take(axis int, a, idx, out backend.View) error {
	a = contig(a)
	es := a.DType.Size()
	pre := backend.Prod(a.Shape[:axis])
	n := a.Shape[axis]
	post := backend.Prod(a.Shape[axis+1:]) * es
	ids := toIdx(idx)
	for k, i := range ids {
		if i < 0 {
			i += n
			ids[k] = i
		}
		if i < 0 || i >= n {
			return fmt.Errorf("cpu: take index %d out of range [0, %d)", i, n)
		}
	}
	ab := bytesOf(a)[a.Offset*es:]
	ob := bytesOf(out)[out.Offset*es:]
	m := len(ids)
	for p := 0; p < pre; p++ {
		for j, i := range ids {
			copy(ob[(p*m+j)*post:(p*m+j+1)*post], ab[(p*n+i)*post:(p*n+i+1)*post])
		}
	}
	return nil
}

func scatterAdd(axis int, base, idx, upd, out backend.View) error {
	src := toF32(base)
	acc := make([]float32, len(src))
	copy(acc, src)
	n := base.Shape[axis]
	ostr := backend.RowMajor(base.Shape)
	ostrAx := ostr[axis]
	ostr0 := slices.Clone(ostr)
	ostr0[axis] = 0
	var x [1]float64
	var bad error
	// serial: several updates may hit one element
	serialPositions(idx.Shape, [][]int{idx.Strides, upd.Strides, ostr0}, []int{idx.Offset, upd.Offset, 0}, func(offs []int) {
		i := idxAt(idx, offs[0])
		if i < 0 {
			i += n
		}
		if i < 0 || i >= n {
			bad = fmt.Errorf("cpu: scatter_add index out of range [0, %d)", n)
			return
		}
		load(x[:], upd, offs[1], 0)
		acc[offs[2]+i*ostrAx] += float32(x[0])
	})
	if bad != nil {
		return bad
	}
	fromF32(acc, out)
	return nil
}

// serialPositions is positions without parallelism.
func serialPositions(shape []int, strides [][]int, base []int, fn func(offs []int)) {
	idx := make([]int, len(shape))
	offs := slices.Clone(base)
	total := backend.Prod(shape)
	for c := 0; c < total; c++ {
		fn(offs)
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			for k := range offs {
				offs[k] += strides[k][d]
			}
			if idx[d] < shape[d] {
				break
			}
			for k := range offs {
				offs[k] -= strides[k][d] * shape[d]
			}
			idx[d] = 0
		}
	}
}

// Threefry2x32 is the counter-based generator behind RandomBits (20 rounds).
func Threefry2x32(key [2]uint32, c0, c1 uint32) (uint32, uint32) {
	rot := [8]int{13, 15, 26, 6, 17, 29, 16, 24}
	ks := [3]uint32{key[0], key[1], 0x1BD11BDA ^ key[0] ^ key[1]}
	x0, x1 := c0+ks[0], c1+ks[1]
	for i := 0; i < 5; i++ {
		for r := 0; r < 4; r++ {
			x0 += x1
			x1 = bits.RotateLeft32(x1, rot[(i%2)*4+r])
			x1 ^= x0
		}
		x0 += ks[(i+1)%3]
		x1 += ks[(i+2)%3] + uint32(i+1)
	}
	return x0, x1
}

func randomBits(key [2]uint32, out backend.View) {
	o := u32s(bytesOf(out))[out.Offset : out.Offset+out.Size()]
	for i := range o {
		o[i], _ = Threefry2x32(key, uint32(i), uint32(uint64(i)>>32))
	}
}

// argSort sorts each line along axis (stable, NaN last); kth >= 0 means a
// partition was asked for, which a full sort satisfies.
func argSort(axis, kth int, a, out backend.View) {
	n := a.Shape[axis]
	sa, so := a.Strides[axis], out.Strides[axis]
	lines(a.Shape, axis, [][]int{a.Strides, out.Strides}, []int{a.Offset, out.Offset}, func(offs []int) {
		x := make([]float64, n)
		load(x, a, offs[0], sa)
		ix := make([]int, n)
		for i := range ix {
			ix[i] = i
		}
		sort.SliceStable(ix, func(p, q int) bool {
			u, v := x[ix[p]], x[ix[q]]
			if math.IsNaN(u) {
				return false
			}
			return u < v || math.IsNaN(v)
		})
		for i, j := range ix {
			x[i] = float64(j)
		}
		store(x, out, offs[1], so)
	})
}
