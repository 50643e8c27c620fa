package hub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// RepoFolderName is the cache folder of a model repo: "models--org--name".
func RepoFolderName(repoID string) string {
	return "models--" + strings.ReplaceAll(repoID, "/", "--")
}

// repoCache locates one repo's files in the cache.
type repoCache struct {
	root   string // cache root, absolute
	repoID string
	dir    string // root/models--org--name
}

func (c *Client) repoCache(repoID string) (repoCache, error) {
	root, err := filepath.Abs(c.CacheDir)
	if err != nil {
		return repoCache{}, fmt.Errorf("hub cache directory %q: %w", c.CacheDir, err)
	}
	return repoCache{root: root, repoID: repoID, dir: filepath.Join(root, RepoFolderName(repoID))}, nil
}

func (r repoCache) blobPath(etag string) string { return filepath.Join(r.dir, "blobs", etag) }
func (r repoCache) snapshotDir(commit string) string {
	return filepath.Join(r.dir, "snapshots", commit)
}
func (r repoCache) pointerPath(commit, file string) string {
	return filepath.Join(r.snapshotDir(commit), filepath.FromSlash(file))
}
func (r repoCache) refPath(rev string) string {
	return filepath.Join(r.dir, "refs", filepath.FromSlash(rev))
}
func (r repoCache) lockPath(etag string) string {
	return filepath.Join(r.root, ".locks", RepoFolderName(r.repoID), etag+".lock")
}
func (r repoCache) treePath(commit string) string {
	return filepath.Join(r.dir, "trees", commit+".json")
}

// readRef returns the commit a branch or tag pointed to when last resolved,
// or "" if unknown.
func (r repoCache) readRef(rev string) string {
	b, err := os.ReadFile(r.refPath(rev))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// writeRef records rev -> commit (no trailing newline, like huggingface_hub)
// when rev is a branch or tag; atomic, and skipped when already up to date.
func (r repoCache) writeRef(rev, commit string) error {
	if rev == commit {
		return nil
	}
	if r.readRef(rev) == commit {
		return nil
	}
	return writeFileAtomic(r.refPath(rev), []byte(commit))
}

// writeFileAtomic writes data to a temporary file next to path, then renames it.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	tmp := path + "." + randomSuffix() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// createPointer makes snapshots/<commit>/<file> a relative symlink to the
// blob (../../blobs/<etag>, one more ../ per folder level), replacing
// whatever link was there, atomically.
func createPointer(blob, pointer string) error {
	dir := filepath.Dir(pointer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating snapshot folder %s: %w", dir, err)
	}
	rel, err := filepath.Rel(dir, blob)
	if err != nil {
		return fmt.Errorf("linking %s: %w", pointer, err)
	}
	if target, err := os.Readlink(pointer); err == nil && target == rel {
		return nil
	}
	tmp := pointer + "." + randomSuffix() + ".tmp"
	if err := os.Symlink(rel, tmp); err != nil {
		return fmt.Errorf("linking %s -> %s: %w", pointer, rel, err)
	}
	if err := os.Rename(tmp, pointer); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("linking %s -> %s: %w", pointer, rel, err)
	}
	return nil
}

// fileExists reports whether path exists, following symlinks (a dangling
// snapshot link counts as missing).
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

const cacheDirTag = "Signature: 8a477f597d28d172789f06886806bc55\n" +
	"# This file is a cache directory tag created by huggingface_hub.\n" +
	"# For information about cache directory tags, see:\n" +
	"#\thttps://bford.info/cachedir/\n"

// tagCacheDir writes CACHEDIR.TAG in the cache root (best effort), as
// huggingface_hub does, so backup tools skip the cache.
func tagCacheDir(root string) {
	p := filepath.Join(root, "CACHEDIR.TAG")
	if _, err := os.Stat(p); err == nil {
		return
	}
	_ = os.MkdirAll(root, 0o755)
	_ = writeFileAtomic(p, []byte(cacheDirTag))
}

// treeEntry is one file of huggingface_hub's tree cache
// (snapshots are checked for completeness against it when offline).
type treeEntry struct {
	Size      int64  `json:"size"`
	BlobID    string `json:"blob_id"`
	LFSSha256 string `json:"lfs_sha256,omitempty"`
	LFSSize   *int64 `json:"lfs_size,omitempty"`
}

type treeFile struct {
	FormatVersion int                  `json:"format_version"`
	Files         map[string]treeEntry `json:"files"`
}

func (r repoCache) readTree(commit string) (map[string]treeEntry, bool) {
	b, err := os.ReadFile(r.treePath(commit))
	if err != nil {
		return nil, false
	}
	var t treeFile
	if err := json.Unmarshal(b, &t); err != nil || t.FormatVersion != 1 || t.Files == nil {
		return nil, false
	}
	return t.Files, true
}

func (r repoCache) writeTree(commit string, files map[string]treeEntry) error {
	b, err := json.MarshalIndent(treeFile{FormatVersion: 1, Files: files}, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(r.treePath(commit), b)
}

// snapshotFiles lists the files present (as resolvable links or files) in a
// snapshot folder, as slash paths.
func snapshotFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if fileExists(p) {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out, err
}
