package convert

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

func u32s(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

// sourceArray is a source tensor (F32) as an engine array, cast to dtype.
func sourceArray(t *testing.T, x tensor, dtype engine.DType) *engine.Array {
	t.Helper()
	if x.DType != st.F32 {
		t.Fatalf("source dtype %s, want F32", x.DType)
	}
	return engine.AsType(engine.FromFloat32s(f32s(x.Data), x.Shape...), dtype)
}

// dequantizedFP decodes a converted float-mode layer with the engine's
// own mx.dequantize.
func dequantizedFP(t *testing.T, w, s tensor, mode string) []float32 {
	t.Helper()
	if w.DType != st.U32 || s.DType != st.U8 {
		t.Fatalf("weight %s scales %s, want U32 and U8", w.DType, s.DType)
	}
	d, err := engine.DequantizeMode(engine.FromUint32s(u32s(w.Data), w.Shape...), engine.FromUint8s(s.Data, s.Shape...), nil, 0, 0, mode).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sameBits(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestConvertFloatModes: -q --q-mode mxfp4|nvfp4|mxfp8 on the f32
// fixtures quantizes every Linear and Embedding (the mode's group size
// divides them all) to uint32 codes and uint8 scales without biases; each
// layer decodes (engine.DequantizeMode) bit for bit to what MLX's
// quantize-dequantize gives for the source weight (nn.QuantizeDequantize,
// built from engine ops); the float tensors are copied; config.json is
// mlx_lm's, byte for byte, with the mode's group size, bits and mode; the
// folder loads and its logits equal those of the same architecture over
// the dequantized weights.
func TestConvertFloatModes(t *testing.T) {
	f32 := engine.Float32
	for _, mode := range []string{"mxfp4", "nvfp4", "mxfp8"} {
		for _, fixture := range []string{"llama-f32", "qwen2-f32"} {
			t.Run(mode+"/"+fixture, func(t *testing.T) {
				g, bits := quant.FPModes[mode][0], quant.FPModes[mode][1]
				src := filepath.Join(fixtures, fixture)
				dir, printed, res := run(t, Options{HFPath: src, Quantize: true, Mode: mode})
				if !strings.Contains(printed, "[INFO] Quantizing\n") {
					t.Errorf("printed %q", printed)
				}
				srcTs, ts := readTensors(t, src), readTensors(t, dir)
				deq := map[string]*engine.Array{}
				quantized := 0
				for n, x := range srcTs {
					path, isW := strings.CutSuffix(n, ".weight")
					if !isW || len(x.Shape) != 2 || strings.Contains(path, "norm") {
						if y := ts[n]; y.DType != x.DType || !bytes.Equal(y.Data, x.Data) {
							t.Errorf("%s not copied as is", n)
						}
						deq[n] = engine.FromFloat32s(f32s(x.Data), x.Shape...)
						continue
					}
					quantized++
					w, s := ts[n], ts[path+".scales"]
					if _, ok := ts[path+".biases"]; ok {
						t.Errorf("%s has biases", path)
					}
					rows, cols := x.Shape[0], x.Shape[1]
					if w.Shape[0] != rows || w.Shape[1] != cols*bits/32 || s.Shape[0] != rows || s.Shape[1] != cols/g {
						t.Fatalf("%s: weight %v scales %v for %v", path, w.Shape, s.Shape, x.Shape)
					}
					got := dequantizedFP(t, w, s, mode)
					want, err := nn.QuantizeDequantize(sourceArray(t, x, f32), mode, g, bits).Float32s()
					if err != nil {
						t.Fatal(err)
					}
					if i := sameBits(got, want); i >= 0 {
						t.Fatalf("%s: decodes to %v at %d, MLX's quantize-dequantize gives %v", path, got[i], i, want[i])
					}
					deq[n] = engine.FromFloat32s(got, x.Shape...)
				}
				if quantized == 0 || res.Quantized != quantized {
					t.Errorf("%d layers quantized, result says %d", quantized, res.Quantized)
				}

				// config.json: the golden affine one with the mode's entry
				cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
				if err != nil {
					t.Fatal(err)
				}
				entry := func(gs, b int, m string) string {
					return "{\n        \"group_size\": " + strconv.Itoa(gs) + ",\n        \"bits\": " + strconv.Itoa(b) + ",\n        \"mode\": \"" + m + "\"\n    }"
				}
				if fixture == "llama-f32" {
					gold, err := os.ReadFile("testdata/llama-f32.q4g64.config.json")
					if err != nil {
						t.Fatal(err)
					}
					want := strings.ReplaceAll(string(gold), entry(64, 4, "affine"), entry(g, bits, mode))
					if want == string(gold) || string(cfg) != want {
						t.Errorf("config.json\n%s\nwant\n%s", cfg, want)
					}
				}
				for _, key := range []string{"quantization", "quantization_config"} {
					if !strings.Contains(string(cfg), "\""+key+"\": "+entry(g, bits, mode)+",\n") {
						t.Errorf("config.json has no %s entry %s:\n%s", key, entry(g, bits, mode), cfg)
					}
				}

				cfgRef, err := model.ReadConfig(src)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := model.FromTensors(cfgRef, deq, model.LoadOptions{ComputeDType: &f32})
				if err != nil {
					t.Fatal(err)
				}
				ids := []int{1, 17, 42, 99, 5, 300, 7, 64, 128, 11}
				want := modeltest.Logits(t, ref, nil, ids)
				for _, exact := range []bool{true, false} {
					m, _, err := model.Load(dir, model.LoadOptions{ComputeDType: &f32, ExactQuantized: exact})
					if err != nil {
						t.Fatal(err)
					}
					// the same weights; only the summation order may differ
					if e := modeltest.RelErr(modeltest.Logits(t, m, nil, ids), want); e > 1e-4 {
						t.Errorf("exact=%v: logits rel err %.3g vs the dequantized model", exact, e)
					} else {
						t.Logf("exact=%v: logits rel err %.3g vs the dequantized model", exact, e)
					}
				}
			})
		}
	}
}

// TestConvertFloatModeHalf: with --dtype bfloat16 the weights are cast
// first (as mlx_lm does) and the bfloat16 values encoded; the layout
// check (checkLoadable) and the dtype of the copied tensors follow.
func TestConvertFloatModeHalf(t *testing.T) {
	src := filepath.Join(fixtures, "llama-f32")
	dir, _, _ := run(t, Options{HFPath: src, Quantize: true, Mode: "mxfp8", Dtype: "bfloat16"})
	srcTs, ts := readTensors(t, src), readTensors(t, dir)
	const path = "model.layers.0.self_attn.q_proj"
	got := dequantizedFP(t, ts[path+".weight"], ts[path+".scales"], "mxfp8")
	want, err := engine.AsType(nn.QuantizeDequantize(sourceArray(t, srcTs[path+".weight"], engine.BFloat16), "mxfp8", 32, 8), engine.Float32).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	if i := sameBits(got, want); i >= 0 {
		t.Fatalf("decodes to %v at %d, want %v", got[i], i, want[i])
	}
	if n := ts["model.norm.weight"]; n.DType != st.BF16 {
		t.Errorf("norm %s, want BF16", n.DType)
	}
	if _, _, err := model.Load(dir); err != nil {
		t.Fatal(err)
	}
}

// TestConvertFloatModeRules: mlx_lm's rules around the float modes: a
// mode's own group size and bits only, no mixed recipes, and a model's
// 8-bit router override stays affine (to_quantized's default mode).
func TestConvertFloatModeRules(t *testing.T) {
	llama := filepath.Join(fixtures, "llama-f32")
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{HFPath: llama, Quantize: true, Mode: "mxfp4", GroupSize: 64}, "mxfp4 quantization requires group size 32 but got 64"},
		{Options{HFPath: llama, Quantize: true, Mode: "nvfp4", Bits: 8}, "nvfp4 quantization requires bits to be 4 but got 8"},
		{Options{HFPath: llama, Quantize: true, Mode: "mxfp8", QuantPredicate: "mixed_3_6"}, "quant predicates only support affine"},
		{Options{HFPath: llama, Quantize: true, Mode: "fp4"}, "invalid quantization mode \"fp4\""},
	} {
		c.o.MLXPath = filepath.Join(t.TempDir(), "out")
		_, err := Convert(t.Context(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: error %v, want one line with %q", c.o, err, c.want)
		}
		if _, serr := os.Stat(c.o.MLXPath); serr == nil {
			t.Errorf("%+v: output written", c.o)
		}
	}
	// explicit defaults are accepted
	run(t, Options{HFPath: llama, Quantize: true, Mode: "nvfp4", GroupSize: 16, Bits: 4})
}

// TestConvertFloatModeMoE: gpt_oss in mxfp4 as mlx_lm converts it: the
// experts (SwitchLinear stacks) and attention in mxfp4, the routers at
// mlx_lm's model predicate override (affine, 8 bits, group 64, an entry
// without "mode"); the folder loads and gives the logits of the model
// over its dequantized weights.
func TestConvertFloatModeMoE(t *testing.T) {
	f32 := engine.Float32
	src := filepath.Join(fixtures, "gpt_oss-f32")
	dir, _, _ := run(t, Options{HFPath: src, Quantize: true, Mode: "mxfp4"})
	ts := readTensors(t, dir)
	cfg := map[string]any{}
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	q := cfg["quantization"].(map[string]any)
	deq := map[string]*engine.Array{}
	routers, experts := 0, 0
	for n, x := range ts {
		path, param := strings.TrimSuffix(n, "."+n[strings.LastIndexByte(n, '.')+1:]), n[strings.LastIndexByte(n, '.')+1:]
		if param == "scales" || param == "biases" {
			continue
		}
		s, quantized := ts[path+".scales"]
		switch {
		case !quantized || param != "weight":
			deq[n] = engine.FromFloat32s(f32s(x.Data), x.Shape...)
		case strings.HasSuffix(path, "router"):
			routers++
			if e, _ := q[path].(map[string]any); len(e) != 2 || e["group_size"] != 64.0 || e["bits"] != 8.0 || s.DType != st.F32 {
				t.Errorf("%s: entry %v, scales %s", path, q[path], s.DType)
			}
			b := ts[path+".biases"]
			deq[n] = engine.Dequantize(engine.FromUint32s(u32s(x.Data), x.Shape...), engine.FromFloat32s(f32s(s.Data), s.Shape...), engine.FromFloat32s(f32s(b.Data), b.Shape...), 64, 8)
		default:
			if strings.Contains(path, "experts") {
				experts++
			}
			if _, ok := q[path]; ok {
				t.Errorf("%s has an entry %v", path, q[path])
			}
			deq[n] = engine.FromFloat32s(dequantizedFP(t, x, s, "mxfp4"), append(append([]int(nil), x.Shape[:len(x.Shape)-1]...), x.Shape[len(x.Shape)-1]*8)...)
		}
	}
	if routers == 0 || experts == 0 || q["mode"] != "mxfp4" {
		t.Fatalf("%d routers, %d expert stacks quantized, quantization %v", routers, experts, q)
	}
	mcfg, err := model.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	mcfg.Quantization = nil
	ref, err := model.FromTensors(mcfg, deq, model.LoadOptions{ComputeDType: &f32})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := model.Load(dir, model.LoadOptions{ComputeDType: &f32, ExactQuantized: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 17, 42, 99, 5, 300, 7, 64, 128, 11}
	if e := modeltest.RelErr(modeltest.Logits(t, m, nil, ids), modeltest.Logits(t, ref, nil, ids)); e > 1e-4 {
		t.Errorf("logits rel err %.3g vs the dequantized model", e)
	}
}

// TestDequantizeFloatModes: -d of a float-mode folder writes each layer
// as mx.dequantize does for these modes: bfloat16 values of code × scale;
// the other tensors keep their dtype, the quantization entries go, and
// the folder loads. gpt_oss's affine 8-bit routers come back in their
// scales' dtype (F32).
func TestDequantizeFloatModes(t *testing.T) {
	for _, c := range []struct{ fixture, mode string }{{"llama-f32", "mxfp4"}, {"llama-f32", "nvfp4"}, {"llama-f32", "mxfp8"}, {"gpt_oss-f32", "mxfp4"}} {
		t.Run(c.mode+"/"+c.fixture, func(t *testing.T) {
			q, _, _ := run(t, Options{HFPath: filepath.Join(fixtures, c.fixture), Quantize: true, Mode: c.mode})
			d, _, res := run(t, Options{HFPath: q, Dequantize: true})
			qs, ds := readTensors(t, q), readTensors(t, d)
			n := 0
			for name, x := range qs {
				path, isW := strings.CutSuffix(name, ".weight")
				s, quantized := qs[path+".scales"]
				switch {
				case strings.HasSuffix(name, ".scales") || strings.HasSuffix(name, ".biases"):
					if _, ok := ds[name]; ok {
						t.Errorf("%s kept", name)
					}
				case isW && quantized && s.DType == st.U8:
					n++
					y := ds[name]
					want := dequantizedFP(t, x, s, c.mode)
					if y.DType != st.BF16 || y.Shape[len(y.Shape)-1] != x.Shape[len(x.Shape)-1]*32/quant.FPModes[c.mode][1] {
						t.Fatalf("%s: %s %v", name, y.DType, y.Shape)
					}
					for i, h := range u16s(y.Data) {
						if h != bf16(want[i]) {
							t.Fatalf("%s[%d] = bf16 %#04x, want %v", name, i, h, want[i])
						}
					}
				case isW && quantized:
					if y := ds[name]; y.DType != s.DType {
						t.Errorf("affine %s: %s, want its scales' %s", name, y.DType, s.DType)
					}
				default:
					if y := ds[name]; y.DType != x.DType || !bytes.Equal(y.Data, x.Data) {
						t.Errorf("%s not copied as is", name)
					}
				}
			}
			if n == 0 || res.Dequantized < n {
				t.Errorf("%d float-mode layers, %d dequantized", n, res.Dequantized)
			}
			cfg := map[string]any{}
			readJSON(t, filepath.Join(d, "config.json"), &cfg)
			if _, ok := cfg["quantization"]; ok {
				t.Error("quantization kept")
			}
			if _, _, err := model.Load(d); err != nil {
				t.Fatal(err)
			}
		})
	}
}
