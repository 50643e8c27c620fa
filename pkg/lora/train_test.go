package lora

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/optim"
)

// mapping is a fixed task: token 20+i must be followed by token 300+7i.
func mapping(n int) []Example {
	var ex []Example
	for i := 0; i < n; i++ {
		ex = append(ex, Example{Tokens: []int{20 + i, 300 + 7*i}})
	}
	return ex
}

var (
	trainLine = regexp.MustCompile(`^Iter \d+: Train loss \d+\.\d{3}, Learning Rate \d\.\d{3}e[-+]\d{2}, It/sec \d+\.\d{3}, Tokens/sec \d+\.\d{3}, Trained Tokens \d+, Peak mem \d+\.\d{3} GB$`)
	valLine   = regexp.MustCompile(`^Iter \d+: Val loss \d+\.\d{3}, Val took \d+\.\d{3}s$`)
)

// A tiny llama memorises a fixed mapping with LoRA: the training loss
// falls by at least 90% within 120 steps. lm_head is adapted too (a
// top-level key): with a frozen output layer after the final RMSNorm the
// logits of this small model are bounded and the loss cannot fall that far.
func TestLoRAConvergence(t *testing.T) {
	m, _, err := model.Load(filepath.Join(fixtures, "full", "model"))
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 8, Scale: 20, Keys: []string{
		"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "lm_head"}}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(tuned.Params) != 2*(2*7+1) {
		t.Fatalf("%d trainable arrays, want 30 (7 projections × 2 blocks + lm_head, × a, b)", len(tuned.Params))
	}
	sched := optim.Constant(1e-3)
	opt, err := optim.New("adam", sched, nil)
	if err != nil {
		t.Fatal(err)
	}
	initial, err := Evaluate(m, tuned, mapping(8), 8, -1, 64, MaskStrict, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	dir := t.TempDir()
	st, err := Train(context.Background(), m, tuned, opt, sched, mapping(8), mapping(8), TrainOptions{
		Iters: 120, BatchSize: 8, MaxSeqLength: 64, StepsPerReport: 10, StepsPerEval: 50, SaveEvery: 60,
		ValBatches: -1, GradAccumulationSteps: 1, AdapterFile: filepath.Join(dir, AdapterFile), Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	final, err := Evaluate(m, tuned, mapping(8), 8, -1, 64, MaskStrict, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastLoss > 0.1*initial || final > 0.1*initial {
		t.Errorf("loss went from %.3f to %.3f (last report %.3f); want a 90%% drop\n%s", initial, final, st.LastLoss, out.String())
	}
	t.Logf("loss %.3f -> %.3f", initial, final)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "Starting training..., iters: 120" {
		t.Errorf("first line %q", lines[0])
	}
	var nTrain, nVal int
	for _, l := range lines[1:] {
		switch {
		case trainLine.MatchString(l):
			nTrain++
		case valLine.MatchString(l):
			nVal++
		case strings.HasPrefix(l, "Iter 60: Saved adapter weights to "), strings.HasPrefix(l, "Iter 120: Saved adapter weights to "),
			l == "Saved final weights to "+filepath.Join(dir, AdapterFile)+".":
		default:
			t.Errorf("unexpected line %q", l)
		}
	}
	if nTrain != 12 || nVal != 4 { // val at 1, 50, 100, 120
		t.Errorf("%d train and %d val lines\n%s", nTrain, nVal, out.String())
	}
	for _, f := range []string{AdapterFile, "0000060_adapters.safetensors", "0000120_adapters.safetensors"} {
		ts, err := readTensors(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 30 {
			t.Errorf("%s: %d tensors", f, len(ts))
		}
	}
}

// Gradient accumulation over N steps of one batch equals one step's
// update direction: with SGD, the accumulated (averaged) gradient of the
// same batch twice moves the weights like a single step.
func TestGradAccumulationAverages(t *testing.T) {
	run := func(acc, iters int) []float32 {
		m, _, err := model.Load(filepath.Join(fixtures, "full", "model"))
		if err != nil {
			t.Fatal(err)
		}
		tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: 1, Parameters: Parameters{Rank: 2, Scale: 1}, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		sched := optim.Constant(0.1)
		opt, _ := optim.New("sgd", sched, nil)
		ex := mapping(2)
		if _, err := Train(context.Background(), m, tuned, opt, sched, ex, nil, TrainOptions{Iters: iters, BatchSize: 2, MaxSeqLength: 8,
			StepsPerReport: 10, StepsPerEval: 10, SaveEvery: 10, GradAccumulationSteps: acc}); err != nil {
			t.Fatal(err)
		}
		ts, err := tuned.Tensors()
		if err != nil {
			t.Fatal(err)
		}
		return ts["model.layers.1.mlp.down_proj.lora_b"].Data
	}
	one, two := run(1, 1), run(2, 2)
	for i := range one {
		if d := one[i] - two[i]; d > 1e-6 || d < -1e-6 || one[i] == 0 {
			t.Fatalf("lora_b[%d]: one step %g, two accumulated %g", i, one[i], two[i])
		}
	}
}

// A cancelled context saves the current adapter and stops.
func TestTrainInterruptSaves(t *testing.T) {
	m, _, err := model.Load(filepath.Join(fixtures, "full", "model"))
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: 1, Parameters: Parameters{Rank: 2, Scale: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	sched := optim.Constant(1e-3)
	opt, _ := optim.New("adam", sched, nil)
	_, err = Train(ctx, m, tuned, opt, sched, mapping(2), nil, TrainOptions{Iters: 5, BatchSize: 2, MaxSeqLength: 8,
		StepsPerReport: 1, StepsPerEval: 1, SaveEvery: 1, AdapterFile: filepath.Join(dir, AdapterFile)})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if ts, err := readTensors(filepath.Join(dir, AdapterFile)); err != nil || len(ts) != 14 {
		t.Fatalf("saved adapter: %d tensors, %v", len(ts), err)
	}
}
