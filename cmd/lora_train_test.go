package cmd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

const llamaF32Dir = "../testdata/models/llama-f32"

// writeJSONL writes records to dir/name.
func writeJSONL(t *testing.T, dir, name string, recs []map[string]any) {
	t.Helper()
	var sb strings.Builder
	for _, r := range recs {
		b, _ := json.Marshal(r)
		sb.Write(b)
		sb.WriteByte('\n')
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func textRecs(n int) []map[string]any {
	var out []map[string]any
	for i := 0; i < n; i++ {
		out = append(out, map[string]any{"text": fmt.Sprintf("item %d maps to %d.", i, i*7%13)})
	}
	return out
}

func loraData(t *testing.T) string {
	d := filepath.Join(t.TempDir(), "data")
	writeJSONL(t, d, "train.jsonl", textRecs(8))
	writeJSONL(t, d, "valid.jsonl", textRecs(4))
	writeJSONL(t, d, "test.jsonl", textRecs(4))
	return d
}

var (
	reTrain = regexp.MustCompile(`^Iter (\d+): Train loss \d+\.\d{3}, Learning Rate \d\.\d{3}e[-+]\d{2}, It/sec \d+\.\d{3}, Tokens/sec \d+\.\d{3}, Trained Tokens \d+, Peak mem \d+\.\d{3} GB$`)
	reVal   = regexp.MustCompile(`^Iter (\d+): Val loss \d+\.\d{3}, Val took \d+\.\d{3}s$`)
	reTest  = regexp.MustCompile(`^Test loss (\d+\.\d{3}), Test ppl \d+\.\d{3}\.$`)
	reParam = regexp.MustCompile(`^Trainable parameters: \d+\.\d{3}% \(\d+\.\d{3}M/\d+\.\d{3}M\)$`)
)

func TestLoraTrainCLI(t *testing.T) {
	data := loraData(t)
	ad := filepath.Join(t.TempDir(), "ad")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("lora_parameters:\n  rank: 4\n  scale: 2.0\n  dropout: 0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "", "lora", "--train", "--test", "--data", data, "--model", llamaF32Dir, "--iters", "6",
		"--steps-per-report", "2", "--steps-per-eval", "3", "--save-every", "3", "--batch-size", "2", "--num-layers", "2",
		"--adapter-path", ad, "-c", cfg, "--learning-rate", "1e-3")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"Loading pretrained model", "Loading datasets", "Training", "<params>", "Starting training..., iters: 6",
		"val 1", "train 2", "val 3", "save 3", "train 4", "val 6", "train 6", "save 6", "Saved final weights to " + filepath.Join(ad, "adapters.safetensors") + ".",
		"Testing", "<test>"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		l := lines[i]
		ok := l == w
		switch {
		case w == "<params>":
			ok = reParam.MatchString(l)
		case w == "<test>":
			ok = reTest.MatchString(l)
		case strings.HasPrefix(w, "val "):
			ok = reVal.MatchString(l) && strings.HasPrefix(l, "Iter "+w[4:]+":")
		case strings.HasPrefix(w, "train "):
			ok = reTrain.MatchString(l) && strings.HasPrefix(l, "Iter "+w[6:]+":")
		case strings.HasPrefix(w, "save "):
			it := w[5:]
			ok = l == fmt.Sprintf("Iter %s: Saved adapter weights to %s and %s.", it, filepath.Join(ad, "adapters.safetensors"), filepath.Join(ad, fmt.Sprintf("%07s_adapters.safetensors", it)))
		}
		if !ok {
			t.Errorf("line %d: %q, want %s", i, l, w)
		}
	}
	// Golden layout: the folder matches mlx_lm's (testdata/lora/lora was
	// written in mlx_lm's format with the same rank on the same model).
	checkAdapterLayout(t, ad, "../testdata/lora/lora")
	for _, f := range []string{"0000003_adapters.safetensors", "0000006_adapters.safetensors"} {
		if _, err := os.Stat(filepath.Join(ad, f)); err != nil {
			t.Error(err)
		}
	}
	entries, _ := os.ReadDir(ad)
	if len(entries) != 4 {
		t.Errorf("adapter folder has %d entries, want 4 (config, adapters, two checkpoints)", len(entries))
	}

	// --test alone loads --adapter-path; resuming from the adapter with a
	// zero learning rate gives the same test loss, the base model another.
	testLoss := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, "", append([]string{"lora", "--data", data, "--model", llamaF32Dir, "--batch-size", "2"}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		m := reTest.FindStringSubmatch(lines[len(lines)-1])
		if m == nil {
			t.Fatalf("no test line:\n%s", out)
		}
		return m[1]
	}
	adapted := testLoss("--test", "--adapter-path", ad)
	if m := reTest.FindStringSubmatch(lines[len(lines)-1]); m[1] != adapted {
		t.Errorf("test after training %s, test from --adapter-path %s", m[1], adapted)
	}
	resumed := testLoss("--train", "--test", "--iters", "1", "--learning-rate", "0", "--num-layers", "2", "-c", cfg,
		"--resume-adapter-file", filepath.Join(ad, "adapters.safetensors"), "--adapter-path", filepath.Join(t.TempDir(), "ad2"))
	base := testLoss("--test", "--adapter-path", "")
	if resumed != adapted || base == adapted {
		t.Errorf("test loss: adapter %s, resumed %s, base %s", adapted, resumed, base)
	}
}

// checkAdapterLayout compares an adapter folder with a reference one:
// config keys, tensor names, shapes, dtypes and metadata.
func checkAdapterLayout(t *testing.T, got, ref string) {
	t.Helper()
	keys := func(dir string) []string {
		raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		var k []string
		for key := range m {
			k = append(k, key)
		}
		if lp, ok := m["lora_parameters"].(map[string]any); ok {
			for key := range lp {
				k = append(k, "lora_parameters."+key)
			}
		}
		slices.Sort(k)
		return k
	}
	if g, r := keys(got), keys(ref); !slices.Equal(g, r) {
		t.Errorf("adapter_config.json keys\n got %v\nwant %v", g, r)
	}
	raw, _ := os.ReadFile(filepath.Join(got, "adapter_config.json"))
	if !strings.HasPrefix(string(raw), "{\n    \"adapter_path\": ") {
		t.Errorf("adapter_config.json is not sorted with a 4-space indent:\n%s", raw)
	}
	open := func(dir string) *safetensors.File {
		f, err := safetensors.Open(filepath.Join(dir, "adapters.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	g, r := open(got), open(ref)
	gn, rn := slices.Sorted(slices.Values(g.Names())), slices.Sorted(slices.Values(r.Names()))
	if !slices.Equal(gn, rn) {
		t.Fatalf("tensor names\n got %v\nwant %v", gn, rn)
	}
	for _, n := range rn {
		gi, _ := g.Info(n)
		ri, _ := r.Info(n)
		if gi.DType != ri.DType || !slices.Equal(gi.Shape, ri.Shape) {
			t.Errorf("%s: %s%v, want %s%v", n, gi.DType, gi.Shape, ri.DType, ri.Shape)
		}
	}
	if g.Metadata()["format"] != "mlx" {
		t.Errorf("metadata %v", g.Metadata())
	}
}

func TestLoraBadInput(t *testing.T) {
	dir := t.TempDir()
	good := textRecs(4)
	cases := []struct {
		name  string
		setup func(d string)
		args  []string
		want  string
	}{
		{"missing train", func(d string) { writeJSONL(t, d, "valid.jsonl", good) }, nil, "train.jsonl"},
		{"empty train", func(d string) { writeJSONL(t, d, "train.jsonl", nil) }, nil, "training set not found or empty"},
		{"mixed formats", func(d string) {
			writeJSONL(t, d, "train.jsonl", append(textRecs(2), map[string]any{"prompt": "a", "completion": "b"}))
		}, nil, "train.jsonl:3"},
		{"mask prompt with text", func(d string) { writeJSONL(t, d, "train.jsonl", good) }, []string{"--mask-prompt"}, "--mask-prompt"},
		{"too many layers", func(d string) { writeJSONL(t, d, "train.jsonl", good) }, []string{"--num-layers", "3"}, "only has 2 layers"},
		{"missing test", func(d string) { writeJSONL(t, d, "train.jsonl", good) }, []string{"--test"}, "test set not found"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(dir, fmt.Sprint(i))
			os.MkdirAll(d, 0o755)
			c.setup(d)
			ad := filepath.Join(d, "adapters")
			args := append([]string{"lora", "--train", "--data", d, "--model", llamaF32Dir, "--iters", "2", "--batch-size", "2", "--adapter-path", ad}, c.args...)
			out, errOut, code := runCLI(t, "", args...)
			if code != 1 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("exit %d, stderr %q (want one line with %q)\nstdout %s", code, errOut, c.want, out)
			}
			if _, err := os.Stat(ad); err == nil {
				t.Errorf("%s was written", ad)
			}
		})
	}
	// A record longer than --max-seq-length: mlx_lm's warning, training goes on.
	d := filepath.Join(dir, "long")
	writeJSONL(t, d, "train.jsonl", append(textRecs(3), map[string]any{"text": strings.Repeat("x", 100)}))
	out, errOut, code := runCLI(t, "", "lora", "--train", "--data", d, "--model", llamaF32Dir, "--iters", "2", "--batch-size", "2",
		"--max-seq-length", "40", "--num-layers", "2", "--adapter-path", filepath.Join(d, "ad"))
	if code != 0 || !strings.Contains(out, "[WARNING] Some sequences are longer than 40 tokens. The longest sentence 101 will be truncated to 40.") {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// Ctrl-C (SIGINT to a child process) saves the current adapter, then exits 1.
func TestLoraInterruptSaves(t *testing.T) {
	data := loraData(t)
	ad := filepath.Join(t.TempDir(), "ad")
	c := exec.Command(os.Args[0], "lora", "--train", "--data", data, "--model", llamaF32Dir, "--iters", "100000",
		"--steps-per-report", "1", "--save-every", "100000", "--steps-per-eval", "100000", "--batch-size", "2", "--num-layers", "1", "--adapter-path", ad)
	c.Env = append(os.Environ(), "MLXGO_TEST_MAIN=1")
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var seen []string
	deadline := time.AfterFunc(60*time.Second, func() { c.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.HasPrefix(sc.Text(), "Iter 3: Train loss") {
			if err := c.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for sc.Scan() {
		seen = append(seen, sc.Text())
	}
	err = c.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\nstdout %s\nstderr %s", err, strings.Join(seen, "\n"), stderr.String())
	}
	if !strings.Contains(stderr.String(), "training interrupted") {
		t.Errorf("stderr %q", stderr.String())
	}
	if !strings.Contains(seen[len(seen)-1], "Interrupted; saved current adapter weights to "+filepath.Join(ad, "adapters.safetensors")) {
		t.Errorf("last line %q", seen[len(seen)-1])
	}
	f, err := safetensors.Open(filepath.Join(ad, "adapters.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Names()) != 14 {
		t.Errorf("saved adapter has %d tensors, want 14", len(f.Names()))
	}
}

// generate --adapter-path reproduces each adapter's reference greedy
// continuation; the PEFT import gives the mlx adapter's.
func TestGenerateAdapterPath(t *testing.T) {
	for _, c := range []struct{ adapter, ref string }{{"lora", "lora"}, {"dora", "dora"}, {"peft", "lora"}} {
		raw, err := os.ReadFile(filepath.Join("../testdata/lora", c.ref, "reference.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Greedy struct {
				Prompt string `json:"prompt"`
				Text   string `json:"text"`
			} `json:"greedy"`
		}
		if err := json.Unmarshal(raw, &ref); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := runCLI(t, "", "generate", "--model", llamaF32Dir, "--adapter-path", filepath.Join("../testdata/lora", c.adapter),
			"--prompt", ref.Greedy.Prompt, "--ignore-chat-template", "--max-tokens", "16", "--temp", "0")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.adapter, code, errOut)
		}
		if !strings.Contains(out, "==========\n"+ref.Greedy.Text+"\n==========") {
			t.Errorf("%s: output %q, want %q", c.adapter, out, ref.Greedy.Text)
		}
	}
	_, errOut, code := runCLI(t, "", "generate", "--model", llamaF32Dir, "--adapter-path", t.TempDir(), "--prompt", "x")
	if code != 1 || !strings.Contains(errOut, "adapter_config.json") {
		t.Errorf("empty adapter folder: exit %d, %q", code, errOut)
	}
}

// DoRA and full fine-tuning through the CLI write mlx_lm's tensor names;
// chat data with --mask-prompt trains only the assistant turn's tokens.
func TestLoraTrainKindsCLI(t *testing.T) {
	data := loraData(t)
	names := func(ad string) []string {
		f, err := safetensors.Open(filepath.Join(ad, "adapters.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return slices.Sorted(slices.Values(f.Names()))
	}
	for _, kind := range []string{"dora", "full"} {
		ad := filepath.Join(t.TempDir(), kind)
		out, errOut, code := runCLI(t, "", "lora", "--train", "--data", data, "--model", llamaF32Dir, "--iters", "2",
			"--batch-size", "2", "--num-layers", "1", "--fine-tune-type", kind, "--adapter-path", ad)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", kind, code, out, errOut)
		}
		n := names(ad)
		switch kind {
		case "dora":
			if len(n) != 21 || !slices.Contains(n, "model.layers.1.self_attn.q_proj.m") {
				t.Errorf("dora: %d tensors %v", len(n), n)
			}
		case "full":
			if len(n) != 9 || !slices.Contains(n, "model.layers.1.mlp.down_proj.weight") || !slices.Contains(n, "model.layers.1.input_layernorm.weight") {
				t.Errorf("full: %d tensors %v", len(n), n)
			}
		}
	}

	chat := filepath.Join(t.TempDir(), "chat")
	var recs []map[string]any
	for i := 0; i < 4; i++ {
		recs = append(recs, map[string]any{"messages": []map[string]string{
			{"role": "user", "content": fmt.Sprintf("what is %d?", i)}, {"role": "assistant", "content": "ok"}}})
	}
	writeJSONL(t, chat, "train.jsonl", recs)
	trained := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, "", append([]string{"lora", "--train", "--data", chat, "--model", llamaF32Dir, "--iters", "1",
			"--batch-size", "4", "--num-layers", "1", "--adapter-path", filepath.Join(t.TempDir(), "ad")}, args...)...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		m := regexp.MustCompile(`Trained Tokens (\d+),`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no train line:\n%s", out)
		}
		return m[1]
	}
	// "<|user|>what is N?\n<|assistant|>ok\n" is 35 one-character tokens:
	// 34 targets per row unmasked; with --mask-prompt only the 3 after the
	// 32-token prompt "<|user|>what is N?\n<|assistant|>".
	if all, masked := trained(), trained("--mask-prompt"); all != "136" || masked != "12" {
		t.Errorf("trained tokens: %s without and %s with --mask-prompt, want 136 and 12", all, masked)
	}
}

// chat --adapter-path answers as generate does with the same adapter and
// the chat template, and differently from the base model.
func TestChatAdapterPath(t *testing.T) {
	adapter := filepath.Join("../testdata/lora", "lora")
	gen, errOut, code := runCLI(t, "", "generate", "--model", llamaF32Dir, "--adapter-path", adapter,
		"--prompt", "hello", "--max-tokens", "12", "--verbose", "F")
	if code != 0 {
		t.Fatalf("generate: exit %d: %s", code, errOut)
	}
	reply := strings.TrimSuffix(gen, "\n")
	withAdapter, errOut, code := runCLI(t, "hello\nq\n", "chat", "--model", llamaF32Dir, "--adapter-path", adapter, "-m", "12")
	if code != 0 {
		t.Fatalf("chat: exit %d: %s", code, errOut)
	}
	if !strings.Contains(withAdapter, ">> "+reply+"\n") {
		t.Errorf("chat with the adapter:\n%q\nwant the reply %q", withAdapter, reply)
	}
	base, _, _ := runCLI(t, "hello\nq\n", "chat", "--model", llamaF32Dir, "-m", "12")
	if strings.Contains(base, ">> "+reply+"\n") {
		t.Errorf("the base model gives the adapter's reply %q: the adapter was not applied", reply)
	}
	_, errOut, code = runCLI(t, "q\n", "chat", "--model", llamaF32Dir, "--adapter-path", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "adapter_config.json") {
		t.Errorf("empty adapter folder: exit %d, %q", code, errOut)
	}
}
