package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// kindError is an error with a one-line message that matches a kind
// (errors.Is) and keeps its cause.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func errorf(kind, cause error, format string, a ...any) error {
	return &kindError{msg: fmt.Sprintf(format, a...), kind: kind, cause: cause}
}

// request is one Hub call; body is re-sent on each attempt.
type request struct {
	method string
	url    string
	body   []byte
	// bodyFn, when set, opens a fresh body for each attempt (large uploads).
	bodyFn func() (io.Reader, int64, error)
	header http.Header
	info   reqInfo
	// retryStatus retries 408/429/5xx answers; network errors are always retried.
	retryStatus bool
}

// httpClient follows redirects but never carries the token to another host
// (huggingface_hub drops it for CDN downloads), and stops at a cross-host
// redirect of a HEAD so the caller can read Location and the X-Linked-*
// headers of the Hub's answer.
func (c *Client) httpClient() *http.Client {
	tr := c.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.URL.Host != via[0].URL.Host {
				if req.Method == http.MethodHead {
					return http.ErrUseLastResponse
				}
				req.Header.Del("Authorization")
			}
			return nil
		},
	}
}

func (c *Client) endpointHost() string {
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return ""
	}
	return u.Host
}

func (c *Client) newRequest(ctx context.Context, r request) (*http.Request, error) {
	var body io.Reader
	var length int64
	switch {
	case r.bodyFn != nil:
		b, n, err := r.bodyFn()
		if err != nil {
			return nil, err
		}
		body, length = b, n
	case r.body != nil:
		body, length = bytes.NewReader(r.body), int64(len(r.body))
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return nil, fmt.Errorf("building request %s %s: %w", r.method, r.url, err)
	}
	if body != nil {
		req.ContentLength = length
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if c.Token != "" && req.URL.Host == c.endpointHost() {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// send performs r, retrying dropped connections (and, with retryStatus,
// 408/429/5xx answers) with backoff. A 2xx or 3xx answer is returned with its
// body open; anything else becomes an *HTTPError.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	if c.Offline {
		return nil, errorf(ErrNotCached, nil, "offline mode (HF_HUB_OFFLINE=1): not sending %s %s", r.method, r.url)
	}
	hc := c.httpClient()
	for attempt := 0; ; attempt++ {
		req, err := c.newRequest(ctx, r)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if attempt >= c.Retry.Max {
				return nil, errorf(ErrUnavailable, err, "cannot reach the Hub (%s %s) after %d attempts: %v", r.method, req.URL.Redacted(), attempt+1, err)
			}
			if werr := c.Retry.wait(ctx, attempt, 0); werr != nil {
				return nil, werr
			}
			continue
		}
		if resp.StatusCode < 400 {
			return resp, nil
		}
		if r.retryStatus && retryableStatus(resp.StatusCode) && attempt < c.Retry.Max {
			after := retryAfter(resp.Header.Get("Retry-After"))
			drain(resp)
			if werr := c.Retry.wait(ctx, attempt, after); werr != nil {
				return nil, werr
			}
			continue
		}
		herr := c.newHTTPError(resp, r.info, attempt+1)
		drain(resp)
		return nil, herr
	}
}

func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(h); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 0
}

func drain(resp *http.Response) {
	if resp != nil && resp.Body != nil {
		buf := make([]byte, 4096)
		for i := 0; i < 16; i++ { // read a little so the connection can be reused
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
	}
}
