package cmd

import (
	"context"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/fuse"
	"github.com/mlxgo/mlxgo/pkg/hub"

	"github.com/spf13/cobra"
)

// FuseOptions holds `mlxgo fuse` flags, named and defaulted as mlx_lm.fuse,
// plus --q-bits/--q-group-size to re-quantize the fused model at another width.
type FuseOptions struct {
	Model           string
	SavePath        string
	AdapterPath     string
	UploadRepo      string
	Dequantize      bool
	ExportGGUF      bool
	GGUFPath        string
	TrustRemoteCode bool
	QBits           int    // 0: the base model's own
	QGroupSize      int    // 0: the base model's own
	GGUFType        string // "": f16
}

// ggufTypes are the --gguf-type values pkg/gguf writes.
var ggufTypes = []string{"f16", "bf16", "f32", "q8_0", "q4_0"}

func newFuseCmd(f *Factory) *cobra.Command { return newFuseCmdWith(f, runFuse) }

func newFuseCmdWith(f *Factory, runF func(context.Context, *Factory, *FuseOptions) error) *cobra.Command {
	o := &FuseOptions{}
	c := &cobra.Command{
		Use:   "fuse",
		Short: "Fuse trained adapters into a base model",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if c.Flags().Changed("q-bits") {
				if err := checkBits("--q-bits", o.QBits); err != nil {
					return err
				}
			}
			if c.Flags().Changed("q-group-size") {
				if err := checkGroup("--q-group-size", o.QGroupSize); err != nil {
					return err
				}
			}
			if o.Dequantize && (o.QBits != 0 || o.QGroupSize != 0) {
				return flagError("--dequantize cannot be combined with --q-bits/--q-group-size")
			}
			if o.GGUFType != "" {
				o.GGUFType = strings.ToLower(o.GGUFType)
				if !contains(ggufTypes, o.GGUFType) {
					return flagError("--gguf-type %q: expected one of %s", o.GGUFType, strings.Join(ggufTypes, ", "))
				}
				if !o.ExportGGUF {
					return flagError("--gguf-type needs --export-gguf")
				}
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Model, "model", "mlx_model", "The path to the local model directory or Hugging Face repo")
	fs.StringVar(&o.SavePath, "save-path", "fused_model", "The path to save the fused model")
	fs.StringVar(&o.AdapterPath, "adapter-path", "adapters", "Path to the trained adapter weights and config")
	fs.StringVar(&o.UploadRepo, "upload-repo", "", "The Hugging Face repo to upload the model to")
	fs.BoolVar(&o.Dequantize, "dequantize", false, "Generate a dequantized model")
	fs.BoolVar(&o.Dequantize, "de-quantize", false, "Alias of --dequantize (mlx_lm before 0.28.4)")
	fs.BoolVar(&o.ExportGGUF, "export-gguf", false, "Export model weights in GGUF format (llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, gemma families; a quantized fused model is exported from its dequantized values)")
	fs.StringVar(&o.GGUFPath, "gguf-path", "ggml-model-f16.gguf", "Path to save the exported GGUF format model weights (inside --save-path)")
	fs.BoolVar(&o.TrustRemoteCode, "trust-remote-code", false, "Accepted for compatibility")
	fs.IntVar(&o.QBits, "q-bits", 0, "mlxgo: re-quantize the fused model at these bits instead of the base's")
	fs.IntVar(&o.QGroupSize, "q-group-size", 0, "mlxgo: re-quantize the fused model with this group size instead of the base's")
	fs.StringVar(&o.GGUFType, "gguf-type", "", "mlxgo: type of the GGUF weights: f16 (default), bf16, f32, q8_0 or q4_0")
	return c
}

func runFuse(ctx context.Context, f *Factory, o *FuseOptions) error {
	_, err := fuse.Fuse(ctx, fuse.Options{
		Model:       o.Model,
		AdapterPath: o.AdapterPath,
		SavePath:    o.SavePath,
		Dequantize:  o.Dequantize,
		QBits:       o.QBits,
		QGroupSize:  o.QGroupSize,
		ExportGGUF:  o.ExportGGUF,
		GGUFPath:    o.GGUFPath,
		GGUFType:    o.GGUFType,
		UploadRepo:  o.UploadRepo,
		Out:         f.Out,
		Progress:    hub.TerminalOrNil(f.ErrOut),
		Version:     Version,
	})
	return err
}
