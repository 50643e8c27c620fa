package engine

import (
	"fmt"
	"os"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine/backend"
	"github.com/mlxgo/mlxgo/pkg/engine/cpu"
)

// testBackend names the backend the whole op suite runs on; the cpu
// backend by default. MLXGO_TEST_BACKEND=<name> runs the same float64
// reference checks on another registered backend (the conformance suite
// of DESIGN §2) and skips, saying why, when it is not available here.
var testBackend = "cpu"

func TestMain(m *testing.M) {
	if name := os.Getenv("MLXGO_TEST_BACKEND"); name != "" && name != "cpu" {
		b, err := backend.Open(name)
		if err != nil {
			fmt.Printf("skipping the engine suite on %q: %v\n", name, err)
			os.Exit(0)
		}
		testBackend = name
		SetDefaultBackend(b)
	}
	os.Exit(m.Run())
}

// freshBackend returns a new instance of the backend under test, for tests
// that measure its allocator.
func freshBackend(t *testing.T) backend.Backend {
	t.Helper()
	if testBackend == "cpu" {
		return cpu.New()
	}
	b, err := backend.Open(testBackend)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
