package hub

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error kinds; test with errors.Is.
var (
	// ErrInvalidRepoID: the repo id is malformed (checked before any request).
	ErrInvalidRepoID = errors.New("invalid repo id")
	// ErrRepoNotFound: the repository does not exist, or is private and the
	// token (if any) cannot see it.
	ErrRepoNotFound = errors.New("repository not found")
	// ErrRevisionNotFound: the repository exists but not the branch, tag or commit.
	ErrRevisionNotFound = errors.New("revision not found")
	// ErrEntryNotFound: the revision exists but not the file.
	ErrEntryNotFound = errors.New("file not found in repository")
	// ErrGated: the repository is gated and the license was not accepted by
	// the token's account, or no token was sent.
	ErrGated = errors.New("gated repository")
	// ErrUnauthorized: the Hub refused the token (401/403 other than gated).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnavailable: the Hub kept answering 408/429/5xx, or could not be
	// reached, after all retries.
	ErrUnavailable = errors.New("hub unavailable")
	// ErrNotCached: offline (or the Hub unreachable) and the file or snapshot
	// is not in the cache.
	ErrNotCached = errors.New("not in the local cache")
	// ErrIntegrity: a downloaded file does not match its size or hash.
	ErrIntegrity = errors.New("integrity check failed")
)

// HTTPError is a failed Hub request. Its message is one line that says what
// was asked, what the Hub answered and what to do.
type HTTPError struct {
	Method   string
	URL      string
	Status   int
	Code     string // X-Error-Code header (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo)
	Message  string // X-Error-Message header or the start of the body
	Attempts int

	RepoID, Revision, File string
	Endpoint               string
	TokenSent              bool

	kind error
}

func (e *HTTPError) Unwrap() error { return e.kind }

func (e *HTTPError) Error() string {
	status := fmt.Sprintf("HTTP %d", e.Status)
	if e.Message != "" {
		status += ": " + e.Message
	}
	repo := fmt.Sprintf("%q", e.RepoID)
	switch e.kind {
	case ErrGated:
		hint := "set HF_TOKEN (or write it to $HF_HOME/token) to a token of an account that accepted it"
		if e.TokenSent {
			hint = "the token in use belongs to an account that has not been granted access; accept the license with that account or use another token"
		}
		return fmt.Sprintf("repository %s is gated (%s): accept its license at %s/%s, then %s", repo, status, e.Endpoint, e.RepoID, hint)
	case ErrRepoNotFound:
		hint := "check the repo id; if the repository is private or gated, set HF_TOKEN (or $HF_HOME/token) to a token with read access"
		if e.TokenSent {
			hint = "check the repo id and that your token can read it"
		}
		return fmt.Sprintf("repository %s not found on %s (%s): %s", repo, e.Endpoint, status, hint)
	case ErrRevisionNotFound:
		return fmt.Sprintf("revision %q not found in repository %s (%s): check --revision (a branch, tag or full commit hash)", e.Revision, repo, status)
	case ErrEntryNotFound:
		return fmt.Sprintf("file %q not found in repository %s at revision %q (%s)", e.File, repo, e.Revision, status)
	case ErrUnauthorized:
		return fmt.Sprintf("%s %s: %s: the Hub refused the credentials; check HF_TOKEN or $HF_HOME/token and the token's permissions", e.Method, e.URL, status)
	case ErrUnavailable:
		return fmt.Sprintf("%s %s: %s after %d attempts: the Hub is down or rate-limiting, try again later", e.Method, e.URL, status, e.Attempts)
	}
	return fmt.Sprintf("%s %s: %s", e.Method, e.URL, status)
}

// reqInfo names what a request was for, to build a useful error.
type reqInfo struct {
	repoID, revision, file string
}

// newHTTPError classifies a non-2xx answer the way huggingface_hub's
// hf_raise_for_status does.
func (c *Client) newHTTPError(resp *http.Response, info reqInfo, attempts int) *HTTPError {
	e := &HTTPError{
		Method:    resp.Request.Method,
		URL:       resp.Request.URL.Redacted(),
		Status:    resp.StatusCode,
		Code:      resp.Header.Get("X-Error-Code"),
		Message:   resp.Header.Get("X-Error-Message"),
		Attempts:  attempts,
		RepoID:    info.repoID,
		Revision:  info.revision,
		File:      info.file,
		Endpoint:  c.Endpoint,
		TokenSent: resp.Request.Header.Get("Authorization") != "",
	}
	if e.Message == "" && resp.Body != nil && resp.Request.Method != http.MethodHead {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		e.Message = oneLine(string(b))
	}
	switch {
	case e.Code == "RevisionNotFound":
		e.kind = ErrRevisionNotFound
	case e.Code == "EntryNotFound":
		e.kind = ErrEntryNotFound
	case e.Code == "GatedRepo":
		e.kind = ErrGated
	case e.Code == "RepoNotFound":
		e.kind = ErrRepoNotFound
	case e.Status == http.StatusUnauthorized && e.Message != "Invalid credentials in Authorization header" && info.repoID != "":
		// 401 is what the Hub answers for missing, private and gated repos
		// alike when no valid token is sent.
		e.kind = ErrRepoNotFound
	case e.Status == http.StatusNotFound && info.repoID != "" && info.file == "":
		e.kind = ErrRepoNotFound
	case e.Status == http.StatusNotFound && info.file != "":
		e.kind = ErrEntryNotFound
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		e.kind = ErrUnauthorized
	case retryableStatus(e.Status):
		e.kind = ErrUnavailable
	}
	return e
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func fprintf(w io.Writer, format string, a ...any) { fmt.Fprintf(w, format, a...) }
