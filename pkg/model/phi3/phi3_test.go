package phi3_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/phi3"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "phi3")
}

// TestQuantizedInMemory builds a small phi3 with every linear layer (and
// the embedding) 4-bit quantized (random codes; head dim 32, so the KV
// cache can be quantized too) and checks an 8-bit quantized KV cache
// against the full forward (exact before the quantized start).
func TestQuantizedInMemory(t *testing.T) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "phi3", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256, "rms_norm_eps": 1e-5,
		"quantization":          map[string]any{"group_size": 32, "bits": 4},
		"partial_rotary_factor": 0.5,
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
// when tie_word_embeddings is true, kept when false, and kept when the
// key is absent.
func TestSanitize(t *testing.T) { modeltest.TiedLMHead(t, "phi3", true) }
