package lora

import (
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/optim"
)

// BenchmarkQLoRAQwen05 is one QLoRA training step (forward, backward,
// Adam) on a Qwen2.5-0.5B-shaped 4-bit model (random weights, group 64,
// bf16 scales as mlx-community/Qwen2.5-0.5B-Instruct-4bit): rank 8, scale
// 20, the seven projections of the last 16 blocks, a batch of 4 × 256
// input tokens. It reports trained tokens/s and peak memory, then runs the
// PyTorch peer (scripts/lora_bench_torch.py, Debian's python3-torch) on the
// same CPU and reports the ratio; without torch the ratio is skipped.
//
//	go test ./pkg/lora -run '^$' -bench 'QLoRAQwen05$' -benchtime 2x -timeout 60m
func BenchmarkQLoRAQwen05(b *testing.B) {
	m, tuned, opt, batch := qloraQwen05Setup(b)
	if _, _, err := Step(m, tuned, opt, batch, MaskStrict); err != nil { // warm-up
		b.Fatal(err)
	}
	engine.ResetPeakMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM to the current RSS
	b.ResetTimer()
	start := time.Now()
	tokens := 0
	for i := 0; i < b.N; i++ {
		_, n, err := Step(m, tuned, opt, batch, MaskStrict)
		if err != nil {
			b.Fatal(err)
		}
		tokens += n
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	tps := float64(tokens) / el
	b.ReportMetric(tps, "tok/s")
	b.ReportMetric(float64(engine.PeakMemory())/1e9, "peak-GB")
	b.ReportMetric(vmHWM(), "rss-GB")
	py := torchPython()
	if py == "" {
		b.Log("python3-torch not installed: no PyTorch ratio (apt-get install -y python3-torch)")
		return
	}
	cmd := exec.Command(py, "../../scripts/lora_bench_torch.py", "--steps", strconv.Itoa(max(b.N, 1)), "--threads", strconv.Itoa(runtime.GOMAXPROCS(0)))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("torch peer: %v", err)
	}
	var peer struct {
		TokensPerSec float64 `json:"tokens_per_sec"`
		PeakRSSGB    float64 `json:"peak_rss_gb"`
		Torch        string  `json:"torch"`
		Threads      int     `json:"threads"`
	}
	if err := json.Unmarshal(out, &peer); err != nil {
		b.Fatalf("torch peer output %q: %v", out, err)
	}
	b.ReportMetric(peer.TokensPerSec, "torch-tok/s")
	b.ReportMetric(peer.PeakRSSGB, "torch-rss-GB")
	b.ReportMetric(tps/peer.TokensPerSec, "x-torch")
	b.Logf("torch %s, %d threads", peer.Torch, peer.Threads)
}

// BenchmarkQLoRAQwen05GradCheckpoint times the same step without and with
// --grad-checkpoint (every block recomputed in the backward pass),
// alternating the two on one model so that both see the same machine load:
// it reports each one's tokens/s and allocator peak and the ratios.
//
//	go test ./pkg/lora -run '^$' -bench QLoRAQwen05GradCheckpoint -benchtime 2x -timeout 60m
func BenchmarkQLoRAQwen05GradCheckpoint(b *testing.B) {
	m, tuned, opt, batch := qloraQwen05Setup(b)
	var secs, peak [2]float64
	var tokens [2]int
	step := func(ckpt, timed bool) {
		if ckpt {
			defer CheckpointBlocks(m, tuned)()
		}
		engine.ResetPeakMemory()
		start := time.Now()
		_, n, err := Step(m, tuned, opt, batch, MaskStrict)
		if err != nil {
			b.Fatal(err)
		}
		if timed {
			k := 0
			if ckpt {
				k = 1
			}
			secs[k] += time.Since(start).Seconds()
			tokens[k] += n
			peak[k] = max(peak[k], float64(engine.PeakMemory())/1e9)
		}
	}
	step(false, false) // warm-up
	step(true, false)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step(i%2 == 1, true) // alternate which goes first
		step(i%2 == 0, true)
	}
	b.StopTimer()
	plain, ck := float64(tokens[0])/secs[0], float64(tokens[1])/secs[1]
	b.ReportMetric(plain, "plain-tok/s")
	b.ReportMetric(ck, "ckpt-tok/s")
	b.ReportMetric(ck/plain, "x-speed")
	b.ReportMetric(peak[0], "plain-peak-GB")
	b.ReportMetric(peak[1], "ckpt-peak-GB")
	b.ReportMetric(peak[1]/peak[0], "x-peak")
}

// qloraQwen05Setup builds BenchmarkQLoRAQwen05's model, adapter, optimizer
// and batch.
func qloraQwen05Setup(b *testing.B) (model.Model, *Tuned, optim.Optimizer, Batch) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "qwen2", "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14,
		"num_key_value_heads": 2, "intermediate_size": 4864, "vocab_size": 151936, "rms_norm_eps": 1e-6,
		"rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
		"quantization": map[string]any{"group_size": 64, "bits": 4},
	})
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.BFloat16, 1)
	if err != nil {
		b.Fatal(err)
	}
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: 16, Parameters: Parameters{Rank: 8, Scale: 20}})
	if err != nil {
		b.Fatal(err)
	}
	opt, _ := optim.New("adam", optim.Constant(1e-5), nil)
	const B, L = 4, 256
	batch := Batch{B: B, T: L + 1, Tokens: make([]int32, B*(L+1))}
	for i := range batch.Tokens {
		batch.Tokens[i] = int32((i*7919 + 13) % 151936)
	}
	for r := 0; r < B; r++ {
		batch.Offsets, batch.Lengths = append(batch.Offsets, 0), append(batch.Lengths, L+1)
	}
	return m, tuned, opt, batch
}

// torchPython is the first of $MLXGO_TORCH_PYTHON, Debian's /usr/bin/python3
// and python3 on PATH that imports torch, or "".
func torchPython() string {
	for _, py := range []string{os.Getenv("MLXGO_TORCH_PYTHON"), "/usr/bin/python3", "python3"} {
		if py != "" && exec.Command(py, "-c", "import torch").Run() == nil {
			return py
		}
	}
	return ""
}

// vmHWM is this process's peak RSS in GB since the last clear_refs reset
// (/proc/self/status VmHWM), 0 where unavailable.
func vmHWM() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024 / 1e9
		}
	}
	return 0
}
