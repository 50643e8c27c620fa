package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ResolveOptions tune ResolveModel; the zero value downloads mlx_lm's files
// of "main" with a client configured from the environment.
type ResolveOptions struct {
	// Revision is a branch, tag or commit hash; "" means "main".
	Revision string
	// AllowPatterns default to DefaultAllowPatterns.
	AllowPatterns []string
	// Client defaults to NewClient() (environment configuration).
	Client *Client
	// Progress, when Client is nil, receives the download's progress bar;
	// pass TerminalOrNil(os.Stderr) to show it to a person only.
	Progress io.Writer
}

// ResolveModel turns a --model / --hf-path value into a local folder, like
// mlx_lm's _download: an existing local path is returned as is; anything
// else must be a Hub repo id, whose files matching the allow patterns are
// downloaded into the shared cache (or found there when offline).
func ResolveModel(ctx context.Context, pathOrRepoID string, o ResolveOptions) (string, error) {
	if pathOrRepoID == "" {
		return "", errors.New("no model given: pass a local folder or a Hugging Face repo id such as mlx-community/Qwen2.5-0.5B-Instruct-4bit")
	}
	if _, err := os.Stat(pathOrRepoID); err == nil {
		return pathOrRepoID, nil
	}
	if looksLikePath(pathOrRepoID) {
		return "", fmt.Errorf("model folder %q does not exist", pathOrRepoID)
	}
	if err := ValidateRepoID(pathOrRepoID); err != nil {
		return "", fmt.Errorf("no local folder %q, and %w", pathOrRepoID, err)
	}
	c := o.Client
	if c == nil {
		c = NewClient()
		c.Progress = o.Progress
	}
	allow := o.AllowPatterns
	if allow == nil {
		allow = DefaultAllowPatterns
	}
	return c.Snapshot(ctx, pathOrRepoID, SnapshotOptions{Revision: o.Revision, AllowPatterns: allow})
}

func looksLikePath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasPrefix(s, "~") || s == "." || s == ".." || strings.Count(s, "/") > 1
}
