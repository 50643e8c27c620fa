package model_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

var fpIDs = []int{1, 17, 42, 99, 5, 300, 7, 64, 128, 11}

// checkFPModel loads ck and compares its logits with the reference model
// over the dequantized weights, with exact and with the quantized kernels.
func checkFPModel(t *testing.T, src string, ck *modeltest.FPCheckpoint, opts model.LoadOptions) model.Model {
	t.Helper()
	ref := modeltest.Logits(t, ck.Reference(t, src, opts), nil, fpIDs)
	var last model.Model
	for _, exact := range []bool{true, false} {
		o := opts
		o.ExactQuantized = exact
		m, _, err := model.Load(ck.Dir, o)
		if err != nil {
			t.Fatal(err)
		}
		got := modeltest.Logits(t, m, nil, fpIDs)
		// The weights are the same numbers; only the summation order
		// differs, except that the affine kernels may round activations to
		// int8 (modeltest.QuantKernels).
		lim := 1e-4
		if !exact && slices.Contains(slices.Collect(maps.Values(ck.Modes)), "affine") {
			lim = modeltest.QuantKernels.Logits
		}
		if e := modeltest.RelErr(got, ref); e > lim {
			t.Errorf("exact=%v: logits rel err %.3g vs the dequantized model", exact, e)
		} else {
			t.Logf("exact=%v: logits rel err %.3g", exact, e)
		}
		last = m
	}
	return last
}

func all(mode string) func(string) string { return func(string) string { return mode } }

func TestFloatModesLoad(t *testing.T) {
	f32 := engine.Float32
	for _, mode := range []string{"mxfp4", "nvfp4", "mxfp8"} {
		for _, fixture := range []string{"llama-f32", "qwen2-f32", "gpt_oss-f32"} {
			t.Run(mode+"/"+fixture, func(t *testing.T) {
				src := modeltest.Dir(fixture)
				ck := modeltest.WriteFPQuantized(t, src, mode, all(mode), nil)
				if len(ck.Modes) == 0 {
					t.Fatal("nothing quantized")
				}
				// float-mode embeddings give bfloat16 like mx.dequantize;
				// compute in float32 to compare with the float32 reference
				m := checkFPModel(t, src, ck, model.LoadOptions{ComputeDType: &f32})
				tr := m.(model.Trainable)
				for _, l := range tr.Linears() {
					q, ok := (*l.Layer).(*nn.QuantizedLinear)
					if !ok || q.Mode != mode || q.Biases != nil || q.Scales.DType() != engine.Uint8 {
						t.Fatalf("%s: %T %+v, want a %s QuantizedLinear", l.Path, *l.Layer, *l.Layer, mode)
					}
				}
			})
		}
	}
}

// TestFloatModesMixed: per-layer entries put layers in other modes (and
// one in float) than the default.
func TestFloatModesMixed(t *testing.T) {
	f32 := engine.Float32
	plan := func(path string) string {
		switch {
		case strings.Contains(path, "embed_tokens"):
			return "nvfp4"
		case strings.HasSuffix(path, "q_proj"), strings.Contains(path, "experts.down_proj"):
			return "mxfp8"
		case strings.HasSuffix(path, "v_proj"):
			return "" // float
		case strings.Contains(path, "layers.1.mlp"):
			return "nvfp4"
		}
		return "mxfp4"
	}
	for _, fixture := range []string{"llama-f32", "qwen2-f32", "gpt_oss-f32"} {
		t.Run(fixture, func(t *testing.T) {
			src := modeltest.Dir(fixture)
			ck := modeltest.WriteFPQuantized(t, src, "mxfp4", plan, nil)
			seen := map[string]bool{}
			for _, m := range ck.Modes {
				seen[m] = true
			}
			if len(seen) != 3 {
				t.Fatalf("modes used: %v", seen)
			}
			m := checkFPModel(t, src, ck, model.LoadOptions{ComputeDType: &f32})
			for _, l := range m.(model.Trainable).Linears() {
				want := ck.Modes[l.Path]
				switch q := (*l.Layer).(type) {
				case *nn.QuantizedLinear:
					if q.Mode != want {
						t.Errorf("%s: mode %q, want %q", l.Path, q.Mode, want)
					}
				case *nn.Linear:
					if want != "" {
						t.Errorf("%s: float, want %s", l.Path, want)
					}
				}
			}
		})
	}
}

// TestFloatModeEmbeddingDType: a float-mode embedding looks up in
// bfloat16 (mx.dequantize's default for those modes) unless a compute
// dtype is set.
func TestFloatModeEmbeddingDType(t *testing.T) {
	src := modeltest.Dir("llama-f32")
	ck := modeltest.WriteFPQuantized(t, src, "mxfp4", func(p string) string {
		if strings.Contains(p, "embed_tokens") {
			return "mxfp4"
		}
		return ""
	}, nil)
	m, _, err := model.Load(ck.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var e *nn.QuantizedEmbedding
	for _, p := range m.(model.Trainable).Parameters() {
		if p.Name == "model.embed_tokens.scales" && (*p.Ptr).DType() != engine.Uint8 {
			t.Fatalf("scales %v", (*p.Ptr).DType())
		}
	}
	e = &nn.QuantizedEmbedding{Weight: ck.Tensors["model.embed_tokens.weight"], Scales: ck.Tensors["model.embed_tokens.scales"], GroupSize: 32, Bits: 4, Mode: "mxfp4"}
	ids := engine.FromInt32s([]int32{3, 9}, 2)
	if dt := e.Forward(ids).DType(); dt != engine.BFloat16 {
		t.Errorf("lookup dtype %v, want bfloat16", dt)
	}
	f32 := engine.Float32
	e.Cast = &f32
	got, err := e.Forward(ids).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := engine.Take(ck.Deq["model.embed_tokens.weight"], ids, 0).Float32s()
	if modeltest.RelErr(got, want) != 0 {
		t.Errorf("lookup differs from the dequantized rows")
	}
	if f := modeltest.Logits(t, m, nil, fpIDs); len(f) == 0 {
		t.Fatal("no logits")
	}
}

// TestFloatModesBadInput: one clear line naming the tensor.
func TestFloatModesBadInput(t *testing.T) {
	src := modeltest.Dir("llama-f32")
	const q = "model.layers.0.self_attn.q_proj"
	for _, c := range []struct {
		name  string
		mode  string
		edit  func(map[string]*engine.Array)
		cfg   func(map[string]any)
		wants []string
	}{
		{"scales float", "mxfp4", func(ts map[string]*engine.Array) {
			ts[q+".scales"] = engine.AsType(ts[q+".scales"], engine.Float32)
		}, nil, []string{q + ".scales", "U8", "E8M0", "float32"}},
		{"nvfp4 scales bf16", "nvfp4", func(ts map[string]*engine.Array) {
			ts[q+".scales"] = engine.AsType(ts[q+".scales"], engine.BFloat16)
		}, nil, []string{q + ".scales", "U8", "E4M3"}},
		{"biases present", "mxfp4", func(ts map[string]*engine.Array) {
			ts[q+".biases"] = engine.Zeros(ts[q+".scales"].Shape(), engine.Float32)
		}, nil, []string{q + ".biases", "mxfp4 has no biases"}},
		{"scales shape", "mxfp8", func(ts map[string]*engine.Array) {
			s := ts[q+".scales"]
			ts[q+".scales"] = engine.SliceAxis(s, 1, 0, 1)
		}, nil, []string{q + ".scales", "expected shape [64 2]"}},
		{"unknown mode", "mxfp4", nil, func(c map[string]any) {
			c["quantization"].(map[string]any)["mode"] = "fp3"
		}, []string{"unknown mode \"fp3\""}},
		{"wrong group", "mxfp4", nil, func(c map[string]any) {
			c["quantization"].(map[string]any)["group_size"] = 64
		}, []string{"mxfp4 needs group_size 32 and bits 4", "64"}},
		{"float scales as affine", "mxfp4", nil, func(c map[string]any) {
			delete(c["quantization"].(map[string]any), "mode")
			c["quantization"].(map[string]any)["group_size"] = 32
		}, []string{".scales", "affine scales must be float, found uint8"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ck := modeltest.WriteFPQuantized(t, src, c.mode, all(c.mode), c.edit)
			if c.cfg != nil {
				editConfig(t, ck.Dir, c.cfg)
			}
			_, _, err := model.Load(ck.Dir)
			if err == nil {
				t.Fatal("loaded")
			}
			msg := err.Error()
			first := strings.SplitN(msg, "\n", 2)[0]
			for _, w := range c.wants {
				if !strings.Contains(first, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

// TestRandomFloatModes: RandomModel builds float-mode layers (uint8
// scales, no biases) that run.
func TestRandomFloatModes(t *testing.T) {
	for _, mode := range []string{"mxfp4", "nvfp4", "mxfp8"} {
		cfg, err := model.ReadConfig(modeltest.Dir("llama-f32"))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Quantization, err = model.ParseQuantization([]byte(fmt.Sprintf(`{"mode": %q}`, mode))); err != nil {
			t.Fatal(err)
		}
		m, err := model.RandomModel(cfg, engine.Float32, 1)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		for _, v := range modeltest.Logits(t, m, nil, fpIDs[:3]) {
			if v != v {
				t.Fatalf("%s: NaN logits", mode)
			}
		}
	}
}

func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	if data, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFloatModeWithAffineLayers: the layout of mlx_lm's MXFP4 gpt-oss
// conversions: mxfp4 by default, the router (and here the attention
// output) in affine 8 bits, group 64, through per-layer entries without a
// "mode" key, which means affine.
func TestFloatModeWithAffineLayers(t *testing.T) {
	f32 := engine.Float32
	src := modeltest.Dir("gpt_oss-f32")
	ck := modeltest.WriteFPQuantized(t, src, "mxfp4", func(p string) string {
		if strings.HasSuffix(p, "router") || strings.HasSuffix(p, "o_proj") {
			return "affine"
		}
		return "mxfp4"
	}, nil)
	n := 0
	for _, m := range ck.Modes {
		if m == "affine" {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d affine layers, want 4", n)
	}
	m := checkFPModel(t, src, ck, model.LoadOptions{ComputeDType: &f32})
	for _, l := range m.(model.Trainable).Linears() {
		q, ok := (*l.Layer).(*nn.QuantizedLinear)
		if !ok {
			t.Fatalf("%s: %T", l.Path, *l.Layer)
		}
		if want := ck.Modes[l.Path]; nn.ModeName(q.Mode) != want || (want == "affine") != (q.Biases != nil) {
			t.Errorf("%s: mode %q, biases %v; want %s", l.Path, q.Mode, q.Biases != nil, want)
		}
	}
}
