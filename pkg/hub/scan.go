package hub

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// CacheInfo is the content of a hub cache, as huggingface_hub's
// scan_cache_dir reports it.
type CacheInfo struct {
	Dir        string
	Repos      []CachedRepo // sorted by path
	SizeOnDisk int64
	// Incomplete lists blobs/*.incomplete files (interrupted downloads).
	Incomplete []string
	// Warnings are folders that do not look like a valid cached repo.
	Warnings []error
}

// CachedRepo is one repo folder of the cache.
type CachedRepo struct {
	RepoID   string
	RepoType string // model, dataset or space
	Path     string
	// SizeOnDisk sums the blobs the snapshots point to, once each.
	SizeOnDisk   int64
	NbFiles      int // distinct blobs
	LastAccessed time.Time
	LastModified time.Time
	Refs         []string
	Revisions    []CachedRevision
}

// CachedRevision is one snapshots/<commit> folder.
type CachedRevision struct {
	Commit     string
	Path       string
	Refs       []string
	NbFiles    int
	SizeOnDisk int64
}

var ignoredNames = map[string]bool{".DS_Store": true, "Thumbs.db": true, "desktop.ini": true}

// ScanCache reads the cache at dir ("" means the environment's cache).
func ScanCache(dir string) (*CacheInfo, error) {
	if dir == "" {
		dir = NewClient().CacheDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("hub cache %q: %w", dir, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("hub cache not found: %s (set HF_HUB_CACHE or HF_HOME): %w", abs, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("hub cache %s is a file, expected a folder", abs)
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("reading hub cache %s: %w", abs, err)
	}
	info := &CacheInfo{Dir: abs}
	for _, e := range entries {
		name := e.Name()
		if ignoredNames[name] || name == ".locks" || name == "CACHEDIR.TAG" {
			continue
		}
		repo, err := scanRepo(filepath.Join(abs, name))
		if err != nil {
			info.Warnings = append(info.Warnings, err)
			continue
		}
		info.Repos = append(info.Repos, *repo)
		info.SizeOnDisk += repo.SizeOnDisk
	}
	sort.Slice(info.Repos, func(i, j int) bool { return info.Repos[i].Path < info.Repos[j].Path })
	info.Incomplete, _ = filepath.Glob(filepath.Join(abs, "*", "blobs", "*.incomplete"))
	return info, nil
}

func scanRepo(path string) (*CachedRepo, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("not a cached repo folder: %s", path)
	}
	name := filepath.Base(path)
	typ, id, ok := strings.Cut(name, "--")
	if !ok {
		return nil, fmt.Errorf("not a valid hub cache folder name: %s", path)
	}
	typ = strings.TrimSuffix(typ, "s")
	if typ != "model" && typ != "dataset" && typ != "space" {
		return nil, fmt.Errorf("repo type must be model, dataset or space, found %q (%s)", typ, path)
	}
	repo := &CachedRepo{RepoID: strings.ReplaceAll(id, "--", "/"), RepoType: typ, Path: path}
	snaps := filepath.Join(path, "snapshots")
	if st, err := os.Stat(snaps); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("snapshots folder missing in cached repo %s", path)
	}

	refsByCommit := map[string][]string{}
	refsDir := filepath.Join(path, "refs")
	if st, err := os.Stat(refsDir); err == nil {
		if !st.IsDir() {
			return nil, fmt.Errorf("refs is a file in cached repo %s", path)
		}
		err := filepath.WalkDir(refsDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || ignoredNames[d.Name()] {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(refsDir, p)
			commit := strings.TrimSpace(string(b))
			refsByCommit[commit] = append(refsByCommit[commit], filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading refs of %s: %w", path, err)
		}
	}

	type blobStat struct {
		size         int64
		atime, mtime time.Time
	}
	blobs := map[string]blobStat{}
	revs, err := os.ReadDir(snaps)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", snaps, err)
	}
	for _, r := range revs {
		if ignoredNames[r.Name()] {
			continue
		}
		rp := filepath.Join(snaps, r.Name())
		if !r.IsDir() {
			return nil, fmt.Errorf("snapshots folder corrupted, found a file: %s", rp)
		}
		rev := CachedRevision{Commit: r.Name(), Path: rp}
		seen := map[string]bool{}
		err := filepath.WalkDir(rp, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("blob missing (broken link): %s", p)
			}
			st, err := os.Stat(real)
			if err != nil {
				return fmt.Errorf("blob missing: %s", real)
			}
			if st.IsDir() {
				return nil
			}
			if _, ok := blobs[real]; !ok {
				blobs[real] = blobStat{size: st.Size(), atime: accessTime(st), mtime: st.ModTime()}
			}
			if !seen[real] {
				seen[real] = true
				rev.SizeOnDisk += st.Size()
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("scanning %s: %w", rp, err)
		}
		rev.NbFiles = len(seen)
		rev.Refs = refsByCommit[rev.Commit]
		sort.Strings(rev.Refs)
		repo.Refs = append(repo.Refs, rev.Refs...)
		delete(refsByCommit, rev.Commit)
		repo.Revisions = append(repo.Revisions, rev)
	}
	if len(refsByCommit) > 0 {
		var dangling []string
		for c, refs := range refsByCommit {
			dangling = append(dangling, strings.Join(refs, ",")+"->"+c)
		}
		sort.Strings(dangling)
		return nil, fmt.Errorf("refs point to missing snapshots (%s) in %s", strings.Join(dangling, " "), path)
	}
	sort.Slice(repo.Revisions, func(i, j int) bool { return repo.Revisions[i].Commit < repo.Revisions[j].Commit })
	sort.Strings(repo.Refs)
	for _, b := range blobs {
		repo.SizeOnDisk += b.size
		if b.atime.After(repo.LastAccessed) {
			repo.LastAccessed = b.atime
		}
		if b.mtime.After(repo.LastModified) {
			repo.LastModified = b.mtime
		}
	}
	repo.NbFiles = len(blobs)
	if len(blobs) == 0 {
		repo.LastAccessed = accessTime(st)
		repo.LastModified = st.ModTime()
	}
	return repo, nil
}

// DeleteCachedRepo removes a cached repo folder (every revision and blob)
// and its lock folder. The path must be a repo folder directly under the
// cache root dir.
func DeleteCachedRepo(dir string, repo CachedRepo) error {
	root, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	if filepath.Dir(repo.Path) != root || !strings.Contains(filepath.Base(repo.Path), "--") {
		return fmt.Errorf("refusing to delete %s: not a repo folder of the cache %s", repo.Path, root)
	}
	if err := os.RemoveAll(repo.Path); err != nil {
		return fmt.Errorf("deleting %s: %w", repo.Path, err)
	}
	_ = os.RemoveAll(filepath.Join(root, ".locks", filepath.Base(repo.Path)))
	return nil
}

// FormatSize prints a byte count like huggingface_hub: "2.7M", "893.8M",
// "8.8K" (powers of 1000, one decimal).
func FormatSize(n int64) string {
	f := float64(n)
	for _, unit := range []string{"", "K", "M", "G", "T", "P", "E", "Z"} {
		if math.Abs(f) < 1000 {
			return fmt.Sprintf("%.1f%s", f, unit)
		}
		f /= 1000
	}
	return fmt.Sprintf("%.1fY", f)
}

// FormatTimeSince prints t relative to now like huggingface_hub's
// format_timesince: "a few seconds ago", "1 day ago", "5 weeks ago".
func FormatTimeSince(t, now time.Time) string {
	delta := now.Sub(t).Seconds()
	if delta < 20 {
		return "a few seconds ago"
	}
	chunks := []struct {
		label   string
		divider float64
		max     float64 // 0: no limit
	}{
		{"second", 1, 60},
		{"minute", 60, 60},
		{"hour", 3600, 24},
		{"day", 86400, 6},
		{"week", 7 * 86400, 6},
		{"month", 30 * 86400, 11},
		{"year", 365 * 86400, 0},
	}
	var value float64
	var label string
	for _, ch := range chunks {
		value = math.RoundToEven(delta / ch.divider)
		label = ch.label
		if ch.max != 0 && value <= ch.max {
			break
		}
	}
	s := ""
	if value > 1 {
		s = "s"
	}
	return fmt.Sprintf("%d %s%s ago", int64(value), label, s)
}
