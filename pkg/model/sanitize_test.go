package model

import (
	"strconv"
	"strings"
	"testing"
)

// TestStackExperts: per-expert tensors are stacked in numeric expert order
// (10 after 9) under the renamed projection, other tensors are copied, and
// a missing, extra or misshapen expert is an error naming the tensor.
func TestStackExperts(t *testing.T) {
	const E = 12
	metas := func() map[string]TensorMeta {
		m := map[string]TensorMeta{"model.norm.weight": {DType: "F32", Shape: []int{4}}}
		for e := range E {
			for _, k := range []string{"weight", "scales"} {
				m["model.layers.0.block_sparse_moe.experts."+strconv.Itoa(e)+".w1."+k] = TensorMeta{DType: "F32", Shape: []int{8, 4}}
			}
		}
		return m
	}
	names := [][2]string{{"w1", "gate_proj"}}
	plan, err := StackExperts(metas(), E, ".block_sparse_moe.experts.", ".block_sparse_moe.switch_mlp.", names)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TensorPlan{}
	for _, p := range plan {
		got[p.Name] = p
	}
	if len(plan) != 3 || got["model.norm.weight"].Op != OpCopy {
		t.Fatalf("plan %+v", plan)
	}
	for _, k := range []string{"weight", "scales"} {
		p := got["model.layers.0.block_sparse_moe.switch_mlp.gate_proj."+k]
		if p.Op != OpStack || len(p.Sources) != E {
			t.Fatalf("%s: %+v", k, p)
		}
		for e, s := range p.Sources {
			if want := "model.layers.0.block_sparse_moe.experts." + strconv.Itoa(e) + ".w1." + k; s != want {
				t.Errorf("source %d = %s, want %s", e, s, want)
			}
		}
	}
	for _, c := range []struct {
		edit func(map[string]TensorMeta)
		want string
	}{
		{func(m map[string]TensorMeta) { delete(m, "model.layers.0.block_sparse_moe.experts.10.w1.weight") }, "experts.10.w1.weight"},
		{func(m map[string]TensorMeta) {
			m["model.layers.0.block_sparse_moe.experts.12.w1.weight"] = TensorMeta{DType: "F32", Shape: []int{8, 4}}
		}, "experts.12.w1.weight"},
		{func(m map[string]TensorMeta) {
			m["model.layers.0.block_sparse_moe.experts.3.w1.weight"] = TensorMeta{DType: "F32", Shape: []int{4, 8}}
		}, "experts.3.w1.weight"},
		{func(m map[string]TensorMeta) {
			m["model.layers.0.block_sparse_moe.experts.0.w9.weight"] = TensorMeta{DType: "F32", Shape: []int{8, 4}}
		}, "w9"},
	} {
		m := metas()
		c.edit(m)
		if _, err := StackExperts(m, E, ".block_sparse_moe.experts.", ".block_sparse_moe.switch_mlp.", names); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %s, got %v", c.want, err)
		}
	}
	if _, err := StackExperts(metas(), 0, ".block_sparse_moe.experts.", ".block_sparse_moe.switch_mlp.", names); err == nil {
		t.Error("per-expert tensors without an expert count: no error")
	}
}
