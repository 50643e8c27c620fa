package generate

import (
	"slices"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all"
)

// qwen05 is Qwen2.5-0.5B's config.json, quantized like
// mlx-community/Qwen2.5-0.5B-Instruct-4bit (4-bit, group 64).
var qwen05 = map[string]any{
	"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
	"num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936, "rms_norm_eps": 1e-6,
	"rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
	"quantization": map[string]any{"group_size": 64, "bits": 4},
}

// BenchmarkDecodeOverhead measures what the Generator adds to a decode
// step: each iteration times one bare step (Forward of one token with a KV
// cache, evaluating the last position's logits [V] and reading them: the
// ceiling) and one Generator.Next (the same, plus float32 copy, log-softmax
// over V = 151936 and argmax), alternately, on a random Qwen2.5-0.5B-shaped
// 4-bit model after a 16-token prompt.
func BenchmarkDecodeOverhead(b *testing.B) {
	cfg, err := model.NewConfig(qwen05)
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.BFloat16, 1)
	if err != nil {
		b.Fatal(err)
	}
	prompt := make([]int, 16)
	for i := range prompt {
		prompt[i] = (i*7919 + 13) % 151936
	}
	g, err := New(m, prompt, Options{MaxTokens: -1})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.Next(); err != nil {
		b.Fatal(err)
	}
	caches := m.NewCaches(model.CacheOptions{})
	if _, err := forwardRows(m, caches, prompt, 1, nil); err != nil {
		b.Fatal(err)
	}
	tok := tokenArray([]int{42})
	bareStep := func() {
		logits := m.Forward(tok, caches) // [1, 1, V]
		if err := engine.Eval(append([]*engine.Array{logits}, states(caches)...)...); err != nil {
			b.Fatal(err)
		}
		if _, err := logits.Float32s(); err != nil {
			b.Fatal(err)
		}
	}
	genStep := func() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
	timed := func(f func()) time.Duration {
		t0 := time.Now()
		f()
		return time.Since(t0)
	}
	var bare, gen []float64
	b.ResetTimer()
	for i := range b.N {
		// Alternate the order so background load hits both alike.
		if i%2 == 0 {
			bare = append(bare, timed(bareStep).Seconds())
			gen = append(gen, timed(genStep).Seconds())
		} else {
			gen = append(gen, timed(genStep).Seconds())
			bare = append(bare, timed(bareStep).Seconds())
		}
	}
	b.StopTimer()
	mb, mg := median(bare), median(gen)
	b.ReportMetric(1/mb, "bare_tok/s")
	b.ReportMetric(1/mg, "generator_tok/s")
	b.ReportMetric(mb/mg, "generator/bare")
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}
