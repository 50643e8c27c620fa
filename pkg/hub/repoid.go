package hub

import (
	"regexp"
	"strings"
)

var (
	repoPartRe   = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)
	commitHashRe = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256Re     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidateRepoID checks a repo id with huggingface_hub's rules: "name" or
// "namespace/name", letters, digits, '-', '_' and '.', not starting or ending
// with '-' or '.', no "--" or "..", at most 96 characters for the name, not
// ending in ".git". The error is one line naming the id and the rule.
func ValidateRepoID(id string) error {
	bad := func(why string) error {
		return errorf(ErrInvalidRepoID, nil, "invalid repo id %q: %s (expected \"namespace/name\", e.g. \"mlx-community/Qwen2.5-0.5B-Instruct-4bit\")", id, why)
	}
	if id == "" {
		return bad("empty")
	}
	parts := strings.Split(id, "/")
	if len(parts) > 2 {
		return bad("more than one '/'")
	}
	for _, p := range parts {
		if p == "" {
			return bad("empty namespace or name")
		}
		if !repoPartRe.MatchString(p) {
			return bad("only letters, digits, '-', '_' and '.' are allowed, and a part cannot start or end with '-' or '.'")
		}
	}
	if len(parts[len(parts)-1]) > 96 {
		return bad("name longer than 96 characters")
	}
	if strings.Contains(id, "--") || strings.Contains(id, "..") {
		return bad("\"--\" and \"..\" are not allowed")
	}
	if strings.HasSuffix(id, ".git") {
		return bad("cannot end with \".git\"")
	}
	return nil
}

// validateRevision rejects revisions that could escape refs/ or snapshots/.
func validateRevision(rev string) error {
	if rev == "" || strings.HasPrefix(rev, "/") || strings.ContainsAny(rev, "\\\x00") {
		return errorf(ErrRevisionNotFound, nil, "invalid revision %q: expected a branch, tag or commit hash", rev)
	}
	for _, seg := range strings.Split(rev, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errorf(ErrRevisionNotFound, nil, "invalid revision %q: empty, '.' or '..' path segment", rev)
		}
	}
	return nil
}

// validateRepoPath rejects file names from the Hub that could escape the
// snapshot folder.
func validateRepoPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return errorf(ErrIntegrity, nil, "refusing file name %q from the Hub: not a relative path", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errorf(ErrIntegrity, nil, "refusing file name %q from the Hub: empty, '.' or '..' path segment", p)
		}
	}
	return nil
}

// IsCommitHash reports whether rev is a full 40-hex commit hash.
func IsCommitHash(rev string) bool { return commitHashRe.MatchString(rev) }
