package fuse

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// nearestE4M3 is the E4M3 code nearest x >= 0 (ties to the even code),
// by search.
func nearestE4M3(x float32) uint8 {
	best, bestD := 0, math.Inf(1)
	for c := 0; c <= 0x7e; c++ {
		d := math.Abs(float64(quant.FPCodeValue(8, uint32(c))) - float64(x))
		if d < bestD || d == bestD && c%2 == 0 {
			best, bestD = c, d
		}
	}
	return uint8(best)
}

// TestFuseFloatModes: an adapter fused into an mxfp4/nvfp4/mxfp8 base
// (every layer quantized). The adapted layer is the base decoded into
// bfloat16 (as mx.dequantize; the engine's decoder here) plus the change
// cast to bfloat16, re-encoded in the same mode: uint8 scales by MLX's
// rule for the group's max and every value the nearest code at that
// scale, no biases. --dequantize writes those bfloat16 values; the layers
// the adapter does not touch are copied byte for byte, config.json keeps
// the mode, and the fused folder loads and runs.
func TestFuseFloatModes(t *testing.T) {
	for _, mode := range []string{"mxfp4", "nvfp4", "mxfp8"} {
		t.Run(mode, func(t *testing.T) {
			src := modeltest.Dir("llama-f32")
			ck := modeltest.WriteFPQuantized(t, src, mode, func(string) string { return mode }, nil)
			adir, ad := writeAdapter(t, 0.1, 21)
			const path = "model.layers.0.mlp.down_proj" // [64, 96]
			out, in := 64, 96
			g, bits := quant.FPModes[mode][0], quant.FPModes[mode][1]
			deqBase, err := engine.DequantizeMode(ck.Tensors[path+".weight"], ck.Tensors[path+".scales"], nil, g, bits, mode).Float32s()
			must(t, err)
			h := make([]float32, out*in) // the fused weight in bfloat16
			d := make([]float32, out*in)
			a, b := ad[path+".lora_a"], ad[path+".lora_b"]
			kernels.Sgemm(true, true, out, in, 4, b.Data, out, a.Data, 4, d, in, false)
			for k := range h {
				delta := kernels.BF16ToF32(kernels.F32ToBF16(2 * d[k]))
				h[k] = kernels.BF16ToF32(kernels.F32ToBF16(kernels.BF16ToF32(kernels.F32ToBF16(deqBase[k])) + delta))
			}

			res, _ := run(t, Options{Model: ck.Dir, AdapterPath: adir})
			got, err := st.OpenModel(res.Path)
			must(t, err)
			defer got.Close()
			tensor := func(m *st.Model, n string) st.Tensor {
				x, err := m.Tensor(n)
				must(t, err)
				return x
			}
			wt, sc := tensor(got, path+".weight"), tensor(got, path+".scales")
			if sc.DType != st.U8 || got.Has(path+".biases") {
				t.Fatalf("scales %s, biases present %v", sc.DType, got.Has(path+".biases"))
			}
			codes, err := wt.Uint32s()
			must(t, err)
			scales, err := sc.Uint8s()
			must(t, err)
			per := 32 / bits
			maxval := float32(6)
			if bits == 8 {
				maxval = 448
			}
			bad := 0
			for gi := range scales {
				grp := h[gi*g : (gi+1)*g]
				var amax float32
				for _, x := range grp {
					amax = max(amax, float32(math.Abs(float64(x))))
				}
				var want uint8
				if mode == "nvfp4" {
					want = nearestE4M3(amax / maxval)
				} else {
					want = uint8(math.Round(math.Log2(float64(amax/maxval)))) + 127
				}
				if scales[gi] != want && bad < 5 {
					t.Errorf("group %d: scale code %d, want %d (max %g)", gi, scales[gi], want, amax)
					bad++
				}
				s := quant.FPScaleValue(mode, scales[gi])
				for j, x := range grp {
					k := gi*g + j
					c := codes[k/per] >> (uint(k%per) * uint(bits)) & (1<<bits - 1)
					v := quant.FPCodeValue(bits, c) * s
					var cands []float32
					for cc := range uint32(1) << bits {
						cands = append(cands, quant.FPCodeValue(bits, cc))
					}
					dmin := math.Inf(1)
					for _, cv := range cands {
						if cv == cv {
							dmin = math.Min(dmin, math.Abs(float64(cv*s-x)))
						}
					}
					if dv := math.Abs(float64(v - x)); dv > dmin+1e-6*math.Abs(float64(x)) && bad < 5 {
						t.Errorf("[%d] %g encoded as %g, a code at %g is nearer", k, x, v, dmin)
						bad++
					}
				}
			}
			for _, n := range []string{"model.embed_tokens.weight", "model.embed_tokens.scales", "lm_head.weight", "lm_head.scales"} {
				want, err := ck.Tensors[n].Bytes()
				must(t, err)
				if !bytes.Equal(tensor(got, n).Bytes(), want) {
					t.Errorf("%s is not copied unchanged", n)
				}
			}
			q := readConfigMap(t, res.Path)["quantization"].(map[string]any)
			if q["mode"] != mode || q["group_size"] != float64(g) || q["bits"] != float64(bits) {
				t.Errorf("quantization %v", q)
			}
			m, _, err := model.Load(res.Path)
			must(t, err)
			for _, v := range modeltest.Logits(t, m, nil, []int{1, 5, 9}) {
				if v != v {
					t.Fatal("NaN logits")
				}
			}
			got.Close()

			res, _ = run(t, Options{Model: ck.Dir, AdapterPath: adir, Dequantize: true})
			got, err = st.OpenModel(res.Path)
			must(t, err)
			defer got.Close()
			w := tensor(got, path+".weight")
			hb := make([]uint16, len(h))
			for i, x := range h {
				hb[i] = kernels.F32ToBF16(x)
			}
			if w.DType != st.BF16 || !slices.Equal(halves(w.Bytes()), hb) {
				t.Errorf("--dequantize: %s is %s, or not the fused bf16 weight", path, w.DType)
			}
			if _, ok := readConfigMap(t, res.Path)["quantization"]; ok || got.Has(path+".scales") {
				t.Error("--dequantize kept the quantization")
			}
		})
	}
}

// TestFuseFloatModeErrors: --q-bits on a float-mode layer, and a float
// layer with biases, fail in one line naming the layer.
func TestFuseFloatModeErrors(t *testing.T) {
	src := modeltest.Dir("llama-f32")
	adir, _ := writeAdapter(t, 0.1, 3)
	ck := modeltest.WriteFPQuantized(t, src, "mxfp4", func(string) string { return "mxfp4" }, nil)
	if _, err := Fuse(t.Context(), Options{Model: ck.Dir, AdapterPath: adir, SavePath: t.TempDir() + "/f", QBits: 8, Out: &bytes.Buffer{}}); err == nil || !strings.Contains(err.Error(), "quantized in mxfp4") || strings.Contains(err.Error(), "\n") {
		t.Errorf("--q-bits on mxfp4: %v", err)
	}
	const q = "model.layers.0.self_attn.q_proj"
	ck = modeltest.WriteFPQuantized(t, src, "mxfp4", func(string) string { return "mxfp4" }, func(ts map[string]*engine.Array) {
		ts[q+".biases"] = engine.Zeros(ts[q+".scales"].Shape(), engine.Float32)
	})
	if _, err := Fuse(t.Context(), Options{Model: ck.Dir, AdapterPath: adir, SavePath: t.TempDir() + "/f", Out: &bytes.Buffer{}}); err == nil || !strings.Contains(err.Error(), q+".biases") || strings.Contains(err.Error(), "\n") {
		t.Errorf("mxfp4 with biases: %v", err)
	}
}

// TestExportGGUFFloatMode: --export-gguf of a model fused into an mxfp4
// base lists every weight with its unquantized shape and writes the fused
// layer's decoded values.
func TestExportGGUFFloatMode(t *testing.T) {
	ck := modeltest.WriteFPQuantized(t, modeltest.Dir("llama-f32"), "mxfp4", func(string) string { return "mxfp4" }, nil)
	adir, _ := writeAdapter(t, 0.1, 11)
	res, _ := run(t, Options{Model: ck.Dir, AdapterPath: adir, ExportGGUF: true})
	tensors, b, start := ggufTensors(t, res.GGUF)
	if len(tensors) != 21 {
		t.Errorf("%d tensors, want 21", len(tensors))
	}
	m, err := st.OpenModel(res.Path)
	must(t, err)
	defer m.Close()
	wt, err := m.Tensor("model.layers.0.mlp.down_proj.weight")
	must(t, err)
	sc, err := m.Tensor("model.layers.0.mlp.down_proj.scales")
	must(t, err)
	sb, err := sc.Uint8s()
	must(t, err)
	fused, err := fpDequantize(words(wt.Bytes()), sb, 96, fpSettings("mxfp4"))
	must(t, err)
	got := ggufValues(t, tensors["blk.0.ffn_down.weight"], b, start)
	if ti := tensors["blk.0.ffn_down.weight"]; !slices.Equal(ti.Dimensions, []uint64{96, 64}) {
		t.Fatalf("blk.0.ffn_down dims %v", ti.Dimensions)
	}
	for i := range fused {
		if d := math.Abs(float64(got[i] - fused[i])); d > math.Abs(float64(fused[i]))/1024+1e-7 {
			t.Fatalf("blk.0.ffn_down[%d] = %g, fused %g", i, got[i], fused[i])
		}
	}
}

// fpSettings is a float mode's fixed group size and bits.
func fpSettings(mode string) quant.Settings {
	return quant.Settings{GroupSize: quant.FPModes[mode][0], Bits: quant.FPModes[mode][1], Mode: mode}
}
