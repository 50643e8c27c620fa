package cmd

import "github.com/spf13/cobra"

func newManageCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "manage",
		Short: "Scan or delete models in the Hugging Face cache",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("manage", "#6")
		},
	}
}
