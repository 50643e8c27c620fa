package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// fileMeta is what a HEAD on resolve/<revision>/<file> tells.
type fileMeta struct {
	commit   string // X-Repo-Commit
	etag     string // X-Linked-Etag (LFS: sha256) else ETag (git blob sha1), quotes stripped
	size     int64  // X-Linked-Size else Content-Length
	location string // where to GET the bytes: the CDN for LFS files
}

// resolveURL is {endpoint}/{repo}/resolve/{revision}/{file}, the revision
// escaped whole ("refs/pr/1" -> "refs%2Fpr%2F1") and the file per segment.
func (c *Client) resolveURL(repoID, revision, file string) string {
	segs := strings.Split(file, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.Endpoint + "/" + repoID + "/resolve/" + url.PathEscape(revision) + "/" + strings.Join(segs, "/")
}

func normalizeETag(s string) string {
	s = strings.TrimPrefix(s, "W/")
	return strings.Trim(s, `"`)
}

// headFile asks the Hub where a file is and what it is, without following a
// redirect to another host.
func (c *Client) headFile(ctx context.Context, repoID, revision, file string) (fileMeta, error) {
	u := c.resolveURL(repoID, revision, file)
	resp, err := c.send(ctx, request{
		method:      http.MethodHead,
		url:         u,
		header:      http.Header{"Accept-Encoding": {"identity"}},
		info:        reqInfo{repoID: repoID, revision: revision, file: file},
		retryStatus: true,
	})
	if err != nil {
		return fileMeta{}, err
	}
	resp.Body.Close()
	h := resp.Header
	m := fileMeta{
		commit: h.Get("X-Repo-Commit"),
		etag:   normalizeETag(firstNonEmpty(h.Get("X-Linked-Etag"), h.Get("ETag"))),
	}
	redirect := resp.StatusCode >= 300 && resp.StatusCode < 400
	sizeStr := h.Get("X-Linked-Size")
	if sizeStr == "" && !redirect {
		sizeStr = h.Get("Content-Length")
	}
	if loc := h.Get("Location"); loc != "" && redirect {
		l, err := resp.Request.URL.Parse(loc)
		if err != nil {
			return fileMeta{}, fmt.Errorf("HEAD %s: bad Location %q: %w", u, loc, err)
		}
		m.location = l.String()
	} else {
		m.location = resp.Request.URL.String()
	}
	switch {
	case m.commit == "":
		return fileMeta{}, fmt.Errorf("HEAD %s: the answer has no X-Repo-Commit header; is HF_ENDPOINT (%s) a Hugging Face Hub? A proxy or firewall may be answering instead", u, c.Endpoint)
	case m.etag == "":
		return fileMeta{}, fmt.Errorf("HEAD %s: the answer has no ETag, so the file cannot be cached reliably", u)
	case strings.ContainsAny(m.etag, `/\`) || m.etag == "." || m.etag == "..":
		return fileMeta{}, fmt.Errorf("HEAD %s: unusable ETag %q", u, m.etag)
	}
	n, err := strconv.ParseInt(sizeStr, 10, 64)
	if err != nil || n < 0 {
		return fileMeta{}, fmt.Errorf("HEAD %s: no usable X-Linked-Size or Content-Length (%q)", u, sizeStr)
	}
	m.size = n
	return m, nil
}

// DownloadFile fetches one file of a repo into the cache (like
// huggingface_hub's hf_hub_download) and returns its path under
// snapshots/<commit>/. revision "" means "main". Offline, or when the Hub
// cannot be reached, the cached copy is used; a missing one is ErrNotCached.
func (c *Client) DownloadFile(ctx context.Context, repoID, file, revision string) (string, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return "", err
	}
	if revision == "" {
		revision = DefaultRevision
	}
	if err := validateRevision(revision); err != nil {
		return "", err
	}
	if err := validateRepoPath(file); err != nil {
		return "", err
	}
	rc, err := c.repoCache(repoID)
	if err != nil {
		return "", err
	}
	if IsCommitHash(revision) && fileExists(rc.pointerPath(revision, file)) {
		return rc.pointerPath(revision, file), nil
	}
	if c.Offline {
		return c.cachedFile(rc, revision, file, nil)
	}
	meta, err := c.headFile(ctx, repoID, revision, file)
	if err != nil {
		if ctx.Err() != nil || !fallsBackToCache(err) {
			return "", err
		}
		return c.cachedFile(rc, revision, file, err)
	}
	p, err := c.fetchFile(ctx, rc, meta.commit, fileJob{path: file, size: meta.size}, &meta, nil)
	if err != nil {
		return "", err
	}
	if err := rc.writeRef(revision, meta.commit); err != nil {
		c.warnf("%v", err)
	}
	return p, nil
}

// fallsBackToCache reports whether a failed Hub call may be answered from
// the cache, as huggingface_hub does: everything but a missing revision or
// file (those are definite answers).
func fallsBackToCache(err error) bool {
	return !errors.Is(err, ErrRevisionNotFound) && !errors.Is(err, ErrEntryNotFound) && !errors.Is(err, ErrIntegrity)
}

// cachedFile finds a file in the cache without the network. hubErr is why
// the Hub was not asked (nil when offline).
func (c *Client) cachedFile(rc repoCache, revision, file string, hubErr error) (string, error) {
	commit := revision
	if !IsCommitHash(revision) {
		commit = rc.readRef(revision)
	}
	if commit != "" {
		p := rc.pointerPath(commit, file)
		if fileExists(p) {
			if hubErr != nil {
				c.warnf("using the cached %s of %s: %v", file, rc.repoID, hubErr)
			}
			return p, nil
		}
	}
	return "", notCached(rc, fmt.Sprintf("file %q of %s at revision %q is not in the cache %s", file, rc.repoID, revision, rc.root), hubErr)
}

// notCached explains that detail (a clause such as `org/x at revision "main"
// is not in the cache ...`) stops an offline or Hub-less answer. hubErr is
// why the Hub was not used (nil when offline).
func notCached(rc repoCache, detail string, hubErr error) error {
	if hubErr == nil {
		return errorf(ErrNotCached, nil, "offline mode (HF_HUB_OFFLINE=1): %s; download it with network access first (mlxgo download %s)", detail, rc.repoID)
	}
	var he *HTTPError
	if errors.As(hubErr, &he) && (he.kind == ErrGated || he.kind == ErrRepoNotFound || he.kind == ErrUnauthorized) {
		return hubErr
	}
	return errorf(ErrNotCached, hubErr, "%v; and %s", hubErr, detail)
}

// fileJob is one file to fetch, with what the listing said about it.
type fileJob struct {
	path      string
	size      int64  // -1 if unknown
	blobID    string // git blob sha1 from the listing, "" if unknown
	lfsSha256 string // sha256 from the listing for LFS files
}

// fetchFile makes snapshots/<commit>/<path> exist: nothing to do if it is
// there, a link if the blob is there, else a download under the blob lock.
// meta may be nil (then a HEAD asks for it).
func (c *Client) fetchFile(ctx context.Context, rc repoCache, commit string, job fileJob, meta *fileMeta, bar *progress) (string, error) {
	pointer := rc.pointerPath(commit, job.path)
	if fileExists(pointer) {
		bar.skip(job.size)
		return pointer, nil
	}
	if meta == nil {
		m, err := c.headFile(ctx, rc.repoID, commit, job.path)
		if err != nil {
			return "", err
		}
		meta = &m
	}
	if job.lfsSha256 != "" && job.lfsSha256 != meta.etag {
		return "", errorf(ErrIntegrity, nil, "%s in %s: the listing says sha256 %s but the Hub's ETag is %s", job.path, rc.repoID, job.lfsSha256, meta.etag)
	}
	if job.size >= 0 && job.size != meta.size {
		bar.grow(meta.size - job.size)
	}
	blob := rc.blobPath(meta.etag)
	lock, err := acquireLock(ctx, rc.lockPath(meta.etag))
	if err != nil {
		return "", fmt.Errorf("%s: %w", job.path, err)
	}
	defer lock.release()
	if st, err := os.Stat(blob); err == nil && st.Size() == meta.size {
		bar.done(meta.size)
	} else {
		if err := c.downloadBlob(ctx, rc, job, meta, blob, bar); err != nil {
			return "", err
		}
	}
	if err := createPointer(blob, pointer); err != nil {
		return "", err
	}
	return pointer, nil
}

// verifier checks the downloaded bytes: sha256 for LFS blobs (the ETag is
// the sha256), git blob sha1 for regular files whose ETag the repo listing
// confirms as their git oid (single-file downloads have no listing and only
// check the size of regular files, like huggingface_hub).
type verifier struct {
	h    hash.Hash
	want string
	algo string
}

func newVerifier(job fileJob, meta *fileMeta) *verifier {
	switch {
	case sha256Re.MatchString(meta.etag):
		return &verifier{h: sha256.New(), want: meta.etag, algo: "sha256"}
	case commitHashRe.MatchString(meta.etag) && job.blobID == meta.etag && job.lfsSha256 == "":
		v := &verifier{h: sha1.New(), want: meta.etag, algo: "git blob sha1"}
		v.reset(meta.size)
		return v
	}
	return nil
}

func (v *verifier) reset(size int64) {
	v.h.Reset()
	if v.algo == "git blob sha1" {
		fmt.Fprintf(v.h, "blob %d\x00", size)
	}
}

// downloadBlob fills blob.incomplete (resuming from its length with a Range
// request), checks size and hash, and renames it to blob. On failure the
// .incomplete file keeps the bytes received so far (unless they are wrong).
func (c *Client) downloadBlob(ctx context.Context, rc repoCache, job fileJob, meta *fileMeta, blob string, bar *progress) error {
	if err := os.MkdirAll(filepath.Join(rc.dir, "blobs"), 0o755); err != nil {
		return fmt.Errorf("creating %s/blobs: %w", rc.dir, err)
	}
	tagCacheDir(rc.root)
	checkDiskSpace(c, rc.dir, meta.size)
	incomplete := blob + ".incomplete"
	f, err := os.OpenFile(incomplete, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%s: opening %s: %w", job.path, incomplete, err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("%s: %w", job.path, err)
	}
	ver := newVerifier(job, meta)
	restart := func() error {
		bar.done(-have)
		have = 0
		if ver != nil {
			ver.reset(meta.size)
		}
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("%s: truncating %s: %w", job.path, incomplete, err)
		}
		_, err := f.Seek(0, io.SeekStart)
		return err
	}
	if have > meta.size {
		bar.done(have)
		if err := restart(); err != nil {
			return err
		}
	} else if have > 0 {
		bar.done(have)
		if ver != nil {
			if _, err := io.Copy(ver.h, io.NewSectionReader(f, 0, have)); err != nil {
				return fmt.Errorf("%s: reading %s: %w", job.path, incomplete, err)
			}
		}
	}
	var w io.Writer = f
	if c.wrapBlobWriter != nil {
		w = c.wrapBlobWriter(f)
	}
	stalls := 0
	for have < meta.size {
		n, status, err := c.getInto(ctx, meta.location, have, w, ver, bar, rc, job)
		have += n
		switch {
		case err == nil && status == restartFromZero:
			if err := restart(); err != nil {
				return err
			}
			continue
		case err == nil:
			if have < meta.size {
				err = io.ErrUnexpectedEOF
			} else {
				continue
			}
		}
		var we *writeError
		if errors.As(err, &we) || ctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cause := we.err
			var pe *os.PathError
			if errors.As(cause, &pe) {
				cause = pe.Err // the path is in the message already
			}
			return fmt.Errorf("%s: writing %s after %d of %d bytes: %w (the partial file is kept; free some space and run again to resume)", job.path, incomplete, have, meta.size, cause)
		}
		var he *HTTPError
		if errors.As(err, &he) || errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("%s: %w", job.path, err)
		}
		if n > 0 {
			stalls = 0
		} else {
			stalls++
		}
		if stalls > c.Retry.Max {
			return errorf(ErrUnavailable, err, "%s: download interrupted at byte %d of %d: %v (run again to resume)", job.path, have, meta.size, err)
		}
		if werr := c.Retry.wait(ctx, stalls, 0); werr != nil {
			return werr
		}
	}
	if have != meta.size {
		f.Close()
		os.Remove(incomplete)
		return errorf(ErrIntegrity, nil, "%s: received %d bytes, expected %d; the partial file was removed, run again", job.path, have, meta.size)
	}
	if ver != nil {
		if got := hex.EncodeToString(ver.h.Sum(nil)); got != ver.want {
			f.Close()
			os.Remove(incomplete)
			return errorf(ErrIntegrity, nil, "%s: %s of the download is %s, expected %s; the partial file was removed, run again", job.path, ver.algo, got, ver.want)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: syncing %s: %w", job.path, incomplete, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: closing %s: %w", job.path, incomplete, err)
	}
	if err := os.Rename(incomplete, blob); err != nil {
		return fmt.Errorf("%s: moving %s into place: %w", job.path, incomplete, err)
	}
	return nil
}

type getStatus int

const (
	appended getStatus = iota
	restartFromZero
)

type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// getInto GETs location from byte have on and appends what arrives to w.
// It returns the bytes appended; restartFromZero when the server ignored the
// Range (200) or refused it (416), so the caller must start over.
func (c *Client) getInto(ctx context.Context, location string, have int64, w io.Writer, ver *verifier, bar *progress, rc repoCache, job fileJob) (int64, getStatus, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := c.DownloadIdleTimeout
	if idle <= 0 {
		idle = 10 * time.Second
	}
	timer := time.AfterFunc(idle, cancel)
	defer timer.Stop()
	hdr := http.Header{"Accept-Encoding": {"identity"}}
	if have > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := c.send(rctx, request{
		method:      http.MethodGet,
		url:         location,
		header:      hdr,
		info:        reqInfo{repoID: rc.repoID, file: job.path},
		retryStatus: true,
	})
	if err != nil {
		var he *HTTPError
		if errors.As(err, &he) && he.Status == http.StatusRequestedRangeNotSatisfiable {
			return 0, restartFromZero, nil
		}
		if ctx.Err() == nil && rctx.Err() != nil {
			return 0, appended, fmt.Errorf("no answer within %v", idle)
		}
		return 0, appended, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return 0, restartFromZero, nil
		}
	case http.StatusOK:
		if have > 0 {
			return 0, restartFromZero, nil
		}
	default:
		return 0, appended, fmt.Errorf("GET %s: unexpected HTTP %d", resp.Request.URL.Redacted(), resp.StatusCode)
	}
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, rerr := resp.Body.Read(buf)
		if m > 0 {
			timer.Reset(idle)
			wn, werr := w.Write(buf[:m])
			if wn > 0 {
				if ver != nil {
					ver.h.Write(buf[:wn])
				}
				n += int64(wn)
				bar.done(int64(wn))
			}
			if werr == nil && wn < m {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return n, appended, &writeError{werr}
			}
		}
		if rerr == io.EOF {
			return n, appended, nil
		}
		if rerr != nil {
			if ctx.Err() == nil && rctx.Err() != nil {
				rerr = fmt.Errorf("no data for %v", idle)
			}
			return n, appended, rerr
		}
	}
}

// contentRangeStart parses "bytes START-END/TOTAL".
func contentRangeStart(h string) (int64, bool) {
	h = strings.TrimPrefix(h, "bytes ")
	i := strings.IndexByte(h, '-')
	if i <= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(h[:i], 10, 64)
	return n, err == nil
}
