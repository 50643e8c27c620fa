package cmd

import "github.com/spf13/cobra"

func newTokenizeCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "tokenize",
		Short: "Show the token ids and rendered prompt for text or chat messages",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("tokenize", "#3")
		},
	}
}
