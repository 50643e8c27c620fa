package cmd

import "github.com/spf13/cobra"

func newGenerateCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "generate",
		Short: "Generate text from a model",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("generate", "#4")
		},
	}
}
