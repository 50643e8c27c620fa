package cmd

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// LoraOptions is what `mlxgo lora` parsed: the flags the user set (as
// mlx_lm config keys) and the -c/--config YAML path.
type LoraOptions struct {
	Set        *pyjson.Object
	ConfigFile string
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
	return errNotImplemented("lora training", "#7")
}
