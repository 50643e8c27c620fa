package model

import (
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
)

// RandomModel builds cfg's architecture with random weights made in memory
// (benchmarks and tests, no files): matrices N(0, 0.02) in dt, norm
// weights 1, biases N(0, 0.02); with cfg.Quantization every linear and
// embedding layer is quantized with random codes, scales ≈ 0.02/2^(bits−1)
// in dt and biases centring the codes, as a real quantized checkpoint is.
func RandomModel(cfg *Config, dt engine.DType, seed uint64, opts ...LoadOptions) (Model, error) {
	if len(opts) > 0 {
		cfg.ComputeDType, cfg.exactQuantized = opts[0].ComputeDType, opts[0].ExactQuantized
	}
	ctor, err := lookup(cfg.ModelType)
	if err != nil {
		return nil, err
	}
	w := NewWeights(map[string]*engine.Array{}, cfg.Quantization)
	w.random = &randomGen{dt: dt, key: engine.NewKey(seed), w: w}
	m, err := construct(cfg, ctor, w)
	if err != nil {
		return nil, err
	}
	var all []*engine.Array
	for _, a := range w.tensors {
		all = append(all, a)
	}
	if err := engine.Eval(all...); err != nil {
		return nil, err
	}
	return m, nil
}

type randomGen struct {
	dt  engine.DType
	key engine.Key
	n   uint64
	w   *Weights
}

func (g *randomGen) next() *engine.Key {
	g.n++
	k := engine.NewKey(uint64(g.key[0])<<32 ^ uint64(g.key[1]) ^ g.n*0x9e3779b97f4a7c15)
	return &k
}

func (g *randomGen) make(name string, shape []int) *engine.Array {
	switch {
	case len(shape) == 1 && strings.HasSuffix(name, ".weight"):
		return engine.Ones(shape, g.dt)
	default:
		return engine.RandomNormal(shape, 0, 0.02, g.dt, g.next())
	}
}

// quantized makes the packed weight (random codes), scales and biases of
// a quantized layer.
func (g *randomGen) quantized(path string, spec QuantSpec, ws, ss []int) {
	if g.w.Has(path + ".weight") {
		return
	}
	if IsFloatMode(spec.Mode) {
		// uint8 scales about 2^-7 (E8M0 codes 118-121; E4M3 codes of
		// 2^-9..2^-6 for nvfp4) and no biases; 8-bit codes are a fixed
		// pattern of ±0.5 and 1 (random bytes would hit E4M3's NaN codes).
		lo, hi := 118.0, 122.0
		if spec.Mode == "nvfp4" {
			lo, hi = 1, 9
		}
		g.w.tensors[path+".scales"] = engine.AsType(engine.RandomUniform(lo, hi, ss, engine.Float32, g.next()), engine.Uint8)
		if spec.Bits == 8 {
			g.w.tensors[path+".weight"] = engine.Full(ws, 0x38B03830, engine.Uint32)
		} else {
			g.w.tensors[path+".weight"] = engine.RandomBits(ws, g.next())
		}
		return
	}
	scale := 0.02 / float64(int(1)<<(spec.Bits-1))
	s := engine.RandomUniform(0.5*scale, 1.5*scale, ss, g.dt, g.next())
	g.w.tensors[path+".weight"] = engine.RandomBits(ws, g.next())
	g.w.tensors[path+".scales"] = s
	g.w.tensors[path+".biases"] = engine.Multiply(s, engine.ScalarOf(-float64(int(1)<<(spec.Bits-1)), g.dt))
}
