package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/hub"
)

// DownloadOptions are `mlxgo download`'s flags.
type DownloadOptions struct {
	Repo     string
	Revision string
	// Include replaces mlx_lm's allow patterns when set.
	Include []string
	Exclude []string
	Quiet   bool
	// Client is the Hub client; nil means one configured from the
	// environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE, HF_HUB_OFFLINE...).
	Client *hub.Client
}

func newDownloadCmd(f *Factory) *cobra.Command { return newDownloadCmdWith(f, runDownload) }

func newDownloadCmdWith(f *Factory, runF func(context.Context, *Factory, *DownloadOptions) error) *cobra.Command {
	o := &DownloadOptions{}
	c := &cobra.Command{
		Use:   "download REPO [--revision R] [--include GLOB...]",
		Short: "Download a model from the Hugging Face Hub into the shared cache",
		Long: `Download a model repo into the Hugging Face cache shared with Python
(huggingface_hub, mlx_lm): $HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub. By default only the files mlx_lm loads are fetched
(` + fmt.Sprint(hub.DefaultAllowPatterns) + `); --include replaces that list
(fnmatch globs, '*' also matches '/'). Files already cached are not fetched
again and interrupted downloads resume. Prints the snapshot folder.

Environment: HF_ENDPOINT, HF_TOKEN (or $HF_HOME/token), HF_HUB_OFFLINE=1 (cache only).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.Repo = args[0]
			if err := hub.ValidateRepoID(o.Repo); err != nil {
				return flagError("%v", err)
			}
			if c.Flags().Changed("revision") && o.Revision == "" {
				return flagError("--revision: empty; give a branch, tag or commit hash")
			}
			for _, g := range append(append([]string(nil), o.Include...), o.Exclude...) {
				if g == "" {
					return flagError("--include/--exclude: empty glob")
				}
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.Revision, "revision", "", "Branch, tag or commit hash (default \"main\")")
	fs.StringArrayVar(&o.Include, "include", nil, "Only download files matching this glob (repeatable; replaces mlx_lm's default patterns)")
	fs.StringArrayVar(&o.Exclude, "exclude", nil, "Skip files matching this glob (repeatable)")
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "No progress bar")
	return c
}

func runDownload(ctx context.Context, f *Factory, o *DownloadOptions) error {
	c := o.Client
	if c == nil {
		c = hub.NewClient()
	}
	cc := *c
	if o.Quiet {
		cc.Progress = nil
	} else if cc.Progress == nil {
		cc.Progress = hub.TerminalOrNil(f.ErrOut)
	}
	if cc.Warnings == nil {
		cc.Warnings = f.ErrOut
	}
	allow := hub.DefaultAllowPatterns
	if len(o.Include) > 0 {
		allow = o.Include
	}
	dir, err := cc.Snapshot(ctx, o.Repo, hub.SnapshotOptions{Revision: o.Revision, AllowPatterns: allow, IgnorePatterns: o.Exclude})
	if err != nil {
		return err
	}
	fmt.Fprintln(f.Out, dir)
	return nil
}
