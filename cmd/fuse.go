package cmd

import "github.com/spf13/cobra"

func newFuseCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "fuse",
		Short: "Fuse trained adapters into a base model",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("fuse", "#8")
		},
	}
}
