package all_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mlxgo/mlxgo/pkg/model/all"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
)

// TestMLXLayouts writes every float32 fixture through its architecture's
// full sanitize plan (mlx_lm's layout): the result loads to the reference
// logits, and its plan copies every tensor through (idempotence).
func TestMLXLayouts(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(modeltest.Dir(""), "*-f32"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no float32 fixtures under %s: %v", modeltest.Dir(""), err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "reference.json")); err != nil {
			continue
		}
		name := filepath.Base(d)
		tol := modeltest.F32.Logits
		t.Run(strings.TrimSuffix(name, "-f32"), func(t *testing.T) { modeltest.MLXLayout(t, name, tol) })
	}
}
