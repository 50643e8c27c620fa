package fuse

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	parser "github.com/gpustack/gguf-parser-go"

	"github.com/mlxgo/mlxgo/pkg/gguf"
	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

func testdata(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", "testdata"}, parts...)...)
}

// run fuses into a fresh folder and returns the result and the printed lines.
func run(t *testing.T, o Options) (*Result, string) {
	t.Helper()
	var out bytes.Buffer
	o.Out = &out
	if o.SavePath == "" {
		o.SavePath = filepath.Join(t.TempDir(), "fused")
	}
	res, err := Fuse(context.Background(), o)
	if err != nil {
		t.Fatalf("fuse: %v\n%s", err, out.String())
	}
	return res, out.String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// logitsAt runs the model folder dir on the reference's input and returns
// the logits at the reference positions.
func logitsAt(t *testing.T, dir string, ref *modeltest.Reference) []float32 {
	t.Helper()
	m, _, err := model.Load(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	all := modeltest.Logits(t, m, nil, ref.InputIDs)
	var out []float32
	for _, p := range ref.LogitsPositions {
		out = append(out, all[p*ref.V:(p+1)*ref.V]...)
	}
	return out
}

func maxAbs(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// referenceLogits reads testdata/lora/<kind>/reference.safetensors.
func referenceLogits(t *testing.T, kind string) []float32 {
	t.Helper()
	f, err := st.Open(testdata("lora", kind, "reference.safetensors"))
	must(t, err)
	defer f.Close()
	x, err := f.Tensor("logits")
	must(t, err)
	v, err := x.Float32s()
	must(t, err)
	return append([]float32(nil), v...)
}

// TestFuseFloatMatchesAdapterLogits: the fused llama-f32 loads and gives
// the adapted model's reference logits (HF transformers with the adapter
// applied as a separate branch): LoRA, DoRA, and the PEFT adapter.
func TestFuseFloatMatchesAdapterLogits(t *testing.T) {
	ref, err := modeltest.ReadReference(testdata("models", "llama-f32"))
	must(t, err)
	base := logitsAt(t, testdata("models", "llama-f32"), ref)
	baseErr := maxAbs(base, ref.Logits)
	for _, kind := range []string{"lora", "dora", "peft"} {
		t.Run(kind, func(t *testing.T) {
			res, _ := run(t, Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", kind)})
			if res.Merged != 14 {
				t.Errorf("merged %d modules, want 14", res.Merged)
			}
			want := referenceLogits(t, kind)
			got := logitsAt(t, res.Path, ref)
			d := maxAbs(got, want)
			t.Logf("%s: max |fused − reference| = %.3g (base model vs its reference: %.3g; adapter moves logits by %.3g)", kind, d, baseErr, maxAbs(want, ref.Logits))
			if d > 1e-5 {
				t.Errorf("%s: fused logits differ from the adapter reference by %.3g > 1e-5", kind, d)
			}
		})
	}
}

// modules are the seven projections of both llama blocks.
func modules() []string {
	var out []string
	for _, l := range []string{"0", "1"} {
		for _, m := range []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"} {
			out = append(out, "model.layers."+l+"."+m)
		}
	}
	return out
}

// weightShapes reads the [out, in] shapes of the float llama fixture.
func weightShapes(t *testing.T) map[string][]int {
	t.Helper()
	m, err := st.OpenModel(testdata("models", "llama-f32"))
	must(t, err)
	defer m.Close()
	out := map[string][]int{}
	for _, n := range m.Names() {
		info, _, _ := m.Info(n)
		out[n] = info.Shape
	}
	return out
}

// writeAdapter writes an mlx_lm LoRA adapter folder for the llama fixture
// with lora_a ~ U(±1/√in) (mlx_lm's init) and lora_b ~ N(0, bStd).
func writeAdapter(t *testing.T, bStd float64, seed uint64) (string, map[string]lora.Tensor) {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(seed, 1))
	shapes := weightShapes(t)
	const rank = 4
	tensors := map[string]lora.Tensor{}
	for _, p := range modules() {
		s := shapes[p+".weight"]
		out, in := s[0], s[1]
		a := lora.Tensor{Shape: []int{in, rank}, Data: make([]float32, in*rank)}
		b := lora.Tensor{Shape: []int{rank, out}, Data: make([]float32, rank*out)}
		bound := 1 / math.Sqrt(float64(in))
		for i := range a.Data {
			a.Data[i] = float32((2*r.Float64() - 1) * bound)
		}
		for i := range b.Data {
			b.Data[i] = float32(r.NormFloat64() * bStd)
		}
		tensors[p+".lora_a"], tensors[p+".lora_b"] = a, b
	}
	must(t, lora.SaveTensors(filepath.Join(dir, lora.AdapterFile), tensors))
	cfg := `{"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": {"rank": 4, "dropout": 0.0, "scale": 2.0}}`
	must(t, os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644))
	return dir, tensors
}

// addDelta adds scale·bᵀ·aᵀ to w [out, in] in float32 for a = lora_a
// [in, r], b = lora_b [r, out]: the product as one float32 matmul
// (kernels.Sgemm, as MLX computes it with a matmul), scaled, added.
func addDelta(w []float32, out, in int, a, b lora.Tensor, scale float32) {
	r := a.Shape[1]
	d := make([]float32, out*in)
	kernels.Sgemm(true, true, out, in, r, b.Data, out, a.Data, r, d, in, false)
	for i := range w {
		w[i] += scale * d[i]
	}
}

// layer reads a quantized layer's weight, scales and biases (F32) from dir.
type qlayer struct {
	q    []uint32
	s, b []float32
}

func readQ(t *testing.T, m *st.Model, path string) qlayer {
	t.Helper()
	get := func(n string) st.Tensor {
		x, err := m.Tensor(n)
		must(t, err)
		return x
	}
	q, err := get(path + ".weight").Uint32s()
	must(t, err)
	s, err := get(path + ".scales").Float32s()
	must(t, err)
	b, err := get(path + ".biases").Float32s()
	must(t, err)
	return qlayer{append([]uint32(nil), q...), append([]float32(nil), s...), append([]float32(nil), b...)}
}

func deq(t *testing.T, l qlayer, cols, bits int) []float32 {
	t.Helper()
	out := make([]float32, len(l.q)*32/bits)
	must(t, quant.DequantizeF32(l.q, l.s, l.b, cols, quant.Options{Bits: bits, GroupSize: 32}, out))
	return out
}

func enc(t *testing.T, w []float32, cols, bits int) qlayer {
	t.Helper()
	o := quant.Options{Bits: bits, GroupSize: 32}
	ng := len(w) / 32
	l := qlayer{make([]uint32, len(w)*bits/32), make([]float32, ng), make([]float32, ng)}
	must(t, quant.QuantizeF32(w, cols, o, l.q, l.s, l.b))
	return l
}

func sameQ(a, b qlayer) bool {
	return slices.Equal(a.q, b.q) && bytes.Equal(st.AsBytes(a.s), st.AsBytes(b.s)) && bytes.Equal(st.AsBytes(a.b), st.AsBytes(b.b))
}

func readConfigMap(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return m
}

// TestFuseQuantizedBitExact: on the 4-bit llama, every adapted layer is
// bit-identical to dequantize → W + scale·bᵀaᵀ → quantize at 4 bits, group
// 32 (pkg/quant, MLX's encoder); every other tensor is copied unchanged;
// the config keeps its quantization entry; the folder loads.
func TestFuseQuantizedBitExact(t *testing.T) {
	adir, ad := writeAdapter(t, 0.1, 7)
	res, out := run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: adir})
	base, err := st.OpenModel(testdata("models", "llama-q4"))
	must(t, err)
	defer base.Close()
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	shapes := weightShapes(t)
	adapted := map[string]bool{}
	for _, p := range modules() {
		adapted[p] = true
		s := shapes[p+".weight"]
		w := deq(t, readQ(t, base, p), s[1], 4)
		addDelta(w, s[0], s[1], ad[p+".lora_a"], ad[p+".lora_b"], 2)
		if want := enc(t, w, s[1], 4); !sameQ(readQ(t, got, p), want) {
			t.Errorf("%s: fused quantized layer differs from dequantize-merge-quantize", p)
		}
	}
	if !slices.Equal(got.Names(), base.Names()) {
		t.Fatalf("tensors %v, want %v", got.Names(), base.Names())
	}
	for _, n := range base.Names() {
		if p, _ := mlxdir.SplitParam(n); adapted[p] {
			continue
		}
		x, _ := base.Tensor(n)
		y, _ := got.Tensor(n)
		if !bytes.Equal(x.Bytes(), y.Bytes()) {
			t.Errorf("%s changed", n)
		}
	}
	cfg := readConfigMap(t, res.Path)
	want := map[string]any{"group_size": 32.0, "bits": 4.0, "mode": "affine"}
	if !mapsEqual(cfg["quantization"], want) || !mapsEqual(cfg["quantization_config"], want) {
		t.Errorf("quantization %v / %v, want %v", cfg["quantization"], cfg["quantization_config"], want)
	}
	if len(res.Layers) != 14 || len(res.Lost) != 0 || strings.Contains(out, "WARNING") || !strings.Contains(out, "[INFO] Re-quantized 14 adapted layers (4 bits, group size 32)") {
		t.Errorf("survival report: %d layers, %d lost; output:\n%s", len(res.Layers), len(res.Lost), out)
	}
	t.Logf("output:\n%s", out)
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "README.md"} {
		if !slices.Contains(res.Files, f) {
			t.Errorf("output lacks %s (has %v)", f, res.Files)
		}
	}
	if _, _, err := model.Load(res.Path); err != nil {
		t.Errorf("fused quantized model does not load: %v", err)
	}
}

func mapsEqual(a any, b map[string]any) bool {
	m, ok := a.(map[string]any)
	if !ok || len(m) != len(b) {
		return false
	}
	for k, v := range b {
		if m[k] != v {
			return false
		}
	}
	return true
}

// TestLostAdapterWarning: a tiny adapter on the 4-bit base is rounded away
// (the dequantized base sits on the grid, and changes below half a step
// leave every code as it was): one warning line names the worst layers
// and suggests --dequantize and more bits. With --dequantize the same
// adapter is kept and no warning is printed.
func TestLostAdapterWarning(t *testing.T) {
	adir, _ := writeAdapter(t, 1e-4, 3)
	res, out := run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: adir})
	if len(res.Lost) != 14 {
		t.Errorf("%d layers flagged, want all 14: %+v", len(res.Lost), res.Layers)
	}
	for _, l := range res.Layers {
		if l.Kept != 0 || !(l.Error > 1) || !(l.DeltaNorm > 0) {
			t.Errorf("%s keeps %.3f (error %.3g) of a change of norm %.3g, want 0", l.Path, l.Kept, l.Error, l.DeltaNorm)
		}
	}
	if n := strings.Count(out, "[WARNING]"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, out)
	}
	for _, want := range []string{"14 of 14 adapted layers keep less than 50%", res.Lost[0].Path, "--dequantize", "--q-bits 8", "4 bits, group size 32"} {
		if !strings.Contains(out, want) {
			t.Errorf("warning lacks %q:\n%s", want, out)
		}
	}
	t.Logf("output:\n%s", out)
	_, out = run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: adir, Dequantize: true})
	if strings.Contains(out, "WARNING") {
		t.Errorf("warning with --dequantize:\n%s", out)
	}
}

// ggufTensors parses a GGUF file with the independent parser and returns
// its tensors by name, with the file's bytes and data offset.
func ggufTensors(t *testing.T, path string) (map[string]parser.GGUFTensorInfo, []byte, int) {
	t.Helper()
	f, err := parser.ParseGGUFFile(path)
	if err != nil {
		t.Fatalf("gguf-parser-go: %v", err)
	}
	b, err := os.ReadFile(path)
	must(t, err)
	m := map[string]parser.GGUFTensorInfo{}
	for _, ti := range f.TensorInfos {
		m[ti.Name] = ti
	}
	return m, b, int(f.TensorDataStartOffset)
}

func ggufValues(t *testing.T, ti parser.GGUFTensorInfo, b []byte, start int) []float32 {
	t.Helper()
	n := 1
	for _, d := range ti.Dimensions {
		n *= int(d)
	}
	x, err := gguf.Decode(gguf.Type(ti.Type), b[start+int(ti.Offset):], n)
	must(t, err)
	return x
}

func readF32(t *testing.T, dir, name string) []float32 {
	t.Helper()
	m, err := st.OpenModel(dir)
	must(t, err)
	defer m.Close()
	x, err := m.Tensor(name)
	must(t, err)
	v, err := x.Float32s()
	must(t, err)
	return append([]float32(nil), v...)
}

// TestExportGGUF: --export-gguf writes the GGUF inside the fused folder,
// readable by gguf-parser-go with the tensor table of the base's own
// export (21 tensors for the 2-block llama); ffn_down (not permuted)
// holds the fused values within F16 rounding. A quantized fused model is
// exported from its dequantized layers.
func TestExportGGUF(t *testing.T) {
	baseGGUF := filepath.Join(t.TempDir(), "base.gguf")
	must(t, gguf.ExportDir(baseGGUF, testdata("models", "llama-f32"), gguf.F16))
	baseTensors, _, _ := ggufTensors(t, baseGGUF)
	if len(baseTensors) != 21 {
		t.Fatalf("base export has %d tensors, want 21", len(baseTensors))
	}
	for _, c := range []struct {
		name, model, adapter string
		quantized            bool
	}{{"f32", "llama-f32", "", false}, {"q4", "llama-q4", "", true}} {
		t.Run(c.name, func(t *testing.T) {
			adir, _ := writeAdapter(t, 0.1, 11)
			res, _ := run(t, Options{Model: testdata("models", c.model), AdapterPath: adir, ExportGGUF: true})
			want := filepath.Join(res.Path, "ggml-model-f16.gguf")
			if res.GGUF != want || !slices.Contains(res.Files, "ggml-model-f16.gguf") {
				t.Fatalf("GGUF at %q, files %v; want %s", res.GGUF, res.Files, want)
			}
			tensors, b, start := ggufTensors(t, want)
			if len(tensors) != len(baseTensors) {
				t.Errorf("%d tensors, want %d", len(tensors), len(baseTensors))
			}
			for n, ti := range baseTensors {
				g, ok := tensors[n]
				if !ok || !slices.Equal(g.Dimensions, ti.Dimensions) {
					t.Errorf("tensor %s: %v, want dims %v", n, g.Dimensions, ti.Dimensions)
				}
			}
			var fused []float32
			if c.quantized {
				m, err := st.OpenModel(res.Path)
				must(t, err)
				fused = deq(t, readQ(t, m, "model.layers.0.mlp.down_proj"), 96, 4)
				m.Close()
			} else {
				fused = readF32(t, res.Path, "model.layers.0.mlp.down_proj.weight")
			}
			got := ggufValues(t, tensors["blk.0.ffn_down.weight"], b, start)
			for i := range fused {
				if d := math.Abs(float64(got[i] - fused[i])); d > math.Abs(float64(fused[i]))/1024+1e-7 {
					t.Fatalf("blk.0.ffn_down[%d] = %g, fused %g", i, got[i], fused[i])
				}
			}
		})
	}
}

// emptyAfter checks that a failed fuse left nothing in parent.
func emptyAfter(t *testing.T, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	must(t, err)
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("failed fuse left %v in %s", names, parent)
	}
}

// TestBadInput: one clear error and nothing written for an adapter of
// another model, a folder without adapter_config.json, and a GGUF export
// of an architecture pkg/gguf does not write.
func TestBadInput(t *testing.T) {
	empty := t.TempDir()
	for _, c := range []struct {
		name string
		o    Options
		want []string
	}{
		{"other model", Options{Model: testdata("lora", "full", "model"), AdapterPath: testdata("lora", "lora")},
			[]string{"model.layers.0.self_attn.q_proj.lora_a", "[64 4]", "another model"}},
		{"no adapter config", Options{Model: testdata("models", "llama-f32"), AdapterPath: empty},
			[]string{"adapter_config.json"}},
		{"gguf architecture", Options{Model: testdata("models", "phi3-f32"), AdapterPath: testdata("lora", "lora"), ExportGGUF: true},
			[]string{`model type "phi3" is not supported for GGUF export`, "llama"}},
		{"q-bits on a float base", Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", "lora"), QBits: 8},
			[]string{"not quantized", "convert -q"}},
		{"save path is the model", Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", "lora"), SavePath: testdata("models")},
			[]string{"holds the input"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			if c.o.SavePath == "" {
				c.o.SavePath = filepath.Join(parent, "out", "fused")
			}
			_, err := Fuse(context.Background(), c.o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("multi-line error %q", err)
			}
			t.Logf("%v", err)
			emptyAfter(t, parent)
		})
	}
}

// TestQBits: --q-bits 8 re-quantizes every quantized layer of the 4-bit
// base at 8 bits (adapted layers from W + ΔW, the others from their
// dequantized values, bit-exact with pkg/quant), writes one 8-bit
// quantization entry, and keeps an adapter that 4 bits would lose.
func TestQBits(t *testing.T) {
	adir, ad := writeAdapter(t, 0.01, 5)
	res4, out4 := run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: adir})
	if len(res4.Lost) == 0 || !strings.Contains(out4, "[WARNING]") {
		t.Errorf("4 bits: no warning for a change of a tenth of a step:\n%s", out4)
	}
	res, out := run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: adir, QBits: 8})
	if len(res.Lost) != 0 || strings.Contains(out, "WARNING") || !strings.Contains(out, "(8 bits, group size 32)") {
		t.Errorf("8 bits: %d layers lost:\n%s", len(res.Lost), out)
	}
	base, err := st.OpenModel(testdata("models", "llama-q4"))
	must(t, err)
	defer base.Close()
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	shapes := weightShapes(t)
	quantized := 0
	for _, n := range base.Names() {
		path, param := mlxdir.SplitParam(n)
		if param != "scales" {
			continue
		}
		quantized++
		s := shapes[path+".weight"]
		w := deq(t, readQ(t, base, path), s[1], 4)
		if _, ok := ad[path+".lora_a"]; ok {
			addDelta(w, s[0], s[1], ad[path+".lora_a"], ad[path+".lora_b"], 2)
		}
		if !sameQ(readQ(t, got, path), enc(t, w, s[1], 8)) {
			t.Errorf("%s: not the 8-bit encoding of its (fused) dequantized weight", path)
		}
	}
	if quantized != 16 || res.Requantized != 2 || res.Merged != 14 {
		t.Errorf("%d quantized layers, %d re-quantized without adapter, %d merged; want 16, 2, 14", quantized, res.Requantized, res.Merged)
	}
	cfg := readConfigMap(t, res.Path)
	want := map[string]any{"group_size": 32.0, "bits": 8.0, "mode": "affine"}
	if !mapsEqual(cfg["quantization"], want) || !mapsEqual(cfg["quantization_config"], want) {
		t.Errorf("quantization %v / %v, want %v", cfg["quantization"], cfg["quantization_config"], want)
	}
	if _, _, err := model.Load(res.Path); err != nil {
		t.Errorf("8-bit fused model does not load: %v", err)
	}
}

// TestDequantize: --dequantize writes every layer in float (the adapted
// ones W + ΔW, the others their dequantized values, exactly), drops
// quantization and quantization_config, and the folder loads.
func TestDequantize(t *testing.T) {
	adir, ad := writeAdapter(t, 0.1, 9)
	res, _ := run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: adir, Dequantize: true})
	base, err := st.OpenModel(testdata("models", "llama-q4"))
	must(t, err)
	defer base.Close()
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	shapes := weightShapes(t)
	for _, n := range got.Names() {
		info, _, _ := got.Info(n)
		if info.DType != st.F32 {
			t.Errorf("%s is %s", n, info.DType)
		}
		if !slices.Equal(info.Shape, shapes[n]) {
			t.Errorf("%s has shape %v, want %v", n, info.Shape, shapes[n])
		}
		path, _ := mlxdir.SplitParam(n)
		if !base.Has(path + ".scales") {
			continue
		}
		s := shapes[n]
		w := deq(t, readQ(t, base, path), s[1], 4)
		if _, ok := ad[path+".lora_a"]; ok {
			addDelta(w, s[0], s[1], ad[path+".lora_a"], ad[path+".lora_b"], 2)
		}
		if !slices.Equal(readF32(t, res.Path, n), w) {
			t.Errorf("%s: not the dequantized (fused) weight", n)
		}
	}
	if len(got.Names()) != len(shapes) || res.Dequantized != 2 {
		t.Errorf("%d tensors (want %d), %d dequantized without adapter (want 2)", len(got.Names()), len(shapes), res.Dequantized)
	}
	cfg := readConfigMap(t, res.Path)
	if _, ok := cfg["quantization"]; ok {
		t.Error("config keeps quantization")
	}
	if _, ok := cfg["quantization_config"]; ok {
		t.Error("config keeps quantization_config")
	}
	if _, _, err := model.Load(res.Path); err != nil {
		t.Errorf("dequantized fused model does not load: %v", err)
	}
}

// TestFullFineTune: a full fine-tune's tensors replace the base's (a
// float norm and Linear as they are; a quantized Linear re-quantized at
// the base's width), everything else is copied.
func TestFullFineTune(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	tensors := map[string]lora.Tensor{}
	shapes := weightShapes(t)
	for _, n := range []string{"model.norm.weight", "model.layers.1.mlp.down_proj.weight"} {
		v := make([]float32, numel(shapes[n]))
		for i := range v {
			v[i] = float32(r.NormFloat64() * 0.1)
		}
		tensors[n] = lora.Tensor{Shape: shapes[n], Data: v}
	}
	must(t, lora.SaveTensors(filepath.Join(dir, lora.AdapterFile), tensors))
	must(t, os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(`{"fine_tune_type": "full", "num_layers": 2}`), 0o644))

	res, _ := run(t, Options{Model: testdata("models", "llama-f32"), AdapterPath: dir})
	for n, want := range tensors {
		if !slices.Equal(readF32(t, res.Path, n), want.Data) {
			t.Errorf("f32: %s not replaced", n)
		}
	}
	if !slices.Equal(readF32(t, res.Path, "model.layers.0.mlp.down_proj.weight"), readF32(t, testdata("models", "llama-f32"), "model.layers.0.mlp.down_proj.weight")) {
		t.Error("f32: an untouched weight changed")
	}
	res, _ = run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: dir})
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	want := enc(t, tensors["model.layers.1.mlp.down_proj.weight"].Data, 96, 4)
	if !sameQ(readQ(t, got, "model.layers.1.mlp.down_proj"), want) {
		t.Error("q4: the replaced quantized layer is not the 4-bit encoding of the replacement")
	}
	if !slices.Equal(readF32(t, res.Path, "model.norm.weight"), tensors["model.norm.weight"].Data) {
		t.Error("q4: model.norm.weight not replaced")
	}
}

// TestSavePathReplaced: as mlx_lm, fuse may write over an earlier fused
// model; mlxgo swaps the folder whole at the end, so no file of the old
// one is left.
func TestSavePathReplaced(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "fused")
	run(t, Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", "lora"), SavePath: dst, ExportGGUF: true})
	res, _ := run(t, Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", "dora"), SavePath: dst})
	if slices.Contains(res.Files, "ggml-model-f16.gguf") {
		t.Errorf("old GGUF left in the replaced folder: %v", res.Files)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 1 {
		t.Errorf("parent holds %d entries, want only the fused folder", len(entries))
	}
	other := t.TempDir()
	must(t, os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644))
	if _, err := Fuse(context.Background(), Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", "lora"), SavePath: other}); err == nil || !strings.Contains(err.Error(), "does not hold a model") {
		t.Errorf("a folder that is not a model was not refused: %v", err)
	}
}
