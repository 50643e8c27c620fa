package convert

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// metasOf returns the dtypes and shapes of a folder's tensors.
func metasOf(ts map[string]tensor) map[string]model.TensorMeta {
	m := make(map[string]model.TensorMeta, len(ts))
	for n, x := range ts {
		m[n] = model.TensorMeta{DType: string(x.DType), Shape: x.Shape}
	}
	return m
}

// TestMLXLayout: the HF fixtures whose mlx_lm sanitize rewrites tensors
// (gpt_oss's fused experts split and transposed, deepseek_v3's kv_b_proj
// split into embed_q/unembed_out, qwen3_next's norms + 1, conv1d moved and
// experts stacked) convert, float and 8-bit group 32, to mlx_lm's layout:
// exactly the names and shapes of the full sanitize plan (quantized layers
// as weight/scales/biases), a folder whose own plan copies every tensor
// through, that model.Load runs to the reference logits (float: F32
// tolerance; 8 bits: 0.1, TestEveryArchitectureQuantized's 8-bit
// tolerance). The gpt_oss experts are quantized, the deepseek_v3 router
// is not (mlx_lm's MoEGate has no to_quantized).
func TestMLXLayout(t *testing.T) {
	for _, c := range []struct {
		fixture  string
		mlx, hf  []string // names only in mlx_lm's layout / only in the HF one
		quant    []string // layers quantized at 8 bits
		notQuant []string // 2-D weights that stay float
	}{
		{"gpt_oss-f32",
			[]string{"model.layers.0.mlp.experts.gate_proj.weight", "model.layers.0.mlp.experts.up_proj.bias", "model.layers.1.mlp.experts.down_proj.weight"},
			[]string{"model.layers.0.mlp.experts.gate_up_proj", "model.layers.0.mlp.experts.down_proj"},
			[]string{"model.layers.0.mlp.experts.gate_proj", "model.layers.1.mlp.experts.down_proj", "model.layers.0.mlp.router"}, nil},
		{"deepseek_v3-f32",
			[]string{"model.layers.0.self_attn.embed_q.weight", "model.layers.1.self_attn.unembed_out.weight"},
			[]string{"model.layers.0.self_attn.kv_b_proj.weight"},
			[]string{"model.layers.1.mlp.switch_mlp.gate_proj", "model.layers.0.self_attn.q_b_proj"},
			[]string{"model.layers.1.mlp.gate.weight"}},
		{"qwen3_next-f32",
			[]string{"model.layers.1.mlp.switch_mlp.up_proj.weight"},
			[]string{"model.layers.1.mlp.experts.0.up_proj.weight"},
			[]string{"model.layers.1.mlp.switch_mlp.up_proj", "model.layers.0.linear_attn.in_proj_qkvz"}, nil},
	} {
		src := filepath.Join(fixtures, c.fixture)
		ref, err := modeltest.ReadReference(src)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := mlxdir.ReadConfig(src)
		if err != nil {
			t.Fatal(err)
		}
		in := metasOf(readTensors(t, src))
		plans, err := model.FullSanitizePlan(cfg.Str("model_type"), cfg.Plain, in)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]model.TensorMeta{}
		for _, p := range plans {
			var srcs []model.TensorMeta
			for _, s := range p.Sources {
				srcs = append(srcs, in[s])
			}
			if want[p.Name], err = model.PlanMeta(p, srcs); err != nil {
				t.Fatal(err)
			}
		}
		for _, q := range []bool{false, true} {
			name := c.fixture + "/float"
			if q {
				name = c.fixture + "/q8"
			}
			t.Run(name, func(t *testing.T) {
				dir, _, _ := run(t, Options{HFPath: src, Quantize: q, Bits: 8, GroupSize: 32})
				got := readTensors(t, dir)
				for _, n := range c.mlx {
					if _, ok := got[n]; !ok {
						t.Errorf("%s missing", n)
					}
				}
				for _, n := range c.hf {
					if _, ok := got[n]; ok {
						t.Errorf("%s in the output: not mlx_lm's layout", n)
					}
				}
				quantized := map[string]bool{}
				for n := range got {
					if path, ok := strings.CutSuffix(n, ".scales"); ok {
						quantized[path] = true
					}
				}
				if !q && len(quantized) > 0 {
					t.Errorf("float conversion has quantized layers %v", quantized)
				}
				if q {
					for _, l := range c.quant {
						if !quantized[l] {
							t.Errorf("%s not quantized", l)
						}
					}
					for _, n := range c.notQuant {
						if x, ok := got[n]; !ok || x.DType != st.F32 {
							t.Errorf("%s: want it in float32, got %v", n, x.DType)
						}
					}
				}
				// Names and shapes: the plan's, quantized layers packed.
				var names []string
				for n := range want {
					names = append(names, n)
				}
				sort.Strings(names)
				count := 0
				for _, n := range names {
					w := want[n]
					path, param := mlxdir.SplitParam(n)
					shapes := map[string][]int{n: w.Shape}
					if q && param == "weight" && quantized[path] {
						lead, last := w.Shape[:len(w.Shape)-1], w.Shape[len(w.Shape)-1]
						bits, gs := 8, 32
						if strings.HasSuffix(path, "mlp.gate") || strings.HasSuffix(path, "shared_expert_gate") || strings.HasSuffix(path, "mlp.router") {
							gs = 64 // mlx_lm's routers: 8 bits, group 64
						}
						sc := append(slices.Clone(lead), last/gs)
						shapes = map[string][]int{
							n:                append(slices.Clone(lead), quant.PackedCols(last, bits)),
							path + ".scales": sc, path + ".biases": sc,
						}
					}
					for k, s := range shapes {
						count++
						if x, ok := got[k]; !ok {
							t.Errorf("%s missing", k)
						} else if !slices.Equal(x.Shape, s) {
							t.Errorf("%s: shape %v, want %v", k, x.Shape, s)
						}
					}
				}
				if len(got) != count {
					t.Errorf("%d tensors, want %d", len(got), count)
				}
				// The output is sanitized: its own plan copies it through.
				outCfg, err := mlxdir.ReadConfig(dir)
				if err != nil {
					t.Fatal(err)
				}
				self, err := model.FullSanitizePlan(outCfg.Str("model_type"), outCfg.Plain, metasOf(got))
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range self {
					if p.Op != model.OpCopy || len(p.Steps) > 0 || len(p.Sources) != 1 || p.Sources[0] != p.Name {
						t.Errorf("the output's own plan rewrites %s: %+v", p.Name, p)
					}
				}
				if len(self) != len(got) {
					t.Errorf("the output's own plan makes %d tensors of %d", len(self), len(got))
				}
				m, _, err := model.Load(dir)
				if err != nil {
					t.Fatalf("load %s: %v", dir, err)
				}
				tol := modeltest.F32.Logits
				if q {
					tol = 0.1
				}
				l := positions(modeltest.Logits(t, m, nil, ref.InputIDs), ref.LogitsPositions, ref.V)
				if e := modeltest.RelErr(l, ref.Logits); e > tol {
					t.Errorf("logits relative error %.3g > %.3g", e, tol)
				} else {
					t.Logf("logits relative error %.3g (tolerance %.3g)", e, tol)
				}
			})
		}
	}
}

// TestHalfNormsCastBack: qwen3_next's norms come out of the sanitize plan
// in float32 (w + 1 computed as transformers does); convert writes them in
// the target dtype: the bf16 fixture (config dtype, no torch_dtype) keeps
// bf16, each value bf16(float32(w) + 1), the bytes of mlx_lm's bf16 add;
// --dtype float16 gives float16 of that bf16 value (mlx_lm adds in the
// loaded bf16, then casts), not of the float32 sum.
func TestHalfNormsCastBack(t *testing.T) {
	src := filepath.Join(fixtures, "qwen3_next-bf16")
	in := readTensors(t, src)
	const name = "model.layers.0.input_layernorm.weight"
	w, ok := in[name]
	if !ok || w.DType != st.BF16 {
		t.Fatalf("fixture: %s missing or not bf16", name)
	}
	plus := make([]float32, len(w.Data)/2)
	for i := range plus {
		plus[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(w.Data[2*i:]))<<16) + 1
	}
	b := make([]uint16, len(plus))
	kernels.F32ToHalfSlice(b, plus, kernels.BF16)
	kernels.HalfToF32Slice(plus, b, kernels.BF16) // mlx_lm's bf16 sum
	for _, c := range []struct {
		dtype string
		want  st.DType
	}{{"", st.BF16}, {"float16", st.F16}} {
		t.Run(string(c.want), func(t *testing.T) {
			dir, _, _ := run(t, Options{HFPath: src, Dtype: c.dtype})
			got := readTensors(t, dir)
			for n, x := range got {
				if strings.HasSuffix(n, "norm.weight") && x.DType != c.want {
					t.Errorf("%s: %s, want %s", n, x.DType, c.want)
				}
			}
			h := make([]uint16, len(plus))
			kind := kernels.BF16
			if c.want == st.F16 {
				kind = kernels.F16
			}
			kernels.F32ToHalfSlice(h, plus, kind)
			x := got[name]
			for i, v := range h {
				if g := binary.LittleEndian.Uint16(x.Data[2*i:]); g != v {
					t.Fatalf("%s[%d] = %#04x, want %#04x (bf16(w + 1) in the target dtype)", name, i, g, v)
				}
			}
		})
	}
}

// TestMixedRecipeRouter: a mixed recipe quantizes every Linear, but the
// deepseek_v3 and glm4_moe routers (mlp.gate next to
// e_score_correction_bias, an MoEGate without to_quantized in mlx_lm)
// stay float, as nn.quantize leaves them, and the folder loads.
func TestMixedRecipeRouter(t *testing.T) {
	for _, f := range []string{"deepseek_v3-f32", "glm4_moe-f32"} {
		t.Run(f, func(t *testing.T) {
			dir, _, res := run(t, Options{HFPath: filepath.Join(fixtures, f), Quantize: true, GroupSize: 32, QuantPredicate: "mixed_4_6"})
			got := readTensors(t, dir)
			routers := 0
			for n, x := range got {
				if strings.HasSuffix(n, "mlp.gate.weight") {
					routers++
					if x.DType != st.F32 {
						t.Errorf("%s: %s, want the router in float32", n, x.DType)
					}
				}
			}
			if routers == 0 || res.Quantized == 0 {
				t.Errorf("%d routers, %d quantized layers", routers, res.Quantized)
			}
			if _, _, err := model.Load(dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSlabs: stepped plans that model.Axis0Slabs allows (gpt_oss's experts:
// even/odd columns and transposes of each expert) run one slab of the
// leading axis at a time; with chunks smaller than one expert every
// expert is its own slab, and the slabs put together equal ApplyPlan on
// the whole tensor, and the folder is byte-identical to the one converted
// in 16 MiB chunks, float and quantized.
func TestSlabs(t *testing.T) {
	src := filepath.Join(fixtures, "gpt_oss-f32")
	m, err := st.OpenModel(src)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg, err := mlxdir.ReadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	metas := map[string]model.TensorMeta{}
	for _, e := range m.Entries() {
		metas[e.Name] = model.TensorMeta{DType: string(e.DType), Shape: e.Shape}
	}
	plans, err := model.FullSanitizePlan("gpt_oss", cfg.Plain, metas)
	if err != nil {
		t.Fatal(err)
	}
	slabbed := 0
	for _, p := range plans {
		if len(p.Steps) == 0 {
			continue
		}
		srcs := make([]st.Tensor, len(p.Sources))
		for i, s := range p.Sources {
			if srcs[i], err = m.Tensor(s); err != nil {
				t.Fatal(err)
			}
		}
		in, err := newInput(p, srcs)
		if err != nil {
			t.Fatal(err)
		}
		if in.slabs {
			slabbed++
			saved := chunkBytes
			chunkBytes = 1 // each expert its own slab
			got, err := in.gather(nil)
			chunkBytes = saved
			if err != nil {
				t.Fatal(err)
			}
			want, err := in.apply()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("%s: slabs differ from the whole tensor", p.Name)
			}
		} else if strings.HasSuffix(p.Name, "_proj.weight") {
			t.Errorf("%s: expert weights should run in slabs", p.Name)
		}
	}
	if slabbed == 0 {
		t.Fatal("no slabbed tensor")
	}
	for _, q := range []bool{false, true} {
		o := Options{HFPath: src, Quantize: q, Bits: 8, GroupSize: 32}
		whole, _, _ := run(t, o)
		saved := chunkBytes
		chunkBytes = 1 // one row, one expert per step
		small, _, _ := run(t, o)
		chunkBytes = saved
		a, b := readTensors(t, whole), readTensors(t, small)
		if len(a) != len(b) {
			t.Fatalf("%d tensors vs %d", len(a), len(b))
		}
		for n, x := range a {
			if y := b[n]; y.DType != x.DType || !slices.Equal(x.Shape, y.Shape) || string(x.Data) != string(y.Data) {
				t.Errorf("quantize=%v: %s differs between slab and whole conversion", q, n)
			}
		}
	}
}
