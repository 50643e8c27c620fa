package gpt_oss_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/gpt_oss"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

func TestFixtures(t *testing.T) {
	// yarn with "truncate": false, as transformers computes it, puts the
	// logits within 5e-7 of the reference (rounding the correction range,
	// as mlx_lm does, moves them by 3.1e-3).
	tight := modeltest.F32
	tight.Logits = 1e-5
	t.Run("gpt_oss-f32", func(t *testing.T) { modeltest.Run(t, "gpt_oss-f32", tight) })
	f32 := engine.Float32
	// bf16 weights computed in float32: the reference is exactly this.
	t.Run("gpt_oss-bf16/compute_f32", func(t *testing.T) {
		modeltest.Run(t, "gpt_oss-bf16", modeltest.F32, model.LoadOptions{ComputeDType: &f32})
	})
	// bf16 activations, as mlx_lm runs a bf16 checkpoint.
	t.Run("gpt_oss-bf16", func(t *testing.T) { modeltest.Run(t, "gpt_oss-bf16", modeltest.BF16) })
}

// TestMLXLayout rebuilds the f32 fixture from mlx_lm's expert names
// (mlp.experts.{gate,up,down}_proj.{weight,bias}, [E, out, in]) and checks
// it computes what the transformers layout (fused gate_up_proj) does.
func TestMLXLayout(t *testing.T) {
	dir := modeltest.Dir("gpt_oss-f32")
	ref, err := modeltest.ReadReference(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, cfg, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tensors := map[string]*engine.Array{}
	for _, p := range m.(model.Trainable).Parameters() {
		if !strings.Contains(p.Name, ".mlp.experts.") {
			tensors[p.Name] = *p.Ptr
		}
	}
	g := m.(*gpt_oss.Model)
	for i, l := range g.Model.Layers {
		p := "model.layers." + strconv.Itoa(i) + ".mlp.experts."
		for name, s := range map[string]nn.SwitchLayer{"gate_proj": l.MLP.Experts.GateProj, "up_proj": l.MLP.Experts.UpProj, "down_proj": l.MLP.Experts.DownProj} {
			sl := s.(*nn.SwitchLinear)
			tensors[p+name+".weight"], tensors[p+name+".bias"] = sl.Weight, sl.Bias
		}
	}
	if got := tensors["model.layers.0.mlp.experts.down_proj.weight"].Shape(); got[0] != 4 || got[1] != 64 || got[2] != 32 {
		t.Fatalf("down_proj.weight shape %v, want [4 64 32]", got)
	}
	mlx, err := model.FromTensors(cfg, tensors)
	if err != nil {
		t.Fatal(err)
	}
	a := modeltest.Logits(t, m, nil, ref.InputIDs)
	b := modeltest.Logits(t, mlx, nil, ref.InputIDs)
	if e := modeltest.RelErr(b, a); e > 1e-6 {
		t.Errorf("mlx layout vs transformers layout: rel err %.3g", e)
	}
}

func TestSanitize(t *testing.T) {
	cfg := map[string]any{"tie_word_embeddings": false}
	in := map[string]model.TensorMeta{
		"model.layers.0.mlp.experts.gate_up_proj":      {DType: "F32", Shape: []int{4, 64, 64}},
		"model.layers.0.self_attn.rotary_emb.inv_freq": {DType: "F32", Shape: []int{8}},
	}
	plan, err := model.SanitizePlan("gpt_oss", cfg, in)
	if err != nil || len(plan) != 1 || plan[0].Name != "model.layers.0.mlp.experts.gate_up_proj" || plan[0].Op != model.OpCopy {
		t.Errorf("plan %+v, err %v", plan, err)
	}
	// OpenAI's MXFP4 blocks become mlx_lm's packed uint32 weight
	in["model.layers.0.mlp.experts.down_proj_blocks"] = model.TensorMeta{DType: "U8", Shape: []int{4, 64, 1, 16}}
	full, err := model.FullSanitizePlan("gpt_oss", cfg, in)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range full {
		if p.Name == "model.layers.0.mlp.experts.down_proj.weight" {
			m, err := model.PlanMeta(p, []model.TensorMeta{in["model.layers.0.mlp.experts.down_proj_blocks"]})
			if err != nil || m.DType != "U32" || fmt.Sprint(m.Shape) != "[4 64 4]" {
				t.Errorf("mxfp4 down_proj.weight: %+v, %v", m, err)
			}
			found = true
		}
	}
	if !found {
		t.Errorf("mxfp4: no down_proj.weight in %+v", full)
	}
	in["model.layers.0.mlp.experts.down_proj_blocks"] = model.TensorMeta{DType: "F32", Shape: []int{4, 64, 16}}
	if _, err := model.FullSanitizePlan("gpt_oss", cfg, in); err == nil || !strings.Contains(err.Error(), "down_proj_blocks") {
		t.Errorf("bad mxfp4 blocks: err = %v", err)
	}
}

// TestConfigErrors: a bad config.json names the key and what was expected.
func TestConfigErrors(t *testing.T) {
	modeltest.ConfigErrors(t, "gpt_oss-f32", []modeltest.ConfigCase{
		{Key: "num_local_experts", Val: nil, Want: `missing key "num_local_experts"`},
		{Key: "num_experts_per_tok", Val: 5, Want: "num_experts_per_tok 5 must be in 1..num_local_experts (4)"},
		{Key: "layer_types", Val: []string{"sliding_attention"}, Want: "layer_types has 1 entries for 2 layers"},
		{Key: "layer_types", Val: []string{"sliding_attention", "chunked"}, Want: `layer_types[1] "chunked"`},
		{Key: "sliding_window", Val: 0, Want: "layer 0 is sliding_attention but sliding_window is 0"},
	})
}

// TestQuantizedCache: 8-bit quantized caches (group 32) on the full and
// sliding layers of an in-memory model with head_dim 32.
func TestQuantizedCache(t *testing.T) {
	cfg, _ := modeltest.FixtureMeta(t, "gpt_oss-f32")
	// Layer 0 full (the helper inspects cache 0), layer 1 sliding.
	cfg["head_dim"], cfg["layer_types"] = 32, []string{"full_attention", "sliding_attention"}
	c, err := model.NewConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(c, engine.Float32, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Random N(0, 0.02) routers nearly tie, and a top-k flip caused by the
	// cache's rounding moves a position's logits by O(1) (measured 0.28):
	// scale them so the routing is decisive and the check is about the cache.
	for i := range m.(*gpt_oss.Model).Model.Layers {
		r := m.(*gpt_oss.Model).Model.Layers[i].MLP.Router.(*nn.Linear)
		r.Weight = engine.Multiply(r.Weight, engine.Scalar(50))
	}
	modeltest.QuantizedCache(t, m, []int{5, 9, 33, 7, 100, 42, 17, 300, 8, 61, 2, 77, 90, 14}, modeltest.F32)
}

// TestPlanToMLXLayout: the sanitize plan turns the transformers fixture
// into mlx_lm's expert layout (split, transposed, biases split along the
// last axis), which loads to the reference logits and plans to itself.
func TestPlanToMLXLayout(t *testing.T) {
	for _, c := range []struct {
		variant string
		tol     float64
	}{{"gpt_oss-f32", 1e-5}, {"gpt_oss-bf16", modeltest.BF16.Logits}} {
		t.Run(c.variant, func(t *testing.T) {
			out := modeltest.MLXLayout(t, c.variant, c.tol)
			want := map[string][]int{
				"model.layers.1.mlp.experts.gate_proj.weight": {4, 32, 64},
				"model.layers.1.mlp.experts.up_proj.weight":   {4, 32, 64},
				"model.layers.1.mlp.experts.down_proj.weight": {4, 64, 32},
				"model.layers.1.mlp.experts.gate_proj.bias":   {4, 32},
				"model.layers.1.mlp.experts.up_proj.bias":     {4, 32},
				"model.layers.1.mlp.experts.down_proj.bias":   {4, 64},
			}
			for name, shape := range want {
				if got, ok := out[name]; !ok || fmt.Sprint(got.Shape) != fmt.Sprint(shape) {
					t.Errorf("%s: %v, want %v", name, got.Shape, shape)
				}
			}
			for name := range out {
				if strings.Contains(name, "gate_up_proj") || strings.HasSuffix(name, "_bias") || strings.HasSuffix(name, "experts.down_proj") {
					t.Errorf("fused tensor %s left in the MLX layout", name)
				}
			}
		})
	}
}
