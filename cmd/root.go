// Package cmd holds the mlxgo command line: one file per subcommand, each
// with an Options struct, a newXCmd constructor that only parses flags, and a
// runX function that calls into pkg/.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/mlxgo/mlxgo/cmd.Version=...".
var Version = "dev"

// Factory carries what subcommands need from the outside world, so tests can
// swap it: output streams and the input stream.
type Factory struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// usageError marks a misused command line: usage is printed and the exit code is 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// flagError reports a bad flag value as a usage error.
func flagError(format string, a ...any) error {
	return &usageError{fmt.Errorf(format, a...)}
}

// errNotImplemented is what a subcommand returns until its issue lands.
func errNotImplemented(name, issue string) error {
	return fmt.Errorf("%s: not implemented yet (tracked in issue %s)", name, issue)
}

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:           "mlxgo",
		Short:         "Run, chat with, fine-tune, fuse and convert LLMs (mlx_lm compatible)",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(f.In)
	root.SetOut(f.Out)
	root.SetErr(f.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{err}
	})
	root.AddCommand(
		newGenerateCmd(f),
		newChatCmd(f),
		newLoraCmd(f),
		newFuseCmd(f),
		newConvertCmd(f),
		newTokenizeCmd(f),
		newDownloadCmd(f),
		newManageCmd(f),
		newServerCmd(f),
		newBenchmarkCmd(f),
		newCachePromptCmd(f),
	)
	return root
}

// Execute runs the command line and returns the process exit code:
// 0 on success, 2 for a misused command line, 1 for any other error.
func Execute() int {
	f := &Factory{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return run(ctx, f, os.Args[1:])
}

func run(ctx context.Context, f *Factory, args []string) int {
	root := NewRootCmd(f)
	root.SetArgs(normalizeArgs(args))
	c, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		fmt.Fprintf(f.ErrOut, "Error: %v\n", err)
		if c != nil {
			fmt.Fprint(f.ErrOut, c.UsageString())
		}
		return 2
	}
	fmt.Fprintf(f.ErrOut, "Error: %v\n", err)
	return 1
}

// isCobraUsageError recognises cobra's own argument errors (unknown command,
// wrong number of positional arguments), which it does not type.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "received ", "unknown flag", "unknown shorthand flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
