package cmd

import "github.com/spf13/cobra"

func newBenchmarkCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "benchmark",
		Short: "Measure prompt and generation tokens per second",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("benchmark", "#4")
		},
	}
}
