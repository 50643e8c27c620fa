package lora

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/optim"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

const modelsDir = "../../testdata/models"

func loadModel(t *testing.T, dir string) model.Model {
	t.Helper()
	m, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// forward returns the logits [1, L, V] of ids as float32 values.
func forward(t *testing.T, m model.Model, ids []int32) []float32 {
	t.Helper()
	v, err := m.Forward(engine.FromInt32s(ids, 1, len(ids)), nil).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func maxDiff(a, b []float32) (diff, scale float64) {
	for i := range a {
		diff = max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = max(scale, math.Abs(float64(b[i])))
	}
	return
}

// The PEFT adapter imports to the same logits as the mlx adapter, and both
// give the references computed by PEFT and by the mlx formula.
func TestPEFTImportLogits(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(fixtures, "lora", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		InputIDs  []int32 `json:"input_ids"`
		Positions []int   `json:"logits_positions"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	got := map[string][]float32{}
	for _, kind := range []string{"lora", "peft"} {
		m := loadModel(t, llamaF32)
		a, err := LoadAdapter(filepath.Join(fixtures, kind))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ApplyAdapter(m, a); err != nil {
			t.Fatal(err)
		}
		logits := forward(t, m, ref.InputIDs)
		V := len(logits) / len(ref.InputIDs)
		for _, p := range ref.Positions {
			got[kind] = append(got[kind], logits[p*V:(p+1)*V]...)
		}
		f, err := safetensors.Open(filepath.Join(fixtures, kind, "reference.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		rt, err := f.Tensor("logits")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := rt.Float32s()
		if d, s := maxDiff(got[kind], want); d > 1e-4*s {
			t.Errorf("%s: logits differ from the reference by %g (max |logit| %g)", kind, d, s)
		}
		f.Close()
	}
	if d, _ := maxDiff(got["peft"], got["lora"]); d > 1e-5 {
		t.Errorf("PEFT and mlx adapters differ by %g", d)
	}
}

// fuseInto adds each adapter's weight delta of tuned to the same-named
// weights of base (mlx_lm's fuse formulas for Linear, SwitchLinear and
// Embedding), so base's logits must equal the adapted model's.
func fuseInto(t *testing.T, tuned *Tuned, scale float64, base model.Model) {
	t.Helper()
	s, err := inspect(base)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]model.Param{}
	for _, p := range s.params {
		params[p.Name] = p
	}
	arrs := map[string]*engine.Array{}
	for _, p := range tuned.Params {
		arrs[p.Name] = *p.Ptr
	}
	for name, a := range arrs {
		path, ok := strings.CutSuffix(name, ".lora_a")
		if !ok {
			continue
		}
		b := arrs[path+".lora_b"]
		w, ok := params[path+".weight"]
		if !ok {
			t.Fatalf("no %s.weight in the base model", path)
		}
		var delta *engine.Array
		switch {
		case len(a.Shape()) == 3: // switch: [E, out, r]·[E, r, in]
			delta = engine.Matmul(b, a)
		case strings.Contains(path, "embed"): // [V, r]·[r, D]
			delta = engine.Matmul(a, b)
		default: // bᵀ·aᵀ [out, in]
			delta = engine.Transpose(engine.Matmul(a, b), 1, 0)
		}
		*w.Ptr = engine.Add(*w.Ptr, engine.Multiply(delta, engine.Scalar(scale)))
	}
}

// randomizeB gives every lora_b random values so adapters change outputs.
func randomizeB(t *testing.T, tuned *Tuned) {
	t.Helper()
	k := engine.NewKey(7)
	for _, p := range tuned.Params {
		if strings.HasSuffix(p.Name, ".lora_b") {
			k[1]++
			kk := k
			*p.Ptr = engine.RandomNormal((*p.Ptr).Shape(), 0, 0.05, engine.Float32, &kk)
		}
	}
	if err := engine.Eval(tuned.Arrays()...); err != nil {
		t.Fatal(err)
	}
}

// LoRA on MoE expert stacks (SwitchLinear) and on the embedding (a
// top-level key; tied, so also the output projection): zero lora_b leaves
// the model unchanged, and the adapted model equals the fused one.
func TestSwitchAndEmbeddingLoRAEqualFused(t *testing.T) {
	ids := []int32{58, 78, 75, 6, 87, 71, 73, 81, 6, 72}
	for _, c := range []struct {
		dir      string
		keys     []string
		wantName string
	}{
		{"qwen3_moe-f32", nil, "model.layers.1.mlp.switch_mlp.gate_proj.lora_a"},
		{"qwen2-f32", []string{"model.embed_tokens", "self_attn.q_proj"}, "model.embed_tokens.lora_a"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			dir := filepath.Join(modelsDir, c.dir)
			m := loadModel(t, dir)
			baseLogits := forward(t, m, ids)
			tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 4, Scale: 2, Keys: c.keys}, Seed: 2})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range tuned.Params {
				found = found || p.Name == c.wantName
			}
			if !found {
				t.Fatalf("no %s among %d trainable arrays", c.wantName, len(tuned.Params))
			}
			if d, _ := maxDiff(forward(t, m, ids), baseLogits); d != 0 {
				t.Errorf("with lora_b = 0 the logits moved by %g", d)
			}
			randomizeB(t, tuned)
			adapted := forward(t, m, ids)
			fused := loadModel(t, dir)
			fuseInto(t, tuned, 2, fused)
			want := forward(t, fused, ids)
			if d, s := maxDiff(adapted, want); d > 1e-4*s || d == 0 && s == 0 {
				t.Errorf("adapted vs fused logits differ by %g (scale %g)", d, s)
			}
			if d, _ := maxDiff(adapted, baseLogits); d < 1e-3 {
				t.Errorf("random lora_b changed the logits by only %g", d)
			}
		})
	}
	m := loadModel(t, filepath.Join(modelsDir, "qwen3_moe-f32"))
	if _, err := Apply(m, ApplyOptions{FineTuneType: "dora", NumLayers: 1, Parameters: Parameters{Rank: 4, Scale: 2}}); err == nil || !strings.Contains(err.Error(), "DoRA does not support MoE") {
		t.Errorf("DoRA on MoE experts: %v", err)
	}
}

// QLoRA: on a 4-bit model the base stays packed, lora_a has the unpacked
// input size, and training lowers the loss.
func TestQLoRA(t *testing.T) {
	m := loadModel(t, filepath.Join(modelsDir, "llama-q4"))
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 8, Scale: 20}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tuned.Params {
		if p.Name == "model.layers.0.self_attn.q_proj.lora_a" {
			if s := (*p.Ptr).Shape(); s[0] != 64 || s[1] != 8 {
				t.Errorf("q_proj.lora_a %v, want [64 8]", s)
			}
		}
	}
	if len(tuned.Params) != 28 {
		t.Errorf("%d trainable arrays, want 28", len(tuned.Params))
	}
	if tuned.TotalParams == 0 || tuned.TrainableCount() == 0 {
		t.Errorf("parameter counts %d/%d", tuned.TrainableCount(), tuned.TotalParams)
	}
	opt, _ := optim.New("adam", optim.Constant(1e-3), nil)
	b, err := NewBatcher(mapping(4), 4, 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	batch, _ := b.Next()
	first, _, err := Step(m, tuned, opt, batch, MaskStrict)
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	for i := 0; i < 15; i++ {
		if last, _, err = Step(m, tuned, opt, batch, MaskStrict); err != nil {
			t.Fatal(err)
		}
	}
	if !(last < 0.8*first) {
		t.Errorf("QLoRA loss %.3f -> %.3f", first, last)
	}
}

// --num-layers larger than the model, and unknown keys, are errors.
func TestApplyErrors(t *testing.T) {
	m := loadModel(t, llamaF32)
	if _, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: 3, Parameters: Parameters{Rank: 8}}); err == nil || !strings.Contains(err.Error(), "only has 2 layers") {
		t.Errorf("num_layers 3: %v", err)
	}
	if _, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: 2, Parameters: Parameters{Rank: 8, Keys: []string{"self_attn.x_proj"}}}); err == nil || !strings.Contains(err.Error(), "x_proj") {
		t.Errorf("bad key: %v", err)
	}
}

// A full fine-tune of a bf16 model saves its parameters in bf16 (as mlx_lm
// saves trainable parameters in their dtype) and loads them back.
func TestFullSaveKeepsDType(t *testing.T) {
	m := loadModel(t, filepath.Join(modelsDir, "llama-bf16"))
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "full", NumLayers: 1})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), AdapterFile)
	if err := tuned.Save(path); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Names()) != 9 {
		t.Errorf("%d tensors, want 9", len(f.Names()))
	}
	for _, n := range f.Names() {
		if info, _ := f.Info(n); info.DType != safetensors.BF16 || !strings.HasPrefix(n, "model.layers.1.") {
			t.Errorf("%s: %s", n, info.DType)
		}
	}
	ts, err := ReadTensors(path)
	if err != nil {
		t.Fatal(err)
	}
	before := forward(t, m, []int32{5, 6, 7})
	if err := tuned.Load(ts, path, true); err != nil {
		t.Fatal(err)
	}
	if d, _ := maxDiff(forward(t, m, []int32{5, 6, 7}), before); d != 0 {
		t.Errorf("reloading the saved parameters changed the logits by %g", d)
	}
}

// Dropout acts on the LoRA input only while training.
func TestDropoutOnlyWhileTraining(t *testing.T) {
	m := loadModel(t, llamaF32)
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: 1, Parameters: Parameters{Rank: 4, Scale: 2, Dropout: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(t, tuned)
	ids := []int32{5, 9, 30, 41}
	e1, e2 := forward(t, m, ids), forward(t, m, ids)
	tuned.Dropout.Training = true
	tr := forward(t, m, ids)
	tuned.Dropout.Training = false
	if d, _ := maxDiff(e1, e2); d != 0 {
		t.Errorf("eval forward not deterministic: %g", d)
	}
	if d, _ := maxDiff(tr, e1); d < 1e-4 {
		t.Errorf("dropout 0.5 while training changed the logits by only %g", d)
	}
}
