package gguf

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestExportHeaderGolden pins the header, metadata and tensor table of the
// tiny llama exported as F16 (everything before the tensor data) to a
// committed golden file. The same export is checked field by field through
// gguf-parser-go in TestExportLlamaReadByIndependentParser; this test catches
// any later change of bytes, order or types. Refresh with -update after an
// intended change (and review the diff of the parser checks).
func TestExportHeaderGolden(t *testing.T) {
	dir := t.TempDir()
	tokDir := filepath.Join(dir, "tiny-llama")
	must(t, os.Mkdir(tokDir, 0o755))
	writeByteLevelTokenizer(t, tokDir)
	src := llamaTiny.source(1)
	dst := filepath.Join(dir, "out.gguf")
	must(t, Export(dst, llamaTiny.config(), tokDir, src, F16))
	p := parse(t, dst)
	checkLlamaFile(t, p, src, F16)
	header := p.bytes[:p.f.TensorDataStartOffset]
	golden := filepath.Join("testdata", "tiny-llama-f16.header.golden")
	if *update {
		must(t, os.WriteFile(golden, header, 0o644))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestExportHeaderGolden -update to create it)", err)
	}
	if !bytes.Equal(header, want) {
		i := 0
		for i < len(header) && i < len(want) && header[i] == want[i] {
			i++
		}
		t.Fatalf("header differs from %s at byte %d (got %d bytes, golden %d)", golden, i, len(header), len(want))
	}
}
