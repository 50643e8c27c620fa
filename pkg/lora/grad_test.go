package lora

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

const llamaF32 = "../../testdata/models/llama-f32"

// refBatch reads the padded batch of testdata/lora/<kind>/reference.json.
func refBatch(t *testing.T, kind string) Batch {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, kind, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Batch struct {
			InputIDs [][]int32 `json:"input_ids"`
			Lengths  [][2]int  `json:"lengths"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	b := Batch{B: len(ref.Batch.InputIDs), T: len(ref.Batch.InputIDs[0])}
	for r, row := range ref.Batch.InputIDs {
		b.Tokens = append(b.Tokens, row...)
		b.Offsets = append(b.Offsets, ref.Batch.Lengths[r][0])
		b.Lengths = append(b.Lengths, ref.Batch.Lengths[r][1])
	}
	return b
}

// refGrads reads a grads file and its recorded loss.
func refGrads(t *testing.T, path string) (map[string]Tensor, float64) {
	t.Helper()
	g, err := readTensors(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	loss, err := strconv.ParseFloat(f.Metadata()["loss"], 64)
	if err != nil {
		t.Fatalf("%s: metadata loss: %v", path, err)
	}
	return g, loss
}

// checkGrads runs ValueAndGrad over tuned's parameters and compares the
// loss and every gradient with the reference (1e-4 relative to each
// tensor's largest reference magnitude).
func checkGrads(t *testing.T, m model.Model, tuned *Tuned, b Batch, mode MaskMode, file string, wantNtoks int) {
	t.Helper()
	ref, refLoss := refGrads(t, file)
	vg := engine.ValueAndGrad(func(ps []*engine.Array) *engine.Array {
		tuned.SetArrays(ps)
		l, _ := Loss(m, b, mode)
		return l
	})
	_, n := Loss(m, b, mode)
	if n != wantNtoks {
		t.Errorf("%s: ntoks %d, want %d", file, n, wantNtoks)
	}
	loss, grads, err := vg(tuned.Arrays())
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Eval(append([]*engine.Array{loss}, grads...)...); err != nil {
		t.Fatal(err)
	}
	lv, _ := loss.Item()
	if math.Abs(lv-refLoss) > 1e-4*math.Abs(refLoss) {
		t.Errorf("%s: loss %.7f, want %.7f", file, lv, refLoss)
	}
	if len(ref) != len(tuned.Params) {
		t.Errorf("%s: %d reference gradients, %d trainable arrays", file, len(ref), len(tuned.Params))
	}
	for i, p := range tuned.Params {
		r, ok := ref[p.Name]
		if !ok {
			t.Errorf("%s: no reference gradient for %s", file, p.Name)
			continue
		}
		got, err := grads[i].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.Shape, grads[i].Shape()) {
			t.Errorf("%s: %s: gradient shape %v, want %v", file, p.Name, grads[i].Shape(), r.Shape)
			continue
		}
		var scale, worst float64
		for _, v := range r.Data {
			scale = max(scale, math.Abs(float64(v)))
		}
		for j, v := range r.Data {
			worst = max(worst, math.Abs(float64(got[j])-float64(v)))
		}
		if scale == 0 || worst > 1e-4*scale {
			t.Errorf("%s: %s: max |Δgrad| %.3g vs max |grad| %.3g", file, p.Name, worst, scale)
		}
	}
}

func TestLoRAAndDoRAGradients(t *testing.T) {
	for _, kind := range []string{"lora", "dora"} {
		for _, c := range []struct {
			mode  MaskMode
			file  string
			ntoks int
		}{{MaskStrict, "grads_strict_mask.safetensors", 57}, {MaskMLX, "grads.safetensors", 60}} {
			t.Run(kind+"/"+c.file, func(t *testing.T) {
				m, _, err := model.Load(llamaF32)
				if err != nil {
					t.Fatal(err)
				}
				a, err := LoadAdapter(filepath.Join(fixtures, kind))
				if err != nil {
					t.Fatal(err)
				}
				tuned, err := ApplyAdapter(m, a)
				if err != nil {
					t.Fatal(err)
				}
				if len(tuned.Params) != len(a.Tensors) {
					t.Fatalf("%d trainable arrays for %d adapter tensors", len(tuned.Params), len(a.Tensors))
				}
				checkGrads(t, m, tuned, refBatch(t, kind), c.mode, filepath.Join(fixtures, kind, c.file), c.ntoks)
			})
		}
	}
}

// Full fine-tune: the gradient of every parameter of the smaller llama.
func TestFullFineTuneGradients(t *testing.T) {
	m, _, err := model.Load(filepath.Join(fixtures, "full", "model"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := inspect(m)
	if err != nil {
		t.Fatal(err)
	}
	tuned := &Tuned{FineTuneType: "full"}
	for _, p := range s.params {
		tuned.Params = append(tuned.Params, Trainable{Name: p.Name, Ptr: p.Ptr})
	}
	checkGrads(t, m, tuned, refBatch(t, "full"), MaskMLX, filepath.Join(fixtures, "full", "grads.safetensors"), 60)

	// Apply("full") trains exactly the float parameters of the last N blocks.
	ft, err := Apply(m, ApplyOptions{FineTuneType: "full", NumLayers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ft.Params {
		if _, blk := s.blockRel(p.Name); blk != 1 {
			t.Errorf("full, 1 layer: trains %s", p.Name)
		}
	}
	if len(ft.Params) != 9 { // 7 projections + 2 norms
		t.Errorf("full, 1 layer: %d trainable arrays, want 9", len(ft.Params))
	}
}
