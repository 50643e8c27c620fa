package modeltest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/quant"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// A test-only encoder for MLX's float quantization modes (mx.quantize's
// portable fallback in mlx/ops.cpp fp_quantize): per group of the last
// axis, scale = max|w| / (6 for 4 bits, 448 for 8), stored as E8M0
// (2^round(log2 scale), mxfp4/mxfp8) or E4M3 (nvfp4); each w/scale becomes
// the nearest E2M1 (4 bits) or E4M3 (8 bits) code, packed LSB-first into
// uint32 words. Any valid encoding serves the tests, which compare against
// the dequantized weights.

// FPModes are MLX's float modes: group size and bits.
var FPModes = map[string][2]int{"mxfp4": {32, 4}, "nvfp4": {16, 4}, "mxfp8": {32, 8}}

var (
	e2m1Values = [16]float32{0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6}
	e4m3Values [256]float32
)

func init() {
	for c := range e4m3Values {
		e, m := (c>>3)&15, c&7
		v := math.Ldexp(float64(m)/8, -6)
		if e > 0 {
			v = math.Ldexp(1+float64(m)/8, e-7)
		}
		if e == 15 && m == 7 {
			v = math.NaN()
		}
		if c&0x80 != 0 {
			v = -v
		}
		e4m3Values[c] = float32(v)
	}
}

// toE4M3 rounds x to the nearest E4M3 code (ties to the even code),
// saturating at ±448.
func toE4M3(x float32) uint8 {
	sign := uint8(0)
	if x < 0 {
		sign, x = 0x80, -x
	}
	best, bestD := 0, math.Inf(1)
	for c := 0; c <= 0x7e; c++ {
		d := math.Abs(float64(e4m3Values[c]) - float64(x))
		if d < bestD || d == bestD && c%2 == 0 {
			best, bestD = c, d
		}
	}
	return uint8(best) | sign
}

// FPQuantize encodes w [rows, cols] in mode: the packed codes [rows,
// cols·bits/32], the uint8 scales [rows, cols/group] and the dequantized
// values, computed as the engine decodes them (code value × scale in
// float32).
func FPQuantize(w []float32, cols int, mode string) (packed []uint32, scales []uint8, deq []float32) {
	g, bits := FPModes[mode][0], FPModes[mode][1]
	per := 32 / bits
	packed = make([]uint32, len(w)/per)
	scales = make([]uint8, len(w)/g)
	deq = make([]float32, len(w))
	maxval := float32(6)
	if bits == 8 {
		maxval = 448
	}
	for gi := range scales {
		grp := w[gi*g : (gi+1)*g]
		var amax float32
		for _, v := range grp {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		s := amax / maxval
		var sv float32
		if mode == "nvfp4" {
			scales[gi] = toE4M3(s)
			sv = e4m3Values[scales[gi]]
		} else {
			e := 0
			if s != 0 {
				e = int(math.RoundToEven(math.Log2(float64(s))))
			}
			e = min(max(e, -127), 127)
			scales[gi] = uint8(e + 127)
			sv = float32(math.Ldexp(1, e))
		}
		for j, v := range grp {
			var q float32
			if sv != 0 {
				q = v / sv
			}
			var code int
			if bits == 8 {
				code = int(toE4M3(q))
				deq[gi*g+j] = e4m3Values[code] * sv
			} else {
				bestD := math.Inf(1)
				for c, lv := range e2m1Values {
					if d := math.Abs(float64(q - lv)); d < bestD {
						code, bestD = c, d
					}
				}
				deq[gi*g+j] = e2m1Values[code] * sv
			}
			k := gi*g + j
			packed[k/per] |= uint32(code) << (uint(k%per) * uint(bits))
		}
	}
	return packed, scales, deq
}

// FPCheckpoint is a float-quantized copy of a fixture.
type FPCheckpoint struct {
	Dir     string                   // the MLX folder (config.json, model.safetensors, tokenizer)
	Modes   map[string]string        // module path -> its mode
	Deq     map[string]*engine.Array // every tensor, quantized ones dequantized (float32)
	Tensors map[string]*engine.Array // what model.safetensors holds
}

// WriteFPQuantized loads the float32 fixture src and writes it to a new
// temporary folder with every module that plan names quantized in the
// mode plan returns for it ("" keeps it in float; "affine" is 8 bits,
// group 64, mlx_lm's gpt-oss router entry; plan sees every 2-D or 3-D
// ".weight" whose last dim is a multiple of 32). config.json gets
// "quantization" with def's group size, bits and mode and a per-layer
// entry for each module in another mode. extra, if not nil, may edit the
// tensors before they are written (bad-input tests).
func WriteFPQuantized(t *testing.T, src, def string, plan func(path string) string, extra func(map[string]*engine.Array)) *FPCheckpoint {
	t.Helper()
	m, cfg, err := model.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := m.(model.Trainable)
	if !ok {
		t.Fatalf("%s: %T exposes no parameters", src, m)
	}
	ck := &FPCheckpoint{Dir: t.TempDir(), Modes: map[string]string{}, Deq: map[string]*engine.Array{}, Tensors: map[string]*engine.Array{}}
	for _, p := range tr.Parameters() {
		a := *p.Ptr
		path, isW := strings.CutSuffix(p.Name, ".weight")
		mode := ""
		if isW && (a.NDim() == 2 || a.NDim() == 3) && a.DType() == engine.Float32 && a.Dim(-1)%32 == 0 {
			mode = plan(path)
		}
		if mode == "" {
			ck.Tensors[p.Name], ck.Deq[p.Name] = a, a
			continue
		}
		f, err := a.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		shape := a.Shape()
		n := len(shape)
		ck.Modes[path] = mode
		if mode == "affine" {
			// 8 bits, group 64: mlx_lm's gpt-oss router entry
			if shape[n-1]%64 != 0 {
				t.Fatalf("%s: %v does not split into groups of 64", path, shape)
			}
			o := quant.Options{Bits: 8, GroupSize: 64}
			q := make([]uint32, len(f)/4)
			sc, bi, d := make([]float32, len(f)/64), make([]float32, len(f)/64), make([]float32, len(f))
			if err := quant.QuantizeF32(f, shape[n-1], o, q, sc, bi); err != nil {
				t.Fatal(err)
			}
			if err := quant.DequantizeF32(q, sc, bi, shape[n-1], o, d); err != nil {
				t.Fatal(err)
			}
			ss := append(append([]int(nil), shape[:n-1]...), shape[n-1]/64)
			ck.Tensors[p.Name] = engine.FromUint32s(q, append(append([]int(nil), shape[:n-1]...), shape[n-1]/4)...)
			ck.Tensors[path+".scales"] = engine.FromFloat32s(sc, ss...)
			ck.Tensors[path+".biases"] = engine.FromFloat32s(bi, ss...)
			ck.Deq[p.Name] = engine.FromFloat32s(d, shape...)
			continue
		}
		q, s, d := FPQuantize(f, shape[n-1], mode)
		qs := append(append([]int(nil), shape[:n-1]...), shape[n-1]*FPModes[mode][1]/32)
		ss := append(append([]int(nil), shape[:n-1]...), shape[n-1]/FPModes[mode][0])
		ck.Tensors[p.Name] = engine.FromUint32s(q, qs...)
		ck.Tensors[path+".scales"] = engine.FromUint8s(s, ss...)
		ck.Deq[p.Name] = engine.FromFloat32s(d, shape...)
	}
	if extra != nil {
		extra(ck.Tensors)
	}
	qcfg := map[string]any{"group_size": FPModes[def][0], "bits": FPModes[def][1], "mode": def}
	for path, mode := range ck.Modes {
		if mode == "affine" {
			// as mlx_lm writes a quant_predicate's dict: no "mode" key
			qcfg[path] = map[string]any{"group_size": 64, "bits": 8}
			continue
		}
		if mode != def {
			qcfg[path] = map[string]any{"group_size": FPModes[mode][0], "bits": FPModes[mode][1], "mode": mode}
		}
	}
	raw := map[string]any{}
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	raw["quantization"] = qcfg
	writeJSON(t, filepath.Join(ck.Dir, "config.json"), raw)
	copyTokenizer(t, src, ck.Dir)
	WriteSafetensors(t, ck.Dir, ck.Tensors)
	return ck
}

func copyTokenizer(t *testing.T, src, dst string) {
	t.Helper()
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		if b, err := os.ReadFile(filepath.Join(src, name)); err == nil {
			if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// WriteReference writes the dequantized weights as a float32 MLX folder
// with src's config.json and tokenizer, and returns it.
func (ck *FPCheckpoint) WriteReference(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	copyTokenizer(t, src, dir)
	WriteSafetensors(t, dir, ck.Deq)
	return dir
}

// Reference builds src's architecture over the dequantized weights.
func (ck *FPCheckpoint) Reference(t *testing.T, src string, opts ...model.LoadOptions) model.Model {
	t.Helper()
	cfg, err := model.ReadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromTensors(cfg, ck.Deq, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// WriteSafetensors writes tensors as dir/model.safetensors.
func WriteSafetensors(t *testing.T, dir string, tensors map[string]*engine.Array) {
	t.Helper()
	var specs []safetensors.TensorSpec
	for name, a := range tensors {
		specs = append(specs, safetensors.TensorSpec{Name: name, DType: stDType(t, a.DType()), Shape: a.Shape()})
	}
	w, err := safetensors.NewWriter(dir, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range tensors {
		b, err := a.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteTensor(name, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func stDType(t *testing.T, dt engine.DType) safetensors.DType {
	switch dt {
	case engine.Float32:
		return safetensors.F32
	case engine.Uint32:
		return safetensors.U32
	case engine.Uint8:
		return safetensors.U8
	case engine.Float16:
		return safetensors.F16
	case engine.BFloat16:
		return safetensors.BF16
	case engine.Int32:
		return safetensors.I32
	}
	t.Fatalf("no safetensors dtype for %v", dt)
	return ""
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
