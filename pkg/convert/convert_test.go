package convert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

const fixtures = "../../testdata/models"

type tensor struct {
	DType st.DType
	Shape []int
	Data  []byte
}

// readTensors loads every tensor of a model folder (small fixtures only).
func readTensors(t *testing.T, dir string) map[string]tensor {
	t.Helper()
	m, err := st.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string]tensor{}
	for _, n := range m.Names() {
		x, err := m.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = tensor{x.DType, append([]int(nil), x.Shape...), append([]byte(nil), x.Bytes()...)}
	}
	return out
}

// run converts with o (MLXPath defaulting to a fresh folder) and returns
// the output folder and the printed lines.
func run(t *testing.T, o Options) (string, string, *Result) {
	t.Helper()
	if o.MLXPath == "" {
		o.MLXPath = filepath.Join(t.TempDir(), "out")
	}
	var out bytes.Buffer
	o.Out = &out
	res, err := Convert(context.Background(), o)
	if err != nil {
		t.Fatalf("convert %s: %v", o.HFPath, err)
	}
	return o.MLXPath, out.String(), res
}

// copyFixture copies a fixture folder, letting edit change config.json.
func copyFixture(t *testing.T, name string, edit func(cfg map[string]any)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(fixtures, name)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "config.json" && edit != nil {
			var cfg map[string]any
			if err := json.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			edit(cfg)
			if data, err = json.Marshal(cfg); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// fixtureBPW is mlx_lm's bits per weight of an MLX folder computed from its
// tensors: bytes·8 over parameters with packed weights counted unpacked.
func fixtureBPW(ts map[string]tensor, bits int) float64 {
	var nbytes, params int64
	for name, x := range ts {
		nbytes += int64(len(x.Data))
		n := int64(1)
		for _, d := range x.Shape {
			n *= int64(d)
		}
		switch {
		case x.DType == st.U32 && strings.HasSuffix(name, ".weight"):
			params += n * 32 / int64(bits)
		case strings.HasSuffix(name, ".scales") || strings.HasSuffix(name, ".biases"):
		default:
			params += n
		}
	}
	return float64(nbytes) * 8 / float64(params)
}

// TestMatchesMLXQuantizedFixtures: converting the f32 checkpoints at group
// 32 reproduces the repo's MLX-quantized folders tensor for tensor, byte for
// byte, with the same quantization config, and prints mlx_lm's lines with
// the bits per weight of the reference folder.
func TestMatchesMLXQuantizedFixtures(t *testing.T) {
	for _, c := range []struct {
		src, want string
		bits      int
	}{{"llama-f32", "llama-q4", 4}, {"llama-f32", "llama-q8", 8}, {"qwen2-f32", "qwen2-q4", 4}} {
		t.Run(c.want, func(t *testing.T) {
			dir, printed, res := run(t, Options{HFPath: filepath.Join(fixtures, c.src), Quantize: true, GroupSize: 32, Bits: c.bits})
			got := readTensors(t, dir)
			want := readTensors(t, filepath.Join(fixtures, c.want))
			if len(got) != len(want) {
				t.Errorf("%d tensors, want %d", len(got), len(want))
			}
			for name, w := range want {
				g, ok := got[name]
				switch {
				case !ok:
					t.Errorf("missing %s", name)
				case g.DType != w.DType || !reflect.DeepEqual(g.Shape, w.Shape):
					t.Errorf("%s: %s %v, want %s %v", name, g.DType, g.Shape, w.DType, w.Shape)
				case !bytes.Equal(g.Data, w.Data):
					t.Errorf("%s: bytes differ from the MLX fixture", name)
				}
			}
			var gotCfg, wantCfg map[string]any
			readJSON(t, filepath.Join(dir, "config.json"), &gotCfg)
			readJSON(t, filepath.Join(fixtures, c.want, "config.json"), &wantCfg)
			if !reflect.DeepEqual(gotCfg, wantCfg) {
				t.Errorf("config.json\n got %v\nwant %v", gotCfg, wantCfg)
			}
			bpw := fixtureBPW(want, c.bits)
			wantOut := fmt.Sprintf("[INFO] Loading\n[INFO] Using dtype: float32\n[INFO] Quantizing\n[INFO] Quantized model with %.3f bits per weight.\n", bpw)
			if printed != wantOut {
				t.Errorf("printed\n%q\nwant\n%q", printed, wantOut)
			}
			if math.Abs(res.BitsPerWeight-bpw) > 1e-12 {
				t.Errorf("bits per weight %v, want %v", res.BitsPerWeight, bpw)
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestLayoutGolden checks the output folder against mlx_lm's format: file
// names, tensor names, dtypes and shapes (down_proj, in = 96, is not a
// multiple of 64 and stays float), safetensors metadata, the index file
// byte for byte as json.dump(indent=4) writes it, config.json byte for byte
// against a file written by Python's json.dump the way mlx_lm's save_config
// does (testdata/llama-f32.q4g64.config.json, see gen comment below), the
// copied side files and the model card.
//
// The golden configs were written with Python 3.12's json module:
//
//	cfg = json.load(open("llama-f32/config.json")); cfg["quantization"] = {...}
//	cfg["quantization_config"] = cfg["quantization"]
//	json.dump(dict(sorted(cfg.items())), f, indent=4)
func TestLayoutGolden(t *testing.T) {
	src := filepath.Join(fixtures, "llama-f32")
	dir, _, res := run(t, Options{HFPath: src, Quantize: true})
	wantFiles := []string{"README.md", "config.json", "generation_config.json", "model.safetensors",
		"model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"}
	if got := listDir(t, dir); !reflect.DeepEqual(got, wantFiles) {
		t.Errorf("files %v, want %v", got, wantFiles)
	}
	if !reflect.DeepEqual(res.Files, wantFiles) || !reflect.DeepEqual(res.Shards, []string{"model.safetensors"}) {
		t.Errorf("result files %v shards %v", res.Files, res.Shards)
	}
	for _, f := range []string{"generation_config.json", "tokenizer.json", "tokenizer_config.json"} {
		a, _ := os.ReadFile(filepath.Join(src, f))
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s not copied as is", f)
		}
	}
	ts := readTensors(t, dir)
	srcTs := readTensors(t, src)
	var names []string
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	var layout []string
	for _, n := range names {
		layout = append(layout, fmt.Sprintf("%s %s %v", n, ts[n].DType, ts[n].Shape))
	}
	var want []string
	for n, x := range srcTs {
		path := strings.TrimSuffix(n, ".weight")
		if len(x.Shape) == 2 && x.Shape[1]%64 == 0 {
			want = append(want,
				fmt.Sprintf("%s.biases F32 [%d %d]", path, x.Shape[0], x.Shape[1]/64),
				fmt.Sprintf("%s.scales F32 [%d %d]", path, x.Shape[0], x.Shape[1]/64),
				fmt.Sprintf("%s.weight U32 [%d %d]", path, x.Shape[0], x.Shape[1]/8))
		} else {
			want = append(want, fmt.Sprintf("%s %s %v", n, x.DType, x.Shape))
		}
	}
	sort.Strings(want)
	if !reflect.DeepEqual(layout, want) {
		t.Errorf("layout\n%s\nwant\n%s", strings.Join(layout, "\n"), strings.Join(want, "\n"))
	}
	if ts["model.layers.0.mlp.down_proj.weight"].DType != st.F32 {
		t.Error("down_proj (in 96) should stay float at group 64")
	}
	f, err := st.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if md := f.Metadata(); !reflect.DeepEqual(md, map[string]string{"format": "mlx"}) {
		t.Errorf("metadata %v", md)
	}
	f.Close()

	// Index: as mlx_lm's save_model writes it.
	var size, params int64
	var wm strings.Builder
	for i, n := range names {
		x := ts[n]
		size += int64(len(x.Data))
		numel := int64(1)
		for _, d := range x.Shape {
			numel *= int64(d)
		}
		switch {
		case x.DType == st.U32:
			params += numel * 8
		case strings.HasSuffix(n, ".scales"), strings.HasSuffix(n, ".biases"):
		default:
			params += numel
		}
		sep := ","
		if i == len(names)-1 {
			sep = ""
		}
		fmt.Fprintf(&wm, "        %q: \"model.safetensors\"%s\n", n, sep)
	}
	wantIndex := fmt.Sprintf("{\n    \"metadata\": {\n        \"total_size\": %d,\n        \"total_parameters\": %d\n    },\n    \"weight_map\": {\n%s    }\n}", size, params, wm.String())
	if got, _ := os.ReadFile(filepath.Join(dir, st.IndexName)); string(got) != wantIndex {
		t.Errorf("index\n%s\nwant\n%s", got, wantIndex)
	}
	if res.TotalSize != size || res.TotalParameters != params {
		t.Errorf("result totals %d %d, want %d %d", res.TotalSize, res.TotalParameters, size, params)
	}
	golden(t, filepath.Join(dir, "config.json"), "testdata/llama-f32.q4g64.config.json")
	card, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if want := "---\nlanguage: en\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n"; string(card) != want {
		t.Errorf("README.md\n%s\nwant\n%s", card, want)
	}
	for _, n := range listDir(t, dir) {
		fi, _ := os.Stat(filepath.Join(dir, n))
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v", n, fi.Mode())
		}
	}
}

func golden(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s differs from %s:\n%s\nwant\n%s", got, want, g, w)
	}
}

// TestMixedRecipe: mixed_3_6 gives layer 1's v_proj/down_proj and lm_head 6
// bits, everything else 3, and writes every layer's entry in mlx_lm's order
// (config byte-identical to the Python-written golden).
func TestMixedRecipe(t *testing.T) {
	src := filepath.Join(fixtures, "llama-f32")
	dir, _, _ := run(t, Options{HFPath: src, Quantize: true, GroupSize: 32, QuantPredicate: "mixed_3_6"})
	golden(t, filepath.Join(dir, "config.json"), "testdata/llama-f32.mixed_3_6g32.config.json")
	ts := readTensors(t, dir)
	for name, bits := range map[string]int{
		"model.layers.0.self_attn.v_proj": 3, "model.layers.1.self_attn.v_proj": 6, "model.layers.0.mlp.down_proj": 3,
		"model.layers.1.mlp.down_proj": 6, "lm_head": 6, "model.embed_tokens": 3, "model.layers.1.self_attn.q_proj": 3,
	} {
		w, s := ts[name+".weight"], ts[name+".scales"]
		in := s.Shape[1] * 32
		if w.DType != st.U32 || w.Shape[1] != in*bits/32 {
			t.Errorf("%s: %s %v, want %d bits of %d", name, w.DType, w.Shape, bits, in)
		}
	}
	// Without --q-group-size the entries carry group_size null (mlx_lm
	// passes None through) and the global group size is 64.
	dir, _, _ = run(t, Options{HFPath: src, Quantize: true, QuantPredicate: "mixed_3_6"})
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	q := cfg["quantization"].(map[string]any)
	if q["group_size"] != 64.0 || q["lm_head"].(map[string]any)["group_size"] != nil {
		t.Errorf("quantization %v", q)
	}
	if _, ok := q["model.layers.0.mlp.down_proj"]; ok {
		t.Error("down_proj (in 96) cannot be quantized at group 64")
	}
}

// TestDequantize: -d on an MLX folder gives float weights equal to MLX's
// dequantize (scales·q + biases, in the scales' dtype), no scales or
// biases, and no quantization entries; close to the original
// f32 weights (within one step).
func TestDequantize(t *testing.T) {
	dir, printed, res := run(t, Options{HFPath: filepath.Join(fixtures, "llama-q4"), Dequantize: true})
	if !strings.Contains(printed, "[INFO] Dequantizing\n") || res.Dequantized != 16 {
		t.Errorf("printed %q, %d layers", printed, res.Dequantized)
	}
	got := readTensors(t, dir)
	q := readTensors(t, filepath.Join(fixtures, "llama-q4"))
	orig := readTensors(t, filepath.Join(fixtures, "llama-f32"))
	if len(got) != len(orig) {
		t.Errorf("%d tensors, want %d", len(got), len(orig))
	}
	for name, o := range orig {
		g := got[name]
		if g.DType != st.F32 || !reflect.DeepEqual(g.Shape, o.Shape) {
			t.Errorf("%s: %s %v, want F32 %v", name, g.DType, g.Shape, o.Shape)
			continue
		}
		path := strings.TrimSuffix(name, ".weight")
		qs, ok := q[path+".scales"]
		if !ok {
			if !bytes.Equal(g.Data, o.Data) {
				t.Errorf("%s changed", name)
			}
			continue
		}
		qw, qb := f32s(q[path+".weight"].Data), f32s(q[path+".biases"].Data)
		scales := f32s(qs.Data)
		cols := o.Shape[1]
		words := make([]uint32, len(qw))
		for i, f := range qw {
			words[i] = math.Float32bits(f)
		}
		gv, ov := f32s(g.Data), f32s(o.Data)
		for i := range gv {
			r, c := i/cols, i%cols
			k := r*(cols/32) + c/32
			code := quant.Unpack(words[r*cols/8:(r+1)*cols/8], c, 4)
			want := scales[k]*float32(code) + qb[k]
			if gv[i] != want {
				t.Fatalf("%s[%d] = %v, want %v", name, i, gv[i], want)
			}
			// MLX's encoder moves the scale so zero is exact: the error
			// stays within one step (not half a step).
			if d := math.Abs(float64(gv[i] - ov[i])); d > math.Abs(float64(scales[k]))*1.0001+1e-7 {
				t.Fatalf("%s[%d] = %v, %v from the original", name, i, gv[i], d)
			}
		}
	}
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	if _, ok := cfg["quantization"]; ok {
		t.Error("quantization kept")
	}
	if _, ok := cfg["quantization_config"]; ok {
		t.Error("quantization_config kept")
	}
}

func f32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out
}

func u16s(b []byte) []uint16 {
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return out
}

// bf16 rounds to nearest even, written independently of pkg/kernels.
func bf16(f float32) uint16 {
	b := math.Float32bits(f)
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// TestDtypeCast: --dtype bfloat16 rounds every float tensor to nearest
// even; quantizing after the cast gives bf16 scales equal to quantizing the
// rounded weights; the bf16 model dequantizes (-d) back to bf16 as MLX does.
func TestDtypeCast(t *testing.T) {
	src := filepath.Join(fixtures, "llama-f32")
	dir, printed, _ := run(t, Options{HFPath: src, Dtype: "bfloat16"})
	if printed != "[INFO] Loading\n[INFO] Using dtype: bfloat16\n" {
		t.Errorf("printed %q", printed)
	}
	orig := readTensors(t, src)
	got := readTensors(t, dir)
	for name, o := range orig {
		g := got[name]
		if g.DType != st.BF16 || !reflect.DeepEqual(g.Shape, o.Shape) {
			t.Fatalf("%s: %s %v", name, g.DType, g.Shape)
		}
		ov, gv := f32s(o.Data), u16s(g.Data)
		for i := range ov {
			if gv[i] != bf16(ov[i]) {
				t.Fatalf("%s[%d]: %#x, want %#x", name, i, gv[i], bf16(ov[i]))
			}
		}
	}

	qdir, _, _ := run(t, Options{HFPath: src, Dtype: "bfloat16", Quantize: true, GroupSize: 32, Bits: 4})
	qt := readTensors(t, qdir)
	w := got["model.layers.0.self_attn.q_proj.weight"]
	cols := w.Shape[1]
	wantQ := make([]uint32, w.Shape[0]*cols/8)
	wantS, wantB := make([]uint16, w.Shape[0]*cols/32), make([]uint16, w.Shape[0]*cols/32)
	if err := quant.QuantizeHalf(u16s(w.Data), kernels.BF16, cols, quant.Options{Bits: 4, GroupSize: 32}, wantQ, wantS, wantB); err != nil {
		t.Fatal(err)
	}
	s := qt["model.layers.0.self_attn.q_proj.scales"]
	if s.DType != st.BF16 || !reflect.DeepEqual(u16s(s.Data), wantS) || !reflect.DeepEqual(u16s(qt["model.layers.0.self_attn.q_proj.biases"].Data), wantB) {
		t.Errorf("bf16 scales/biases differ (dtype %s)", s.DType)
	}
	gotQ := f32s(qt["model.layers.0.self_attn.q_proj.weight"].Data)
	for i := range wantQ {
		if math.Float32bits(gotQ[i]) != wantQ[i] {
			t.Fatalf("word %d differs", i)
		}
	}

	// -d of the bf16 model: bf16 weights, as DequantizeHalfTo. (Its
	// config still says torch_dtype float32, which the default would cast
	// the scales to first, as mlx_lm does.)
	ddir, _, _ := run(t, Options{HFPath: qdir, Dequantize: true, Dtype: "bfloat16"})
	dt := readTensors(t, ddir)
	dq := dt["model.layers.0.self_attn.q_proj.weight"]
	want := make([]uint16, w.Shape[0]*cols)
	if err := quant.DequantizeHalfTo(wantQ, wantS, wantB, kernels.BF16, cols, quant.Options{Bits: 4, GroupSize: 32}, want); err != nil {
		t.Fatal(err)
	}
	if dq.DType != st.BF16 || !reflect.DeepEqual(u16s(dq.Data), want) {
		t.Errorf("bf16 dequantize: %s %v", dq.DType, dq.Shape)
	}

	// f16 and back to f32: exact widening.
	hdir, _, _ := run(t, Options{HFPath: dir, Dtype: "float32"})
	ht := readTensors(t, hdir)
	for name, g := range got {
		h := ht[name]
		gv, hv := u16s(g.Data), f32s(h.Data)
		for i := range gv {
			if math.Float32bits(hv[i]) != uint32(gv[i])<<16 {
				t.Fatalf("%s: bf16 -> f32 not exact", name)
			}
		}
	}
}

// TestCastPredicate: DeepSeek-V3's e_score_correction_bias stays float32
// when the rest is cast to bfloat16, as its cast_predicate says.
func TestCastPredicate(t *testing.T) {
	dir, _, _ := run(t, Options{HFPath: filepath.Join(fixtures, "deepseek_v3-f32"), Dtype: "bfloat16"})
	ts := readTensors(t, dir)
	n := 0
	for name, x := range ts {
		keep := strings.Contains(name, "e_score_correction_bias")
		if keep {
			n++
		}
		if keep != (x.DType == st.F32) {
			t.Errorf("%s: %s", name, x.DType)
		}
	}
	if n == 0 {
		t.Error("fixture has no e_score_correction_bias")
	}
}

// TestEveryFixture converts every f32 fixture at 4 bits, group 32: the
// output holds exactly what the model's sanitize plan makes, each
// quantizable 2-D/3-D weight replaced by weight, scales and biases.
func TestEveryFixture(t *testing.T) {
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), "-f32") {
			continue
		}
		src := filepath.Join(fixtures, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			dir, _, res := run(t, Options{HFPath: src, Quantize: true, GroupSize: 32, Bits: 4})
			cfg, err := mlxdir.ReadConfig(src)
			if err != nil {
				t.Fatal(err)
			}
			in := readTensors(t, src)
			metas := map[string]model.TensorMeta{}
			for n, x := range in {
				metas[n] = model.TensorMeta{DType: string(x.DType), Shape: x.Shape}
			}
			plans, err := model.FullSanitizePlan(cfg.Str("model_type"), cfg.Plain, metas)
			if err != nil {
				t.Fatal(err)
			}
			got := readTensors(t, dir)
			quantized := 0
			for _, p := range plans {
				path, param := mlxdir.SplitParam(p.Name)
				if _, ok := got[path+".scales"]; ok && param == "weight" {
					quantized++
					if got[p.Name].DType != st.U32 {
						t.Errorf("%s: %s", p.Name, got[p.Name].DType)
					}
					continue
				}
				if _, ok := got[p.Name]; !ok {
					t.Errorf("%s missing", p.Name)
				}
			}
			if quantized != res.Quantized || quantized == 0 {
				t.Errorf("%d quantized layers, result says %d", quantized, res.Quantized)
			}
			if want := len(plans) + 2*quantized; len(got) != want {
				t.Errorf("%d tensors, want %d", len(got), want)
			}
		})
	}
}

// TestStackPlan drives the stacking and even/odd row ops of sanitize plans
// (mixtral's per-expert weights into switch_mlp [E, out, in], gpt_oss's
// interleaved gate/up) through a plan registered for a test model type:
// the quantized stack equals the experts quantized one by one, and the
// even/odd split equals the rows picked by hand.
func TestStackPlan(t *testing.T) {
	model.RegisterSanitize("convert_test_moe", func(cfg map[string]any, ts map[string]model.TensorMeta) ([]model.TensorPlan, error) {
		var plans []model.TensorPlan
		stacked := map[string][]string{}
		for n := range ts {
			// model.layers.L.block_sparse_moe.experts.E.wK.weight
			parts := strings.Split(n, ".")
			if len(parts) == 8 && parts[4] == "experts" {
				key := strings.Join(append(parts[:4:4], "switch_mlp", parts[6]), ".")
				stacked[key] = append(stacked[key], n)
				continue
			}
			plans = append(plans, model.TensorPlan{Name: n, Op: model.OpCopy, Sources: []string{n}})
		}
		for key, srcs := range stacked {
			sort.Slice(srcs, func(i, j int) bool { return mlxdir.LessName(srcs[i], srcs[j]) })
			plans = append(plans, model.TensorPlan{Name: key + ".weight", Op: model.OpStack, Sources: srcs})
		}
		gate := "model.layers.0.mlp.gate_proj.weight"
		plans = append(plans,
			model.TensorPlan{Name: "test.even.weight", Op: model.OpEvenRows, Sources: []string{gate}},
			model.TensorPlan{Name: "test.odd", Op: model.OpOddRows, Sources: []string{gate}})
		return plans, nil
	})
	src := copyFixture(t, "mixtral-f32", func(cfg map[string]any) { cfg["model_type"] = "convert_test_moe" })
	// mixtral has no mlp.gate_proj; borrow a [96, 64] expert weight name.
	ts := readTensors(t, src)
	var any96 string
	for n, x := range ts {
		if strings.Contains(n, "experts.0.w1") && len(x.Shape) == 2 {
			any96 = n
		}
	}
	if any96 == "" {
		t.Fatal("no expert w1 in the mixtral fixture")
	}
	addTensor(t, src, "model.layers.0.mlp.gate_proj.weight", ts[any96])

	dir, _, _ := run(t, Options{HFPath: src, Quantize: true, GroupSize: 32, Bits: 4})
	got := readTensors(t, dir)
	w1 := got["model.layers.0.block_sparse_moe.switch_mlp.w1.weight"]
	e0 := ts["model.layers.0.block_sparse_moe.experts.0.w1.weight"]
	nE := 0
	for n := range ts {
		if strings.HasPrefix(n, "model.layers.0.block_sparse_moe.experts.") && strings.HasSuffix(n, ".w1.weight") {
			nE++
		}
	}
	out, in := e0.Shape[0], e0.Shape[1]
	if w1.DType != st.U32 || !reflect.DeepEqual(w1.Shape, []int{nE, out, in / 8}) {
		t.Fatalf("stacked w1: %s %v, want U32 [%d %d %d]", w1.DType, w1.Shape, nE, out, in/8)
	}
	gotQ, gotS := f32s(w1.Data), f32s(got["model.layers.0.block_sparse_moe.switch_mlp.w1.scales"].Data)
	for e := 0; e < nE; e++ {
		x := ts[fmt.Sprintf("model.layers.0.block_sparse_moe.experts.%d.w1.weight", e)]
		q := make([]uint32, out*in/8)
		s, b := make([]float32, out*in/32), make([]float32, out*in/32)
		if err := quant.QuantizeF32(f32s(x.Data), in, quant.Options{Bits: 4, GroupSize: 32}, q, s, b); err != nil {
			t.Fatal(err)
		}
		for i := range q {
			if math.Float32bits(gotQ[e*len(q)+i]) != q[i] {
				t.Fatalf("expert %d word %d differs", e, i)
			}
		}
		if !reflect.DeepEqual(gotS[e*len(s):(e+1)*len(s)], s) {
			t.Fatalf("expert %d scales differ", e)
		}
	}
	// Even rows quantized (a .weight), odd rows copied (not a weight).
	odd := got["test.odd"]
	srcRows := f32s(ts[any96].Data)
	ov := f32s(odd.Data)
	if odd.DType != st.F32 || !reflect.DeepEqual(odd.Shape, []int{out / 2, in}) {
		t.Fatalf("odd rows: %s %v", odd.DType, odd.Shape)
	}
	for r := 0; r < out/2; r++ {
		if !reflect.DeepEqual(ov[r*in:(r+1)*in], srcRows[(2*r+1)*in:(2*r+2)*in]) {
			t.Fatalf("odd row %d differs", r)
		}
	}
	even := got["test.even.weight"]
	evenRows := make([]float32, 0, out/2*in)
	for r := 0; r < out; r += 2 {
		evenRows = append(evenRows, srcRows[r*in:(r+1)*in]...)
	}
	q := make([]uint32, out/2*in/8)
	s, b := make([]float32, out/2*in/32), make([]float32, out/2*in/32)
	if err := quant.QuantizeF32(evenRows, in, quant.Options{Bits: 4, GroupSize: 32}, q, s, b); err != nil {
		t.Fatal(err)
	}
	ev := f32s(even.Data)
	for i := range q {
		if math.Float32bits(ev[i]) != q[i] {
			t.Fatalf("even rows word %d differs", i)
		}
	}
}

// addTensor rewrites dir/model.safetensors with one more tensor.
func addTensor(t *testing.T, dir, name string, x tensor) {
	t.Helper()
	ts := readTensors(t, dir)
	ts[name] = x
	var data []st.Data
	for n, x := range ts {
		data = append(data, st.Data{TensorSpec: st.TensorSpec{Name: n, DType: x.DType, Shape: x.Shape}, Bytes: x.Data})
	}
	sort.Slice(data, func(i, j int) bool { return data[i].Name < data[j].Name })
	if err := st.Save(filepath.Join(dir, "model.safetensors"), data, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// TestReconvertPartlyQuantized: quantizing an MLX folder again keeps its
// quantized layers and global entry and quantizes the rest (down_proj, left
// float at group 64) with explicit per-layer entries, as mlx_lm does.
func TestReconvertPartlyQuantized(t *testing.T) {
	first, _, _ := run(t, Options{HFPath: filepath.Join(fixtures, "llama-f32"), Quantize: true})
	before := readTensors(t, first)
	second, _, res := run(t, Options{HFPath: first, Quantize: true, GroupSize: 32, Bits: 8})
	after := readTensors(t, second)
	if res.Quantized != 2 {
		t.Errorf("%d layers quantized, want the 2 down_proj", res.Quantized)
	}
	for n, x := range before {
		if strings.Contains(n, "down_proj") {
			continue
		}
		if !bytes.Equal(after[n].Data, x.Data) {
			t.Errorf("%s changed", n)
		}
	}
	if d := after["model.layers.1.mlp.down_proj.weight"]; d.DType != st.U32 || !reflect.DeepEqual(d.Shape, []int{64, 24}) {
		t.Errorf("down_proj %s %v", d.DType, d.Shape)
	}
	cfg, _ := os.ReadFile(filepath.Join(second, "config.json"))
	want := `"quantization": {
        "group_size": 64,
        "bits": 4,
        "mode": "affine",
        "model.layers.0.mlp.down_proj": {
            "group_size": 32,
            "bits": 8,
            "mode": "affine"
        },
        "model.layers.1.mlp.down_proj": {
            "group_size": 32,
            "bits": 8,
            "mode": "affine"
        }
    },`
	if !strings.Contains(string(cfg), want) {
		t.Errorf("config.json\n%s", cfg)
	}
	// Re-saving without -q keeps everything, quantization counted unpacked.
	third, _, res3 := run(t, Options{HFPath: second})
	if res3.TotalParameters != res.TotalParameters || res3.TotalSize != res.TotalSize {
		t.Errorf("totals changed: %d/%d vs %d/%d", res3.TotalSize, res3.TotalParameters, res.TotalSize, res.TotalParameters)
	}
	golden(t, filepath.Join(third, "config.json"), filepath.Join(second, "config.json"))
}

// TestConfigRules: the generation_config eos_token_id replaces the
// config's when truthy (mlx_lm's load_config), _name_or_path and
// vision_config are dropped, side files (*.py, tokenizer files) copied.
func TestConfigRules(t *testing.T) {
	src := copyFixture(t, "llama-f32", func(cfg map[string]any) {
		cfg["_name_or_path"] = "x"
		cfg["vision_config"] = map[string]any{"a": 1}
	})
	os.WriteFile(filepath.Join(src, "generation_config.json"), []byte(`{"eos_token_id": [2, 5]}`), 0o644)
	os.WriteFile(filepath.Join(src, "modeling_x.py"), []byte("# code\n"), 0o644)
	os.WriteFile(filepath.Join(src, "special_tokens_map.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(src, "notes.bin"), []byte("x"), 0o644)
	dir, _, _ := run(t, Options{HFPath: src})
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	if !reflect.DeepEqual(cfg["eos_token_id"], []any{2.0, 5.0}) {
		t.Errorf("eos_token_id %v", cfg["eos_token_id"])
	}
	if _, ok := cfg["_name_or_path"]; ok {
		t.Error("_name_or_path kept")
	}
	if _, ok := cfg["vision_config"]; ok {
		t.Error("vision_config kept")
	}
	files := strings.Join(listDir(t, dir), " ")
	for _, f := range []string{"modeling_x.py", "special_tokens_map.json", "generation_config.json"} {
		if !strings.Contains(files, f) {
			t.Errorf("%s not copied: %s", f, files)
		}
	}
	if strings.Contains(files, "notes.bin") || strings.Contains(files, "reference") {
		t.Errorf("unexpected files copied: %s", files)
	}

	// eos_token_id 0 is falsy in Python: the config's stays.
	os.WriteFile(filepath.Join(src, "generation_config.json"), []byte(`{"eos_token_id": 0}`), 0o644)
	dir, _, _ = run(t, Options{HFPath: src})
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	if cfg["eos_token_id"] != 2.0 {
		t.Errorf("eos_token_id %v", cfg["eos_token_id"])
	}
}

// writeRaw writes a safetensors file from a header map and data, for
// inputs the writer refuses to make.
func writeRaw(t *testing.T, path string, header map[string]any, data []byte) {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	var b bytes.Buffer
	n := uint64(len(h))
	for i := 0; i < 8; i++ {
		b.WriteByte(byte(n >> (8 * i)))
	}
	b.Write(h)
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput: each bad input gives one error naming the problem, and
// leaves nothing behind: no output folder, no temporary folder, and no
// parent folders the run created.
func TestBadInput(t *testing.T) {
	llama := filepath.Join(fixtures, "llama-f32")
	cases := []struct {
		name  string
		setup func(t *testing.T) Options
		want  string
	}{
		{"no safetensors", func(t *testing.T) Options {
			src := copyFixture(t, "llama-f32", nil)
			os.Remove(filepath.Join(src, "model.safetensors"))
			os.Remove(filepath.Join(src, "reference.safetensors"))
			return Options{HFPath: src}
		}, "no model.safetensors.index.json and no *.safetensors"},
		{"truncated", func(t *testing.T) Options {
			src := copyFixture(t, "llama-f32", nil)
			p := filepath.Join(src, "model.safetensors")
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)/2], 0o644)
			return Options{HFPath: src, Quantize: true}
		}, "model.safetensors"},
		{"garbage header", func(t *testing.T) Options {
			src := copyFixture(t, "llama-f32", nil)
			os.WriteFile(filepath.Join(src, "model.safetensors"), []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"), 0o644)
			return Options{HFPath: src}
		}, "model.safetensors"},
		{"unsupported dtype", func(t *testing.T) Options {
			src := copyFixture(t, "llama-f32", nil)
			os.Remove(filepath.Join(src, "reference.safetensors"))
			writeRaw(t, filepath.Join(src, "model.safetensors"), map[string]any{
				"a.weight": map[string]any{"dtype": "F6_E3M2", "shape": []int{2, 32}, "data_offsets": []int{0, 48}},
			}, make([]byte, 48))
			return Options{HFPath: src}
		}, "dtype F6_E3M2 is not supported"},
		{"integer weight to quantize", func(t *testing.T) Options {
			src := copyFixture(t, "llama-f32", nil)
			os.Remove(filepath.Join(src, "reference.safetensors"))
			writeRaw(t, filepath.Join(src, "model.safetensors"), map[string]any{
				"a.weight": map[string]any{"dtype": "I32", "shape": []int{2, 64}, "data_offsets": []int{0, 512}},
			}, make([]byte, 512))
			return Options{HFPath: src, Quantize: true}
		}, "cannot quantize a.weight: dtype I32"},
		{"group size divides no layer", func(t *testing.T) Options {
			return Options{HFPath: llama, Quantize: true, GroupSize: 128}
		}, "no layer can be quantized with group size 128"},
		{"existing output", func(t *testing.T) Options {
			return Options{HFPath: llama}
		}, "already exists"},
		{"no config", func(t *testing.T) Options {
			src := copyFixture(t, "llama-f32", nil)
			os.Remove(filepath.Join(src, "config.json"))
			return Options{HFPath: src}
		}, "no config.json"},
		{"custom model code", func(t *testing.T) Options {
			return Options{HFPath: copyFixture(t, "llama-f32", func(c map[string]any) { c["model_file"] = "x.py" })}
		}, "custom Python module"},
		{"HF quantized", func(t *testing.T) Options {
			return Options{HFPath: copyFixture(t, "llama-f32", func(c map[string]any) {
				c["quantization_config"] = map[string]any{"quant_method": "awq"}
			})}
		}, "quant_method awq"},
		{"dequantize unknown mode", func(t *testing.T) Options {
			return Options{HFPath: copyFixture(t, "llama-q4", func(c map[string]any) {
				c["quantization"] = map[string]any{"group_size": 32, "bits": 4, "mode": "mxfp4"}
			}), Dequantize: true}
		}, "mode \"mxfp4\""},
		{"bad flags", func(t *testing.T) Options {
			return Options{HFPath: llama, Quantize: true, Dequantize: true}
		}, "either quantize or dequantize"},
		{"bad bits", func(t *testing.T) Options {
			return Options{HFPath: llama, Quantize: true, Bits: 7}
		}, "bits"},
		{"no such folder or repo", func(t *testing.T) Options {
			return Options{HFPath: "./does/not/exist"}
		}, "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.setup(t)
			root := t.TempDir()
			o.MLXPath = filepath.Join(root, "a", "b", "out")
			if c.name == "existing output" {
				os.MkdirAll(o.MLXPath, 0o755)
				os.WriteFile(filepath.Join(o.MLXPath, "keep"), []byte("x"), 0o644)
			}
			_, err := Convert(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, c.want)
			}
			t.Log(err)
			if c.name == "existing output" {
				if got := listDir(t, o.MLXPath); !reflect.DeepEqual(got, []string{"keep"}) {
					t.Errorf("existing folder touched: %v", got)
				}
				if got := listDir(t, filepath.Join(root, "a", "b")); !reflect.DeepEqual(got, []string{"out"}) {
					t.Errorf("leftovers beside the existing folder: %v", got)
				}
				return
			}
			if got := listDir(t, root); len(got) != 0 {
				t.Errorf("leftovers in the parent folder: %v", got)
			}
		})
	}
}

// TestCancel: a cancelled conversion leaves nothing behind.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := t.TempDir()
	_, err := Convert(ctx, Options{HFPath: filepath.Join(fixtures, "llama-f32"), MLXPath: filepath.Join(root, "out")})
	if err == nil {
		t.Fatal("no error")
	}
	if got := listDir(t, root); len(got) != 0 {
		t.Errorf("leftovers: %v", got)
	}
}

// TestCastKinds: float64 and float16 sources cast as MLX's astype (f64
// through float32; half to half through an exact widening), integer and
// F8 tensors are copied untouched by a --dtype cast.
func TestCastKinds(t *testing.T) {
	src := copyFixture(t, "llama-f32", nil)
	os.Remove(filepath.Join(src, "reference.safetensors"))
	f64 := []float64{1, -2.5, 1e-3, 3.14159265358979, 65504, 1e-8, 0, -0.1}
	f64b := make([]byte, 8*len(f64))
	for i, v := range f64 {
		b := math.Float64bits(v)
		for k := 0; k < 8; k++ {
			f64b[8*i+k] = byte(b >> (8 * k))
		}
	}
	h16 := []uint16{0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555, 0x8400, 0x7c00, 0x0400}
	h16b := make([]byte, 16)
	for i, v := range h16 {
		h16b[2*i], h16b[2*i+1] = byte(v), byte(v>>8)
	}
	writeRaw(t, filepath.Join(src, "model.safetensors"), map[string]any{
		"a": map[string]any{"dtype": "F64", "shape": []int{8}, "data_offsets": []int{0, 64}},
		"b": map[string]any{"dtype": "F16", "shape": []int{8}, "data_offsets": []int{64, 80}},
		"c": map[string]any{"dtype": "I32", "shape": []int{2}, "data_offsets": []int{80, 88}},
		"d": map[string]any{"dtype": "F8_E4M3", "shape": []int{8}, "data_offsets": []int{88, 96}},
	}, append(append(append(f64b, h16b...), 1, 0, 0, 0, 2, 0, 0, 0), 1, 2, 3, 4, 5, 6, 7, 8))
	dir, _, _ := run(t, Options{HFPath: src, Dtype: "bfloat16"})
	got := readTensors(t, dir)
	a, b := u16s(got["a"].Data), u16s(got["b"].Data)
	for i, v := range f64 {
		if got["a"].DType != st.BF16 || a[i] != bf16(float32(v)) {
			t.Errorf("f64 %v -> %#x, want %#x", v, a[i], bf16(float32(v)))
		}
	}
	for i, v := range h16 {
		if want := bf16(kernels.F16ToF32(v)); b[i] != want {
			t.Errorf("f16 %#x -> %#x, want %#x", v, b[i], want)
		}
	}
	if got["c"].DType != st.I32 || got["d"].DType != st.F8E4M3 || got["d"].Data[7] != 8 || got["c"].Data[4] != 2 {
		t.Errorf("integer/F8 tensors changed: %v %v", got["c"], got["d"])
	}
	// f32 -> f16 rounds to nearest even.
	dir, _, _ = run(t, Options{HFPath: filepath.Join(fixtures, "llama-f32"), Dtype: "float16"})
	h := readTensors(t, dir)["model.norm.weight"]
	o := f32s(readTensors(t, filepath.Join(fixtures, "llama-f32"))["model.norm.weight"].Data)
	for i, v := range u16s(h.Data) {
		back := kernels.F16ToF32(v)
		// the neighbours of the result are no closer to the source
		up, down := kernels.F16ToF32(v+1), kernels.F16ToF32(v-1)
		if h.DType != st.F16 || math.Abs(float64(back-o[i])) > math.Abs(float64(up-o[i])) || math.Abs(float64(back-o[i])) > math.Abs(float64(down-o[i])) {
			t.Fatalf("f16 of %v = %v", o[i], back)
		}
	}
}

// TestSourceDtype: the default cast is mlx_lm's: config torch_dtype, else
// text_config.dtype (a top-level transformers-5 "dtype" is not read by
// mlx_lm's convert, so neither here).
func TestSourceDtype(t *testing.T) {
	for js, want := range map[string]string{
		`{"torch_dtype": "bfloat16"}`:                                     "bfloat16",
		`{"text_config": {"dtype": "float16"}}`:                           "float16",
		`{"torch_dtype": null, "text_config": {"dtype": "float16"}}`:      "float16",
		`{"torch_dtype": "float32", "text_config": {"dtype": "float16"}}`: "float32",
		`{"dtype": "bfloat16"}`:                                           "",
		`{"text_config": {}}`:                                             "",
	} {
		var c mlxdir.Config
		if err := json.Unmarshal([]byte(js), &c.Plain); err != nil {
			t.Fatal(err)
		}
		if got := sourceDtype(&c); got != want {
			t.Errorf("%s: %q, want %q", js, got, want)
		}
	}
}

// TestRequantizeQuantized: -q on a fully quantized MLX folder re-saves it
// unchanged (mlx_lm leaves quantized layers alone), no group-size error.
func TestRequantizeQuantized(t *testing.T) {
	src := filepath.Join(fixtures, "llama-q4")
	dir, printed, res := run(t, Options{HFPath: src, Quantize: true})
	if res.Quantized != 0 || !strings.Contains(printed, "[INFO] Quantizing\n") {
		t.Errorf("quantized %d, printed %q", res.Quantized, printed)
	}
	if !reflect.DeepEqual(readTensors(t, dir), readTensors(t, src)) {
		t.Error("tensors changed")
	}
	var cfg map[string]any
	readJSON(t, filepath.Join(dir, "config.json"), &cfg)
	want := map[string]any{"group_size": 32.0, "bits": 4.0, "mode": "affine"}
	if !reflect.DeepEqual(cfg["quantization"], want) || !reflect.DeepEqual(cfg["quantization_config"], want) {
		t.Errorf("quantization %v / %v", cfg["quantization"], cfg["quantization_config"])
	}
}

// countdownCtx reports cancellation from its n-th Err call on.
type countdownCtx struct {
	context.Context
	n int
}

func (c *countdownCtx) Err() error {
	if c.n--; c.n <= 0 {
		return context.Canceled
	}
	return nil
}

// TestCancelMidway: cancelling while tensors are being written stops the
// run with context.Canceled and removes the partial output.
func TestCancelMidway(t *testing.T) {
	for _, n := range []int{3, 10, 25} {
		root := t.TempDir()
		ctx := &countdownCtx{Context: context.Background(), n: n}
		_, err := Convert(ctx, Options{HFPath: filepath.Join(fixtures, "llama-f32"), MLXPath: filepath.Join(root, "out"), Quantize: true, GroupSize: 32})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("n=%d: error %v", n, err)
		}
		if got := listDir(t, root); len(got) != 0 {
			t.Errorf("n=%d: leftovers %v", n, got)
		}
	}
}

// TestLeafParams: total_parameters counts only leaf modules' parameters,
// as mlx_lm's get_total_parameters: gpt_oss's attention sinks (held by the
// attention module, which has child modules) are not counted.
func TestLeafParams(t *testing.T) {
	src := filepath.Join(fixtures, "gpt_oss-f32")
	_, _, res := run(t, Options{HFPath: src})
	cfg, err := mlxdir.ReadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	in := readTensors(t, src)
	metas := map[string]model.TensorMeta{}
	for n, x := range in {
		metas[n] = model.TensorMeta{DType: string(x.DType), Shape: x.Shape}
	}
	plans, err := model.FullSanitizePlan("gpt_oss", cfg.Plain, metas)
	if err != nil {
		t.Fatal(err)
	}
	var all, sinks int64
	for _, p := range plans {
		var srcs []model.TensorMeta
		for _, s := range p.Sources {
			srcs = append(srcs, metas[s])
		}
		m, err := model.PlanMeta(p, srcs)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(1)
		for _, d := range m.Shape {
			n *= int64(d)
		}
		all += n
		if strings.HasSuffix(p.Name, ".sinks") {
			sinks += n
		}
	}
	if sinks == 0 {
		t.Fatal("fixture has no sinks")
	}
	if res.TotalParameters != all-sinks {
		t.Errorf("total_parameters %d, want %d (all %d minus sinks %d)", res.TotalParameters, all-sinks, all, sinks)
	}
}

// TestBadPlans: sanitize plans that cannot be carried out (a missing
// source, experts of different shapes, an odd number of rows to split)
// give one error naming the tensors, and nothing is written.
func TestBadPlans(t *testing.T) {
	for name, plan := range map[string]model.TensorPlan{
		"missing":  {Name: "x.weight", Op: model.OpCopy, Sources: []string{"no.such.tensor"}},
		"mismatch": {Name: "x.weight", Op: model.OpStack, Sources: []string{"model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight"}},
		"odd rows": {Name: "x.weight", Op: model.OpEvenRows, Sources: []string{"model.norm.weight"}},
	} {
		t.Run(name, func(t *testing.T) {
			typ := "convert_test_bad_" + strings.ReplaceAll(name, " ", "_")
			model.RegisterSanitize(typ, func(map[string]any, map[string]model.TensorMeta) ([]model.TensorPlan, error) {
				return []model.TensorPlan{plan}, nil
			})
			src := copyFixture(t, "llama-f32", func(c map[string]any) { c["model_type"] = typ })
			root := t.TempDir()
			_, err := Convert(context.Background(), Options{HFPath: src, MLXPath: filepath.Join(root, "out")})
			if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), plan.Sources[0]) && !strings.Contains(err.Error(), plan.Name) {
				t.Fatalf("error %v", err)
			}
			t.Log(err)
			if got := listDir(t, root); len(got) != 0 {
				t.Errorf("leftovers %v", got)
			}
		})
	}
}
