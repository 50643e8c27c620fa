package modeltest

import (
	"encoding/json"
	"os"
	"path/filepath"
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
