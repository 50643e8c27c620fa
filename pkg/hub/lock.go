package hub

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// procLocks serialises goroutines of this process on one lock path; the
// file lock (flock on unix) serialises processes.
var procLocks sync.Map // path -> chan struct{} (capacity 1)

// blobLock is held while a blob is downloaded or linked.
type blobLock struct {
	path string
	ch   chan struct{}
	f    *os.File
}

// acquireLock takes the lock at path (creating it), waiting until ctx is done.
func acquireLock(ctx context.Context, path string) (*blobLock, error) {
	v, _ := procLocks.LoadOrStore(path, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		<-ch
		return nil, fmt.Errorf("creating lock folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		<-ch
		return nil, fmt.Errorf("opening lock %s: %w", path, err)
	}
	wait := 5 * time.Millisecond
	for {
		ok, err := tryLockFile(f)
		if err != nil {
			f.Close()
			<-ch
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if ok {
			return &blobLock{path: path, ch: ch, f: f}, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			<-ch
			return nil, ctx.Err()
		case <-t.C:
		}
		if wait < 200*time.Millisecond {
			wait *= 2
		}
	}
}

func (l *blobLock) release() {
	unlockFile(l.f)
	l.f.Close()
	<-l.ch
}
