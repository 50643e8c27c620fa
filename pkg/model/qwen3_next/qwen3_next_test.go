package qwen3_next_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/safetensors"

	_ "github.com/mlxgo/mlxgo/pkg/model/qwen3_next"
)

// bf16 is modeltest.BF16 with a wider logits bound: with bf16
// activations this architecture rounds at many more points per layer than
// Llama (causal convolution, gated RMSNorm, attention output gate, MoE
// plus gated shared expert), and measures 0.022 (logits) and 0.025-0.027
// (batch) against the float32 reference, where llama-bf16 measures ~0.01.
// The same bf16 weights computed in float32 match to 1e-6 (compute_f32),
// so the excess is rounding, not arithmetic.
var bf16 = modeltest.Tolerances{Logits: 4e-2, Margin: modeltest.BF16.Margin, Cache: modeltest.BF16.Cache, QuantizedCache: modeltest.BF16.QuantizedCache}

func TestFixtures(t *testing.T) {
	t.Run("qwen3_next-f32", func(t *testing.T) { modeltest.Run(t, "qwen3_next-f32", modeltest.F32) })
	f32 := engine.Float32
	t.Run("qwen3_next-bf16/compute_f32", func(t *testing.T) {
		modeltest.Run(t, "qwen3_next-bf16", modeltest.F32, model.LoadOptions{ComputeDType: &f32})
	})
	t.Run("qwen3_next-bf16", func(t *testing.T) { modeltest.Run(t, "qwen3_next-bf16", bf16) })
}

// Without layer_types the kinds come from full_attention_interval (2 in
// the fixture: linear, full), giving the same logits; an interval of 1
// makes both layers full attention, which the checkpoint cannot load.
func TestFullAttentionInterval(t *testing.T) {
	src := modeltest.Dir("qwen3_next-f32")
	ref, err := modeltest.ReadReference(src)
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadEdited(t, src, func(c map[string]any) { delete(c, "layer_types") })
	if err != nil {
		t.Fatal(err)
	}
	f := modeltest.Logits(t, m, nil, ref.InputIDs)
	var got []float32
	for _, p := range ref.LogitsPositions {
		got = append(got, f[p*ref.V:(p+1)*ref.V]...)
	}
	if e := modeltest.RelErr(got, ref.Logits); e > modeltest.F32.Logits {
		t.Errorf("layer kinds from full_attention_interval: logits rel err %.3g", e)
	}
	_, err = loadEdited(t, src, func(c map[string]any) {
		delete(c, "layer_types")
		c["full_attention_interval"] = 1
	})
	if err == nil || !strings.Contains(err.Error(), "self_attn.q_proj") {
		t.Errorf("all-full-attention config over a hybrid checkpoint: err = %v, want a missing self_attn tensor", err)
	}
}

func loadEdited(t *testing.T, src string, edit func(map[string]any)) (model.Model, error) {
	t.Helper()
	dir := t.TempDir()
	var cfg map[string]any
	data, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	data, _ = json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "model.safetensors"), filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	m, _, err := model.Load(dir)
	return m, err
}

// The sanitize plan stacks the hub's per-expert tensors, drops mtp.*,
// shifts the decoder/final/q/k norms by 1 (not the linear attention's
// gated norm), reshapes conv1d [C, 1, K] to [C, K, 1], copies mlx_lm's
// layout through, and refuses a quantized checkpoint in the hub's layout.
func TestSanitize(t *testing.T) {
	metas := map[string]model.TensorMeta{
		"model.layers.0.linear_attn.conv1d.weight":     {DType: "F32", Shape: []int{128, 1, 4}},
		"model.layers.0.linear_attn.norm.weight":       {DType: "F32", Shape: []int{8}},
		"model.layers.0.input_layernorm.weight":        {DType: "F32", Shape: []int{4}},
		"model.layers.1.self_attn.q_norm.weight":       {DType: "F32", Shape: []int{8}},
		"model.norm.weight":                            {DType: "F32", Shape: []int{4}},
		"mtp.fc.weight":                                {DType: "F32", Shape: []int{4, 4}},
		"model.layers.0.mlp.shared_expert_gate.weight": {DType: "F32", Shape: []int{1, 4}},
	}
	for e := range 3 {
		metas["model.layers.0.mlp.experts."+strconv.Itoa(e)+".up_proj.weight"] = model.TensorMeta{DType: "F32", Shape: []int{8, 4}}
	}
	cfg := map[string]any{"num_experts": 3.0}
	plan, err := model.FullSanitizePlan("qwen3_next", cfg, metas)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]model.TensorPlan{}
	for _, p := range plan {
		got[p.Name] = p
	}
	st, ok := got["model.layers.0.mlp.switch_mlp.up_proj.weight"]
	if len(plan) != 7 || !ok || st.Op != model.OpStack || len(st.Sources) != 3 || st.Sources[2] != "model.layers.0.mlp.experts.2.up_proj.weight" {
		t.Errorf("plan %+v: want six tensors and one stack of experts 0..2", plan)
	}
	add := []model.Step{{Op: model.OpAddScalar, Value: 1}}
	for name, steps := range map[string][]model.Step{
		"model.layers.0.linear_attn.conv1d.weight":     {{Op: model.OpReshape, Shape: []int{128, 4, 1}}},
		"model.layers.0.input_layernorm.weight":        add,
		"model.layers.1.self_attn.q_norm.weight":       add,
		"model.norm.weight":                            add,
		"model.layers.0.linear_attn.norm.weight":       nil,
		"model.layers.0.mlp.shared_expert_gate.weight": nil,
	} {
		if p := got[name]; fmt.Sprint(p.Steps) != fmt.Sprint(steps) || p.Sources[0] != name {
			t.Errorf("%s: %+v, want steps %v", name, p, steps)
		}
	}
	if _, err := model.FullSanitizePlan("qwen3_next", map[string]any{"num_experts": 3.0, "quantization": map[string]any{"bits": 4}}, metas); err == nil {
		t.Error("quantized checkpoint with the hub's conv1d layout: no error")
	}
	// mlx_lm's layout (float or quantized) is copied through.
	mlx := map[string]model.TensorMeta{
		"model.layers.0.linear_attn.conv1d.weight":     {DType: "F32", Shape: []int{128, 4, 1}},
		"model.layers.0.input_layernorm.weight":        {DType: "F32", Shape: []int{4}},
		"model.layers.0.mlp.switch_mlp.up_proj.weight": {DType: "F32", Shape: []int{3, 8, 4}},
	}
	for _, c := range []map[string]any{cfg, {"num_experts": 3.0, "quantization": map[string]any{"bits": 4}}} {
		plan, err := model.FullSanitizePlan("qwen3_next", c, mlx)
		if err != nil || len(plan) != 3 {
			t.Fatalf("MLX layout: %+v %v", plan, err)
		}
		for _, p := range plan {
			if p.Op != model.OpCopy || len(p.Steps) != 0 || p.Sources[0] != p.Name {
				t.Errorf("MLX layout changes %+v", p)
			}
		}
	}
}

// TestPlanToMLXLayout: the sanitize plan turns the hub fixture into
// mlx_lm's layout, which loads to the reference logits (the model reads
// its norms as they are, so they hold the hub's + 1) and plans to itself.
func TestPlanToMLXLayout(t *testing.T) {
	out := modeltest.MLXLayout(t, "qwen3_next-f32", modeltest.F32.Logits)
	if got := out["model.layers.0.linear_attn.conv1d.weight"].Shape; len(got) != 3 || got[2] != 1 {
		t.Errorf("conv1d shape %v, want [C, K, 1]", got)
	}
	out = modeltest.MLXLayout(t, "qwen3_next-bf16", bf16.Logits)
	if got := out["model.layers.0.linear_attn.conv1d.weight"].Shape; len(got) != 3 || got[2] != 1 {
		t.Errorf("conv1d shape %v, want [C, K, 1]", got)
	}
}

// mlx_lm's converted layout (what its quantized checkpoints hold): norm
// weights + 1 (except linear_attn.norm), conv1d [C, K, 1], experts
// stacked. The fixture's weights rewritten that way, under a config with a
// "quantization" entry (no layer actually quantized: none has scales),
// must give the reference logits.
func TestMLXLayout(t *testing.T) {
	src := modeltest.Dir("qwen3_next-f32")
	ref, err := modeltest.ReadReference(src)
	if err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.OpenModel(src)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tensors := map[string]*engine.Array{}
	experts := map[string][]*engine.Array{}
	for _, name := range st.Names() {
		tt, err := st.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := tt.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		a := engine.FromFloat32s(append([]float32(nil), f...), tt.Shape...)
		switch {
		case strings.HasSuffix(name, "conv1d.weight"):
			a = engine.Reshape(a, tt.Shape[0], tt.Shape[2], 1)
		case len(tt.Shape) == 1 && (strings.HasSuffix(name, "layernorm.weight") || strings.HasSuffix(name, "_norm.weight") || name == "model.norm.weight"):
			a = engine.Add(a, engine.Scalar(1))
		case strings.Contains(name, ".mlp.experts."):
			i := strings.Index(name, ".mlp.experts.")
			rest := name[i+len(".mlp.experts."):]
			key := name[:i] + ".mlp.switch_mlp." + rest[strings.IndexByte(rest, '.')+1:]
			experts[key] = append(experts[key], a) // Names() is sorted: experts 0..3 in order
			continue
		}
		tensors[name] = a
	}
	for k, list := range experts {
		tensors[k] = engine.Stack(list, 0)
	}
	var keys map[string]any
	data, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	keys["quantization"] = map[string]any{"group_size": 32, "bits": 4}
	cfg, err := model.NewConfig(keys)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromTensors(cfg, tensors)
	if err != nil {
		t.Fatal(err)
	}
	f := modeltest.Logits(t, m, nil, ref.InputIDs)
	var got []float32
	for _, p := range ref.LogitsPositions {
		got = append(got, f[p*ref.V:(p+1)*ref.V]...)
	}
	if e := modeltest.RelErr(got, ref.Logits); e > modeltest.F32.Logits {
		t.Errorf("mlx_lm layout: logits rel err %.3g", e)
	}
}

// TestQuantizedInMemory builds a small qwen3_next with every linear layer (the
// experts' stacked SwitchLinear weights included, and the embedding) 4-bit quantized (random codes; head dim 32, so the KV
// cache can be quantized too) and checks an 8-bit quantized KV cache
// against the full forward (exact before the quantized start).
func TestQuantizedInMemory(t *testing.T) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "qwen3_next", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256, "rms_norm_eps": 1e-5,
		"quantization": map[string]any{"group_size": 32, "bits": 4},
		"layer_types":  []string{"full_attention", "linear_attention"}, "linear_num_value_heads": 2, "linear_num_key_heads": 1, "linear_key_head_dim": 32, "linear_value_head_dim": 32, "linear_conv_kernel_dim": 4, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 32, "norm_topk_prob": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 11, model.LoadOptions{ExactQuantized: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 40)
	for i := range ids {
		ids[i] = (i*37 + 11) % 256
	}
	tol := modeltest.F32
	tol.QuantizedCache = 1e-2
	modeltest.QuantizedCache(t, m, ids, tol)
}
