//go:build linux || darwin

package cmd

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// On a terminal, lora shows a progress bar besides mlx_lm's lines; piped
// (the other tests) it prints only the lines.
func TestLoraProgressBarOnTerminal(t *testing.T) {
	data := loraData(t)
	c := exec.Command(os.Args[0], "lora", "--train", "--data", data, "--model", llamaF32Dir, "--iters", "40",
		"--steps-per-report", "20", "--batch-size", "2", "--num-layers", "1", "--adapter-path", filepath.Join(t.TempDir(), "ad"))
	c.Env = append(os.Environ(), "MLXGO_TEST_MAIN=1")
	tty, err := pty.Start(c)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer tty.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, tty); close(done) }()
	waited := make(chan error, 1)
	go func() { waited <- c.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("lora: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		c.Process.Kill()
		t.Fatal("lora did not finish")
	}
	tty.Close()
	<-done
	s := out.String()
	if !strings.Contains(s, "Training") || !strings.Contains(s, "/40") {
		t.Errorf("no progress bar (\"Training ... n/40\") in the terminal output:\n%q", s)
	}
	for _, l := range []string{"Iter 20: Train loss ", "Iter 40: Train loss ", "Saved final weights to "} {
		if !strings.Contains(s, l) {
			t.Errorf("missing %q in the terminal output:\n%q", l, s)
		}
	}
}
