package modeltest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
)

// FixtureMeta reads a fixture's config.json and the tensor list of its
// reference.json (the checkpoint's names, dtypes and shapes).
func FixtureMeta(t *testing.T, variant string) (map[string]any, map[string]model.TensorMeta) {
	t.Helper()
	dir := Dir(variant)
	var cfg map[string]any
	var ref struct {
		Tensors map[string]model.TensorMeta `json:"tensors"`
	}
	for f, v := range map[string]any{"config.json": &cfg, "reference.json": &ref} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return cfg, ref.Tensors
}

// ApplyPlan returns the tensor metadata a plan of OpCopy and OpStack
// entries produces from in; any other op fails the test.
func ApplyPlan(t *testing.T, plan []model.TensorPlan, in map[string]model.TensorMeta) map[string]model.TensorMeta {
	t.Helper()
	out := map[string]model.TensorMeta{}
	for _, p := range plan {
		src := in[p.Sources[0]]
		switch p.Op {
		case model.OpCopy:
			out[p.Name] = src
		case model.OpStack:
			out[p.Name] = model.TensorMeta{DType: src.DType, Shape: append([]int{len(p.Sources)}, src.Shape...)}
		default:
			t.Fatalf("%s: unexpected op %d", p.Name, p.Op)
		}
	}
	return out
}

// ConfigCase is one bad config.json edit: Key set to Val (nil deletes
// it), and the text the load error must contain.
type ConfigCase struct {
	Key  string
	Val  any
	Want string
}

// ConfigErrors checks that each case, applied to variant's config.json,
// makes the model fail to build with an error mentioning Want.
func ConfigErrors(t *testing.T, variant string, cases []ConfigCase) {
	t.Helper()
	for _, tc := range cases {
		cfg, _ := FixtureMeta(t, variant)
		if tc.Val == nil {
			delete(cfg, tc.Key)
		} else {
			cfg[tc.Key] = tc.Val
		}
		c, err := model.NewConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := model.FromTensors(c, map[string]*engine.Array{}); err == nil || !strings.Contains(err.Error(), tc.Want) {
			t.Errorf("%s=%v: err = %v, want it to mention %q", tc.Key, tc.Val, err, tc.Want)
		}
	}
}

// ExpertLayout names where an MoE fixture keeps its experts: the fixtures
// have 4 experts of intermediate size 32 over D = 64.
type ExpertLayout struct {
	Arch, Variant string
	Block         string // "mlp" or "block_sparse_moe": model.layers.N.<Block>.experts.E.*
	Down, Up      string // per-expert names of down_proj and up_proj ("w2", "w3" in mixtral)
	SparseLayers  []int  // layers with experts
}

// StackedExperts checks l.Arch's sanitize plan on l.Variant's checkpoint:
// the experts of each sparse layer are stacked into
// <Block>.switch_mlp.{gate,up,down}_proj [4, out, in] and no per-expert
// tensor is left; a second sanitize copies the stacked layout through;
// MLX-quantized per-expert weight, scales and biases stack too; a missing
// expert is named in the error. It returns the fixture's config for the
// caller's own checks.
func StackedExperts(t *testing.T, l ExpertLayout) map[string]any {
	t.Helper()
	cfg, metas := FixtureMeta(t, l.Variant)
	plan, err := model.SanitizePlan(l.Arch, cfg, metas)
	if err != nil {
		t.Fatal(err)
	}
	got := ApplyPlan(t, plan, metas)
	want := map[string][]int{"gate_proj": {4, 32, 64}, "up_proj": {4, 32, 64}, "down_proj": {4, 64, 32}}
	for _, layer := range l.SparseLayers {
		for proj, shape := range want {
			n := "model.layers." + strconv.Itoa(layer) + "." + l.Block + ".switch_mlp." + proj + ".weight"
			if m, ok := got[n]; !ok || !slices.Equal(m.Shape, shape) || m.DType != "F32" {
				t.Errorf("%s: got %+v (present %v), want F32 %v", n, m, ok, shape)
			}
		}
	}
	for n := range got {
		if strings.Contains(n, ".experts.") {
			t.Errorf("per-expert tensor %q left after sanitize", n)
		}
	}
	// Each sparse layer's 3·4 expert tensors become 3 stacked ones.
	if removed := len(l.SparseLayers) * (3*4 - 3); len(got) != len(metas)-removed {
		t.Errorf("%d tensors after sanitize, want %d", len(got), len(metas)-removed)
	}
	// Idempotent: the stacked (MLX) layout is copied through.
	again, err := model.SanitizePlan(l.Arch, cfg, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(got) {
		t.Fatalf("second sanitize: %d tensors, want %d", len(again), len(got))
	}
	for _, p := range again {
		if p.Op != model.OpCopy || p.Sources[0] != p.Name {
			t.Errorf("second sanitize changes %q: %+v", p.Name, p)
		}
	}

	// MLX-quantized per-expert tensors stack weight, scales and biases.
	q := map[string]model.TensorMeta{}
	for e := range 4 {
		for _, k := range []string{"weight", "scales", "biases"} {
			q["model.layers.0."+l.Block+".experts."+strconv.Itoa(e)+"."+l.Down+"."+k] = model.TensorMeta{DType: "U32", Shape: []int{64, 4}}
		}
	}
	plan, err = model.SanitizePlan(l.Arch, cfg, q)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range plan {
		names = append(names, p.Name)
	}
	stacked := "model.layers.0." + l.Block + ".switch_mlp.down_proj."
	if wantNames := []string{stacked + "biases", stacked + "scales", stacked + "weight"}; !slices.Equal(names, wantNames) {
		t.Errorf("quantized plan names %v, want %v", names, wantNames)
	}

	// A missing expert is named.
	last := l.SparseLayers[len(l.SparseLayers)-1]
	missing := "experts.2." + l.Up + ".weight"
	delete(metas, "model.layers."+strconv.Itoa(last)+"."+l.Block+"."+missing)
	if _, err := model.SanitizePlan(l.Arch, cfg, metas); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing expert: err = %v", err)
	}
	return cfg
}

// TiedLMHead checks arch's sanitize plan on a small checkpoint: the
// rotary inv_freq buffer is dropped; lm_head is dropped when
// tie_word_embeddings is true, kept when false, and kept when the key is
// absent exactly when absentKeeps.
func TiedLMHead(t *testing.T, arch string, absentKeeps bool) {
	t.Helper()
	metas := map[string]model.TensorMeta{
		"model.layers.0.self_attn.rotary_emb.inv_freq": {DType: "F32", Shape: []int{8}},
		"lm_head.weight":            {DType: "F32", Shape: []int{4, 4}},
		"model.embed_tokens.weight": {DType: "F32", Shape: []int{4, 4}},
	}
	for _, c := range []struct {
		cfg    map[string]any
		lmHead bool
	}{
		{map[string]any{"tie_word_embeddings": true}, false},
		{map[string]any{"tie_word_embeddings": false}, true},
		{map[string]any{}, absentKeeps},
	} {
		plan, err := model.SanitizePlan(arch, c.cfg, metas)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range plan {
			names = append(names, p.Name)
		}
		want := []string{"model.embed_tokens.weight"}
		if c.lmHead {
			want = []string{"lm_head.weight", "model.embed_tokens.weight"}
		}
		if strings.Join(names, " ") != strings.Join(want, " ") {
			t.Errorf("config %v: plan %v, want %v", c.cfg, names, want)
		}
	}
}
