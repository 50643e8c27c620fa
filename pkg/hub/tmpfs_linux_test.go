package hub

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

// TestRealFullDiskOnTmpfs puts the cache on a 256 KiB tmpfs (root only;
// skipped where mounting is not allowed): the download fails with one clear
// line, the cache stays consistent, and after the file system grows the
// next run resumes and completes.
func TestRealFullDiskOnTmpfs(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })

	s := hubtest.New(t)
	files := tinyRepo()
	s.AddRepo("org/tiny", files)
	c := testClient(t, s)
	c.CacheDir = filepath.Join(mnt, "hub")
	c.Workers = 1
	var warn bytes.Buffer
	c.Warnings = &warn
	ctx := context.Background()
	_, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if !errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v, want one line with ENOSPC", err)
	}
	if !strings.Contains(warn.String(), "not enough free disk space") {
		t.Errorf("no low-space warning: %q", warn.String())
	}
	assertConsistent(t, c.CacheDir)
	if info, err := ScanCache(c.CacheDir); err != nil || len(info.Warnings) != 0 {
		t.Fatalf("scan after ENOSPC: %+v %v", info, err)
	}

	if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=4m"); err != nil {
		t.Skipf("cannot grow the tmpfs (%v)", err)
	}
	s.ResetLog()
	dir, err := c.Snapshot(ctx, "org/tiny", SnapshotOptions{AllowPatterns: DefaultAllowPatterns})
	if err != nil {
		t.Fatal(err)
	}
	resumed := false
	for _, r := range s.Requests() {
		resumed = resumed || strings.HasPrefix(r.Range, "bytes=")
	}
	if !resumed {
		t.Error("the run after freeing space did not resume")
	}
	for _, p := range tinyAllowed {
		if b, _ := os.ReadFile(filepath.Join(dir, p)); !bytes.Equal(b, files[p]) {
			t.Errorf("%s differs", p)
		}
	}
	assertConsistent(t, c.CacheDir)
}
