package deepseek_v3_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/deepseek_v3"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/quant"
)

// TestMLXLayout rebuilds the f32 fixture with mlx_lm's split attention
// weights (self_attn.embed_q [H, R, Dn], self_attn.unembed_out [H, Dv, R]
// instead of kv_b_proj) and checks it computes what the hub layout does;
// then with unembed_out MLX-quantized (8 bits, group 32, as mlx_lm's
// QuantizedMultiLinear stores it) against its dequantized values.
func TestMLXLayout(t *testing.T) {
	dir := modeltest.Dir("deepseek_v3-f32")
	ref, err := modeltest.ReadReference(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := modeltest.FixtureMeta(t, "deepseek_v3-f32")
	base := map[string]*engine.Array{}
	for _, p := range m.(model.Trainable).Parameters() {
		if !strings.Contains(p.Name, "kv_b_proj") {
			base[p.Name] = *p.Ptr
		}
	}
	d := m.(*deepseek_v3.Model)
	want := modeltest.Logits(t, m, nil, ref.InputIDs)
	build := func(quantize bool) (model.Model, error) {
		tensors := map[string]*engine.Array{}
		for n, a := range base {
			tensors[n] = a
		}
		keys := cfg
		for i, l := range d.Model.Layers {
			p := "model.layers." + strconv.Itoa(i) + ".self_attn."
			tensors[p+"embed_q.weight"] = l.SelfAttn.EmbedQ
			u := l.SelfAttn.UnembedOut // [H, Dv, R]
			if !quantize {
				tensors[p+"unembed_out.weight"] = u
				continue
			}
			q, s, b := quantize8(t, u)
			tensors[p+"unembed_out.weight"], tensors[p+"unembed_out.scales"], tensors[p+"unembed_out.biases"] = q, s, b
		}
		if quantize {
			keys = map[string]any{}
			for k, v := range cfg {
				keys[k] = v
			}
			keys["quantization"] = map[string]any{"group_size": 32, "bits": 8}
		}
		c, err := model.NewConfig(keys)
		if err != nil {
			return nil, err
		}
		return model.FromTensors(c, tensors)
	}
	mlx, err := build(false)
	if err != nil {
		t.Fatal(err)
	}
	if e := modeltest.RelErr(modeltest.Logits(t, mlx, nil, ref.InputIDs), want); e > 1e-6 {
		t.Errorf("embed_q/unembed_out vs kv_b_proj: rel err %.3g", e)
	}
	q, err := build(true)
	if err != nil {
		t.Fatal(err)
	}
	// The same model with unembed_out replaced by the dequantized codes.
	deq := map[string]*engine.Array{}
	for n, a := range base {
		deq[n] = a
	}
	for i, l := range d.Model.Layers {
		p := "model.layers." + strconv.Itoa(i) + ".self_attn."
		w, s, b := quantize8(t, l.SelfAttn.UnembedOut)
		deq[p+"embed_q.weight"] = l.SelfAttn.EmbedQ
		deq[p+"unembed_out.weight"] = engine.Dequantize(w, s, b, 32, 8)
	}
	c, _ := model.NewConfig(cfg)
	f, err := model.FromTensors(c, deq)
	if err != nil {
		t.Fatal(err)
	}
	ids := ref.InputIDs[:9] // L = 9 (keys through unembed_out) then L = 1 (absorbed)
	for _, chunk := range [][]int{ids, ids[:1]} {
		if e := modeltest.RelErr(modeltest.Logits(t, q, nil, chunk), modeltest.Logits(t, f, nil, chunk)); e > 1e-6 {
			t.Errorf("quantized unembed_out, L=%d: rel err %.3g vs its dequantized weight", len(chunk), e)
		}
	}
}

// quantize8 MLX-quantizes a float32 [..., cols] array, 8 bits, group 32.
func quantize8(t *testing.T, a *engine.Array) (w, s, b *engine.Array) {
	t.Helper()
	shape := a.Shape()
	cols := shape[len(shape)-1]
	rows := 1
	for _, d := range shape[:len(shape)-1] {
		rows *= d
	}
	v, err := engine.AsType(a, engine.Float32).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	q := make([]uint32, rows*cols/4)
	sc, bi := make([]float32, rows*cols/32), make([]float32, rows*cols/32)
	if err := quant.QuantizeF32(v, cols, quant.Options{Bits: 8, GroupSize: 32}, q, sc, bi); err != nil {
		t.Fatal(err)
	}
	lead := shape[:len(shape)-1]
	return engine.FromUint32s(q, append(append([]int(nil), lead...), cols/4)...),
		engine.FromFloat32s(sc, append(append([]int(nil), lead...), cols/32)...),
		engine.FromFloat32s(bi, append(append([]int(nil), lead...), cols/32)...)
}

// TestQuantizedCache: the latent [B, 1, T, R] and rotary key [B, 1, T, Dr]
// go through an 8-bit quantized cache (group 32; the fixture's Dr = 8 is
// below MLX's smallest group, so an in-memory model with R = 64, Dr = 32).
func TestQuantizedCache(t *testing.T) {
	cfg, _ := modeltest.FixtureMeta(t, "deepseek_v3-f32")
	cfg["kv_lora_rank"], cfg["qk_rope_head_dim"], cfg["head_dim"] = 64, 32, 32
	c, err := model.NewConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(c, engine.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Random N(0, 0.02) routers nearly tie, and a top-k flip caused by the
	// cache's rounding would move a position's logits by O(1): scale them
	// so the routing is decisive and the check is about the cache.
	for _, l := range m.(*deepseek_v3.Model).Model.Layers {
		if moe, ok := l.MLP.(*deepseek_v3.MoE); ok {
			moe.Gate.Weight = engine.Multiply(moe.Gate.Weight, engine.Scalar(50))
		}
	}
	modeltest.QuantizedCache(t, m, []int{5, 9, 33, 7, 100, 42, 17, 300, 8, 61, 2, 77, 90, 14}, modeltest.F32)
}

// TestVariants builds config variants the fixture does not cover (plain
// q_proj without q_lora_rank as in Moonlight / DeepSeek-V2-Lite, no shared
// experts, no rope scaling, non-interleaved rope, top-1 routing) and
// checks the cached decode (absorbed attention) against the full forward.
func TestVariants(t *testing.T) {
	for name, edit := range map[string]map[string]any{
		"no_q_lora":      {"q_lora_rank": nil},
		"no_shared":      {"n_shared_experts": nil},
		"no_rope_scale":  {"rope_scaling": nil},
		"rope_halves":    {"rope_interleave": false},
		"top1_one_group": {"num_experts_per_tok": 1, "n_group": 1, "topk_group": 1},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, _ := modeltest.FixtureMeta(t, "deepseek_v3-f32")
			for k, v := range edit {
				cfg[k] = v
			}
			c, err := model.NewConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.RandomModel(c, engine.Float32, 9)
			if err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{}
			for _, p := range m.(model.Trainable).Parameters() {
				names[p.Name] = true
			}
			if q := names["model.layers.0.self_attn.q_proj.weight"]; q != (name == "no_q_lora") {
				t.Errorf("q_proj present: %v", q)
			}
			if s := names["model.layers.1.mlp.shared_experts.up_proj.weight"]; s == (name == "no_shared") {
				t.Errorf("shared_experts present: %v", s)
			}
			ids := []int{5, 9, 33, 7, 100, 42, 17, 300}
			full := modeltest.Logits(t, m, nil, ids)
			caches := m.NewCaches(model.CacheOptions{})
			got := modeltest.Logits(t, m, caches, ids[:3])
			for _, id := range ids[3:] {
				got = append(got, modeltest.Logits(t, m, caches, []int{id})...)
			}
			if e := modeltest.RelErr(got, full); e > 1e-5 {
				t.Errorf("cached decode rel err %.3g", e)
			}
		})
	}
}

// TestPlanToMLXLayout: the sanitize plan turns the hub fixture into
// mlx_lm's layout (experts stacked, kv_b_proj split into embed_q [H, R, Dn]
// and unembed_out [H, Dv, R]), which loads to the reference logits and
// plans to itself.
func TestPlanToMLXLayout(t *testing.T) {
	for _, c := range []struct {
		variant string
		tol     float64
	}{{"deepseek_v3-f32", modeltest.F32.Logits}, {"deepseek_v3-bf16", modeltest.BF16.Logits}} {
		t.Run(c.variant, func(t *testing.T) {
			out := modeltest.MLXLayout(t, c.variant, c.tol)
			want := map[string][]int{
				"model.layers.0.self_attn.embed_q.weight":      {4, 32, 16},
				"model.layers.0.self_attn.unembed_out.weight":  {4, 16, 32},
				"model.layers.1.mlp.switch_mlp.up_proj.weight": {4, 32, 64},
			}
			for name, shape := range want {
				if got, ok := out[name]; !ok || !slices.Equal(got.Shape, shape) {
					t.Errorf("%s: %v, want %v", name, got.Shape, shape)
				}
			}
			for name := range out {
				if strings.Contains(name, "kv_b_proj") || strings.Contains(name, ".experts.") {
					t.Errorf("%s left in the MLX layout", name)
				}
			}
		})
	}
}
