package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// RepoInfo is the part of GET /api/models/{repo}/revision/{rev}?blobs=true
// that downloads need.
type RepoInfo struct {
	ID       string    `json:"id"`
	SHA      string    `json:"sha"`
	Private  bool      `json:"private"`
	Siblings []Sibling `json:"siblings"`
}

// Sibling is one file of a repo listing.
type Sibling struct {
	Path   string   `json:"rfilename"`
	Size   *int64   `json:"size,omitempty"`
	BlobID string   `json:"blobId,omitempty"`
	LFS    *LFSInfo `json:"lfs,omitempty"`
}

// LFSInfo describes a file stored with Git LFS.
type LFSInfo struct {
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	PointerSize int64  `json:"pointerSize"`
}

// ModelInfo resolves revision ("" = main) to a commit and lists the files.
func (c *Client) ModelInfo(ctx context.Context, repoID, revision string) (*RepoInfo, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return nil, err
	}
	if revision == "" {
		revision = DefaultRevision
	}
	if err := validateRevision(revision); err != nil {
		return nil, err
	}
	u := c.Endpoint + "/api/models/" + repoID + "/revision/" + url.PathEscape(revision) + "?blobs=true"
	resp, err := c.send(ctx, request{
		method:      http.MethodGet,
		url:         u,
		info:        reqInfo{repoID: repoID, revision: revision},
		retryStatus: true,
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var info RepoInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("GET %s: reading the repo listing: %w", u, err)
	}
	if !IsCommitHash(info.SHA) {
		return nil, fmt.Errorf("GET %s: the answer has no commit hash (sha %q); is HF_ENDPOINT (%s) a Hugging Face Hub?", u, info.SHA, c.Endpoint)
	}
	for _, s := range info.Siblings {
		if err := validateRepoPath(s.Path); err != nil {
			return nil, err
		}
	}
	return &info, nil
}

// SnapshotOptions select what Snapshot downloads.
type SnapshotOptions struct {
	// Revision is a branch, tag or commit hash; "" means "main".
	Revision string
	// AllowPatterns keep only matching files (fnmatch rules, see Match);
	// nil means every file. ResolveModel passes DefaultAllowPatterns.
	AllowPatterns []string
	// IgnorePatterns drop matching files.
	IgnorePatterns []string
}

// Snapshot downloads the files of a repo revision that match the patterns
// (like huggingface_hub's snapshot_download) and returns the folder
// snapshots/<commit>. Files already in the cache are not fetched again;
// partial files are resumed. Offline, or when the Hub cannot be reached,
// the cached snapshot is returned if it is complete.
func (c *Client) Snapshot(ctx context.Context, repoID string, o SnapshotOptions) (string, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return "", err
	}
	rev := o.Revision
	if rev == "" {
		rev = DefaultRevision
	}
	if err := validateRevision(rev); err != nil {
		return "", err
	}
	rc, err := c.repoCache(repoID)
	if err != nil {
		return "", err
	}

	var commit string
	var files map[string]treeEntry
	if IsCommitHash(rev) {
		if t, ok := rc.readTree(rev); ok {
			commit, files = rev, t
		}
	}
	if files == nil {
		if c.Offline {
			return c.cachedSnapshot(rc, rev, o, nil)
		}
		info, err := c.ModelInfo(ctx, repoID, rev)
		if err != nil {
			if ctx.Err() != nil || !fallsBackToCache(err) {
				return "", err
			}
			return c.cachedSnapshot(rc, rev, o, err)
		}
		commit, files = info.SHA, treeFromInfo(info)
		if err := rc.writeTree(commit, files); err != nil {
			c.warnf("%v", err)
		}
	}

	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	want := FilterPaths(paths, o.AllowPatterns, o.IgnorePatterns)
	if len(want) == 0 {
		return "", fmt.Errorf("no file of %s at revision %q matches %s (the repo has %d files: %s)", repoID, rev, describePatterns(o), len(paths), sample(paths, 8))
	}
	// An empty snapshots/ keeps a repo folder valid for cache scanners even
	// if no file arrives; refs/<rev> is written once snapshots/<commit>
	// exists, so it never points at a missing snapshot.
	if err := os.MkdirAll(filepath.Join(rc.dir, "snapshots"), 0o755); err != nil {
		return "", fmt.Errorf("creating the cache folder for %s: %w", repoID, err)
	}
	err = c.fetchAll(ctx, rc, commit, want, files)
	if st, serr := os.Stat(rc.snapshotDir(commit)); serr == nil && st.IsDir() {
		if werr := rc.writeRef(rev, commit); werr != nil {
			c.warnf("%v", werr)
		}
	}
	if err != nil {
		return "", err
	}
	return rc.snapshotDir(commit), nil
}

func treeFromInfo(info *RepoInfo) map[string]treeEntry {
	files := make(map[string]treeEntry, len(info.Siblings))
	for _, s := range info.Siblings {
		e := treeEntry{Size: -1, BlobID: s.BlobID}
		if s.Size != nil {
			e.Size = *s.Size
		}
		if s.LFS != nil {
			e.LFSSha256 = s.LFS.SHA256
			n := s.LFS.Size
			e.LFSSize = &n
			e.Size = n
		}
		files[s.Path] = e
	}
	return files
}

// fetchAll downloads files in parallel with one byte progress bar; the first
// failure cancels the others.
func (c *Client) fetchAll(ctx context.Context, rc repoCache, commit string, paths []string, files map[string]treeEntry) error {
	jobs := make([]fileJob, len(paths))
	var total int64
	for i, p := range paths {
		e := files[p]
		jobs[i] = fileJob{path: p, size: e.Size, blobID: e.BlobID, lfsSha256: e.LFSSha256}
		if e.Size < 0 || total < 0 {
			total = -1
		} else {
			total += e.Size
		}
	}
	// Skip the bar (and any request) when everything is already there.
	missing := jobs[:0:0]
	for _, j := range jobs {
		if !fileExists(rc.pointerPath(commit, j.path)) {
			missing = append(missing, j)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	bar := newProgress(c.Progress, total, fmt.Sprintf("Fetching %d files", len(jobs)))
	for _, j := range jobs {
		if fileExists(rc.pointerPath(commit, j.path)) {
			bar.skip(j.size)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan fileJob)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < min(c.workers(), len(missing)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				if _, err := c.fetchFile(ctx, rc, commit, j, nil, bar); err != nil {
					mu.Lock()
					if firstErr == nil || (errors.Is(firstErr, context.Canceled) && !errors.Is(err, context.Canceled)) {
						firstErr = err
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
feed:
	for _, j := range missing {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		bar.abort()
		return firstErr
	}
	bar.finish()
	return nil
}

// cachedSnapshot answers Snapshot from the cache alone. hubErr is why the
// Hub was not used (nil when offline).
func (c *Client) cachedSnapshot(rc repoCache, rev string, o SnapshotOptions, hubErr error) (string, error) {
	commit := rev
	if !IsCommitHash(rev) {
		commit = rc.readRef(rev)
	}
	dir := rc.snapshotDir(commit)
	absent := fmt.Sprintf("%s at revision %q is not in the cache %s", rc.repoID, rev, rc.root)
	if commit == "" {
		return "", notCached(rc, absent, hubErr)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", notCached(rc, absent, hubErr)
	}
	present, err := snapshotFiles(dir)
	if err != nil {
		return "", fmt.Errorf("reading snapshot %s: %w", dir, err)
	}
	var missing []string
	if tree, ok := rc.readTree(commit); ok {
		paths := make([]string, 0, len(tree))
		for p := range tree {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		have := make(map[string]bool, len(present))
		for _, p := range present {
			have[p] = true
		}
		for _, p := range FilterPaths(paths, o.AllowPatterns, o.IgnorePatterns) {
			if !have[p] {
				missing = append(missing, p)
			}
		}
	} else if len(FilterPaths(present, o.AllowPatterns, o.IgnorePatterns)) == 0 {
		missing = []string{"(every file matching " + describePatterns(o) + ")"}
	}
	if len(missing) > 0 {
		return "", notCached(rc, fmt.Sprintf("the cached snapshot %s of %s (revision %q) in %s is incomplete: %d file(s) missing (%s)", commit, rc.repoID, rev, rc.root, len(missing), sample(missing, 3)), hubErr)
	}
	if hubErr != nil {
		c.warnf("using the cached snapshot of %s (%s): %v", rc.repoID, commit, hubErr)
	}
	return dir, nil
}

func describePatterns(o SnapshotOptions) string {
	if len(o.AllowPatterns) == 0 && len(o.IgnorePatterns) == 0 {
		return "any file"
	}
	s := "the patterns [" + strings.Join(o.AllowPatterns, " ") + "]"
	if len(o.IgnorePatterns) > 0 {
		s += " minus [" + strings.Join(o.IgnorePatterns, " ") + "]"
	}
	return s
}

func sample(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:n], ", ") + fmt.Sprintf(", ... (%d more)", len(list)-n)
}
