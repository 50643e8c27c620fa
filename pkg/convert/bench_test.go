package convert

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// childEnv carries the Options of a conversion run in a child process (so
// its peak RSS is its own).
const childEnv = "MLXGO_CONVERT_BENCH_CHILD"

// noSlabsEnv=1 makes the child apply stepped plans to whole tensors.
const noSlabsEnv = "MLXGO_CONVERT_BENCH_NO_SLABS"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childConvert(spec))
	}
	os.Exit(m.Run())
}

// childConvert runs one conversion and prints the process's peak resident
// set (VmHWM from /proc/self/status) in KiB.
func childConvert(spec string) int {
	noSlabs = os.Getenv(noSlabsEnv) == "1"
	var o Options
	if err := json.Unmarshal([]byte(spec), &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := Convert(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fmt.Printf("vmhwm_kib %s\n", strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// genModel writes a Llama-shaped bf16 checkpoint (tied embeddings) with
// random weights of magnitude 2^-7..2^-3 into dir and returns its tensor
// bytes.
func genModel(tb testing.TB, dir string, hidden, layers, inter, vocab, heads, kvHeads int) int64 {
	tb.Helper()
	headDim := hidden / heads
	type t struct {
		name  string
		shape []int
	}
	ts := []t{{"model.embed_tokens.weight", []int{vocab, hidden}}, {"model.norm.weight", []int{hidden}}}
	for i := 0; i < layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		ts = append(ts,
			t{p + "self_attn.q_proj.weight", []int{heads * headDim, hidden}},
			t{p + "self_attn.k_proj.weight", []int{kvHeads * headDim, hidden}},
			t{p + "self_attn.v_proj.weight", []int{kvHeads * headDim, hidden}},
			t{p + "self_attn.o_proj.weight", []int{hidden, heads * headDim}},
			t{p + "mlp.gate_proj.weight", []int{inter, hidden}},
			t{p + "mlp.up_proj.weight", []int{inter, hidden}},
			t{p + "mlp.down_proj.weight", []int{hidden, inter}},
			t{p + "input_layernorm.weight", []int{hidden}},
			t{p + "post_attention_layernorm.weight", []int{hidden}})
	}
	names, shapes := make([]string, len(ts)), make([][]int, len(ts))
	for i, x := range ts {
		names[i], shapes[i] = x.name, x.shape
	}
	total := writeRandom(tb, dir, names, shapes)
	cfg := fmt.Sprintf(`{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": %d, "num_hidden_layers": %d,
"intermediate_size": %d, "vocab_size": %d, "num_attention_heads": %d, "num_key_value_heads": %d, "head_dim": %d,
"rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16"}`,
		hidden, layers, inter, vocab, heads, kvHeads, headDim)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	return total
}

// writeRandom writes bf16 tensors of random values of magnitude
// 2^-7..2^-3 into dir/model.safetensors and returns their bytes.
func writeRandom(tb testing.TB, dir string, names []string, shapes [][]int) int64 {
	tb.Helper()
	type t struct {
		name  string
		shape []int
	}
	ts := make([]t, len(names))
	for i := range names {
		ts[i] = t{names[i], shapes[i]}
	}
	specs := make([]st.TensorSpec, len(ts))
	for i, x := range ts {
		specs[i] = st.TensorSpec{Name: x.name, DType: st.BF16, Shape: x.shape}
	}
	w, err := st.NewWriter(dir, specs, &st.WriterOptions{Metadata: map[string]string{"format": "pt"}})
	if err != nil {
		tb.Fatal(err)
	}
	var buf []uint16
	for i, x := range ts {
		n := 1
		for _, d := range x.shape {
			n *= d
		}
		if cap(buf) < n {
			buf = make([]uint16, n)
		}
		buf = buf[:n]
		seed := uint64(i+1) * 0x9E3779B97F4A7C15
		kernels.Parallel(n, 1<<16, func(lo, hi int) {
			s := seed ^ uint64(lo)*0xBF58476D1CE4E5B9 | 1
			for k := lo; k < hi; k++ {
				s ^= s << 13
				s ^= s >> 7
				s ^= s << 17
				// sign, exponent 120..123, 7 random mantissa bits
				buf[k] = uint16(s>>63)<<15 | uint16(120+(s>>8)&3)<<7 | uint16(s&0x7f)
			}
		})
		if err := w.WriteTensor(x.name, st.AsBytes(buf)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return w.Index().TotalSize
}

// BenchmarkConvertLlama1B converts a Llama-3.2-1B-shaped bf16 checkpoint
// (hidden 2048, 16 layers, intermediate 8192, vocab 128256, tied; 2.47 GB)
// in a child process and reports source GB/s and the child's peak RSS:
// q4 is `convert -q` (4-bit, group 64); copy is `convert` with nothing to
// cast (bf16 in and out: mmap read, write, fsync), the I/O ceiling of the
// same run. The source is in the page cache (just written). src-GB/CPU-s
// (source bytes over the child's user+system CPU time) does not depend on
// how busy the machine is; on an idle machine with c cores the wall-clock
// rate approaches c times it, until the disk limits.
//
// With MLXGO_CONVERT_BENCH_SRC=<folder> the checkpoint is written there
// and kept (reused when present), to time `mlxgo convert` on it directly.
func BenchmarkConvertLlama1B(b *testing.B) {
	src := os.Getenv("MLXGO_CONVERT_BENCH_SRC")
	var total int64
	if src == "" {
		src = filepath.Join(b.TempDir(), "src")
	}
	if m, err := st.OpenModel(src); err == nil {
		for _, e := range m.Entries() {
			total += e.NumBytes()
		}
		m.Close()
	} else {
		if err := os.MkdirAll(src, 0o755); err != nil {
			b.Fatal(err)
		}
		total = genModel(b, src, 2048, 16, 8192, 128256, 32, 8)
	}
	// encode: the 4-bit encoder alone on one in-memory [8192, 2048] bf16
	// tensor, the compute ceiling of q4 (same CPU-time metric).
	b.Run("encode", func(b *testing.B) {
		const rows, cols = 8192, 2048
		w := make([]uint16, rows*cols)
		for i := range w {
			w[i] = uint16(i*2654435761>>7)&0x807f | 0x3c00
		}
		q := make([]uint32, rows*cols/8)
		sc, bi := make([]uint16, rows*cols/64), make([]uint16, rows*cols/64)
		b.SetBytes(2 * rows * cols)
		c0 := cpuTime()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if err := quant.QuantizeHalf(w, kernels.BF16, cols, quant.Options{Bits: 4, GroupSize: 64}, q, sc, bi); err != nil {
				b.Fatal(err)
			}
		}
		n := float64(2*rows*cols) * float64(b.N)
		b.ReportMetric(n/time.Since(start).Seconds()/1e9, "src-GB/s")
		b.ReportMetric(n/(cpuTime()-c0).Seconds()/1e9, "src-GB/CPU-s")
	})
	for _, c := range []struct {
		name string
		o    Options
	}{{"q4", Options{Quantize: true}}, {"copy", Options{}}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(total)
			var peak int64
			var elapsed, cpu time.Duration
			for i := 0; i < b.N; i++ {
				o := c.o
				o.HFPath = src
				o.MLXPath = filepath.Join(b.TempDir(), "out")
				spec, _ := json.Marshal(o)
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
				cmd.Stderr = os.Stderr
				start := time.Now()
				out, err := cmd.Output()
				elapsed += time.Since(start)
				if err != nil {
					b.Fatalf("child: %v", err)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				for _, line := range strings.Split(string(out), "\n") {
					if v, ok := strings.CutPrefix(line, "vmhwm_kib "); ok {
						k, _ := strconv.ParseInt(v, 10, 64)
						peak = max(peak, k)
					}
				}
				os.RemoveAll(o.MLXPath)
			}
			b.ReportMetric(float64(total)*float64(b.N)/elapsed.Seconds()/1e9, "src-GB/s")
			b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
			b.ReportMetric(float64(total)*float64(b.N)/cpu.Seconds()/1e9, "src-GB/CPU-s")
		})
	}
}

// childPeak converts with o in a child process and returns its peak RSS
// in bytes.
func childPeak(b *testing.B, o Options, env ...string) int64 {
	spec, _ := json.Marshal(o)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+string(spec)), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("child: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "vmhwm_kib "); ok {
			k, _ := strconv.ParseInt(v, 10, 64)
			return k << 10
		}
	}
	b.Fatal("child printed no peak RSS")
	return 0
}

// BenchmarkConvertGptOssExperts converts a gpt-oss-shaped bf16 checkpoint
// of two layers whose fused experts (transformers' gate_up_proj
// [32, 1024, 2048], down_proj [32, 1024, 1024], 128 + 64 MiB a layer)
// become mlx_lm's gate/up/down_proj [32, 1024, 1024] (64 MiB each, the
// largest output tensor) and reports the child's peak RSS, and that peak
// less the floor (the same child converting the tiny gpt_oss fixture)
// over the largest tensor's size: slabs is convert as it runs (model.Axis0Slabs, one
// expert at a time); whole applies each plan to the whole tensor (the
// peer); copy writes bf16, q4 quantizes.
func BenchmarkConvertGptOssExperts(b *testing.B) {
	const E, D, I, layers = 32, 1024, 1024, 2
	src := filepath.Join(b.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	names := []string{"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
	shapes := [][]int{{512, D}, {D}, {512, D}}
	for l := range layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		names = append(names, p+"mlp.experts.gate_up_proj", p+"mlp.experts.gate_up_proj_bias",
			p+"mlp.experts.down_proj", p+"mlp.experts.down_proj_bias", p+"mlp.router.weight", p+"mlp.router.bias",
			p+"input_layernorm.weight", p+"post_attention_layernorm.weight")
		shapes = append(shapes, []int{E, D, 2 * I}, []int{E, 2 * I}, []int{E, I, D}, []int{E, D}, []int{E, D}, []int{E},
			[]int{D}, []int{D})
	}
	total := writeRandom(b, src, names, shapes)
	cfg := fmt.Sprintf(`{"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": %d,
"intermediate_size": %d, "num_hidden_layers": %d, "num_local_experts": %d, "num_experts_per_tok": 4, "vocab_size": 512,
"num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64, "torch_dtype": "bfloat16"}`, D, I, layers, E)
	if err := os.WriteFile(filepath.Join(src, "config.json"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	largest := float64(E * I * D * 2)
	// The process's own floor: the same child converting the tiny fixture.
	base := childPeak(b, Options{HFPath: filepath.Join(fixtures, "gpt_oss-f32"), MLXPath: filepath.Join(b.TempDir(), "base")})
	for _, c := range []struct {
		name string
		o    Options
	}{{"copy", Options{}}, {"q4", Options{Quantize: true}}} {
		for _, mode := range []string{"slabs", "whole"} {
			b.Run(c.name+"/"+mode, func(b *testing.B) {
				b.SetBytes(total)
				var peak int64
				for i := 0; i < b.N; i++ {
					o := c.o
					o.HFPath, o.MLXPath = src, filepath.Join(b.TempDir(), "out")
					env := noSlabsEnv + "=0"
					if mode == "whole" {
						env = noSlabsEnv + "=1"
					}
					peak = max(peak, childPeak(b, o, env))
					os.RemoveAll(o.MLXPath)
				}
				b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
				b.ReportMetric(float64(base)/(1<<20), "floor-RSS-MiB")
				b.ReportMetric(float64(peak-base)/largest, "(peak-floor)/largest-tensor")
			})
		}
	}
}
