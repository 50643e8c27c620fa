package cmd

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mlxgo/mlxgo/pkg/hub"
)

// ManageOptions are `mlxgo manage`'s flags (mlx_lm.manage's, plus --yes and
// --cache-dir).
type ManageOptions struct {
	Scan    bool
	Delete  bool
	Pattern string
	Yes     bool
	// CacheDir is the hub cache; "" means the environment's
	// (HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub).
	CacheDir string
	// Now is the reference time for "x days ago"; zero means time.Now().
	Now time.Time
}

func newManageCmd(f *Factory) *cobra.Command { return newManageCmdWith(f, runManage) }

func newManageCmdWith(f *Factory, runF func(context.Context, *Factory, *ManageOptions) error) *cobra.Command {
	o := &ManageOptions{}
	c := &cobra.Command{
		Use:   "manage (--scan | --delete) [PATTERN] [--pattern P] [--yes]",
		Short: "Scan or delete models in the Hugging Face cache",
		Long: `List or delete the cached Hub repos whose id contains a pattern (default "mlx"),
like mlx_lm.manage. The cache is the one shared with Python's huggingface_hub.

  mlxgo manage --scan                     repos whose id contains "mlx"
  mlxgo manage --scan --pattern Qwen      repos whose id contains "Qwen"
  mlxgo manage --delete Qwen              asks y/n, then deletes them (--yes skips the question)`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !o.Scan && !o.Delete {
				return flagError("give --scan or --delete")
			}
			if len(args) == 1 {
				if !o.Delete {
					return flagError("a positional PATTERN goes with --delete; use --pattern with --scan")
				}
				if c.Flags().Changed("pattern") && o.Pattern != args[0] {
					return flagError("pattern given twice (%q and --pattern %q)", args[0], o.Pattern)
				}
				o.Pattern = args[0]
			}
			if o.Delete && o.Pattern == "" {
				return flagError("--delete with an empty pattern would delete every cached repo; give a pattern")
			}
			return runF(c.Context(), f, o)
		},
	}
	fs := c.Flags()
	fs.BoolVar(&o.Scan, "scan", false, "Scan the Hugging Face cache for models")
	fs.BoolVar(&o.Delete, "delete", false, "Delete models matching the pattern")
	fs.StringVar(&o.Pattern, "pattern", "mlx", "Model repos contain the pattern")
	fs.BoolVarP(&o.Yes, "yes", "y", false, "Delete without asking for confirmation")
	fs.StringVar(&o.CacheDir, "cache-dir", "", "Hub cache folder (default: $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)")
	return c
}

func runManage(ctx context.Context, f *Factory, o *ManageOptions) error {
	dir := o.CacheDir
	if dir == "" {
		dir = hub.NewClient().CacheDir
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	if o.Scan {
		fmt.Fprintf(f.Out, "Scanning Hugging Face cache for models with pattern %q.\n", o.Pattern)
		info, err := scanCache(f, dir)
		if err != nil {
			return err
		}
		var rows [][]any
		for _, r := range matchingRepos(info, o.Pattern) {
			rows = append(rows, []any{
				r.RepoID, r.RepoType, fmt.Sprintf("%12s", hub.FormatSize(r.SizeOnDisk)), r.NbFiles,
				hub.FormatTimeSince(r.LastAccessed, now), hub.FormatTimeSince(r.LastModified, now), r.Path,
			})
		}
		fmt.Fprintln(f.Out, tabulate(rows, []string{"REPO ID", "REPO TYPE", "SIZE ON DISK", "NB FILES", "LAST_ACCESSED", "LAST_MODIFIED", "LOCAL PATH"}))
	}
	if o.Delete {
		fmt.Fprintf(f.Out, "Deleting models matching pattern %q\n", o.Pattern)
		info, err := scanCache(f, dir)
		if err != nil {
			return err
		}
		repos := matchingRepos(info, o.Pattern)
		if len(repos) == 0 {
			fmt.Fprintf(f.Out, "No models found matching pattern %q\n", o.Pattern)
			return nil
		}
		fmt.Fprintln(f.Out, "\nFound the following models:")
		var rows [][]any
		for _, r := range repos {
			rows = append(rows, []any{r.RepoID, hub.FormatSize(r.SizeOnDisk), r.Path})
		}
		fmt.Fprintln(f.Out, tabulate(rows, []string{"REPO ID", "SIZE", "LOCAL PATH"}))
		if !o.Yes && !askConfirmation(f, "\nAre you sure you want to delete these models?") {
			fmt.Fprintln(f.Out, "\nDeletion cancelled - no changes made.")
			return nil
		}
		for _, r := range repos {
			if err := ctx.Err(); err != nil {
				return err
			}
			fmt.Fprintf(f.Out, "\nDeleting %s...\n", r.RepoID)
			if err := hub.DeleteCachedRepo(info.Dir, r); err != nil {
				return err
			}
		}
		fmt.Fprintln(f.Out, "\nModel(s) deleted successfully.")
	}
	return nil
}

func scanCache(f *Factory, dir string) (*hub.CacheInfo, error) {
	info, err := hub.ScanCache(dir)
	if err != nil {
		return nil, err
	}
	for _, w := range info.Warnings {
		fmt.Fprintf(f.ErrOut, "warning: skipping %v\n", w)
	}
	return info, nil
}

func matchingRepos(info *hub.CacheInfo, pattern string) []hub.CachedRepo {
	var out []hub.CachedRepo
	for _, r := range info.Repos {
		if strings.Contains(r.RepoID, pattern) {
			out = append(out, r)
		}
	}
	return out
}

// tabulate prints rows like mlx_lm.manage's tabulate: each column as wide
// as its widest cell, strings left-aligned, integers right-aligned (Python's
// str.format defaults), every cell followed by one space.
func tabulate(rows [][]any, headers []string) string {
	widths := make([]int, len(headers))
	cell := func(v any) string {
		if s, ok := v.(string); ok {
			return s
		}
		return fmt.Sprint(v)
	}
	for i, h := range headers {
		widths[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i, v := range r {
			widths[i] = max(widths[i], len([]rune(cell(v))))
		}
	}
	var b strings.Builder
	line := func(vals []any) {
		for i, v := range vals {
			s := cell(v)
			pad := strings.Repeat(" ", widths[i]-len([]rune(s)))
			if _, isInt := v.(int); isInt {
				b.WriteString(pad + s + " ")
			} else {
				b.WriteString(s + pad + " ")
			}
		}
	}
	hs := make([]any, len(headers))
	dashes := make([]any, len(headers))
	for i, h := range headers {
		hs[i] = h
		dashes[i] = strings.Repeat("-", widths[i])
	}
	line(hs)
	b.WriteString("\n")
	line(dashes)
	for _, r := range rows {
		b.WriteString("\n")
		line(r)
	}
	return b.String()
}

// askConfirmation asks like mlx_lm.manage: y/yes/1 is yes, n/no/0/empty is
// no, anything else asks again; end of input is no.
func askConfirmation(f *Factory, msg string) bool {
	if f.In == nil {
		return false
	}
	in := bufio.NewReader(f.In)
	for {
		fmt.Fprintf(f.Out, "%s (y/n) ", msg)
		line, err := in.ReadString('\n')
		answer := strings.ToLower(strings.TrimSpace(line))
		switch answer {
		case "y", "yes", "1":
			return true
		case "n", "no", "0", "":
			return false
		}
		if err != nil {
			return false
		}
		fmt.Fprintln(f.Out, "Invalid input. Must be one of: yes/no/y/n or empty for no")
	}
}
