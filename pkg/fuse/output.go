package fuse

// The output folder itself (temporary folder renamed into place, config,
// side files, model card) is pkg/mlxdir's, shared with convert; fuse only
// adds the rule for an existing --save-path.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkSavePath decides whether dst may be written. mlx_lm's fuse writes
// into an existing folder; mlxgo replaces it whole at the end (so no file
// of an earlier model is left mixed in) when it is empty or holds a model
// (config.json), and refuses anything else, or a folder holding the base
// model or the adapter.
func checkSavePath(dst string, keep ...string) (exists bool, err error) {
	fi, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("--save-path %s exists and is not a folder", dst)
	}
	abs, _ := filepath.Abs(dst)
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	for _, k := range keep {
		ka, _ := filepath.Abs(k)
		if r, err := filepath.EvalSymlinks(ka); err == nil {
			ka = r
		}
		if rel, err := filepath.Rel(abs, ka); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
			return false, fmt.Errorf("--save-path %s holds the input %s; save the fused model somewhere else", dst, k)
		}
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		return false, err
	}
	if len(entries) == 0 {
		return true, nil
	}
	if _, err := os.Stat(filepath.Join(dst, "config.json")); err != nil {
		return false, fmt.Errorf("--save-path %s exists and does not hold a model (no config.json); refusing to replace it", dst)
	}
	return true, nil
}
