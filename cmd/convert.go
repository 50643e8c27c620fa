package cmd

import (
	"context"

	"github.com/mlxgo/mlxgo/pkg/convert"
	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/quant"

	"github.com/spf13/cobra"
)

// ConvertOptions holds `mlxgo convert` flags, named and defaulted as mlx_lm.convert.
type ConvertOptions struct {
	HFPath          string
	MLXPath         string
	Quantize        bool
	QGroupSize      int // 0: the mode's default (affine 64, mxfp4 32, nvfp4 16, mxfp8 32)
	QBits           int // 0: the mode's default (affine 4, mxfp4 4, nvfp4 4, mxfp8 8)
	QMode           string
	QuantPredicate  string
	Dtype           string
	UploadRepo      string
	Dequantize      bool
	TrustRemoteCode bool
}

// quantModes are mlx_lm's --q-mode choices.
var quantModes = []string{"affine", "mxfp4", "nvfp4", "mxfp8"}

// quantRecipes are mlx_lm's --quant-predicate choices.
var quantRecipes = []string{"mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"}

func newConvertCmd(f *Factory) *cobra.Command { return newConvertCmdWith(f, runConvert) }

func newConvertCmdWith(f *Factory, runF func(context.Context, *Factory, *ConvertOptions) error) *cobra.Command {
	o := &ConvertOptions{}
	c := &cobra.Command{
		Use:   "convert",
		Short: "Convert a Hugging Face checkpoint to MLX format, optionally quantized",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if o.HFPath == "" {
				return flagError("--hf-path is required (a local folder or a Hugging Face repo id)")
			}
			if o.Quantize && o.Dequantize {
				return flagError("-q/--quantize and -d/--dequantize cannot be used together")
			}
			if !contains(quantModes, o.QMode) {
				return flagError("--q-mode %q: expected one of %v", o.QMode, quantModes)
			}
			fp, isFP := quant.FPModes[o.QMode]
			if isFP && !o.Quantize {
				return flagError("--q-mode %s needs -q/--quantize", o.QMode)
			}
			if isFP && o.QuantPredicate != "" {
				return flagError("--quant-predicate %s only supports --q-mode affine, not %s", o.QuantPredicate, o.QMode)
			}
			if o.Quantize && isFP {
				// A float mode has one group size and width (mx.quantize
				// refuses any other).
				if o.QGroupSize != 0 && o.QGroupSize != fp[0] {
					return flagError("--q-group-size %d: --q-mode %s quantization requires group size %d", o.QGroupSize, o.QMode, fp[0])
				}
				if o.QBits != 0 && o.QBits != fp[1] {
					return flagError("--q-bits %d: --q-mode %s quantization requires %d bits", o.QBits, o.QMode, fp[1])
				}
				o.QGroupSize, o.QBits = fp[0], fp[1]
			}
			if o.Quantize && !isFP {
				if o.QBits == 0 {
					o.QBits = 4
				}
				// With a mixed recipe an omitted group size stays 0: mlx_lm
				// then writes "group_size": null in the per-layer entries.
				if o.QGroupSize == 0 && o.QuantPredicate == "" {
					o.QGroupSize = 64
				}
				if err := checkBits("--q-bits", o.QBits); err != nil {
					return err
				}
				if o.QGroupSize != 0 {
					if err := checkGroup("--q-group-size", o.QGroupSize); err != nil {
						return err
					}
				}
			}
			if o.QuantPredicate != "" && !contains(quantRecipes, o.QuantPredicate) {
				return flagError("--quant-predicate %q: expected one of %v", o.QuantPredicate, quantRecipes)
			}
			if o.QuantPredicate != "" && !o.Quantize {
				return flagError("--quant-predicate needs -q/--quantize")
			}
			switch o.Dtype {
			case "", "float16", "bfloat16", "float32":
			default:
				return flagError("--dtype %q: expected float16, bfloat16 or float32", o.Dtype)
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.HFPath, "hf-path", "", "Path to the Hugging Face model (local folder or repo id)")
	fs.StringVar(&o.HFPath, "model", "", "Alias of --hf-path")
	fs.StringVar(&o.MLXPath, "mlx-path", "mlx_model", "Path to save the MLX model")
	fs.BoolVarP(&o.Quantize, "quantize", "q", false, "Generate a quantized model")
	fs.IntVar(&o.QGroupSize, "q-group-size", 0, "Group size for quantization (default: 64 affine, 32 mxfp4/mxfp8, 16 nvfp4)")
	fs.IntVar(&o.QBits, "q-bits", 0, "Bits per weight for quantization (default: 4, 8 for mxfp8)")
	fs.StringVar(&o.QMode, "q-mode", "affine", "The quantization mode: affine, mxfp4, nvfp4 or mxfp8")
	fs.StringVar(&o.QuantPredicate, "quant-predicate", "", "Mixed-bit quantization recipe: mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6")
	fs.StringVar(&o.Dtype, "dtype", "", "Type to save the non-quantized parameters (float16, bfloat16, float32; default: the model's torch_dtype)")
	fs.StringVar(&o.UploadRepo, "upload-repo", "", "The Hugging Face repo to upload the model to")
	fs.BoolVarP(&o.Dequantize, "dequantize", "d", false, "Dequantize a quantized model")
	fs.BoolVar(&o.TrustRemoteCode, "trust-remote-code", false, "Accepted for compatibility; mlxgo runs no model code from repos")
	return c
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func runConvert(ctx context.Context, f *Factory, o *ConvertOptions) error {
	_, err := convert.Convert(ctx, convert.Options{
		HFPath:         o.HFPath,
		MLXPath:        o.MLXPath,
		Quantize:       o.Quantize,
		GroupSize:      o.QGroupSize,
		Bits:           o.QBits,
		Mode:           o.QMode,
		QuantPredicate: o.QuantPredicate,
		Dtype:          o.Dtype,
		Dequantize:     o.Dequantize,
		UploadRepo:     o.UploadRepo,
		Out:            f.Out,
		Progress:       hub.TerminalOrNil(f.ErrOut),
		Version:        Version,
	})
	return err
}
