package hub

import (
	"os"
	"os/exec"
	"testing"
)

func execTestBinary(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return exec.Command(os.Args[0], args...)
}
