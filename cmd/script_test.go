package cmd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run this test binary as the mlxgo command, and
// so do tests that start it with MLXGO_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("MLXGO_TEST_MAIN") == "1" {
		os.Exit(Execute())
	}
	testscript.Main(m, map[string]func(){
		"mlxgo": func() { os.Exit(Execute()) },
	})
}

// TestScripts runs testdata/script/*.txtar end to end on the real command
// line. $MODELS is testdata/models; the hub is offline with an empty cache.
func TestScripts(t *testing.T) {
	models, err := filepath.Abs("../testdata/models")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "../testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("MODELS", models)
			env.Setenv("HF_HUB_OFFLINE", "1")
			env.Setenv("HF_HOME", filepath.Join(env.WorkDir, ".hf"))
			return nil
		},
	})
}
