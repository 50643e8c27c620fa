package cmd

import "github.com/spf13/cobra"

func newChatCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "chat",
		Short: "Chat with a model in an interactive REPL",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("chat", "#4")
		},
	}
}
