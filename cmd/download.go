package cmd

import "github.com/spf13/cobra"

func newDownloadCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "download",
		Short: "Download a model from the Hugging Face Hub into the shared cache",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("download", "#6")
		},
	}
}
