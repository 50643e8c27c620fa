package engine

import (
	"math"
	"slices"
	"sync"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/engine/cpu"
)

// Key is a random key (threefry2x32), like mx.random.key. Random ops are
// pure functions of their key, so a graph recomputes identically.
type Key [2]uint32

// NewKey returns the key for a seed.
func NewKey(seed uint64) Key { return Key{uint32(seed >> 32), uint32(seed)} }

// Split derives n independent keys.
func (k Key) Split(n int) []Key {
	out := make([]Key, n)
	for i := range out {
		a, _ := cpu.Threefry2x32(k, uint32(i), 0)
		b, _ := cpu.Threefry2x32(k, uint32(i), 1)
		out[i] = Key{a, b}
	}
	return out
}

var (
	rngMu  sync.Mutex
	rngKey = NewKey(uint64(0))
)

// Seed resets the global key that random ops use when given a nil key.
func Seed(seed uint64) {
	rngMu.Lock()
	rngKey = NewKey(seed)
	rngMu.Unlock()
}

// nextKey splits the global key.
func nextKey(k *Key) Key {
	if k != nil {
		return *k
	}
	rngMu.Lock()
	defer rngMu.Unlock()
	ks := rngKey.Split(2)
	rngKey = ks[0]
	return ks[1]
}

type randomBitsPrim struct{ key Key }

func (randomBitsPrim) name() string { return "RandomBits" }
func (p randomBitsPrim) eval(out *Array, _ []*Array) error {
	return run(backend.RandomBits{Key: p.key}, out)
}
func (randomBitsPrim) vjp(*Array, []*Array, *Array) []*Array { return nil }

// RandomBits returns uint32 random bits.
func RandomBits(shape []int, key *Key) *Array {
	return newNode(Uint32, slices.Clone(shape), randomBitsPrim{nextKey(key)})
}

// unit returns floats in (0, 1) from 24 random bits: (b>>8 + 0.5)·2⁻²⁴.
func unit(shape []int, key *Key) *Array {
	b := FloorDivide(RandomBits(shape, key), ScalarOf(256, Uint32))
	return Multiply(Add(AsType(b, Float32), Scalar(0.5)), Scalar(1.0/(1<<24)))
}

// RandomUniform samples [low, high) uniformly (nil key: the global one).
func RandomUniform(low, high float64, shape []int, dt DType, key *Key) *Array {
	u := unit(shape, key)
	return AsType(Add(Multiply(u, Scalar(high-low)), Scalar(low)), dt)
}

// RandomNormal samples N(mean, std²) as √2·erfinv(2u − 1).
func RandomNormal(shape []int, mean, std float64, dt DType, key *Key) *Array {
	u := Subtract(Multiply(unit(shape, key), Scalar(2)), Scalar(1))
	z := Multiply(ErfInv(u), Scalar(math.Sqrt2*std))
	return AsType(Add(z, Scalar(mean)), dt)
}

// RandomBernoulli returns bool samples that are true with probability p.
func RandomBernoulli(p float64, shape []int, key *Key) *Array {
	return Less(unit(shape, key), Scalar(p))
}

// RandomCategorical samples uint32 indices along axis from unnormalised
// log-probabilities (Gumbel-max, as mx.random.categorical).
func RandomCategorical(logits *Array, axis int, key *Key) *Array {
	if e := bad(logits); e != nil {
		return e
	}
	g := Negative(Log(Negative(Log(unit(logits.shape, key)))))
	return ArgMax(Add(compute32(logits), g), axis, false)
}
