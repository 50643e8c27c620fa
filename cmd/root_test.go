package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &Factory{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	code = run(context.Background(), f, args)
	return code, out.String(), errOut.String()
}

func TestEverySubcommandIsRegistered(t *testing.T) {
	root := NewRootCmd(&Factory{})
	want := []string{"generate", "chat", "lora", "fuse", "convert", "tokenize", "download", "manage", "server", "benchmark", "cache_prompt"}
	for _, name := range want {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("subcommand %q not registered (found %v, err %v)", name, c, err)
		}
	}
}

func TestExitCodes(t *testing.T) {
	if code, _, errOut := runArgs(t, "no-such-command"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: code %d, stderr %q; want 2 and a usage error", code, errOut)
	}
	if code, _, errOut := runArgs(t, "--no-such-flag"); code != 2 || !strings.Contains(errOut, "Usage:") {
		t.Errorf("unknown flag: code %d, stderr %q; want 2 with usage", code, errOut)
	}
	if code, out, _ := runArgs(t, "--version"); code != 0 || !strings.Contains(out, Version) {
		t.Errorf("--version: code %d, stdout %q", code, out)
	}
}
