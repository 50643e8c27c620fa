package cmd

import "github.com/spf13/cobra"

func newServerCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Serve an OpenAI-compatible HTTP API",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("server", "(not filed yet)")
		},
	}
}
