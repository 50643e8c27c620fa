// Package qwenbench measures the engine end to end on a Qwen2.5-0.5B-shaped
// 4-bit model (random weights): where a decode step and a 128-token prompt
// spend their time per primitive, the time outside primitives, Go garbage
// per step and the process's peak RSS against the weight bytes. It only has
// benchmarks; see BENCHMARKS.md (engine section) for the command.
package qwenbench

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
	_ "github.com/mlxgo/mlxgo/pkg/model/qwen2"
)

// qwen05 is Qwen2.5-0.5B's config.json quantized like
// mlx-community/Qwen2.5-0.5B-Instruct-4bit (4-bit, group 64, bf16 scales).
var qwen05 = map[string]any{
	"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
	"num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936, "rms_norm_eps": 1e-6,
	"rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
	"quantization": map[string]any{"group_size": 64, "bits": 4},
}

var (
	once    sync.Once
	qm      model.Model
	wbytes  int64
	loadErr error
)

func setup(b *testing.B) model.Model {
	b.Helper()
	once.Do(func() {
		cfg, err := model.NewConfig(qwen05)
		if err != nil {
			loadErr = err
			return
		}
		qm, loadErr = model.RandomModel(cfg, engine.BFloat16, 1)
		if loadErr != nil {
			return
		}
		for _, p := range qm.(model.Trainable).Parameters() {
			wbytes += int64((*p.Ptr).NBytes())
		}
	})
	if loadErr != nil {
		b.Fatal(loadErr)
	}
	return qm
}

func ids(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*7919 + 13) % 151936
	}
	return out
}

// opStats collects each primitive's fastest run (by name and shape) and
// the traced time of the current step.
type opStats struct {
	mins  map[string]time.Duration
	count map[string]int
	step  time.Duration
}

func trace() *opStats {
	s := &opStats{mins: map[string]time.Duration{}, count: map[string]int{}}
	engine.SetTrace(func(op string, shape []int, d time.Duration) {
		k := fmt.Sprint(op, shape)
		if m, ok := s.mins[k]; !ok || d < m {
			s.mins[k] = d
		}
		s.count[k]++
		s.step += d
	})
	return s
}

// report logs the per-primitive minimums scaled by calls per iteration, largest
// first, and returns their sum (a step's cost with every primitive at its
// best: what the code does when the shared machine lets it run).
func (s *opStats) report(b *testing.B, steps int) float64 {
	engine.SetTrace(nil)
	type row struct {
		k  string
		ms float64
	}
	var rows []row
	var sum float64
	for k, m := range s.mins {
		ms := m.Seconds() * 1e3 * float64(s.count[k]) / float64(steps)
		rows = append(rows, row{k, ms})
		sum += ms
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ms > rows[j].ms })
	for i, r := range rows {
		if i == 12 {
			break
		}
		b.Logf("%8.3f ms/iter  %5.1f calls  min %8.1f µs  %s", r.ms, float64(s.count[r.k])/float64(steps),
			s.mins[r.k].Seconds()*1e6, r.k)
	}
	return sum
}

// peakRSS returns VmHWM in bytes (0 where /proc is missing).
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkQwenDecodeSteps runs b.N decode steps after a 16-token prompt
// (one token per Forward, standard KV cache), traced: best-step tokens/s,
// the sum of per-primitive minimums, time outside primitives (graph
// building, Eval bookkeeping, cache writes, GC: minimum and median per
// step), Go garbage per step, and peak RSS over the weight bytes.
func BenchmarkQwenDecodeSteps(b *testing.B) {
	m := setup(b)
	caches := m.NewCaches(model.CacheOptions{})
	if err := engine.Eval(m.Forward(modeltest.Tokens(ids(16)), caches)); err != nil {
		b.Fatal(err)
	}
	tok := modeltest.Tokens([]int{42})
	s := trace()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	best := time.Hour
	var outside []time.Duration
	b.ResetTimer()
	for range b.N {
		s.step = 0
		t0 := time.Now()
		if err := engine.Eval(m.Forward(tok, caches)); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		best = min(best, d)
		outside = append(outside, d-s.step)
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	sum := s.report(b, b.N)
	slices.Sort(outside)
	b.ReportMetric(1/best.Seconds(), "best_tok/s")
	b.ReportMetric(sum, "op_min_ms/step")
	b.ReportMetric(outside[0].Seconds()*1e3, "outside_min_ms/step")
	b.ReportMetric(outside[len(outside)/2].Seconds()*1e3, "outside_med_ms/step")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/1e3/float64(b.N), "garbage_KB/step")
	b.ReportMetric(peakRSS()/float64(wbytes), "peakRSS/weights")
}

// BenchmarkQwenPrompt runs b.N 128-token prompts into fresh caches as
// mlx_lm's generate_step does (127 tokens fill the caches, then the last
// token's logits), traced like BenchmarkQwenDecodeSteps.
func BenchmarkQwenPrompt(b *testing.B) {
	m := setup(b)
	p := ids(128)
	prompt, last := modeltest.Tokens(p[:127]), modeltest.Tokens(p[127:])
	s := trace()
	best := time.Hour
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		caches := m.NewCaches(model.CacheOptions{})
		if err := m.Forward(prompt, caches).Err(); err != nil {
			b.Fatal(err)
		}
		if err := engine.Eval(m.Forward(last, caches)); err != nil {
			b.Fatal(err)
		}
		best = min(best, time.Since(t0))
	}
	b.StopTimer()
	sum := s.report(b, b.N)
	b.ReportMetric(128/best.Seconds(), "best_tok/s")
	b.ReportMetric(sum, "op_min_ms/prompt")
	b.ReportMetric(peakRSS()/float64(wbytes), "peakRSS/weights")
}
