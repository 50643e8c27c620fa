package smollm3

import (
	"slices"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
)

func TestFixtures(t *testing.T) {
	// smollm3-f32 has the legacy spelling (rope_theta), -bf16 rope_parameters.
	modeltest.RunF32AndBF16(t, "smollm3")
}

func TestNoRopeLayersDefault(t *testing.T) {
	// SmolLM3Config: without no_rope_layers every 4th layer (1-based) is NoPE.
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "smollm3", "hidden_size": 32, "num_hidden_layers": 8, "intermediate_size": 64,
		"num_attention_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-5,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, l := range m.(*Model).Model.Layers {
		got = append(got, l.SelfAttn.rope != nil)
	}
	want := []bool{true, true, true, false, true, true, true, false}
	if !slices.Equal(got, want) {
		t.Errorf("rope per layer %v, want %v", got, want)
	}
}

func TestBadConfig(t *testing.T) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "smollm3", "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
		"num_attention_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-5, "no_rope_layers": []int{1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.RandomModel(cfg, engine.Float32, 1); err == nil {
		t.Error("no_rope_layers of the wrong length: no error")
	} else {
		t.Log(err)
	}
}

// TestQuantizedInMemory builds a small smollm3 with every linear layer (and
// the embedding) 4-bit quantized (random codes; head dim 32, so the KV
// cache can be quantized too) and checks an 8-bit quantized KV cache
// against the full forward (exact before the quantized start).
func TestQuantizedInMemory(t *testing.T) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "smollm3", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256, "rms_norm_eps": 1e-5,
		"quantization":   map[string]any{"group_size": 32, "bits": 4},
		"no_rope_layers": []int{1, 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 11, model.LoadOptions{ExactQuantized: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, 40)
	for i := range ids {
		ids[i] = (i*37 + 11) % 256
	}
	tol := modeltest.F32
	tol.QuantizedCache = 1e-2
	modeltest.QuantizedCache(t, m, ids, tol)
}

// TestSanitize: rotary inv_freq buffers are dropped; lm_head is dropped
// when tie_word_embeddings is true, kept when false, and dropped when the
// key is absent.
func TestSanitize(t *testing.T) { modeltest.TiedLMHead(t, "smollm3", false) }
