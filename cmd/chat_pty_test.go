//go:build linux || darwin

package cmd

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestChatPTY runs chat on a pseudo-terminal as a person would: messages
// typed with Enter, and Ctrl-C typed mid-reply (the terminal turns it into
// SIGINT for the foreground process) stops the reply, not the session.
func TestChatPTY(t *testing.T) {
	c := exec.Command(os.Args[0], "chat", "--model", "../testdata/models/llama-f32", "-m", "1000000")
	c.Env = append(os.Environ(), "MLXGO_TEST_MAIN=1")
	tty, err := pty.Start(c)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer tty.Close()
	defer c.Process.Kill()
	out := bufio.NewReader(tty)
	var seen strings.Builder
	readUntil := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for strings.Count(seen.String(), what) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %q (#%d) in the terminal output %q", what, n, seen.String())
			}
			r, _, err := out.ReadRune()
			if err != nil {
				t.Fatalf("reading the terminal: %v; so far %q", err, seen.String())
			}
			seen.WriteRune(r)
		}
	}
	readUntil(">> ", 1)
	io.WriteString(tty, "hello\r")
	readUntil("hello\r\n", 1) // the terminal's echo
	start := seen.Len()
	for seen.Len()-start < 40 {
		r, _, err := out.ReadRune()
		if err != nil {
			t.Fatal(err)
		}
		seen.WriteRune(r)
	}
	io.WriteString(tty, "\x03") // Ctrl-C
	readUntil(">> ", 2)
	io.WriteString(tty, "q\r")
	done := make(chan error, 1)
	go func() {
		io.Copy(io.Discard, out)
		done <- c.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chat exited with %v after Ctrl-C and q; output %q", err, seen.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("chat did not exit after q; output %q", seen.String())
	}
	if strings.Contains(seen.String(), "Error") {
		t.Fatalf("error in the session: %q", seen.String())
	}
}
