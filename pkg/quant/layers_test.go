package quant

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestGuessLayer(t *testing.T) {
	cases := []struct {
		name  string
		shape []int
		want  LayerKind
	}{
		{"model.layers.0.self_attn.q_proj.weight", []int{64, 64}, Linear},
		{"lm_head.weight", []int{1000, 64}, Linear},
		{"model.layers.0.mlp.gate.weight", []int{8, 64}, Linear},
		{"model.embed_tokens.weight", []int{1000, 64}, Embedding},
		{"transformer.wte.weight", []int{1000, 64}, Embedding},
		{"model.layers.0.mlp.switch_mlp.up_proj.weight", []int{8, 128, 64}, SwitchLinear},
		{"model.layers.0.input_layernorm.weight", []int{64}, NotQuantizable},
		{"model.norm.weight", []int{64}, NotQuantizable},
		{"model.layers.0.q_norm.weight", []int{2, 64}, NotQuantizable},
		{"model.layers.0.mamba.conv1d.weight", []int{64, 4, 1}, NotQuantizable},
		{"model.layers.0.self_attn.q_proj.bias", []int{64}, NotQuantizable},
		{"model.layers.0.self_attn.q_proj.scales", []int{64, 1}, NotQuantizable},
	}
	for _, c := range cases {
		l := GuessLayer(c.name, c.shape)
		if l.Kind != c.want {
			t.Errorf("%s %v: %s, want %s", c.name, c.shape, l.Kind, c.want)
		}
	}
	if l := GuessLayer("a.b.weight", []int{2, 64}); l.Path != "a.b" {
		t.Errorf("path %q", l.Path)
	}
}

func mustPlan(t *testing.T, g, b int, pred Predicate, existing map[string]any) *Plan {
	t.Helper()
	p, err := NewPlan(g, b, "", pred, existing)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func decide(t *testing.T, p *Plan, path string, kind LayerKind, shape ...int) Decision {
	t.Helper()
	d, err := p.Decide(Layer{Path: path, Kind: kind, Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPlanDefaults(t *testing.T) {
	p := mustPlan(t, 0, 0, nil, nil)
	if p.Global != (Settings{64, 4, "affine"}) {
		t.Fatalf("defaults %+v", p.Global)
	}
	if d := decide(t, p, "model.layers.0.mlp.down_proj", Linear, 64, 256); !d.Quantize || d.Bits != 4 || d.GroupSize != 64 {
		t.Errorf("linear: %+v", d)
	}
	if d := decide(t, p, "lm_head", Linear, 1000, 64); !d.Quantize {
		t.Error("lm_head not quantized")
	}
	if d := decide(t, p, "model.embed_tokens", Embedding, 1000, 64); !d.Quantize {
		t.Error("embedding not quantized")
	}
	if d := decide(t, p, "model.layers.0.mlp.switch_mlp.up_proj", SwitchLinear, 8, 32, 128); !d.Quantize {
		t.Error("switch linear not quantized")
	}
	if d := decide(t, p, "model.norm", NotQuantizable, 64); d.Quantize {
		t.Error("norm quantized")
	}
	if d := decide(t, p, "model.layers.0.self_attn.o_proj", Linear, 64, 96); d.Quantize {
		t.Error("layer with in=96 quantized at group 64")
	}
	want := map[string]any{"group_size": 64, "bits": 4, "mode": "affine"}
	if !reflect.DeepEqual(p.Config(), want) {
		t.Errorf("config %v, want %v", p.Config(), want)
	}
	for _, bad := range []struct {
		g, b int
		mode string
	}{{64, 7, ""}, {48, 4, ""}, {64, 4, "mxfp4"}} {
		if _, err := NewPlan(bad.g, bad.b, bad.mode, nil, nil); err == nil {
			t.Errorf("NewPlan(%v) accepted", bad)
		}
	}
}

func TestModelPredicates(t *testing.T) {
	p := mustPlan(t, 32, 4, ModelPredicate("qwen3_moe", nil), nil)
	d := decide(t, p, "model.layers.3.mlp.gate", Linear, 8, 64)
	if !d.Quantize || d.Bits != 8 || d.GroupSize != 64 {
		t.Errorf("router: %+v", d)
	}
	d = decide(t, p, "model.layers.3.mlp.switch_mlp.gate_proj", SwitchLinear, 8, 64, 64)
	if !d.Quantize || d.Bits != 4 || d.GroupSize != 32 {
		t.Errorf("experts: %+v", d)
	}
	want := map[string]any{"group_size": 32, "bits": 4, "mode": "affine",
		"model.layers.3.mlp.gate": map[string]any{"group_size": 64, "bits": 8}}
	if !reflect.DeepEqual(p.Config(), want) {
		t.Errorf("config %v", p.Config())
	}
	// A router whose input dim suits the global group 32 but not its own 64.
	if _, err := p.Decide(Layer{Path: "model.layers.0.mlp.gate", Kind: Linear, Shape: []int{8, 96}}); err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.gate") {
		t.Errorf("router with in=96: %v", err)
	}

	routers := map[string][]string{
		"qwen3_next":       {"model.layers.0.mlp.gate", "model.layers.0.mlp.shared_expert_gate"},
		"gpt_oss":          {"model.layers.0.mlp.router"},
		"minimax":          {"model.layers.0.block_sparse_moe.gate"},
		"minimax_m2":       {"model.layers.0.block_sparse_moe.gate"},
		"bailing_moe":      {"model.layers.0.mlp.gate.gate_proj"},
		"gemma4_text":      {"model.layers.0.router.proj"},
		"gemma4":           {"language_model.model.layers.0.router.proj"},
		"granitemoe":       {"model.layers.0.block_sparse_moe.router.layer"},
		"lfm2_moe":         {"model.layers.0.feed_forward.gate"},
		"longcat_flash":    {"model.layers.0.mlp.router.classifier"},
		"afmoe":            {"model.layers.0.mlp.router.gate"},
		"step3p5":          {"model.layers.0.mlp.gate.gate"},
		"Klear":            {"model.layers.0.mlp.gate"},
		"qwen3_vl_moe":     {"language_model.model.layers.0.mlp.gate"},
		"jamba":            {"model.layers.0.feed_forward.router"},
		"kimi_linear":      {"model.layers.0.mlp.gate"},
		"granitemoehybrid": {"model.layers.0.block_sparse_moe.router.layer"},
		"qwen3_5":          {"language_model.model.layers.0.mlp.gate"},
	}
	cfgs := map[string]map[string]any{
		"granitemoehybrid": {"num_local_experts": 8.0},
		"qwen3_5":          {"text_config": map[string]any{"num_experts": 64.0}},
	}
	for mt, paths := range routers {
		pred := ModelPredicate(mt, cfgs[mt])
		if pred == nil {
			t.Errorf("%s: no predicate", mt)
			continue
		}
		for _, path := range paths {
			c, _ := pred(Layer{Path: path, Kind: Linear, Shape: []int{8, 64}})
			if !reflect.DeepEqual(c.Params, map[string]any{"group_size": 64, "bits": 8}) {
				t.Errorf("%s %s: %+v", mt, path, c)
			}
		}
		c, _ := pred(Layer{Path: "model.layers.0.self_attn.q_proj", Kind: Linear, Shape: []int{64, 64}})
		if c.Params != nil || c.Skip {
			t.Errorf("%s q_proj: %+v", mt, c)
		}
	}
	for _, mt := range []string{"llama", "qwen2", "mixtral", "qwen3_moe_not", "minimax_m3"} {
		if ModelPredicate(mt, nil) != nil {
			t.Errorf("%s has a predicate", mt)
		}
	}
	if ModelPredicate("granitemoehybrid", map[string]any{"num_local_experts": 0.0}) != nil {
		t.Error("dense granitemoehybrid has a predicate")
	}
	if ModelPredicate("qwen3_5", map[string]any{"num_experts": 0.0}) != nil {
		t.Error("dense qwen3_5 has a predicate")
	}
	// rwkv7 gives only bits: group size takes the mode default 64.
	p = mustPlan(t, 32, 4, ModelPredicate("rwkv7", nil), nil)
	d = decide(t, p, "model.embeddings", Embedding, 100, 64)
	if d.Bits != 8 || d.GroupSize != 64 || !reflect.DeepEqual(p.Config()["model.embeddings"], map[string]any{"bits": 8}) {
		t.Errorf("rwkv7 embeddings: %+v %v", d, p.Config())
	}
}

// TestMixedRecipe checks the layer choice of mixed_3_6 on 16 layers by
// hand: L/8 = 2 and 7L/8 = 14, so layers 0, 1, 14, 15 and those with
// (i − 2) mod 3 = 2 (4, 7, 10, 13) use more bits.
func TestMixedRecipe(t *testing.T) {
	loc := LayerLocation("model.layers.0.mlp.down_proj")
	if loc != 2 {
		t.Fatalf("layer location %d", loc)
	}
	if LayerLocation("mlp.down_proj") != 1 || LayerLocation("backbone.blocks.3.down_proj") != 2 {
		t.Error("LayerLocation fallback")
	}
	pred, err := MixedRecipe("mixed_3_6", 16, loc, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, 0, 0, pred, nil)
	more := map[int]bool{0: true, 1: true, 4: true, 7: true, 10: true, 13: true, 14: true, 15: true}
	for i := 0; i < 16; i++ {
		for _, m := range []string{"self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj", "mlp.up_proj"} {
			path := fmt.Sprintf("model.layers.%d.%s", i, m)
			d := decide(t, p, path, Linear, 64, 128)
			want := 3
			if more[i] && (strings.Contains(m, "v_proj") || strings.Contains(m, "down_proj")) {
				want = 6
			}
			if d.Bits != want || d.GroupSize != 64 {
				t.Errorf("%s: %d bits, want %d", path, d.Bits, want)
			}
			entry := p.Config()[path]
			if !reflect.DeepEqual(entry, map[string]any{"group_size": nil, "bits": want, "mode": "affine"}) {
				t.Errorf("%s entry %v", path, entry)
			}
		}
	}
	if d := decide(t, p, "lm_head", Linear, 100, 64); d.Bits != 6 {
		t.Errorf("lm_head %d bits", d.Bits)
	}
	if d := decide(t, p, "model.embed_tokens", Embedding, 100, 64); d.Bits != 3 {
		t.Errorf("embed_tokens %d bits", d.Bits)
	}
	// the JSON mlx_lm would write for an entry without --q-group-size
	b, _ := json.Marshal(p.Config()["model.layers.0.mlp.down_proj"])
	if string(b) != `{"bits":6,"group_size":null,"mode":"affine"}` {
		t.Errorf("entry JSON %s", b)
	}
	for name, lowHigh := range map[string][2]int{"mixed_2_6": {2, 6}, "mixed_3_4": {3, 4}, "mixed_4_6": {4, 6}} {
		pred, _ := MixedRecipe(name, 16, 2, 32)
		lo, _ := pred(Layer{Path: "model.layers.2.mlp.down_proj"})
		hi, _ := pred(Layer{Path: "model.layers.1.mlp.down_proj"})
		if lo.Params["bits"] != lowHigh[0] || hi.Params["bits"] != lowHigh[1] || hi.Params["group_size"] != 32 {
			t.Errorf("%s: %v %v", name, lo.Params, hi.Params)
		}
	}
	if _, err := MixedRecipe("mixed_5_8", 16, 2, 0); err == nil {
		t.Error("unknown recipe accepted")
	}
	if _, err := pred(Layer{Path: "model.vision.blocks.proj"}); err == nil || !strings.Contains(err.Error(), "model.vision.blocks.proj") {
		t.Errorf("non-numeric layer position: %v", err)
	}
}

func TestFineGrained(t *testing.T) {
	existing := map[string]any{"group_size": 64, "bits": 4, "model.layers.0.mlp.gate": false}
	p := mustPlan(t, 32, 8, nil, existing)
	d := decide(t, p, "model.layers.1.self_attn.q_proj", Linear, 64, 64)
	if !d.Quantize || d.Bits != 8 || d.GroupSize != 32 {
		t.Errorf("%+v", d)
	}
	cfg := p.Config()
	if cfg["bits"] != 4 || cfg["model.layers.0.mlp.gate"] != false {
		t.Errorf("existing entries lost: %v", cfg)
	}
	if !reflect.DeepEqual(cfg["model.layers.1.self_attn.q_proj"], map[string]any{"group_size": 32, "bits": 8, "mode": "affine"}) {
		t.Errorf("per-layer entry %v", cfg["model.layers.1.self_attn.q_proj"])
	}
	if _, ok := existing["model.layers.1.self_attn.q_proj"]; ok {
		t.Error("caller's map modified")
	}
}

func TestPackedParams(t *testing.T) {
	// a [4096, 4096] weight at 4 bits is stored [4096, 512] and counts 4096²
	if got := PackedParams([]int{4096, 512}, 4); got != 4096*4096 {
		t.Errorf("%d", got)
	}
	if got := PackedParams([]int{8, 96, 3 * 64 / 32 * 1}, 3); got != 8*96*64 {
		t.Errorf("3-bit: %d", got)
	}
}

// TestMoEGateNotQuantized: DeepSeek-V3's and GLM-4-MoE's mlp.gate is
// mlx_lm's MoEGate (a plain weight, no to_quantized): never quantized,
// no config entry, whether layers are guessed by name (the model's
// predicate skips it) or by ModelLayer; qwen3_moe's Linear gate of the
// same shape still gets its 8-bit override.
func TestMoEGateNotQuantized(t *testing.T) {
	for _, mt := range []string{"deepseek_v3", "glm4_moe"} {
		p := mustPlan(t, 32, 4, ModelPredicate(mt, nil), nil)
		d, err := p.Decide(GuessLayer("model.layers.1.mlp.gate.weight", []int{8, 64}))
		if err != nil || d.Quantize {
			t.Errorf("%s mlp.gate by name: %+v %v", mt, d, err)
		}
		if l := ModelLayer(mt, "model.layers.1.mlp.gate.weight", []int{8, 64}); l.Kind != NotQuantizable {
			t.Errorf("%s ModelLayer(mlp.gate) = %v", mt, l.Kind)
		}
		for _, name := range []string{"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.shared_experts.gate_proj.weight", "model.layers.1.self_attn.q_b_proj.weight"} {
			d, err = p.Decide(ModelLayer(mt, name, []int{8, 64}))
			if err != nil || !d.Quantize || d.Bits != 4 {
				t.Errorf("%s %s: %+v %v", mt, name, d, err)
			}
		}
		want := map[string]any{"group_size": 32, "bits": 4, "mode": "affine"}
		if !reflect.DeepEqual(p.Config(), want) {
			t.Errorf("%s config %v", mt, p.Config())
		}
		// A mixed recipe with ModelLayer leaves it alone too.
		mixed, err := MixedRecipe("mixed_3_6", 4, 0, 32)
		if err != nil {
			t.Fatal(err)
		}
		pm := mustPlan(t, 32, 4, mixed, nil)
		if d, _ := pm.Decide(ModelLayer(mt, "model.layers.1.mlp.gate.weight", []int{8, 64})); d.Quantize {
			t.Errorf("%s mixed recipe quantizes mlp.gate", mt)
		}
	}
	if l := ModelLayer("qwen3_moe", "model.layers.1.mlp.gate.weight", []int{8, 64}); l.Kind != Linear {
		t.Errorf("qwen3_moe mlp.gate kind %v", l.Kind)
	}
}
