package starcoder2_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/starcoder2"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "starcoder2")
}

// A sliding window (transformers applies it to every layer) must change
// the logits past the window and leave those inside it alone, and cached
// decode through the rotating caches must equal the full forward.
func TestSlidingWindow(t *testing.T) {
	keys := map[string]any{
		"model_type": "starcoder2", "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 48,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 64,
	}
	build := func(window int) model.Model {
		k := map[string]any{}
		for n, v := range keys {
			k[n] = v
		}
		if window > 0 {
			k["sliding_window"] = window
		}
		cfg, err := model.NewConfig(k)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.RandomModel(cfg, engine.Float32, 7)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ids := make([]int, 20)
	for i := range ids {
		ids[i] = (i*7 + 3) % 64
	}
	full, win := build(0), build(5)
	a, b := modeltest.Logits(t, full, nil, ids), modeltest.Logits(t, win, nil, ids)
	V := 64
	if e := modeltest.RelErr(b[:5*V], a[:5*V]); e > 1e-6 {
		t.Errorf("inside the window: rel err %.3g", e)
	}
	if e := modeltest.RelErr(b[5*V:], a[5*V:]); e < 1e-4 {
		t.Errorf("past the window the logits did not change (rel diff %.3g)", e)
	}
	caches := win.NewCaches(model.CacheOptions{})
	var got []float32
	got = append(got, modeltest.Logits(t, win, caches, ids[:7])...)
	for _, id := range ids[7:] {
		got = append(got, modeltest.Logits(t, win, caches, []int{id})...)
	}
	if e := modeltest.RelErr(got, b); e > 1e-5 {
		t.Errorf("cached decode with window: rel err %.3g", e)
	}
}

// TestQuantizedInMemory builds a small starcoder2 with every linear layer (and
// the embedding) 4-bit quantized (random codes; head dim 32, so the KV
// cache can be quantized too) and checks an 8-bit quantized KV cache
// against the full forward (exact before the quantized start).
func TestQuantizedInMemory(t *testing.T) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "starcoder2", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256, "rms_norm_eps": 1e-5,
		"quantization": map[string]any{"group_size": 32, "bits": 4},
		"norm_epsilon": 1e-5,
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
func TestSanitize(t *testing.T) { modeltest.TiedLMHead(t, "starcoder2", false) }
