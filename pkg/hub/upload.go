package hub

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CommitInfo is the Hub's answer to a commit.
type CommitInfo struct {
	OID string `json:"commitOid"`
	URL string `json:"commitUrl"`
}

// UploadOptions tune UploadFolder and CreateCommit.
type UploadOptions struct {
	// Revision is the branch to commit to; "" means "main".
	Revision string
	// Message is the commit title; "" means "Upload folder using mlxgo".
	Message     string
	Description string
	// Private applies when the repo is created.
	Private bool
}

// UploadFile is one local file to put at PathInRepo.
type UploadFile struct {
	PathInRepo string
	LocalPath  string
}

// CreateRepo creates a model repo and returns its URL; a repo that already
// exists is not an error (huggingface_hub's create_repo(exist_ok=True)).
func (c *Client) CreateRepo(ctx context.Context, repoID string, private bool) (string, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return "", err
	}
	org, name, ok := strings.Cut(repoID, "/")
	if !ok {
		org, name = "", repoID
	}
	payload := map[string]any{"name": name, "type": "model", "private": private}
	if org != "" {
		payload["organization"] = org
	}
	body, _ := json.Marshal(payload)
	resp, err := c.send(ctx, request{
		method: http.MethodPost,
		url:    c.Endpoint + "/api/repos/create",
		body:   body,
		header: http.Header{"Content-Type": {"application/json"}},
	})
	repoURL := c.Endpoint + "/" + repoID
	if err == nil {
		resp.Body.Close()
		return repoURL, nil
	}
	var he *HTTPError
	if !errors.As(err, &he) {
		return "", fmt.Errorf("creating repo %s: %w", repoID, err)
	}
	switch he.Status {
	case http.StatusConflict:
		return repoURL, nil
	case http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusForbidden:
		// The token may lack the create scope on a repo that exists already.
		if _, ierr := c.ModelInfo(ctx, repoID, ""); ierr == nil {
			return repoURL, nil
		}
	}
	return "", fmt.Errorf("creating repo %s: %w", repoID, err)
}

// UploadFolder creates the repo if needed and commits every file under dir
// (skipping .git and .cache/huggingface), sending large files through Git
// LFS. Files identical on the Hub are skipped.
func (c *Client) UploadFolder(ctx context.Context, repoID, dir string, o UploadOptions) (*CommitInfo, error) {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("upload: %q is not a folder", dir)
	}
	var files []UploadFile
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == ".cache/huggingface" || strings.HasSuffix(rel, "/.git") {
				return filepath.SkipDir
			}
			return nil
		}
		files = append(files, UploadFile{PathInRepo: rel, LocalPath: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upload: listing %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("upload: folder %s has no file", dir)
	}
	if _, err := c.CreateRepo(ctx, repoID, o.Private); err != nil {
		return nil, err
	}
	if o.Message == "" {
		o.Message = "Upload folder using mlxgo"
	}
	return c.CreateCommit(ctx, repoID, files, o)
}

type uploadOp struct {
	UploadFile
	size      int64
	sha256    string
	sample    []byte
	mode      string // "lfs" or "regular"
	remoteOID string
	ignore    bool
}

// CreateCommit commits files to a repo branch with the Hub commit API:
// preupload (which files go to LFS), LFS batch + upload + verify, then one
// ndjson commit.
func (c *Client) CreateCommit(ctx context.Context, repoID string, files []UploadFile, o UploadOptions) (*CommitInfo, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return nil, err
	}
	rev := o.Revision
	if rev == "" {
		rev = DefaultRevision
	}
	if err := validateRevision(rev); err != nil {
		return nil, err
	}
	if c.Offline {
		return nil, errorf(ErrNotCached, nil, "offline mode (HF_HUB_OFFLINE=1): cannot upload to %s", repoID)
	}
	ops := make([]*uploadOp, 0, len(files))
	for _, f := range files {
		if err := validateRepoPath(f.PathInRepo); err != nil {
			return nil, err
		}
		op, err := describeUpload(f)
		if err != nil {
			return nil, err
		}
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].PathInRepo < ops[j].PathInRepo })
	if err := c.preupload(ctx, repoID, rev, ops); err != nil {
		return nil, err
	}
	var changed []*uploadOp
	for _, op := range ops {
		if op.ignore {
			continue
		}
		local, err := op.localOID()
		if err != nil {
			return nil, err
		}
		if op.remoteOID != "" && op.remoteOID == local {
			continue
		}
		changed = append(changed, op)
	}
	if len(changed) == 0 {
		info, err := c.ModelInfo(ctx, repoID, rev)
		if err != nil {
			return nil, err
		}
		return &CommitInfo{OID: info.SHA, URL: c.Endpoint + "/" + repoID + "/commit/" + info.SHA}, nil
	}
	if err := c.uploadLFS(ctx, repoID, rev, changed); err != nil {
		return nil, err
	}
	return c.commit(ctx, repoID, rev, changed, o)
}

func describeUpload(f UploadFile) (*uploadOp, error) {
	fh, err := os.Open(f.LocalPath)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	var sample bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&sample, 512}), fh)
	if err != nil {
		return nil, fmt.Errorf("upload: reading %s: %w", f.LocalPath, err)
	}
	return &uploadOp{UploadFile: f, size: n, sha256: hex.EncodeToString(h.Sum(nil)), sample: sample.Bytes()}, nil
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// localOID is what the Hub reports for an unchanged file: sha256 for LFS
// files, git blob sha1 otherwise.
func (op *uploadOp) localOID() (string, error) {
	if op.mode == "lfs" {
		return op.sha256, nil
	}
	b, err := os.ReadFile(op.LocalPath)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	return gitBlobSHA1(b), nil
}

func gitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (c *Client) repoAPI(repoID, what, rev string) string {
	return c.Endpoint + "/api/models/" + repoID + "/" + what + "/" + url.PathEscape(rev)
}

func (c *Client) preupload(ctx context.Context, repoID, rev string, ops []*uploadOp) error {
	byPath := make(map[string]*uploadOp, len(ops))
	for _, op := range ops {
		byPath[op.PathInRepo] = op
	}
	for start := 0; start < len(ops); start += 256 {
		chunk := ops[start:min(start+256, len(ops))]
		type fileIn struct {
			Path   string `json:"path"`
			Sample string `json:"sample"`
			Size   int64  `json:"size"`
		}
		in := struct {
			Files []fileIn `json:"files"`
		}{}
		for _, op := range chunk {
			in.Files = append(in.Files, fileIn{op.PathInRepo, base64.StdEncoding.EncodeToString(op.sample), op.size})
		}
		body, _ := json.Marshal(in)
		var out struct {
			Files []struct {
				Path         string `json:"path"`
				UploadMode   string `json:"uploadMode"`
				ShouldIgnore bool   `json:"shouldIgnore"`
				OID          string `json:"oid"`
			} `json:"files"`
		}
		if err := c.postJSON(ctx, c.repoAPI(repoID, "preupload", rev), body, nil, reqInfo{repoID: repoID, revision: rev}, &out); err != nil {
			return fmt.Errorf("upload to %s: %w", repoID, err)
		}
		for _, f := range out.Files {
			op := byPath[f.Path]
			if op == nil || (f.UploadMode != "lfs" && f.UploadMode != "regular") {
				return fmt.Errorf("upload to %s: malformed preupload answer for %q (uploadMode %q)", repoID, f.Path, f.UploadMode)
			}
			op.mode, op.ignore, op.remoteOID = f.UploadMode, f.ShouldIgnore, f.OID
		}
	}
	for _, op := range ops {
		if op.mode == "" {
			return fmt.Errorf("upload to %s: the preupload answer does not mention %q", repoID, op.PathInRepo)
		}
		if op.size == 0 {
			op.mode = "regular" // empty files cannot go to LFS
		}
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, u string, body []byte, hdr http.Header, info reqInfo, out any) error {
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range hdr {
		h[k] = v
	}
	resp, err := c.send(ctx, request{method: http.MethodPost, url: u, body: body, header: h, info: info, retryStatus: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("POST %s: reading the answer: %w", u, err)
	}
	return nil
}

type lfsAction struct {
	Href   string            `json:"href"`
	Header map[string]string `json:"header"`
}

var lfsHeaders = http.Header{
	"Accept":       {"application/vnd.git-lfs+json"},
	"Content-Type": {"application/vnd.git-lfs+json"},
}

// uploadLFS sends the LFS files the server does not have yet.
func (c *Client) uploadLFS(ctx context.Context, repoID, rev string, ops []*uploadOp) error {
	var lfs []*uploadOp
	var total int64
	for _, op := range ops {
		if op.mode == "lfs" {
			lfs = append(lfs, op)
			total += op.size
		}
	}
	if len(lfs) == 0 {
		return nil
	}
	bar := newProgress(c.Progress, total, fmt.Sprintf("Uploading %d LFS files", len(lfs)))
	ok := false
	defer func() {
		if !ok {
			bar.abort()
		}
	}()
	byOID := map[string]*uploadOp{}
	for start := 0; start < len(lfs); start += 256 {
		chunk := lfs[start:min(start+256, len(lfs))]
		type obj struct {
			OID  string `json:"oid"`
			Size int64  `json:"size"`
		}
		in := map[string]any{
			"operation": "upload",
			"transfers": []string{"basic", "multipart"},
			"hash_algo": "sha256",
			"ref":       map[string]string{"name": rev},
		}
		var objs []obj
		for _, op := range chunk {
			objs = append(objs, obj{op.sha256, op.size})
			byOID[op.sha256] = op
		}
		in["objects"] = objs
		body, _ := json.Marshal(in)
		var out struct {
			Objects []struct {
				OID     string `json:"oid"`
				Size    int64  `json:"size"`
				Actions *struct {
					Upload *lfsAction `json:"upload"`
					Verify *lfsAction `json:"verify"`
				} `json:"actions"`
				Error *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			} `json:"objects"`
		}
		batchURL := c.Endpoint + "/" + repoID + ".git/info/lfs/objects/batch"
		if err := c.postJSON(ctx, batchURL, body, lfsHeaders, reqInfo{repoID: repoID, revision: rev}, &out); err != nil {
			return fmt.Errorf("upload to %s: LFS batch: %w", repoID, err)
		}
		for _, o := range out.Objects {
			op := byOID[o.OID]
			if op == nil {
				return fmt.Errorf("upload to %s: LFS batch answered for unknown object %s", repoID, o.OID)
			}
			if o.Error != nil {
				return fmt.Errorf("upload to %s: LFS refused %s (%d): %s", repoID, op.PathInRepo, o.Error.Code, o.Error.Message)
			}
			if o.Actions == nil || o.Actions.Upload == nil {
				bar.done(op.size) // already on the server
				continue
			}
			if err := c.lfsUpload(ctx, op, o.Actions.Upload, bar); err != nil {
				return fmt.Errorf("upload to %s: %s: %w", repoID, op.PathInRepo, err)
			}
			if v := o.Actions.Verify; v != nil {
				body, _ := json.Marshal(map[string]any{"oid": op.sha256, "size": op.size})
				if err := c.postJSON(ctx, v.Href, body, nil, reqInfo{}, nil); err != nil {
					return fmt.Errorf("upload to %s: verifying %s: %w", repoID, op.PathInRepo, err)
				}
			}
		}
	}
	ok = true
	bar.finish()
	return nil
}

// lfsUpload PUTs the file in one request (basic transfer) or in the parts
// the server asked for (multipart: header chunk_size and "1", "2", ... part
// URLs, then a completion POST to href).
func (c *Client) lfsUpload(ctx context.Context, op *uploadOp, a *lfsAction, bar *progress) error {
	f, err := os.Open(op.LocalPath)
	if err != nil {
		return err
	}
	defer f.Close()
	section := func(off, n int64) func() (io.Reader, int64, error) {
		return func() (io.Reader, int64, error) {
			return &countingReader{r: io.NewSectionReader(f, off, n), bar: bar}, n, nil
		}
	}
	cs, multipart := a.Header["chunk_size"]
	if !multipart {
		resp, err := c.send(ctx, request{method: http.MethodPut, url: a.Href, bodyFn: section(0, op.size), retryStatus: true})
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	chunk, err := strconv.ParseInt(cs, 10, 64)
	if err != nil || chunk <= 0 {
		return fmt.Errorf("malformed LFS answer: chunk_size %q", cs)
	}
	var parts []int
	for k := range a.Header {
		if n, err := strconv.Atoi(k); err == nil && n > 0 {
			parts = append(parts, n)
		}
	}
	sort.Ints(parts)
	if int64(len(parts)) != (op.size+chunk-1)/chunk {
		return fmt.Errorf("malformed LFS answer: %d part URLs for %d bytes in chunks of %d", len(parts), op.size, chunk)
	}
	type part struct {
		PartNumber int    `json:"partNumber"`
		ETag       string `json:"etag"`
	}
	var done []part
	for i, n := range parts {
		off := int64(i) * chunk
		resp, err := c.send(ctx, request{method: http.MethodPut, url: a.Header[strconv.Itoa(n)], bodyFn: section(off, min(chunk, op.size-off)), retryStatus: true})
		if err != nil {
			return fmt.Errorf("part %d: %w", i+1, err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if etag == "" {
			return fmt.Errorf("part %d: the storage answered without an ETag", i+1)
		}
		done = append(done, part{i + 1, etag})
	}
	body, _ := json.Marshal(map[string]any{"oid": op.sha256, "parts": done})
	return c.postJSON(ctx, a.Href, body, lfsHeaders, reqInfo{}, nil)
}

type countingReader struct {
	r   io.Reader
	bar *progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bar.done(int64(n))
	return n, err
}

func (c *Client) commit(ctx context.Context, repoID, rev string, ops []*uploadOp, o UploadOptions) (*CommitInfo, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	line := func(key string, value any) error {
		return enc.Encode(map[string]any{"key": key, "value": value})
	}
	if err := line("header", map[string]string{"summary": o.Message, "description": o.Description}); err != nil {
		return nil, err
	}
	for _, op := range ops {
		var err error
		if op.mode == "lfs" {
			err = line("lfsFile", map[string]any{"path": op.PathInRepo, "algo": "sha256", "oid": op.sha256, "size": op.size})
		} else {
			b, rerr := os.ReadFile(op.LocalPath)
			if rerr != nil {
				return nil, fmt.Errorf("upload: %w", rerr)
			}
			err = line("file", map[string]string{"content": base64.StdEncoding.EncodeToString(b), "path": op.PathInRepo, "encoding": "base64"})
		}
		if err != nil {
			return nil, err
		}
	}
	u := c.repoAPI(repoID, "commit", rev)
	resp, err := c.send(ctx, request{
		method: http.MethodPost,
		url:    u,
		body:   buf.Bytes(),
		header: http.Header{"Content-Type": {"application/x-ndjson"}},
		info:   reqInfo{repoID: repoID, revision: rev},
	})
	if err != nil {
		return nil, fmt.Errorf("commit to %s: %w", repoID, err)
	}
	defer resp.Body.Close()
	var info CommitInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info.OID == "" {
		return nil, fmt.Errorf("commit to %s: malformed answer (no commitOid): %v", repoID, err)
	}
	return &info, nil
}
