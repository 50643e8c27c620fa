package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/optim"
	"github.com/mlxgo/mlxgo/pkg/pyjson"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// LoraOptions is what `mlxgo lora` parsed: the flags the user set (as
// mlx_lm config keys) and the -c/--config YAML path.
type LoraOptions struct {
	Set        *pyjson.Object
	ConfigFile string
	// MLXLossMask reproduces mlx_lm's loss mask exactly, which also trains
	// each sequence to predict one padding token after its end (mlxgo
	// leaves that target out by default; mlx-lm PR #1697).
	MLXLossMask bool
}

// loraFlags maps mlx_lm's lora flags to their config keys and kinds.
var loraFlags = []struct {
	flag, key, kind, help string
}{
	{"model", "model", "string", "The path to the local model directory or Hugging Face repo."},
	{"train", "train", "bool", "Do training"},
	{"data", "data", "string", "Directory with {train, valid, test}.jsonl files"},
	{"fine-tune-type", "fine_tune_type", "string", "Type of fine-tuning to perform: lora, dora, or full."},
	{"optimizer", "optimizer", "string", "Optimizer to use for training: adam, adamw, muon, sgd, or adafactor."},
	{"mask-prompt", "mask_prompt", "bool", "Mask the prompt in the loss when training"},
	{"num-layers", "num_layers", "int", "Number of layers to fine-tune. Default is 16, use -1 for all."},
	{"batch-size", "batch_size", "int", "Minibatch size."},
	{"iters", "iters", "int", "Iterations to train for."},
	{"val-batches", "val_batches", "int", "Number of validation batches, -1 uses the entire validation set."},
	{"learning-rate", "learning_rate", "float", "Adam learning rate."},
	{"steps-per-report", "steps_per_report", "int", "Number of training steps between loss reporting."},
	{"steps-per-eval", "steps_per_eval", "int", "Number of training steps between validations."},
	{"grad-accumulation-steps", "grad_accumulation_steps", "int", "Number of steps to accumulate before each optimizer update."},
	{"resume-adapter-file", "resume_adapter_file", "string", "Load path to resume training from the given fine-tuned weights."},
	{"adapter-path", "adapter_path", "string", "Save/load path for the fine-tuned weights."},
	{"save-every", "save_every", "int", "Save the model every N iterations."},
	{"test", "test", "bool", "Evaluate on the test set after training"},
	{"test-batches", "test_batches", "int", "Number of test set batches, -1 uses the entire test set."},
	{"max-seq-length", "max_seq_length", "int", "Maximum sequence length."},
	{"grad-checkpoint", "grad_checkpoint", "bool", "Use gradient checkpointing to reduce memory use."},
	{"clear-cache-threshold", "clear_cache_threshold", "size", "Clear the allocator cache between steps if it grows too large (e.g. 500MB, 2G)."},
	{"report-to", "report_to", "string", "Services to report logs to (not supported by mlxgo; accepted for compatibility)."},
	{"project-name", "project_name", "string", "Project name for logging."},
	{"seed", "seed", "int", "The PRNG seed"},
	{"trust-remote-code", "trust_remote_code", "bool", "Accepted for compatibility; mlxgo runs no model code from repos."},
}

func newLoraCmd(f *Factory) *cobra.Command {
	return newLoraCmdWith(f, runLora)
}

func newLoraCmdWith(f *Factory, runF func(context.Context, *Factory, *LoraOptions) error) *cobra.Command {
	opts := &LoraOptions{}
	c := &cobra.Command{
		Use:   "lora",
		Short: "Fine-tune a model with LoRA, DoRA or full fine-tuning",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			opts.Set = pyjson.NewObject()
			for _, fl := range loraFlags {
				if !c.Flags().Changed(fl.flag) {
					continue
				}
				raw := c.Flags().Lookup(fl.flag).Value.String()
				v, err := loraFlagValue(fl.kind, raw)
				if err != nil {
					return flagError("--%s: %v", fl.flag, err)
				}
				opts.Set.Set(fl.key, v)
			}
			return runF(c.Context(), f, opts)
		},
	}
	fs := c.Flags()
	for _, fl := range loraFlags {
		switch fl.kind {
		case "bool":
			fs.Bool(fl.flag, false, fl.help)
		default:
			fs.String(fl.flag, "", fl.help)
		}
	}
	fs.StringVarP(&opts.ConfigFile, "config", "c", "", "A YAML configuration file with the training options")
	fs.BoolVar(&opts.MLXLossMask, "mlx-loss-mask", false, "Use mlx_lm's exact loss mask, which also counts one padding target after each sequence")
	return c
}

func loraFlagValue(kind, raw string) (any, error) {
	switch kind {
	case "bool":
		return raw == "true", nil
	case "int":
		if _, err := strconv.Atoi(raw); err != nil {
			return nil, fmt.Errorf("expected an integer, got %q", raw)
		}
		return pyjson.Int(raw), nil
	case "float":
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, fmt.Errorf("expected a number, got %q", raw)
		}
		return v, nil
	case "size":
		n, err := parseSize(raw)
		if err != nil {
			return nil, err
		}
		return pyjson.Int(strconv.FormatInt(n, 10)), nil
	}
	return raw, nil
}

// parseSize reads mlx_lm's size strings: a number with an optional unit
// (B, KB, MB, GB, TB or K, M, G, T; decimal, case-insensitive).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("expected a size like 500MB or 2G, got %q", s)
	}
	return int64(v * float64(mult)), nil
}

func runLora(ctx context.Context, f *Factory, opts *LoraOptions) error {
	cfg, err := lora.MergeConfig(opts.Set, opts.ConfigFile)
	if err != nil {
		return err
	}
	for _, n := range cfg.Notes {
		fmt.Fprintln(f.ErrOut, n)
	}
	if cfg.ReportTo != nil && *cfg.ReportTo != "" {
		fmt.Fprintf(f.ErrOut, "Note: --report-to %s is not supported by mlxgo; logging to the terminal only.\n", *cfg.ReportTo)
	}
	mask := lora.MaskStrict
	if opts.MLXLossMask {
		mask = lora.MaskMLX
	}
	out := f.Out
	fmt.Fprintln(out, "Loading pretrained model")
	dir, err := hub.ResolveModel(ctx, cfg.Model, hub.ResolveOptions{Progress: hub.TerminalOrNil(f.ErrOut)})
	if err != nil {
		return fmt.Errorf("--model %s: %w", cfg.Model, err)
	}
	m, _, err := model.Load(dir)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	fmt.Fprintln(out, "Loading datasets")
	splits, err := lora.LoadDir(cfg.Data, lora.DataConfig{TextFeature: cfg.TextFeature, PromptFeature: cfg.PromptFeature,
		CompletionFeature: cfg.CompletionFeature, ChatFeature: cfg.ChatFeature, MaskPrompt: cfg.MaskPrompt})
	if err != nil {
		return err
	}
	lt := loraTokenizer{tok}
	tokenize := func(ds *lora.Dataset) ([]lora.Example, error) {
		if ds == nil {
			return nil, nil
		}
		return ds.Tokenize(lt)
	}
	train, err := tokenize(splits.Train)
	if err != nil {
		return err
	}
	valid, err := tokenize(splits.Valid)
	if err != nil {
		return err
	}
	test, err := tokenize(splits.Test)
	if err != nil {
		return err
	}
	if cfg.Train && len(train) == 0 {
		return fmt.Errorf("--data %s: training set not found or empty (expected %s with one JSON record per line); must provide a training set for fine-tuning", cfg.Data, filepath.Join(cfg.Data, "train.jsonl"))
	}
	if cfg.Test && len(test) == 0 {
		return fmt.Errorf("--data %s: test set not found or empty (expected %s); must provide a test set for evaluation", cfg.Data, filepath.Join(cfg.Data, "test.jsonl"))
	}
	for _, s := range []struct {
		name string
		ex   []lora.Example
		use  bool
	}{{"train.jsonl", train, cfg.Train}, {"valid.jsonl", valid, cfg.Train && len(valid) > 0}, {"test.jsonl", test, cfg.Test}} {
		if s.use && len(s.ex) < cfg.BatchSize {
			return fmt.Errorf("%s: dataset must have at least batch_size=%d examples but only has %d", filepath.Join(cfg.Data, s.name), cfg.BatchSize, len(s.ex))
		}
	}
	var tuned *lora.Tuned
	switch {
	case cfg.Train:
		fmt.Fprintln(out, "Training")
		tuned, err = trainLora(ctx, f, cfg, m, train, valid, mask)
		if err != nil {
			return err
		}
	case cfg.Test && cfg.AdapterPath != "":
		a, err := lora.LoadAdapter(cfg.AdapterPath)
		if err != nil {
			return fmt.Errorf("--adapter-path: %w", err)
		}
		if tuned, err = lora.ApplyAdapter(m, a); err != nil {
			return fmt.Errorf("--adapter-path %s: %w", cfg.AdapterPath, err)
		}
	}
	if cfg.Test {
		fmt.Fprintln(out, "Testing")
		loss, err := lora.Evaluate(m, tuned, test, cfg.BatchSize, cfg.TestBatches, cfg.MaxSeqLength, mask, uint32(cfg.Seed))
		if err != nil {
			return fmt.Errorf("test: %w", err)
		}
		fmt.Fprintf(out, "Test loss %.3f, Test ppl %.3f.\n", loss, math.Exp(loss))
	}
	return nil
}

// trainLora is mlx_lm's train_model: adapt the model, resume, write
// adapter_config.json, then train.
func trainLora(ctx context.Context, f *Factory, cfg *lora.Config, m model.Model, train, valid []lora.Example, mask lora.MaskMode) (*lora.Tuned, error) {
	tuned, err := lora.Apply(m, lora.ApplyOptions{FineTuneType: cfg.FineTuneType, NumLayers: cfg.NumLayers, Parameters: *cfg.LoRAParameters, Seed: uint64(cfg.Seed)})
	if err != nil {
		return nil, err
	}
	if cfg.ResumeAdapterFile != nil && *cfg.ResumeAdapterFile != "" {
		fmt.Fprintf(f.Out, "Loading fine-tuned weights from %s\n", *cfg.ResumeAdapterFile)
		ts, err := lora.ReadTensors(*cfg.ResumeAdapterFile)
		if err != nil {
			return nil, fmt.Errorf("--resume-adapter-file: %w", err)
		}
		if err := tuned.Load(ts, *cfg.ResumeAdapterFile, false); err != nil {
			return nil, fmt.Errorf("--resume-adapter-file: %w", err)
		}
	}
	trainable, total := float64(tuned.TrainableCount())/1e6, float64(tuned.TotalParams)/1e6
	fmt.Fprintf(f.Out, "Trainable parameters: %.3f%% (%.3fM/%.3fM)\n", trainable*100/total, trainable, total)
	schedule := optim.Constant(cfg.LearningRate)
	if cfg.LRSchedule != nil {
		if schedule, err = cfg.LRSchedule.Build(); err != nil {
			return nil, err
		}
	}
	opt, err := optim.New(cfg.Optimizer, schedule, cfg.OptimizerConfig[cfg.Optimizer])
	if err != nil {
		return nil, fmt.Errorf("optimizer_config: %w", err)
	}
	if err := lora.WriteAdapterConfig(cfg.AdapterPath, cfg); err != nil {
		return nil, fmt.Errorf("--adapter-path: %w", err)
	}
	_, err = lora.Train(ctx, m, tuned, opt, schedule, train, valid, lora.TrainOptions{
		Iters: cfg.Iters, BatchSize: cfg.BatchSize, MaxSeqLength: cfg.MaxSeqLength, StepsPerReport: cfg.StepsPerReport,
		StepsPerEval: cfg.StepsPerEval, SaveEvery: cfg.SaveEvery, ValBatches: cfg.ValBatches,
		GradAccumulationSteps: cfg.GradAccumulationSteps, ClearCacheThreshold: cfg.ClearCacheThreshold, Seed: uint32(cfg.Seed), Mask: mask,
		AdapterFile: filepath.Join(cfg.AdapterPath, lora.AdapterFile), Out: f.Out, Progress: hub.TerminalOrNil(f.Out),
		GradCheckpoint: cfg.GradCheckpoint,
	})
	return tuned, err
}

// loraTokenizer adapts *tokenizer.Tokenizer to lora.Tokenizer.
type loraTokenizer struct{ t *tokenizer.Tokenizer }

func (l loraTokenizer) Encode(text string) ([]int, error) { return l.t.Encode(text, true), nil }

func (l loraTokenizer) EncodeChat(messages, tools json.RawMessage, addGenerationPrompt bool) ([]int, error) {
	s, err := l.t.ApplyChatTemplate(messages, tokenizer.ChatOptions{Tools: tools, AddGenerationPrompt: addGenerationPrompt})
	if err != nil {
		return nil, err
	}
	return l.t.Encode(s, false), nil
}

func (l loraTokenizer) EOS() int {
	if ids := l.t.EOSTokenIDs(); len(ids) > 0 {
		return ids[0]
	}
	return -1
}
