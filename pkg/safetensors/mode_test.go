package safetensors

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSaveFileMode checks that Save and the sharded writer leave files
// readable by others (0644), as mlx_lm's files are, not the 0600 of the
// temporary file they were written to.
func TestSaveFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "adapters.safetensors")
	d := Data{TensorSpec: TensorSpec{Name: "a", DType: F32, Shape: []int{2}}, Bytes: make([]byte, 8)}
	if err := Save(p, []Data{d}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o644 {
		t.Errorf("%s has mode %v, want -rw-r--r--", p, m)
	}
}
