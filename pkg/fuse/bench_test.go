package fuse

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/convert"
	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/lora"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// childEnv carries a fuse or convert run to a child process, so that its
// peak RSS is its own.
const childEnv = "MLXGO_FUSE_BENCH_CHILD"

type childSpec struct {
	Fuse    *Options
	Convert *convert.Options
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(child(spec))
	}
	os.Exit(m.Run())
}

// child runs one fuse or convert and prints VmHWM (KiB).
func child(spec string) int {
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var err error
	if c.Fuse != nil {
		_, err = Fuse(context.Background(), *c.Fuse)
	} else {
		_, err = convert.Convert(context.Background(), *c.Convert)
	}
	if err != nil {
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

// genBF16 writes a Llama-shaped bf16 checkpoint with random weights.
func genBF16(tb testing.TB, dir string, hidden, layers, inter, vocab, heads, kvHeads int) map[string][]int {
	tb.Helper()
	hd := hidden / heads
	shapes := map[string][]int{"model.embed_tokens.weight": {vocab, hidden}, "model.norm.weight": {hidden}}
	for i := 0; i < layers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		shapes[p+"self_attn.q_proj.weight"] = []int{heads * hd, hidden}
		shapes[p+"self_attn.k_proj.weight"] = []int{kvHeads * hd, hidden}
		shapes[p+"self_attn.v_proj.weight"] = []int{kvHeads * hd, hidden}
		shapes[p+"self_attn.o_proj.weight"] = []int{hidden, heads * hd}
		shapes[p+"mlp.gate_proj.weight"] = []int{inter, hidden}
		shapes[p+"mlp.up_proj.weight"] = []int{inter, hidden}
		shapes[p+"mlp.down_proj.weight"] = []int{hidden, inter}
		shapes[p+"input_layernorm.weight"] = []int{hidden}
		shapes[p+"post_attention_layernorm.weight"] = []int{hidden}
	}
	var specs []st.TensorSpec
	for n, s := range shapes {
		specs = append(specs, st.TensorSpec{Name: n, DType: st.BF16, Shape: s})
	}
	w, err := st.NewWriter(dir, specs, &st.WriterOptions{Metadata: map[string]string{"format": "pt"}})
	if err != nil {
		tb.Fatal(err)
	}
	i := 0
	for n, s := range shapes {
		i++
		buf := make([]uint16, numel(s))
		seed := uint64(i) * 0x9E3779B97F4A7C15
		kernels.Parallel(len(buf), 1<<16, func(lo, hi int) {
			x := seed ^ uint64(lo)*0xBF58476D1CE4E5B9 | 1
			for k := lo; k < hi; k++ {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				buf[k] = uint16(x>>63)<<15 | uint16(120+(x>>8)&3)<<7 | uint16(x&0x7f)
			}
		})
		if err := w.WriteTensor(n, st.AsBytes(buf)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"model_type": "llama", "hidden_size": %d, "num_hidden_layers": %d, "intermediate_size": %d, "vocab_size": %d,
"num_attention_heads": %d, "num_key_value_heads": %d, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16"}`,
		hidden, layers, inter, vocab, heads, kvHeads)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	return shapes
}

// BenchmarkFuseLlama is a Llama-3.2-1B-shaped model cut to 4 blocks
// (hidden 2048, intermediate 8192, vocab 32000, tied), 4-bit group 64
// with bf16 scales (made by convert -q), and a rank-16 LoRA on all 28
// projections. Each run is a child process (its own peak RSS); the
// metric is bytes of the 4-bit source per CPU-second of the child:
//
//	fuse:       dequantize, merge, re-quantize at 4 bits, survival measure
//	dequantize: fuse --dequantize (merge, write bf16)
//	convert-d:  convert -d of the same 4-bit model (the peer: dequantize
//	            and write, no adapter)
//	convert-q:  convert -q of the bf16 model (the encoder's share)
func BenchmarkFuseLlama(b *testing.B) {
	root := b.TempDir()
	src := filepath.Join(root, "bf16")
	must(b, os.MkdirAll(src, 0o755))
	shapes := genBF16(b, src, 2048, 4, 8192, 32000, 32, 8)
	q4 := filepath.Join(root, "q4")
	if _, err := convert.Convert(context.Background(), convert.Options{HFPath: src, MLXPath: q4, Quantize: true}); err != nil {
		b.Fatal(err)
	}
	var total int64
	m, err := st.OpenModel(q4)
	must(b, err)
	for _, e := range m.Entries() {
		total += e.NumBytes()
	}
	m.Close()
	adir := filepath.Join(root, "adapter")
	must(b, os.MkdirAll(adir, 0o755))
	r := rand.New(rand.NewPCG(1, 1))
	tensors := map[string]lora.Tensor{}
	for n, s := range shapes {
		path, _ := strings.CutSuffix(n, ".weight")
		if len(s) != 2 || !strings.Contains(path, "layers") || strings.Contains(path, "norm") {
			continue
		}
		tensors[path+".lora_a"] = randTensor(r, 0.02, s[1], 16)
		tensors[path+".lora_b"] = randTensor(r, 0.02, 16, s[0])
	}
	must(b, lora.SaveTensors(filepath.Join(adir, lora.AdapterFile), tensors))
	must(b, os.WriteFile(filepath.Join(adir, "adapter_config.json"), []byte(`{"fine_tune_type": "lora", "num_layers": 4, "lora_parameters": {"rank": 16, "dropout": 0.0, "scale": 2.0}}`), 0o644))

	for _, c := range []struct {
		name string
		spec func(out string) childSpec
	}{
		{"fuse", func(out string) childSpec {
			return childSpec{Fuse: &Options{Model: q4, AdapterPath: adir, SavePath: out}}
		}},
		{"dequantize", func(out string) childSpec {
			return childSpec{Fuse: &Options{Model: q4, AdapterPath: adir, SavePath: out, Dequantize: true}}
		}},
		{"convert-d", func(out string) childSpec {
			return childSpec{Convert: &convert.Options{HFPath: q4, MLXPath: out, Dequantize: true}}
		}},
		{"convert-q", func(out string) childSpec {
			return childSpec{Convert: &convert.Options{HFPath: src, MLXPath: out, Quantize: true}}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(total)
			var peak int64
			var elapsed, cpu time.Duration
			for i := 0; i < b.N; i++ {
				spec, _ := json.Marshal(c.spec(filepath.Join(b.TempDir(), "out")))
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
			}
			n := float64(total) * float64(b.N)
			b.ReportMetric(n/elapsed.Seconds()/1e9, "q4-GB/s")
			b.ReportMetric(n/cpu.Seconds()/1e9, "q4-GB/CPU-s")
			b.ReportMetric(float64(peak)/1024, "peak-MiB")
		})
	}
}
