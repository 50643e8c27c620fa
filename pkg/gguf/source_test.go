package gguf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// TestExportDirMatchesExport writes the tiny llama as a bf16 safetensors
// folder and checks ExportDir gives the same file as Export on the values.
func TestExportDirMatchesExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny-llama")
	must(t, os.Mkdir(dir, 0o755))
	src := llamaTiny.source(9)
	specs := make([]safetensors.TensorSpec, len(src.list))
	for i, st := range src.list {
		specs[i] = safetensors.TensorSpec{Name: st.Name, DType: safetensors.DType(st.DType), Shape: st.Shape}
	}
	w, err := safetensors.NewWriter(dir, specs, nil)
	must(t, err)
	for _, st := range src.list {
		x := src.data[st.Name]
		var b []byte
		if st.DType == "BF16" {
			h := make([]uint16, len(x))
			kernels.F32ToHalfSlice(h, x, kernels.BF16)
			b = make([]byte, 2*len(h))
			for i, v := range h {
				binary.LittleEndian.PutUint16(b[2*i:], v)
			}
		} else {
			b, _ = Encode(nil, F32, x)
		}
		must(t, w.WriteTensor(st.Name, b))
	}
	must(t, w.Close())
	must(t, os.WriteFile(filepath.Join(dir, "config.json"), llamaTiny.config(), 0o644))
	writeByteLevelTokenizer(t, dir)

	out := t.TempDir()
	a, b := filepath.Join(out, "a.gguf"), filepath.Join(out, "b.gguf")
	must(t, ExportDir(a, dir, Q8_0))
	must(t, Export(b, llamaTiny.config(), dir, src, Q8_0))
	fa, _ := os.ReadFile(a)
	fb, _ := os.ReadFile(b)
	if len(fa) == 0 || !bytes.Equal(fa, fb) {
		t.Fatalf("ExportDir (%d bytes) and Export (%d bytes) differ", len(fa), len(fb))
	}

	err = ExportDir(filepath.Join(out, "c.gguf"), t.TempDir(), F16)
	if err == nil || !strings.Contains(err.Error(), "has no config.json") {
		t.Fatalf("missing config.json: err = %v", err)
	}
}
