package qwen2_test

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
)

// qwen05 is Qwen2.5-0.5B's config.json, quantized like
// mlx-community/Qwen2.5-0.5B-Instruct-4bit (4-bit, group 64, bf16 scales).
var qwen05 = map[string]any{
	"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
	"num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936, "rms_norm_eps": 1e-6,
	"rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
	"quantization": map[string]any{"group_size": 64, "bits": 4},
}

var (
	benchOnce   sync.Once
	benchModel  model.Model
	benchWeight int64
	benchErr    error
)

// benchSetup builds the random 4-bit model once and counts its weight bytes.
func benchSetup(b testing.TB) (model.Model, int64) {
	b.Helper()
	benchOnce.Do(func() {
		cfg, err := model.NewConfig(qwen05)
		if err != nil {
			benchErr = err
			return
		}
		var opts []model.LoadOptions
		if os.Getenv("MLXGO_BENCH_F32") != "" {
			f32 := engine.Float32
			opts = append(opts, model.LoadOptions{ComputeDType: &f32})
		}
		benchModel, benchErr = model.RandomModel(cfg, engine.BFloat16, 1, opts...)
		if benchErr != nil {
			return
		}
		for _, p := range benchModel.(model.Trainable).Parameters() {
			benchWeight += int64((*p.Ptr).NBytes())
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchModel, benchWeight
}

// streamGBs is the read-bandwidth peer measured in the same run: an f32
// GEMV (kernels.Sgemm with M = 1) over a 512 MiB matrix, which streams
// the matrix once; best of 3.
func streamGBs() float64 {
	const K = 4096
	N := (512 << 20) / 4 / K
	w := make([]float32, N*K)
	for i := range w {
		w[i] = 1
	}
	x := make([]float32, K)
	y := make([]float32, N)
	best := 0.0
	for range 3 {
		t0 := time.Now()
		kernels.Sgemm(false, true, 1, N, K, x, K, w, K, y, N, false)
		best = max(best, float64(len(w)*4)/time.Since(t0).Seconds()/1e9)
	}
	return best
}

func ids(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*7919 + 13) % 151936
	}
	return out
}

// BenchmarkDecode reports generation tokens/s (one token per Forward with
// a KV cache after a 16-token prompt), peak allocator memory over the
// weight bytes, and the bandwidth ratio: weight bytes per token × tokens/s
// ÷ the read bandwidth of streamGBs.
func BenchmarkDecode(b *testing.B) {
	m, wbytes := benchSetup(b)
	caches := m.NewCaches(model.CacheOptions{})
	if err := engine.Eval(m.Forward(modeltest.Tokens(ids(16)), caches)); err != nil {
		b.Fatal(err)
	}
	engine.ResetPeakMemory()
	tok := modeltest.Tokens([]int{42})
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	for range b.N {
		logits := m.Forward(tok, caches)
		if err := engine.Eval(logits); err != nil {
			b.Fatal(err)
		}
		engine.Release(logits) // as generate does once it has read them
	}
	el, cpu := time.Since(t0), cpuTime()-c0
	b.StopTimer()
	tps := float64(b.N) / el.Seconds()
	peak := engine.PeakMemory()
	bw := streamGBs()
	b.ReportMetric(tps, "tok/s")
	b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu_ms/tok")
	b.ReportMetric(float64(wbytes)/1e6, "weight_MB")
	b.ReportMetric(float64(peak)/float64(wbytes), "peak/weights")
	b.ReportMetric(bw, "stream_GB/s")
	b.ReportMetric(float64(wbytes)*tps/1e9/bw, "x_stream")
}

// BenchmarkPrompt reports prompt tokens/s for a 128-token prompt into a
// fresh cache, processed as mlx_lm's generate_step does: all but the last
// token only fill the caches (their logits are never evaluated: the
// caches write in place during Forward), then the last token's logits.
func BenchmarkPrompt(b *testing.B) {
	m, wbytes := benchSetup(b)
	p := ids(128)
	prompt, last := modeltest.Tokens(p[:127]), modeltest.Tokens(p[127:])
	engine.ResetPeakMemory()
	b.ResetTimer()
	t0, c0 := time.Now(), cpuTime()
	for range b.N {
		caches := m.NewCaches(model.CacheOptions{})
		if err := m.Forward(prompt, caches).Err(); err != nil {
			b.Fatal(err)
		}
		if err := engine.Eval(m.Forward(last, caches)); err != nil {
			b.Fatal(err)
		}
	}
	el, cpu := time.Since(t0), cpuTime()-c0
	b.StopTimer()
	b.ReportMetric(128*float64(b.N)/el.Seconds(), "tok/s")
	b.ReportMetric(cpu.Seconds()*1e3/float64(128*b.N), "cpu_ms/tok")
	b.ReportMetric(float64(engine.PeakMemory())/float64(wbytes), "peak/weights")
}
