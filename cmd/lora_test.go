package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/lora"
)

func parseLora(t *testing.T, args ...string) (*lora.Config, error) {
	t.Helper()
	var got *LoraOptions
	f := &Factory{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	c := newLoraCmdWith(f, func(_ context.Context, _ *Factory, o *LoraOptions) error { got = o; return nil })
	c.SetArgs(args)
	c.SetOut(&bytes.Buffer{})
	c.SetErr(&bytes.Buffer{})
	if err := c.Execute(); err != nil {
		return nil, err
	}
	return lora.MergeConfig(got.Set, got.ConfigFile)
}

func TestLoraFlags(t *testing.T) {
	cfg, err := parseLora(t, "--model", "m", "--train", "--data", "d", "--fine-tune-type", "dora",
		"--optimizer", "adamw", "--mask-prompt", "--num-layers", "-1", "--batch-size", "2", "--iters", "7",
		"--val-batches", "-1", "--learning-rate", "3e-4", "--steps-per-report", "3", "--steps-per-eval", "5",
		"--grad-accumulation-steps", "2", "--resume-adapter-file", "r.safetensors", "--adapter-path", "ad",
		"--save-every", "4", "--test", "--test-batches", "9", "--max-seq-length", "128", "--grad-checkpoint",
		"--clear-cache-threshold", "2G", "--seed", "5", "--trust-remote-code", "--project-name", "p", "--report-to", "wandb")
	if err != nil {
		t.Fatal(err)
	}
	want := lora.Config{Model: "m", Train: true, Data: "d", FineTuneType: "dora", Optimizer: "adamw", MaskPrompt: true,
		NumLayers: -1, BatchSize: 2, Iters: 7, ValBatches: -1, LearningRate: 3e-4, StepsPerReport: 3, StepsPerEval: 5,
		GradAccumulationSteps: 2, AdapterPath: "ad", SaveEvery: 4, Test: true, TestBatches: 9, MaxSeqLength: 128,
		GradCheckpoint: true, ClearCacheThreshold: 2e9, Seed: 5, TrustRemoteCode: true}
	got := *cfg
	if got.Model != want.Model || got.Train != want.Train || got.Data != want.Data || got.FineTuneType != want.FineTuneType ||
		got.Optimizer != want.Optimizer || got.MaskPrompt != want.MaskPrompt || got.NumLayers != want.NumLayers ||
		got.BatchSize != want.BatchSize || got.Iters != want.Iters || got.ValBatches != want.ValBatches ||
		got.LearningRate != want.LearningRate || got.StepsPerReport != want.StepsPerReport || got.StepsPerEval != want.StepsPerEval ||
		got.GradAccumulationSteps != want.GradAccumulationSteps || got.AdapterPath != want.AdapterPath ||
		got.SaveEvery != want.SaveEvery || got.Test != want.Test || got.TestBatches != want.TestBatches ||
		got.MaxSeqLength != want.MaxSeqLength || got.GradCheckpoint != want.GradCheckpoint ||
		got.ClearCacheThreshold != want.ClearCacheThreshold || got.Seed != want.Seed || got.TrustRemoteCode != want.TrustRemoteCode {
		t.Errorf("parsed %+v\nwant   %+v", got, want)
	}
	if *got.ResumeAdapterFile != "r.safetensors" || *got.ProjectName != "p" || *got.ReportTo != "wandb" {
		t.Errorf("string pointers: %v %v %v", *got.ResumeAdapterFile, *got.ProjectName, *got.ReportTo)
	}
}

func TestLoraBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--batch-size", "x"},
		{"--learning-rate", "fast"},
		{"--clear-cache-threshold", "lots"},
	} {
		_, err := parseLora(t, args...)
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: error %v, want one naming the flag", args, err)
		}
	}
	if code, _, errOut := runArgs(t, "lora", "--batch-size", "x"); code != 2 || !strings.Contains(errOut, "--batch-size") {
		t.Errorf("bad flag value: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := runArgs(t, "lora"); code != 1 || !strings.Contains(errOut, "--train or --test") {
		t.Errorf("no --train/--test: exit %d, stderr %q", code, errOut)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "500MB": 5e8, "2G": 2e9, "1.5gb": 1.5e9, "10k": 1e4, "7": 7} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
