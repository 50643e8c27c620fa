package gpt_oss_test

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// transpose12 swaps the last two axes of a [n, r, c] float32 tensor.
func transpose12(x []float32, n, r, c int) []float32 {
	out := make([]float32, len(x))
	for e := range n {
		for i := range r {
			for j := range c {
				out[e*r*c+j*r+i] = x[e*r*c+i*c+j]
			}
		}
	}
	return out
}

// TestOpenAIMXFP4: OpenAI's original MXFP4 layout (quantization_config
// quant_method "mxfp4"; experts as uint8 *_blocks [E, rows, cols/32, 16]
// and *_scales [E, rows, cols/32], gate and up interleaved by row) loads
// as mlx_lm loads it, into mxfp4 expert layers whose logits equal the
// transformers-layout checkpoint over the dequantized experts.
func TestOpenAIMXFP4(t *testing.T) {
	src := modeltest.Dir("gpt_oss-f32")
	st, err := safetensors.OpenModel(src)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg, err := model.ReadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	E, D, I := 4, 64, 32
	q, ref := map[string]*engine.Array{}, map[string]*engine.Array{}
	for _, n := range st.Names() {
		tn, err := st.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		f, err := tn.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		a := engine.FromFloat32s(append([]float32(nil), f...), tn.Shape...)
		pre, fused, ok := strings.Cut(n, ".mlp.experts.")
		if !ok || strings.HasSuffix(fused, "_bias") {
			q[n], ref[n] = a, a
			continue
		}
		// rows = outputs: gate_up_proj [E, D, 2I] -> [E, 2I, D]; down_proj [E, I, D] -> [E, D, I]
		rows, cols := 2*I, D
		if fused == "down_proj" {
			rows, cols = D, I
		}
		packed, scales, deq := modeltest.FPQuantize(transpose12(f, E, cols, rows), cols, "mxfp4")
		b := make([]byte, 4*len(packed))
		for i, w := range packed {
			binary.LittleEndian.PutUint32(b[4*i:], w)
		}
		q[pre+".mlp.experts."+fused+"_blocks"] = engine.FromUint8s(b, E, rows, cols/32, 16)
		q[pre+".mlp.experts."+fused+"_scales"] = engine.FromUint8s(scales, E, rows, cols/32)
		ref[n] = engine.FromFloat32s(transpose12(deq, E, rows, cols), tn.Shape...)
	}
	var raw map[string]any
	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	write := func(tensors map[string]*engine.Array, qc any) string {
		dir := t.TempDir()
		if qc != nil {
			raw["quantization_config"] = qc
		} else {
			delete(raw, "quantization_config")
		}
		b, _ := json.Marshal(raw)
		if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		modeltest.WriteSafetensors(t, dir, tensors)
		return dir
	}
	qdir := write(q, map[string]any{"quant_method": "mxfp4", "modules_to_not_convert": []string{"model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"}})
	rdir := write(ref, nil)
	rm, _, err := model.Load(rdir)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{1, 17, 42, 99, 5, 300, 7, 64, 128, 11}
	want := modeltest.Logits(t, rm, nil, ids)
	for _, exact := range []bool{true, false} {
		m, _, err := model.Load(qdir, model.LoadOptions{ExactQuantized: exact})
		if err != nil {
			t.Fatal(err)
		}
		scales := 0
		for _, p := range m.(model.Trainable).Parameters() {
			if strings.HasSuffix(p.Name, ".scales") {
				if (*p.Ptr).DType() != engine.Uint8 || !strings.Contains(p.Name, ".mlp.experts.") {
					t.Errorf("%s: %v", p.Name, (*p.Ptr).DType())
				}
				scales++
			}
		}
		if scales != 6 {
			t.Errorf("%d quantized layers, want 6 (3 expert stacks × 2 layers)", scales)
		}
		if e := modeltest.RelErr(modeltest.Logits(t, m, nil, ids), want); e > 1e-4 {
			t.Errorf("exact=%v: logits rel err %.3g vs the dequantized transformers layout", exact, e)
		} else {
			t.Logf("exact=%v: logits rel err %.3g", exact, e)
		}
	}
	// another Hugging Face quant_method is still refused in one line
	bad := write(q, map[string]any{"quant_method": "awq"})
	if _, _, err := model.Load(bad); err == nil || !strings.Contains(err.Error(), `quant_method "awq" is not supported`) {
		t.Errorf("awq: %v", err)
	}
}
