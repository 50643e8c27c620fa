package modeltest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

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
