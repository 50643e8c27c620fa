// Package hubtest is a fake Hugging Face Hub for tests: an httptest server
// speaking the Hub protocol (model info with siblings, resolve with
// X-Repo-Commit / ETag / X-Linked-* headers, LFS files redirected to a
// second "CDN" host, HTTP Range, gated and private repos, error codes) and
// the upload side (create repo, preupload, LFS batch with basic and
// multipart transfers, verify, ndjson commit). Faults can be injected:
// error statuses for the next n requests, and connections cut mid-body.
//
// Any package can use it to test code that downloads models:
//
//	s := hubtest.New(t)
//	s.AddRepo("org/tiny", map[string][]byte{"config.json": cfg, "model.safetensors": w})
//	s.SetEnv(t) // HF_ENDPOINT and a fresh HF_HUB_CACHE for hub.ResolveModel
//	dir, err := hub.ResolveModel(ctx, "org/tiny", hub.ResolveOptions{})
package hubtest

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is the fake Hub (Hub) and its storage host (CDN).
type Server struct {
	Hub *httptest.Server
	CDN *httptest.Server
	// Token is the only token that opens gated and private repos (with
	// Token == "", none does) and allows writes (with Token == "", any
	// non-empty token does).
	Token string
	// MultipartChunk > 0 makes LFS uploads larger than it multipart, in
	// parts of that size.
	MultipartChunk int64

	mu     sync.Mutex
	repos  map[string]*repo
	lfs    map[string][]byte         // sha256 -> content
	parts  map[string]map[int][]byte // sha256 -> part number -> bytes
	faults []*fault
	log    []*Request
	seq    int
}

// Request is one request either host received.
type Request struct {
	Host   string // "hub" or "cdn"
	Method string
	Path   string // escaped path, with query
	Range  string
	Auth   string // Authorization header
	Status int
}

type repo struct {
	id      string
	gated   bool
	private bool
	refs    map[string]string          // branch or tag -> commit
	commits map[string]map[string]file // commit -> path -> file
}

type file struct {
	data   []byte
	lfs    bool
	sha256 string
	gitOID string // git blob sha1 of the content (regular) or of the LFS pointer (LFS)
}

type fault struct {
	method string
	sub    string
	status int
	cutAt  int64 // >= 0: cut the body after this many bytes (status unused)
	stall  bool  // with cutAt: stop sending but keep the connection open
	left   int
}

// New starts the two hosts and stops them when the test ends.
func New(t testing.TB) *Server {
	s := &Server{repos: map[string]*repo{}, lfs: map[string][]byte{}, parts: map[string]map[int][]byte{}}
	s.Hub = httptest.NewServer(s.logged("hub", http.HandlerFunc(s.serveHub)))
	s.CDN = httptest.NewServer(s.logged("cdn", http.HandlerFunc(s.serveCDN)))
	t.Cleanup(func() {
		s.Hub.Close()
		s.CDN.Close()
	})
	return s
}

// SetEnv points the environment at this server for the rest of the test
// (HF_ENDPOINT, a fresh HF_HUB_CACHE and HF_HOME, no HF_TOKEN, online), so
// code that builds its client with hub.NewClient() (hub.ResolveModel with
// no Client) talks to it. It returns the cache folder.
func (s *Server) SetEnv(t testing.TB) string {
	cache := t.TempDir()
	t.Setenv("HF_ENDPOINT", s.URL())
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HOME", t.TempDir())
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")
	t.Setenv("TRANSFORMERS_OFFLINE", "")
	return cache
}

// URL is the endpoint to give the client (HF_ENDPOINT).
func (s *Server) URL() string { return s.Hub.URL }

// IsLFS tells whether the fake stores a file in LFS: weights and other
// binaries by extension, and anything of 10 MiB or more, like the Hub's
// default .gitattributes.
func IsLFS(p string, size int64) bool {
	switch path.Ext(p) {
	case ".safetensors", ".bin", ".gguf", ".model", ".npz", ".pt", ".pth", ".h5", ".msgpack", ".onnx":
		return true
	}
	return size >= 10<<20
}

func newFile(p string, data []byte) file {
	f := file{data: data, lfs: IsLFS(p, int64(len(data)))}
	sum := sha256.Sum256(data)
	f.sha256 = hex.EncodeToString(sum[:])
	if f.lfs {
		pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", f.sha256, len(data))
		f.gitOID = GitBlobSHA1([]byte(pointer))
	} else {
		f.gitOID = GitBlobSHA1(data)
	}
	return f
}

// GitBlobSHA1 is git's object id of a blob with this content.
func GitBlobSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// SHA256 is the hex sha256 of b (the blob name of an LFS file).
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// AddRepo creates a repo whose "main" branch holds files; it returns the commit.
func (s *Server) AddRepo(id string, files map[string][]byte) string {
	s.mu.Lock()
	s.repos[id] = &repo{id: id, refs: map[string]string{}, commits: map[string]map[string]file{}}
	s.mu.Unlock()
	return s.Commit(id, "main", files, nil)
}

// Commit adds a commit on branch (created if new) with files added or
// replaced and the paths in remove deleted; it returns the commit hash.
func (s *Server) Commit(id, branch string, files map[string][]byte, remove []string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[id]
	if r == nil {
		panic("hubtest: no repo " + id)
	}
	return s.commitLocked(r, branch, files, remove)
}

func (s *Server) commitLocked(r *repo, branch string, files map[string][]byte, remove []string) string {
	next := map[string]file{}
	parent := r.refs[branch]
	for p, f := range r.commits[parent] {
		next[p] = f
	}
	for p, d := range files {
		f := newFile(p, d)
		next[p] = f
		if f.lfs {
			s.lfs[f.sha256] = d
		}
	}
	for _, p := range remove {
		delete(next, p)
	}
	s.seq++
	h := sha1.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", r.id, parent, s.seq)
	paths := make([]string, 0, len(next))
	for p := range next {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(h, "%s %s\n", p, next[p].gitOID)
	}
	commit := hex.EncodeToString(h.Sum(nil))
	r.commits[commit] = next
	r.refs[branch] = commit
	return commit
}

// Tag points name at commit.
func (s *Server) Tag(id, name, commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[id].refs[name] = commit
}

// SetGated makes a repo require Token.
func (s *Server) SetGated(id string, gated bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[id].gated = gated
}

// SetPrivate hides a repo from requests without Token.
func (s *Server) SetPrivate(id string, private bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[id].private = private
}

// Files returns the content of a repo at a branch, tag or commit.
func (s *Server) Files(id, rev string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[id]
	if r == nil {
		return nil
	}
	commit := s.resolveLocked(r, rev)
	out := map[string][]byte{}
	for p, f := range r.commits[commit] {
		out[p] = f.data
	}
	return out
}

// Head returns the commit a branch or tag points to.
func (s *Server) Head(id, rev string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.repos[id]; r != nil {
		return s.resolveLocked(r, rev)
	}
	return ""
}

// Fail makes the next n requests with this method ("" = any) whose path
// contains sub answer status.
func (s *Server) Fail(method, sub string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{method: method, sub: sub, status: status, cutAt: -1, left: n})
}

// Cut makes the next n GETs whose path contains sub send only the first
// after bytes of their body, then drop the connection.
func (s *Server) Cut(sub string, after int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{method: http.MethodGet, sub: sub, cutAt: after, left: n})
}

func (s *Server) takeFault(r *http.Request, cut bool) *fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.left <= 0 || (f.cutAt >= 0) != cut {
			continue
		}
		if (f.method == "" || f.method == r.Method) && strings.Contains(r.URL.EscapedPath(), f.sub) {
			f.left--
			return f
		}
	}
	return nil
}

// Stall makes the next n GETs whose path contains sub send the first after
// bytes of their body, then send nothing more while keeping the connection
// open, until the client gives up (or 10 s pass).
func (s *Server) Stall(sub string, after int64, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{method: http.MethodGet, sub: sub, cutAt: after, stall: true, left: n})
}

// Requests returns every request so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.log))
	for i, r := range s.log {
		out[i] = *r
	}
	return out
}

// Count counts requests to host ("" = both) with method ("" = any) whose
// path contains sub.
func (s *Server) Count(host, method, sub string) int {
	n := 0
	for _, r := range s.Requests() {
		if (host == "" || r.Host == host) && (method == "" || r.Method == method) && strings.Contains(r.Path, sub) {
			n++
		}
	}
	return n
}

// ResetLog forgets the requests so far.
func (s *Server) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) logged(host string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		p := r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			p += "?" + r.URL.RawQuery
		}
		// Logged on arrival (a client may see a cut connection before the
		// handler returns); the status is filled in afterwards.
		entry := &Request{Host: host, Method: r.Method, Path: p, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")}
		s.mu.Lock()
		s.log = append(s.log, entry)
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			entry.Status = rec.status
			s.mu.Unlock()
		}()
		if f := s.takeFault(r, false); f != nil {
			hubError(rec, f.status, "", fmt.Sprintf("injected HTTP %d", f.status))
			return
		}
		h.ServeHTTP(rec, r)
	})
}

func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// splitEscaped splits an escaped path into unescaped segments.
func splitEscaped(p string) []string {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, s := range parts {
		if u, err := url.PathUnescape(s); err == nil {
			parts[i] = u
		}
	}
	return parts
}

var commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

func (s *Server) resolveLocked(r *repo, rev string) string {
	if c, ok := r.refs[rev]; ok {
		return c
	}
	if commitRe.MatchString(rev) {
		if _, ok := r.commits[rev]; ok {
			return rev
		}
	}
	return ""
}

// open checks access to a repo's files and resolves rev; it writes the
// error answer and returns nil when the request cannot go on.
func (s *Server) open(w http.ResponseWriter, r *http.Request, id, rev string) (*repo, string) {
	return s.openFor(w, r, id, rev, true)
}

// openMeta is open for metadata (info, tree listing): like the Hub, a gated
// repo shows its listing to anyone, only its files are gated.
func (s *Server) openMeta(w http.ResponseWriter, r *http.Request, id, rev string) (*repo, string) {
	return s.openFor(w, r, id, rev, false)
}

func (s *Server) openFor(w http.ResponseWriter, r *http.Request, id, rev string, content bool) (*repo, string) {
	tok := bearer(r)
	s.mu.Lock()
	rp := s.repos[id]
	s.mu.Unlock()
	notFound := func() {
		status := http.StatusNotFound
		if tok == "" {
			status = http.StatusUnauthorized
		}
		hubError(w, status, "RepoNotFound", "Repository not found")
	}
	granted := s.Token != "" && tok == s.Token
	if rp == nil || (rp.private && !granted) {
		notFound()
		return nil, ""
	}
	if rp.gated && !granted && content {
		if tok == "" {
			hubError(w, http.StatusUnauthorized, "GatedRepo", fmt.Sprintf("Access to model %s is restricted. You must have access to it and be authenticated to access it. Please log in.", id))
		} else {
			hubError(w, http.StatusForbidden, "GatedRepo", fmt.Sprintf("Access to model %s is restricted and you are not in the authorized list. Visit %s/%s to ask for access.", id, s.Hub.URL, id))
		}
		return nil, ""
	}
	s.mu.Lock()
	commit := s.resolveLocked(rp, rev)
	s.mu.Unlock()
	if commit == "" {
		hubError(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return nil, ""
	}
	return rp, commit
}

func (s *Server) canWrite(r *http.Request) bool {
	tok := bearer(r)
	return tok != "" && (s.Token == "" || tok == s.Token)
}

func (s *Server) serveHub(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case p == "/api/repos/create" && r.Method == http.MethodPost:
		s.createRepo(w, r)
	case p == "/api/lfs/verify" && r.Method == http.MethodPost:
		s.lfsVerify(w, r)
	case strings.HasPrefix(p, "/api/lfs/complete/") && r.Method == http.MethodPost:
		s.lfsComplete(w, r, strings.TrimPrefix(p, "/api/lfs/complete/"))
	case strings.HasSuffix(p, ".git/info/lfs/objects/batch") && r.Method == http.MethodPost:
		s.lfsBatch(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/"), ".git/info/lfs/objects/batch"))
	case strings.HasPrefix(p, "/api/models/"):
		rest := strings.TrimPrefix(p, "/api/models/")
		for _, op := range []string{"/revision/", "/preupload/", "/commit/", "/tree/"} {
			if i := strings.Index(rest, op); i > 0 {
				id, _ := url.PathUnescape(rest[:i])
				rev, _ := url.PathUnescape(rest[i+len(op):])
				switch op {
				case "/revision/":
					s.modelInfo(w, r, id, rev)
				case "/preupload/":
					s.preupload(w, r, id, rev)
				case "/tree/":
					s.tree(w, r, id, rev)
				default:
					s.commit(w, r, id, rev)
				}
				return
			}
		}
		id, _ := url.PathUnescape(rest)
		s.modelInfo(w, r, id, "main")
	case strings.Contains(p, "/resolve/"):
		i := strings.Index(p, "/resolve/")
		id, _ := url.PathUnescape(strings.TrimPrefix(p[:i], "/"))
		segs := splitEscaped(p[i+len("/resolve/"):])
		if len(segs) < 2 {
			hubError(w, http.StatusNotFound, "", "bad resolve path")
			return
		}
		s.resolve(w, r, id, segs[0], strings.Join(segs[1:], "/"))
	default:
		hubError(w, http.StatusNotFound, "", "no route "+r.Method+" "+p)
	}
}

func (s *Server) modelInfo(w http.ResponseWriter, r *http.Request, id, rev string) {
	if r.Method != http.MethodGet {
		hubError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	rp, commit := s.openMeta(w, r, id, rev)
	if rp == nil {
		return
	}
	blobs := r.URL.Query().Get("blobs") == "true"
	s.mu.Lock()
	files := rp.commits[commit]
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var sibs []map[string]any
	for _, p := range paths {
		f := files[p]
		sib := map[string]any{"rfilename": p}
		if blobs {
			sib["size"] = len(f.data)
			sib["blobId"] = f.gitOID
			if f.lfs {
				sib["lfs"] = map[string]any{"size": len(f.data), "sha256": f.sha256, "pointerSize": 134}
			}
		}
		sibs = append(sibs, sib)
	}
	gated := any(false)
	if rp.gated {
		gated = "manual"
	}
	out := map[string]any{"_id": "fake" + commit[:8], "id": id, "modelId": id, "sha": commit, "private": rp.private, "gated": gated, "siblings": sibs}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// tree answers GET /api/models/{repo}/tree/{rev}[/{folder}]?recursive=true,
// the listing huggingface_hub's snapshot_download uses.
func (s *Server) tree(w http.ResponseWriter, r *http.Request, id, revAndPath string) {
	rev, folder, _ := strings.Cut(revAndPath, "/")
	rp, commit := s.openMeta(w, r, id, rev)
	if rp == nil {
		return
	}
	recursive := r.URL.Query().Get("recursive") == "true" || r.URL.Query().Get("recursive") == "True"
	prefix := ""
	if folder != "" {
		prefix = folder + "/"
	}
	s.mu.Lock()
	files := rp.commits[commit]
	var out []map[string]any
	dirs := map[string]bool{}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		rest := strings.TrimPrefix(p, prefix)
		if i := strings.Index(rest, "/"); i >= 0 {
			// every folder level on the way is listed once
			for j := 0; j <= len(rest); j++ {
				if j == len(rest) || rest[j] != '/' {
					continue
				}
				d := prefix + rest[:j]
				if !dirs[d] && (recursive || !strings.Contains(rest[:j], "/")) {
					dirs[d] = true
					out = append(out, map[string]any{"type": "directory", "oid": GitBlobSHA1([]byte(d)), "size": 0, "path": d})
				}
			}
			if !recursive {
				continue
			}
		}
		f := files[p]
		e := map[string]any{"type": "file", "oid": f.gitOID, "size": len(f.data), "path": p}
		if f.lfs {
			e["lfs"] = map[string]any{"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
		}
		out = append(out, e)
	}
	s.mu.Unlock()
	if out == nil {
		out = []map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request, id, rev, p string) {
	rp, commit := s.open(w, r, id, rev)
	if rp == nil {
		return
	}
	s.mu.Lock()
	f, ok := rp.commits[commit][p]
	s.mu.Unlock()
	w.Header().Set("X-Repo-Commit", commit)
	if !ok {
		hubError(w, http.StatusNotFound, "EntryNotFound", "Entry not found")
		return
	}
	if f.lfs {
		w.Header().Set("X-Linked-Etag", `"`+f.sha256+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.data)))
		w.Header().Set("ETag", `"`+f.gitOID+`"`)
		w.Header().Set("Location", s.CDN.URL+"/lfs/"+f.sha256+"?X-Amz-Signature=fake")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+f.gitOID+`"`)
	s.serveBytes(w, r, f.data)
}

// serveBytes answers GET/HEAD with Range "bytes=N-" support and injected cuts.
func (s *Server) serveBytes(w http.ResponseWriter, r *http.Request, data []byte) {
	start := int64(0)
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" {
		spec, ok := strings.CutPrefix(rg, "bytes=")
		from, _, dash := strings.Cut(spec, "-")
		n, err := strconv.ParseInt(from, 10, 64)
		if !ok || !dash || err != nil || n < 0 {
			hubError(w, http.StatusBadRequest, "", "unsupported Range "+rg)
			return
		}
		if n >= int64(len(data)) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, status = n, http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
	}
	body := data[start:]
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	if f := s.takeFault(r, true); f != nil && f.cutAt < int64(len(body)) {
		_, _ = w.Write(body[:f.cutAt])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		if f.stall {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	_, _ = w.Write(body)
}

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/lfs/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.mu.Lock()
		data, ok := s.lfs[strings.TrimPrefix(p, "/lfs/")]
		s.mu.Unlock()
		if !ok {
			hubError(w, http.StatusNotFound, "", "NoSuchKey")
			return
		}
		s.serveBytes(w, r, data)
	case strings.HasPrefix(p, "/upload/") && r.Method == http.MethodPut:
		segs := strings.Split(strings.TrimPrefix(p, "/upload/"), "/")
		body, err := io.ReadAll(r.Body)
		if err != nil {
			hubError(w, http.StatusBadRequest, "", err.Error())
			return
		}
		oid := segs[0]
		if len(segs) == 2 {
			n, _ := strconv.Atoi(segs[1])
			s.mu.Lock()
			if s.parts[oid] == nil {
				s.parts[oid] = map[int][]byte{}
			}
			s.parts[oid][n] = body
			s.mu.Unlock()
			w.Header().Set("ETag", `"`+SHA256(body)[:32]+`"`)
			return
		}
		if SHA256(body) != oid {
			hubError(w, http.StatusBadRequest, "", "content does not match oid "+oid)
			return
		}
		s.mu.Lock()
		s.lfs[oid] = body
		s.mu.Unlock()
	default:
		hubError(w, http.StatusNotFound, "", "no route "+r.Method+" "+p)
	}
}

func (s *Server) createRepo(w http.ResponseWriter, r *http.Request) {
	if !s.canWrite(r) {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	var in struct {
		Name         string `json:"name"`
		Organization string `json:"organization"`
		Private      bool   `json:"private"`
		Type         string `json:"type"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
		hubError(w, http.StatusBadRequest, "", "bad create payload")
		return
	}
	id := in.Name
	if in.Organization != "" {
		id = in.Organization + "/" + in.Name
	}
	s.mu.Lock()
	_, exists := s.repos[id]
	if !exists {
		rp := &repo{id: id, private: in.Private, refs: map[string]string{}, commits: map[string]map[string]file{}}
		s.repos[id] = rp
		s.commitLocked(rp, "main", map[string][]byte{".gitattributes": []byte("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")}, nil)
	}
	s.mu.Unlock()
	if exists {
		hubError(w, http.StatusConflict, "", "You already created this model repo")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"url": s.Hub.URL + "/" + id})
}

func (s *Server) preupload(w http.ResponseWriter, r *http.Request, id, rev string) {
	if !s.canWrite(r) {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	rp, commit := s.open(w, r, id, rev)
	if rp == nil {
		return
	}
	var in struct {
		Files []struct {
			Path   string `json:"path"`
			Sample string `json:"sample"`
			Size   int64  `json:"size"`
		} `json:"files"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		hubError(w, http.StatusBadRequest, "", "bad preupload payload")
		return
	}
	var out []map[string]any
	s.mu.Lock()
	for _, f := range in.Files {
		mode := "regular"
		if IsLFS(f.Path, f.Size) {
			mode = "lfs"
		}
		var oid any
		if cur, ok := rp.commits[commit][f.Path]; ok {
			if cur.lfs {
				oid = cur.sha256
			} else {
				oid = cur.gitOID
			}
		}
		out = append(out, map[string]any{"path": f.Path, "uploadMode": mode, "shouldIgnore": false, "oid": oid})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"files": out})
}

func (s *Server) lfsBatch(w http.ResponseWriter, r *http.Request, id string) {
	if !s.canWrite(r) {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	if r.Header.Get("Accept") != "application/vnd.git-lfs+json" {
		hubError(w, http.StatusNotAcceptable, "", "want Accept: application/vnd.git-lfs+json")
		return
	}
	var in struct {
		Operation string `json:"operation"`
		Objects   []struct {
			OID  string `json:"oid"`
			Size int64  `json:"size"`
		} `json:"objects"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Operation != "upload" {
		hubError(w, http.StatusBadRequest, "", "bad batch payload")
		return
	}
	var out []map[string]any
	for _, o := range in.Objects {
		obj := map[string]any{"oid": o.OID, "size": o.Size}
		s.mu.Lock()
		_, have := s.lfs[o.OID]
		s.mu.Unlock()
		if !have {
			upload := map[string]any{"href": s.CDN.URL + "/upload/" + o.OID}
			if s.MultipartChunk > 0 && o.Size > s.MultipartChunk {
				hdr := map[string]string{"chunk_size": strconv.FormatInt(s.MultipartChunk, 10)}
				n := (o.Size + s.MultipartChunk - 1) / s.MultipartChunk
				for i := int64(1); i <= n; i++ {
					hdr[strconv.FormatInt(i, 10)] = fmt.Sprintf("%s/upload/%s/%d", s.CDN.URL, o.OID, i)
				}
				upload = map[string]any{"href": s.Hub.URL + "/api/lfs/complete/" + o.OID, "header": hdr}
			}
			obj["actions"] = map[string]any{
				"upload": upload,
				"verify": map[string]any{"href": s.Hub.URL + "/api/lfs/verify"},
			}
		}
		out = append(out, obj)
	}
	w.Header().Set("Content-Type", "application/vnd.git-lfs+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"transfer": "basic", "objects": out})
}

func (s *Server) lfsComplete(w http.ResponseWriter, r *http.Request, oid string) {
	var in struct {
		OID   string `json:"oid"`
		Parts []struct {
			PartNumber int    `json:"partNumber"`
			ETag       string `json:"etag"`
		} `json:"parts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.OID != oid {
		hubError(w, http.StatusBadRequest, "", "bad completion payload")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all bytes.Buffer
	for i, p := range in.Parts {
		data, ok := s.parts[oid][p.PartNumber]
		if !ok || p.PartNumber != i+1 || p.ETag != `"`+SHA256(data)[:32]+`"` {
			hubError(w, http.StatusBadRequest, "", fmt.Sprintf("part %d missing or etag mismatch", p.PartNumber))
			return
		}
		all.Write(data)
	}
	if SHA256(all.Bytes()) != oid {
		hubError(w, http.StatusBadRequest, "", "assembled parts do not match oid")
		return
	}
	s.lfs[oid] = all.Bytes()
	delete(s.parts, oid)
}

func (s *Server) lfsVerify(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OID  string `json:"oid"`
		Size int64  `json:"size"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	s.mu.Lock()
	data, ok := s.lfs[in.OID]
	s.mu.Unlock()
	if !ok || int64(len(data)) != in.Size {
		hubError(w, http.StatusNotFound, "", "object not found")
	}
}

func (s *Server) commit(w http.ResponseWriter, r *http.Request, id, rev string) {
	if !s.canWrite(r) {
		hubError(w, http.StatusUnauthorized, "", "Invalid credentials in Authorization header")
		return
	}
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		hubError(w, http.StatusBadRequest, "", "want application/x-ndjson")
		return
	}
	rp, _ := s.open(w, r, id, rev)
	if rp == nil {
		return
	}
	files := map[string][]byte{}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	sawHeader := false
	for sc.Scan() {
		var line struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			hubError(w, http.StatusBadRequest, "", "bad ndjson line")
			return
		}
		switch line.Key {
		case "header":
			sawHeader = true
		case "file":
			var v struct{ Content, Path, Encoding string }
			_ = json.Unmarshal(line.Value, &v)
			data, err := base64.StdEncoding.DecodeString(v.Content)
			if err != nil || v.Encoding != "base64" {
				hubError(w, http.StatusBadRequest, "", "bad file content for "+v.Path)
				return
			}
			files[v.Path] = data
		case "lfsFile":
			var v struct {
				Path, Algo, OID string
				Size            int64
			}
			_ = json.Unmarshal(line.Value, &v)
			s.mu.Lock()
			data, ok := s.lfs[v.OID]
			s.mu.Unlock()
			if !ok || v.Algo != "sha256" {
				hubError(w, http.StatusUnprocessableEntity, "", "LFS object not uploaded for "+v.Path)
				return
			}
			files[v.Path] = data
		default:
			hubError(w, http.StatusBadRequest, "", "unknown key "+line.Key)
			return
		}
	}
	if !sawHeader {
		hubError(w, http.StatusBadRequest, "", "missing header line")
		return
	}
	s.mu.Lock()
	commit := s.commitLocked(rp, rev, files, nil)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"commitUrl": s.Hub.URL + "/" + id + "/commit/" + commit, "commitOid": commit})
}
