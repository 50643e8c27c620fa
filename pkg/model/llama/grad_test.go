package llama_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// TestFullFineTuneGradients differentiates mlx_lm's default_loss through
// the model's Parameters slots (what a trainer does: assign each slot,
// run Forward) and compares every gradient with testdata/lora/full.
func TestFullFineTuneGradients(t *testing.T) {
	dir := filepath.Join(modeltest.Dir(""), "..", "lora", "full")
	data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Batch struct {
			InputIDs [][]int  `json:"input_ids"`
			Lengths  [][2]int `json:"lengths"`
		} `json:"batch"`
		MLXMask struct {
			Loss  float64 `json:"loss"`
			NToks int     `json:"ntoks"`
		} `json:"mlx_mask"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	m, _, err := model.Load(filepath.Join(dir, "model"))
	if err != nil {
		t.Fatal(err)
	}
	params := m.(model.Trainable).Parameters()
	B, T := len(ref.Batch.InputIDs), len(ref.Batch.InputIDs[0])-1
	var in, tg []int32
	mask := make([]float32, 0, B*T)
	for b, row := range ref.Batch.InputIDs {
		for i := range T {
			in, tg = append(in, int32(row[i])), append(tg, int32(row[i+1]))
			step := i + 1
			on := step >= ref.Batch.Lengths[b][0] && step <= ref.Batch.Lengths[b][1]
			mask = append(mask, map[bool]float32{true: 1, false: 0}[on])
		}
	}
	inputs, targets := engine.FromInt32s(in, B, T), engine.FromInt32s(tg, B, T)
	maskArr := engine.FromFloat32s(mask, B, T)
	loss := func(ps []*engine.Array) *engine.Array {
		for i, p := range params {
			*p.Ptr = ps[i]
		}
		ce := engine.CrossEntropy(m.Forward(inputs, nil), targets) // [B, T]
		return engine.Divide(engine.Sum(engine.Multiply(ce, maskArr), false), engine.Sum(maskArr, false))
	}
	start := make([]*engine.Array, len(params))
	for i, p := range params {
		start[i] = *p.Ptr
	}
	val, grads, err := engine.ValueAndGrad(loss)(start)
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Eval(append([]*engine.Array{val}, grads...)...); err != nil {
		t.Fatal(err)
	}
	l, _ := val.Item()
	if d := l - ref.MLXMask.Loss; d > 1e-5 || d < -1e-5 {
		t.Errorf("loss %.7f, reference %.7f", l, ref.MLXMask.Loss)
	}
	st, err := safetensors.OpenModel(filepath.Join(dir, "grads.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(st.Names()) != len(params) {
		t.Errorf("%d reference gradients, %d parameters", len(st.Names()), len(params))
	}
	for i, p := range params {
		tt, err := st.Tensor(p.Name)
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		want, _ := tt.Float32s()
		got, err := grads[i].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if e := modeltest.RelErr(got, want); e > 1e-4 {
			t.Errorf("%s: gradient rel err %.3g", p.Name, e)
		}
	}
}
