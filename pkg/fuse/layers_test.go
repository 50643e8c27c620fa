package fuse

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/convert"
	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

func randTensor(r *rand.Rand, std float64, shape ...int) lora.Tensor {
	t := lora.Tensor{Shape: shape, Data: make([]float32, numel(shape))}
	for i := range t.Data {
		t.Data[i] = float32(r.NormFloat64() * std)
	}
	return t
}

func saveAdapter(t *testing.T, tensors map[string]lora.Tensor, kind string) string {
	t.Helper()
	dir := t.TempDir()
	must(t, lora.SaveTensors(filepath.Join(dir, lora.AdapterFile), tensors))
	cfg := `{"fine_tune_type": "` + kind + `", "num_layers": 2, "lora_parameters": {"rank": 4, "dropout": 0.0, "scale": 2.0}}`
	must(t, os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644))
	return dir
}

// TestFuseMoEQuantized: a LoRA on a 4-bit MoE expert stack (mixtral,
// converted from the per-expert HF layout by convert -q) is fused per
// expert, W[e] + scale·b[e]·a[e], bit-exact with dequantize-merge-quantize;
// its survival is measured in each expert's adapter subspace.
func TestFuseMoEQuantized(t *testing.T) {
	q4 := filepath.Join(t.TempDir(), "mixtral-q4")
	if _, err := convert.Convert(context.Background(), convert.Options{HFPath: testdata("models", "mixtral-f32"), MLXPath: q4, Quantize: true, GroupSize: 32, Bits: 4}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 4))
	const path = "model.layers.1.block_sparse_moe.switch_mlp.up_proj" // [E 4, I 32, D 64]
	E, out, in, rank := 4, 32, 64, 4
	a, b := randTensor(r, 0.125, E, rank, in), randTensor(r, 0.1, E, out, rank)
	adir := saveAdapter(t, map[string]lora.Tensor{path + ".lora_a": a, path + ".lora_b": b}, "lora")
	res, printed := run(t, Options{Model: q4, AdapterPath: adir})
	base, err := st.OpenModel(q4)
	must(t, err)
	defer base.Close()
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	w := deq(t, readQ(t, base, path), in, 4)
	for e := 0; e < E; e++ {
		d := make([]float32, out*in) // b[e] [out, r] · a[e] [r, in]
		kernels.Sgemm(false, false, out, in, rank, b.Data[e*out*rank:], rank, a.Data[e*rank*in:], in, d, in, false)
		for k := range d {
			w[e*out*in+k] += 2 * d[k]
		}
	}
	if !sameQ(readQ(t, got, path), enc(t, w, in, 4)) {
		t.Error("fused expert stack differs from dequantize-merge-quantize")
	}
	if len(res.Layers) != 1 || !(res.Layers[0].Error < 0.5) || len(res.Lost) != 0 {
		t.Errorf("survival %+v\n%s", res.Layers, printed)
	}
	t.Logf("%s", printed)
}

// TestFuseEmbeddingQuantized: a LoRA on the quantized token embedding
// (E + scale·a·b) is bit-exact with dequantize-merge-quantize.
func TestFuseEmbeddingQuantized(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	const path = "model.embed_tokens" // [V 512, D 64]
	V, D, rank := 512, 64, 4
	a, b := randTensor(r, 0.05, V, rank), randTensor(r, 0.1, rank, D)
	adir := saveAdapter(t, map[string]lora.Tensor{path + ".lora_a": a, path + ".lora_b": b}, "lora")
	res, printed := run(t, Options{Model: testdata("models", "llama-q4"), AdapterPath: adir})
	base, err := st.OpenModel(testdata("models", "llama-q4"))
	must(t, err)
	defer base.Close()
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	w := deq(t, readQ(t, base, path), D, 4)
	d := make([]float32, V*D) // a [V, r] · b [r, D]
	kernels.Sgemm(false, false, V, D, rank, a.Data, rank, b.Data, D, d, D, false)
	for k := range d {
		w[k] += 2 * d[k]
	}
	if !sameQ(readQ(t, got, path), enc(t, w, D, 4)) {
		t.Error("fused embedding differs from dequantize-merge-quantize")
	}
	if len(res.Layers) != 1 || math.IsNaN(res.Layers[0].Error) {
		t.Errorf("survival %+v\n%s", res.Layers, printed)
	}
	t.Logf("%s", printed)
}

// TestFuseBF16: a bfloat16 model stays bfloat16; the fused weight is the
// delta rounded to bfloat16, added, and the sum rounded (mlx_lm casts
// the delta to the weight's dtype before adding).
func TestFuseBF16(t *testing.T) {
	res, _ := run(t, Options{Model: testdata("models", "llama-bf16"), AdapterPath: testdata("lora", "lora")})
	ad, err := lora.LoadAdapter(testdata("lora", "lora"))
	must(t, err)
	base, err := st.OpenModel(testdata("models", "llama-bf16"))
	must(t, err)
	defer base.Close()
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	for _, n := range got.Names() {
		if info, _, _ := got.Info(n); info.DType != st.BF16 {
			t.Errorf("%s is %s", n, info.DType)
		}
	}
	const path = "model.layers.1.self_attn.o_proj" // [64, 64]
	x, _ := base.Tensor(path + ".weight")
	w, _ := x.Uint16s()
	a, b := ad.Tensors[path+".lora_a"], ad.Tensors[path+".lora_b"]
	want := make([]uint16, len(w))
	d := make([]float32, 64*64) // bᵀ [64, 4] · aᵀ [4, 64]
	kernels.Sgemm(true, true, 64, 64, 4, b.Data, 64, a.Data, 4, d, 64, false)
	for k := range d {
		delta := kernels.BF16ToF32(kernels.F32ToBF16(2 * d[k]))
		want[k] = kernels.F32ToBF16(kernels.BF16ToF32(w[k]) + delta)
	}
	y, _ := got.Tensor(path + ".weight")
	if g, _ := y.Uint16s(); !slices.Equal(g, want) {
		t.Error("fused bf16 weight differs")
	}
}

// TestHubModelAndUpload: --model as a hub id is downloaded, the card names
// it as base_model, and --upload-repo sends the folder.
func TestHubModelAndUpload(t *testing.T) {
	s := hubtest.New(t)
	files := map[string][]byte{}
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(testdata("models", "llama-q4", f))
		must(t, err)
		files[f] = data
	}
	s.AddRepo("org/tiny-q4", files)
	s.SetEnv(t)
	t.Setenv("HF_TOKEN", "secret")
	var progress strings.Builder
	res, printed := run(t, Options{Model: "org/tiny-q4", AdapterPath: testdata("lora", "lora"), UploadRepo: "me/tiny-fused", Version: "1.0", Progress: &progress})
	if !strings.Contains(progress.String(), "Fusing") || !strings.Contains(progress.String(), "100%") {
		t.Errorf("progress %q", progress.String())
	}
	if !strings.HasSuffix(printed, "Upload successful, go to https://huggingface.co/me/tiny-fused for details.\n") {
		t.Errorf("printed %q", printed)
	}
	card, _ := os.ReadFile(filepath.Join(res.Path, "README.md"))
	if !strings.HasPrefix(string(card), "---\nbase_model: org/tiny-q4\nlibrary_name: mlx\n") || !strings.Contains(string(card), `load("me/tiny-fused")`) {
		t.Errorf("README.md:\n%s", card)
	}
	up := s.Files("me/tiny-fused", "main")
	var names []string
	for n := range up {
		if n != ".gitattributes" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, res.Files) {
		t.Errorf("uploaded %v, folder has %v", names, res.Files)
	}
}

// TestHubModelCard: fusing a hub model starts the card from the source
// repo's own card metadata (order kept, null keys dropped, mlx added to
// the tags, base_model, library_name and pipeline_tag set, text emptied),
// as convert does and mlx_lm's create_model_card.
func TestHubModelCard(t *testing.T) {
	s := hubtest.New(t)
	files := map[string][]byte{
		"README.md": []byte("---\nlicense: apache-2.0\ntags: [llama]\nlibrary_name: transformers\ndatasets: null\n---\n\n# Tiny\nSome text.\n"),
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		data, err := os.ReadFile(testdata("models", "llama-q4", f))
		must(t, err)
		files[f] = data
	}
	s.AddRepo("org/carded-q4", files)
	s.SetEnv(t)
	res, _ := run(t, Options{Model: "org/carded-q4", AdapterPath: testdata("lora", "lora")})
	card, err := os.ReadFile(filepath.Join(res.Path, "README.md"))
	must(t, err)
	want := "---\nlicense: apache-2.0\ntags:\n- llama\n- mlx\nlibrary_name: mlx\nbase_model: org/carded-q4\npipeline_tag: text-generation\n---\n"
	if string(card) != want {
		t.Errorf("README.md\n%s\nwant\n%s", card, want)
	}
}

// TestShards: with a small shard cap the fused model is split like
// convert's output and reads back with the same tensors.
func TestShards(t *testing.T) {
	one, _ := run(t, Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", "lora")})
	many, _ := run(t, Options{Model: testdata("models", "llama-f32"), AdapterPath: testdata("lora", "lora"), shardSize: 200 << 10})
	if !slices.Contains(many.Files, "model-00001-of-00003.safetensors") || !slices.Contains(many.Files, "model.safetensors.index.json") {
		t.Fatalf("files %v", many.Files)
	}
	a, err := st.OpenModel(one.Path)
	must(t, err)
	defer a.Close()
	b, err := st.OpenModel(many.Path)
	must(t, err)
	defer b.Close()
	if !slices.Equal(a.Names(), b.Names()) {
		t.Fatal("names differ")
	}
	for _, n := range a.Names() {
		x, _ := a.Tensor(n)
		y, _ := b.Tensor(n)
		if !slices.Equal(x.Bytes(), y.Bytes()) {
			t.Errorf("%s differs", n)
		}
	}
}

// TestAddLowRank: the merge kernel equals the float64 product within
// float32 rounding, for every shape orientation the fuse uses.
func TestAddLowRank(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, c := range []struct{ rows, cols, rank int }{{1, 1, 1}, {3, 5, 2}, {96, 64, 4}, {64, 96, 16}, {7, 300, 8}} {
		u, v := randTensor(r, 1, c.rows, c.rank), randTensor(r, 1, c.cols, c.rank)
		w := randTensor(r, 1, c.rows, c.cols)
		got := append([]float32(nil), w.Data...)
		addLowRank(got, c.rows, c.cols, u.Data, v.Data, c.rank, 0.5, st.F32)
		for o := 0; o < c.rows; o++ {
			for i := 0; i < c.cols; i++ {
				var d, mag float64
				for k := 0; k < c.rank; k++ {
					p := float64(u.Data[o*c.rank+k]) * float64(v.Data[i*c.rank+k])
					d += p
					mag += math.Abs(p)
				}
				want := float64(w.Data[o*c.cols+i]) + 0.5*d
				if e := math.Abs(float64(got[o*c.cols+i]) - want); e > 1e-6*(mag+math.Abs(want)+1) {
					t.Fatalf("%+v: [%d, %d] = %g, want %g", c, o, i, got[o*c.cols+i], want)
				}
			}
		}
	}
}

// TestQBitsMixed: on a mixed-precision base (convert's mixed_3_6 recipe,
// a per-layer entry for every layer), --q-bits gives every layer the new
// width and one global entry; --q-group-size alone keeps each layer's own
// bits and writes an entry for each layer that differs from the global
// width. Both folders load.
func TestQBitsMixed(t *testing.T) {
	mixed := filepath.Join(t.TempDir(), "mixed")
	if _, err := convert.Convert(context.Background(), convert.Options{HFPath: testdata("models", "llama-f32"), MLXPath: mixed, Quantize: true, GroupSize: 32, QuantPredicate: "mixed_3_6"}); err != nil {
		t.Fatal(err)
	}
	adir, _ := writeAdapter(t, 0.1, 2)
	res, _ := run(t, Options{Model: mixed, AdapterPath: adir, QBits: 5})
	q := readConfigMap(t, res.Path)["quantization"].(map[string]any)
	if len(q) != 3 || q["bits"] != 5.0 || q["group_size"] != 32.0 {
		t.Errorf("--q-bits 5: quantization %v", q)
	}
	if _, _, err := model.Load(res.Path); err != nil {
		t.Errorf("--q-bits 5: %v", err)
	}
	res, _ = run(t, Options{Model: mixed, AdapterPath: adir, QGroupSize: 32})
	q = readConfigMap(t, res.Path)["quantization"].(map[string]any)
	var three, six int
	for k, v := range q {
		if e, ok := v.(map[string]any); ok {
			switch e["bits"] {
			case 3.0:
				three++
			case 6.0:
				six++
			default:
				t.Errorf("entry %s: %v", k, e)
			}
		}
	}
	if three == 0 || six == 0 {
		t.Errorf("--q-group-size 32: per-layer entries lost (%d at 3 bits, %d at 6): %v", three, six, q)
	}
	if _, _, err := model.Load(res.Path); err != nil {
		t.Errorf("--q-group-size 32: %v", err)
	}
}

// TestEveryArchitectureRoundTrips: for every float fixture, a fuse with
// an adapter that changes nothing (lora_b = 0) on one projection writes a
// folder, in MLX layout (the full sanitize plan: stacked experts, split
// and transposed tensors), that model.Load reads back to the fixture's
// reference logits.
func TestEveryArchitectureRoundTrips(t *testing.T) {
	dirs, err := filepath.Glob(testdata("models", "*-f32"))
	must(t, err)
	if len(dirs) < 10 {
		t.Fatalf("only %d fixtures", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ref, err := modeltest.ReadReference(dir)
			must(t, err)
			if !slices.Contains(model.Supported(), ref.ModelType) {
				t.Skipf("architecture %s not registered", ref.ModelType)
			}
			cfg, err := mlxdir.ReadConfig(dir)
			must(t, err)
			m, err := st.OpenModel(dir)
			must(t, err)
			metas := map[string]model.TensorMeta{}
			for _, e := range m.Entries() {
				metas[e.Name] = model.TensorMeta{DType: string(e.DType), Shape: e.Shape}
			}
			plan, err := model.FullSanitizePlan(ref.ModelType, cfg.Plain, metas)
			must(t, err)
			var path string
			var shape []int
			for _, p := range plan {
				var srcs []model.TensorMeta
				for _, s := range p.Sources {
					srcs = append(srcs, metas[s])
				}
				meta, err := model.PlanMeta(p, srcs)
				must(t, err)
				if strings.Contains(p.Name, "layers.0.") && strings.HasSuffix(p.Name, "proj.weight") && len(meta.Shape) == 2 {
					path, shape = strings.TrimSuffix(p.Name, ".weight"), meta.Shape
					break
				}
			}
			m.Close()
			if path == "" {
				t.Fatal("no 2-D projection in block 0")
			}
			r := rand.New(rand.NewPCG(3, 3))
			adir := saveAdapter(t, map[string]lora.Tensor{
				path + ".lora_a": randTensor(r, 0.1, shape[1], 4),
				path + ".lora_b": {Shape: []int{4, shape[0]}, Data: make([]float32, 4*shape[0])},
			}, "lora")
			res, _ := run(t, Options{Model: dir, AdapterPath: adir})
			got := logitsAt(t, res.Path, ref)
			if e := modeltest.RelErr(got, ref.Logits); e > modeltest.F32.Logits {
				t.Errorf("%s (adapter on %s): logits relative error %.3g > %.3g", ref.ModelType, path, e, modeltest.F32.Logits)
			}
		})
	}
}

// TestFuseQuantizedBF16: on a 4-bit base with bfloat16 scales (convert -q
// of llama-bf16), the adapted layer is bit-identical to mx.dequantize into
// bfloat16 (quant.DequantizeHalfTo), + the delta cast to bfloat16, the sum
// rounded to bfloat16, quant.QuantizeHalf; --dequantize writes the
// bfloat16 dequantized values.
func TestFuseQuantizedBF16(t *testing.T) {
	q4 := filepath.Join(t.TempDir(), "q4")
	if _, err := convert.Convert(context.Background(), convert.Options{HFPath: testdata("models", "llama-bf16"), MLXPath: q4, Quantize: true, GroupSize: 32, Bits: 4}); err != nil {
		t.Fatal(err)
	}
	adir, ad := writeAdapter(t, 0.1, 21)
	const path = "model.layers.0.mlp.down_proj" // [64, 96]
	out, in := 64, 96
	o := quant.Options{Bits: 4, GroupSize: 32}
	base, err := st.OpenModel(q4)
	must(t, err)
	defer base.Close()
	raw := func(m *st.Model, n string) []byte {
		x, err := m.Tensor(n)
		must(t, err)
		return x.Bytes()
	}
	h := make([]uint16, out*in)
	must(t, quant.DequantizeHalfTo(words(raw(base, path+".weight")), halves(raw(base, path+".scales")), halves(raw(base, path+".biases")), kernels.BF16, in, o, h))
	d := make([]float32, out*in)
	a, b := ad[path+".lora_a"], ad[path+".lora_b"]
	kernels.Sgemm(true, true, out, in, 4, b.Data, out, a.Data, 4, d, in, false)
	for k := range h {
		delta := kernels.BF16ToF32(kernels.F32ToBF16(2 * d[k]))
		h[k] = kernels.F32ToBF16(kernels.BF16ToF32(h[k]) + delta)
	}
	wq, ws, wb := make([]uint32, out*in/8), make([]uint16, out*in/32), make([]uint16, out*in/32)
	must(t, quant.QuantizeHalf(h, kernels.BF16, in, o, wq, ws, wb))

	res, _ := run(t, Options{Model: q4, AdapterPath: adir})
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	if !slices.Equal(words(raw(got, path+".weight")), wq) || !slices.Equal(halves(raw(got, path+".scales")), ws) || !slices.Equal(halves(raw(got, path+".biases")), wb) {
		t.Error("fused bf16-scaled layer differs from dequantize-merge-quantize")
	}
	got.Close()

	res, _ = run(t, Options{Model: q4, AdapterPath: adir, Dequantize: true})
	got, err = st.OpenModel(res.Path)
	must(t, err)
	if info, _, _ := got.Info(path + ".weight"); info.DType != st.BF16 || !slices.Equal(halves(raw(got, path+".weight")), h) {
		t.Errorf("--dequantize: %s is %s, or not the fused bf16 weight", path, info.DType)
	}
	const plain = "model.embed_tokens"
	e := make([]uint16, 512*64)
	must(t, quant.DequantizeHalfTo(words(raw(base, plain+".weight")), halves(raw(base, plain+".scales")), halves(raw(base, plain+".biases")), kernels.BF16, 64, o, e))
	if !slices.Equal(halves(raw(got, plain+".weight")), e) {
		t.Error("--dequantize: the embedding is not mx.dequantize's bf16 values")
	}
	got.Close()
}

// TestHalfNormsStayHalf: qwen3_next's sanitize plan computes its norms
// + 1 in float32 from the bf16 hub checkpoint; fuse writes them in bf16,
// each bf16(float32(w) + 1) (mlx_lm adds in the loaded bf16), not float32.
func TestHalfNormsStayHalf(t *testing.T) {
	dir := testdata("models", "qwen3_next-bf16")
	const path = "model.layers.0.linear_attn.out_proj"
	base, err := st.OpenModel(dir)
	must(t, err)
	defer base.Close()
	w, err := base.Tensor(path + ".weight")
	must(t, err)
	adir := saveAdapter(t, map[string]lora.Tensor{
		path + ".lora_a": randTensor(rand.New(rand.NewPCG(5, 5)), 0.1, w.Shape[1], 4),
		path + ".lora_b": {Shape: []int{4, w.Shape[0]}, Data: make([]float32, 4*w.Shape[0])},
	}, "lora")
	res, _ := run(t, Options{Model: dir, AdapterPath: adir})
	got, err := st.OpenModel(res.Path)
	must(t, err)
	defer got.Close()
	norms := 0
	for _, e := range got.Entries() {
		if !strings.HasSuffix(e.Name, "norm.weight") {
			continue
		}
		norms++
		if e.DType != st.BF16 {
			t.Errorf("%s: %s, want BF16", e.Name, e.DType)
		}
	}
	const n = "model.norm.weight"
	src, err := base.Tensor(n)
	must(t, err)
	out, err := got.Tensor(n)
	must(t, err)
	want := halves(src.Bytes())
	for i, h := range want {
		want[i] = kernels.F32ToBF16(kernels.BF16ToF32(h) + 1)
	}
	if norms == 0 || !slices.Equal(halves(out.Bytes()), want) {
		t.Errorf("%d norms; %s is not bf16(w + 1)", norms, n)
	}
}

// quantKeys returns the keys of config.json's "quantization" object in
// the order the file has them.
func quantKeys(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	must(t, err)
	var top map[string]json.RawMessage
	must(t, json.Unmarshal(b, &top))
	dec := json.NewDecoder(bytes.NewReader(top["quantization"]))
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		must(t, err)
		keys = append(keys, k.(string))
		var skip json.RawMessage
		must(t, dec.Decode(&skip))
	}
	return keys
}

// TestMLXOrder: fuse writes tensors and per-layer quantization entries in
// mlx_lm's order (mlxdir.SortNames: self_attn before mlp, q/k/v/o, layers
// by number), the order convert writes: on convert's mixed_3_6 llama the
// fused folder's tensors come in the same order as the base's, and
// --q-group-size's per-layer entries in the order of the base's entries.
func TestMLXOrder(t *testing.T) {
	mixed := filepath.Join(t.TempDir(), "mixed")
	if _, err := convert.Convert(context.Background(), convert.Options{HFPath: testdata("models", "llama-f32"), MLXPath: mixed, Quantize: true, GroupSize: 32, QuantPredicate: "mixed_3_6"}); err != nil {
		t.Fatal(err)
	}
	adir, _ := writeAdapter(t, 0.1, 2)
	res, _ := run(t, Options{Model: mixed, AdapterPath: adir, QGroupSize: 32})
	order := func(dir string) []string {
		m, err := st.OpenModel(dir)
		must(t, err)
		defer m.Close()
		var names []string
		for _, e := range m.Entries() {
			names = append(names, e.Name)
		}
		return names
	}
	base, fused := order(mixed), order(res.Path)
	sorted := slices.Clone(fused)
	mlxdir.SortNames(sorted)
	if !slices.Equal(fused, base) || !slices.Equal(fused, sorted) {
		t.Errorf("fused tensors in order\n%q\nbase (convert) order\n%q", fused, base)
	}
	if i, j := slices.Index(fused, "model.layers.0.self_attn.q_proj.weight"), slices.Index(fused, "model.layers.0.mlp.down_proj.weight"); i < 0 || j < 0 || i > j {
		t.Errorf("self_attn.q_proj at %d, mlp.down_proj at %d: want attention first", i, j)
	}
	var baseLayers []string
	for _, k := range quantKeys(t, mixed) {
		if strings.Contains(k, ".") {
			baseLayers = append(baseLayers, k)
		}
	}
	var fusedLayers []string
	for _, k := range quantKeys(t, res.Path) {
		if strings.Contains(k, ".") {
			fusedLayers = append(fusedLayers, k)
		}
	}
	kept := slices.DeleteFunc(slices.Clone(baseLayers), func(k string) bool { return !slices.Contains(fusedLayers, k) })
	if len(fusedLayers) == 0 || !slices.Equal(fusedLayers, kept) {
		t.Errorf("fused per-layer entries\n%q\nwant the base's order\n%q", fusedLayers, kept)
	}
}
