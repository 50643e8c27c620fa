package cmd

import "github.com/spf13/cobra"

func newConvertCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "convert",
		Short: "Convert a Hugging Face checkpoint to MLX format, optionally quantized",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("convert", "#5")
		},
	}
}
