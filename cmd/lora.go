package cmd

import "github.com/spf13/cobra"

func newLoraCmd(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "lora",
		Short: "Fine-tune a model with LoRA, DoRA or full fine-tuning",
		RunE: func(c *cobra.Command, args []string) error {
			return errNotImplemented("lora", "#7")
		},
	}
}
