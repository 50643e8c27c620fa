package lora

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/optim"
)

// randomizeParams gives every trainable array small random values (lora_b
// starts at zero, which would leave lora_a's gradient zero).
func randomizeParams(t *testing.T, tuned *Tuned, seed uint64) {
	t.Helper()
	ps := tuned.Arrays()
	key := engine.NewKey(seed)
	keys := key.Split(len(ps))
	for i, p := range ps {
		ps[i] = engine.RandomNormal(p.Shape(), 0, 0.05, p.DType(), &keys[i])
	}
	if err := engine.Eval(ps...); err != nil {
		t.Fatal(err)
	}
	tuned.SetArrays(ps)
}

// ckStep builds the loss and gradients of one step, with or without
// --grad-checkpoint, and evaluates them in one Eval (as Train does),
// returning the peak allocator memory above what was active before.
func ckStep(t *testing.T, m model.Model, tuned *Tuned, b Batch, ckpt bool) (float64, [][]float32, int64) {
	t.Helper()
	engine.Seed(3)
	tuned.Dropout.Training = true
	defer func() { tuned.Dropout.Training = false }()
	n0 := tuned.Dropout.n
	defer func() { tuned.Dropout.n = n0 }() // both runs draw the same dropout masks
	if ckpt {
		defer CheckpointBlocks(m, tuned)()
	}
	loss, _, grads, err := valueAndGrad(m, tuned, b, MaskStrict)
	if err != nil {
		t.Fatal(err)
	}
	base := engine.ActiveMemory()
	engine.ResetPeakMemory()
	if err := engine.Eval(append([]*engine.Array{loss}, grads...)...); err != nil {
		t.Fatal(err)
	}
	peak := engine.PeakMemory() - base
	lv, err := loss.Item()
	if err != nil {
		t.Fatal(err)
	}
	var gs [][]float32
	for _, g := range grads {
		v, err := g.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, v)
	}
	return lv, gs, peak
}

// One LoRA step (with dropout) on the llama fixture: --grad-checkpoint
// gives bit-identical loss and gradients.
func TestGradCheckpointSameStep(t *testing.T) {
	m, _, err := model.Load(llamaF32)
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 4, Scale: 10, Dropout: 0.2}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	randomizeParams(t, tuned, 9)
	b := refBatch(t, "lora")
	wantLoss, want, _ := ckStep(t, m, tuned, b, false)
	gotLoss, got, _ := ckStep(t, m, tuned, b, true)
	if gotLoss != wantLoss {
		t.Errorf("loss %v with --grad-checkpoint, %v without", gotLoss, wantLoss)
	}
	nonzero := 0
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("%s: gradient element %d = %v with --grad-checkpoint, %v without", tuned.Params[i].Name, j, got[i][j], want[i][j])
			}
		}
		for _, v := range want[i] {
			if v != 0 {
				nonzero++
				break
			}
		}
	}
	if nonzero != len(want) {
		t.Errorf("%d of %d gradients are nonzero: the comparison proves little", nonzero, len(want))
	}
}

// A deeper random llama: the peak memory of a step's Eval drops with
// --grad-checkpoint.
func TestGradCheckpointLowersPeak(t *testing.T) {
	cfg, err := model.NewConfig(map[string]any{
		"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 8, "num_attention_heads": 4,
		"num_key_value_heads": 2, "intermediate_size": 256, "vocab_size": 128, "rms_norm_eps": 1e-5,
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 2)
	if err != nil {
		t.Fatal(err)
	}
	tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 4, Scale: 10}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	const B, L = 2, 128
	b := Batch{B: B, T: L + 1, Tokens: make([]int32, B*(L+1))}
	for i := range b.Tokens {
		b.Tokens[i] = int32((i*37 + 5) % 128)
	}
	for range B {
		b.Offsets, b.Lengths = append(b.Offsets, 0), append(b.Lengths, L+1)
	}
	plainLoss, _, plain := ckStep(t, m, tuned, b, false)
	ckLoss, _, ck := ckStep(t, m, tuned, b, true)
	t.Logf("peak above the model: plain %d KiB, --grad-checkpoint %d KiB", plain>>10, ck>>10)
	if ckLoss != plainLoss {
		t.Errorf("loss %v with --grad-checkpoint, %v without", ckLoss, plainLoss)
	}
	if plain <= 0 {
		t.Skip("the backend reports no allocator statistics")
	}
	if float64(ck) > 0.6*float64(plain) {
		t.Fatalf("--grad-checkpoint peak %d bytes is not clearly below the plain %d", ck, plain)
	}
}

// Every architecture's f32 fixture: --grad-checkpoint changes neither the
// loss nor any LoRA gradient, and the blocks do go through the hook.
func TestGradCheckpointEveryArchitecture(t *testing.T) {
	dirs, err := filepath.Glob("../../testdata/models/*-f32")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no f32 model fixtures: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, _, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 2, Scale: 10, Dropout: 0.1}, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			randomizeParams(t, tuned, 4)
			const B, L = 2, 12
			V := m.VocabSize()
			b := Batch{B: B, T: L + 1, Tokens: make([]int32, B*(L+1))}
			for i := range b.Tokens {
				b.Tokens[i] = int32((i*131 + 7) % V)
			}
			b.Offsets, b.Lengths = []int{0, 2}, []int{L + 1, L - 3}
			blocks := 0
			restore := model.SetBlockHook(m, func(layer int, x *engine.Array, block func(*engine.Array) *engine.Array) *engine.Array {
				blocks++
				return block(x)
			})
			wantLoss, want, _ := ckStep(t, m, tuned, b, false)
			restore()
			if blocks == 0 {
				t.Fatal("Forward does not run its blocks through model.Block")
			}
			gotLoss, got, _ := ckStep(t, m, tuned, b, true)
			if gotLoss != wantLoss || math.IsNaN(wantLoss) {
				t.Errorf("loss %v with --grad-checkpoint, %v without", gotLoss, wantLoss)
			}
			for i := range want {
				for j := range want[i] {
					if got[i][j] != want[i][j] {
						t.Fatalf("%s: gradient element %d = %v with --grad-checkpoint, %v without", tuned.Params[i].Name, j, got[i][j], want[i][j])
					}
				}
			}
		})
	}
}

// Train with GradCheckpoint (Adam, dropout, three steps) ends on the same
// adapter weights as without.
func TestTrainGradCheckpoint(t *testing.T) {
	run := func(ckpt bool) (map[string]Tensor, int64) {
		m, _, err := model.Load(filepath.Join(fixtures, "full", "model"))
		if err != nil {
			t.Fatal(err)
		}
		tuned, err := Apply(m, ApplyOptions{FineTuneType: "lora", NumLayers: -1, Parameters: Parameters{Rank: 2, Scale: 10, Dropout: 0.1}, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		sched := optim.Constant(1e-2)
		opt, _ := optim.New("adam", sched, nil)
		st, err := Train(context.Background(), m, tuned, opt, sched, mapping(4), nil, TrainOptions{Iters: 3, BatchSize: 2, MaxSeqLength: 8,
			StepsPerReport: 10, StepsPerEval: 10, SaveEvery: 10, GradAccumulationSteps: 1, GradCheckpoint: ckpt})
		if err != nil {
			t.Fatal(err)
		}
		ts, err := tuned.Tensors()
		if err != nil {
			t.Fatal(err)
		}
		return ts, st.PeakMemory
	}
	want, plain := run(false)
	got, ck := run(true)
	t.Logf("Train's peak memory: %d bytes plain, %d with GradCheckpoint", plain, ck)
	if plain > 0 && ck >= plain { // the option reached the step
		t.Errorf("Train's peak memory %d bytes with GradCheckpoint, %d without", ck, plain)
	}
	for name, w := range want {
		g := got[name]
		for i := range w.Data {
			if g.Data[i] != w.Data[i] {
				t.Fatalf("%s[%d] = %v with GradCheckpoint, %v without", name, i, g.Data[i], w.Data[i])
			}
		}
	}
}
