package llama_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/nn"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// loraLayer is y = base(x) + scale·(x·A)·B, mlx_lm's LoRALinear.
type loraLayer struct {
	base  nn.Layer
	a, b  *engine.Array // [in, r], [r, out]
	scale float64
}

func (l *loraLayer) Forward(x *engine.Array) *engine.Array {
	d := engine.Matmul(engine.Matmul(x, l.a), l.b)
	return engine.Add(l.base.Forward(x), engine.Multiply(d, engine.Scalar(l.scale)))
}

// TestLoRAWrapping wraps linear layers through the Linears slots (as
// pkg/lora does) with testdata/lora/lora's adapters and checks the logits.
func TestLoRAWrapping(t *testing.T) {
	dir := filepath.Join(modeltest.Dir(""), "..", "lora", "lora")
	data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		InputIDs  []int   `json:"input_ids"`
		Positions []int   `json:"logits_positions"`
		Scale     float64 `json:"scale"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	m, _, err := model.Load(modeltest.Dir("llama-f32"))
	if err != nil {
		t.Fatal(err)
	}
	ad, err := safetensors.OpenModel(filepath.Join(dir, "adapters.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	arr := func(name string) *engine.Array {
		tt, err := ad.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := tt.Float32s()
		return engine.FromFloat32s(f, tt.Shape...)
	}
	wrapped := 0
	for _, s := range m.(model.Trainable).Linears() {
		if !ad.Has(s.Path + ".lora_a") {
			continue
		}
		*s.Layer = &loraLayer{base: *s.Layer, a: arr(s.Path + ".lora_a"), b: arr(s.Path + ".lora_b"), scale: ref.Scale}
		wrapped++
	}
	if wrapped != 14 {
		t.Fatalf("wrapped %d layers, want 14", wrapped)
	}
	st, err := safetensors.OpenModel(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tt, err := st.Tensor("logits")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := tt.Float32s()
	full := modeltest.Logits(t, m, nil, ref.InputIDs)
	V := m.VocabSize()
	var got []float32
	for _, p := range ref.Positions {
		got = append(got, full[p*V:(p+1)*V]...)
	}
	if e := modeltest.RelErr(got, want); e > 1e-4 {
		t.Errorf("adapted logits rel err %.3g", e)
	}
}
