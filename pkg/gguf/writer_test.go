package gguf

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// le is a tiny helper for hand-written expected bytes.
func le(n int, v uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, v)
	return b[:n]
}

// TestWriteFileGolden checks the exact bytes of a two-tensor file against a
// layout written out by hand from the GGUF v3 specification.
func TestWriteFileGolden(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	kvs := []KV{
		{"general.architecture", "llama"},
		{"a.arr", []string{"x", "yz"}},
	}
	tensors := []TensorInfo{
		{Name: "t", Shape: []int{2, 3}, Type: F32},
		{Name: "u", Shape: []int{5}, Type: F16},
	}
	tdata := []float32{1, 2, 3, 4, 5, 6}
	udata := []float32{0.5, -1, 2, 0, 65504}
	err := WriteFile(path, kvs, tensors, func(i int, w io.Writer) error {
		src := tdata
		if i == 1 {
			src = udata
		}
		b, err := Encode(nil, tensors[i].Type, src)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	var want []byte
	add := func(bs ...[]byte) {
		for _, b := range bs {
			want = append(want, b...)
		}
	}
	add([]byte("GGUF"), le(4, 3), le(8, 2), le(8, 2))
	// kv 1: key, type 8 (string), value
	add(le(8, 20), []byte("general.architecture"), le(4, 8), le(8, 5), []byte("llama"))
	// kv 2: key, type 9 (array), element type 8, count 2, elements
	add(le(8, 5), []byte("a.arr"), le(4, 9), le(4, 8), le(8, 2), le(8, 1), []byte("x"), le(8, 2), []byte("yz"))
	// tensor t: shape [2,3] is written ne = [3, 2], type 0 (F32), offset 0
	add(le(8, 1), []byte("t"), le(4, 2), le(8, 3), le(8, 2), le(4, 0), le(8, 0))
	// tensor u: ne = [5], type 1 (F16), offset 32 (24 bytes of t padded to 32)
	add(le(8, 1), []byte("u"), le(4, 1), le(8, 5), le(4, 1), le(8, 32))
	if len(want) != 191 {
		t.Fatalf("hand layout is %d bytes, expected 191 before padding", len(want))
	}
	add(make([]byte, 1)) // pad to 192
	for _, v := range tdata {
		add(le(4, uint64(math.Float32bits(v))))
	}
	add(make([]byte, 8))
	// f16 bits: 0.5=0x3800, -1=0xBC00, 2=0x4000, 0=0, 65504=0x7BFF
	add(le(2, 0x3800), le(2, 0xBC00), le(2, 0x4000), le(2, 0), le(2, 0x7BFF), make([]byte, 22))
	if !bytes.Equal(got, want) {
		t.Fatalf("file bytes differ:\n got %x\nwant %x", got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestWriteFileAlignmentKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.gguf")
	kvs := []KV{{"general.alignment", uint32(64)}}
	tensors := []TensorInfo{{Name: "a", Shape: []int{3}, Type: F32}, {Name: "b", Shape: []int{1}, Type: F32}}
	err := WriteFile(path, kvs, tensors, func(i int, w io.Writer) error {
		b, _ := Encode(nil, F32, make([]float32, tensors[i].Shape[0]))
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	// header: 24 + kv (8+17+4+4=33) + a (8+1+4+8+4+8=33) + b (33) = 123 -> 128
	// data: a 12 bytes -> 64, b 4 bytes -> 64
	if len(got) != 128+64+64 {
		t.Fatalf("file is %d bytes, want %d", len(got), 256)
	}
	if off := binary.LittleEndian.Uint64(got[123-8:]); off != 64 {
		t.Errorf("second tensor offset %d, want 64", off)
	}
}

func TestWriteFileErrorsLeaveNothing(t *testing.T) {
	cases := []struct {
		name    string
		kvs     []KV
		tensors []TensorInfo
		write   func(i int, w io.Writer) error
		want    string
	}{
		{"short data", nil, []TensorInfo{{Name: "a", Shape: []int{4}, Type: F32}},
			func(i int, w io.Writer) error { _, err := w.Write(make([]byte, 12)); return err },
			"wrote 12 bytes"},
		{"bad kv", []KV{{"k", []any{1}}}, nil, nil, "metadata key k: unsupported value type"},
		{"dup kv", []KV{{"k", uint8(1)}, {"k", uint8(2)}}, nil, nil, "metadata key k given twice"},
		{"q8 row", nil, []TensorInfo{{Name: "w", Shape: []int{2, 33}, Type: Q8_0}}, nil, "multiple of 32"},
		{"bad alignment", []KV{{"general.alignment", uint32(3)}}, nil, nil, "power of two"},
		{"long name", nil, []TensorInfo{{Name: strings.Repeat("n", 64), Shape: []int{1}}}, nil, "at most 63"},
		{"5 dims", nil, []TensorInfo{{Name: "a", Shape: []int{1, 1, 1, 1, 1}}}, nil, "at most 4"},
		{"dup tensor", nil, []TensorInfo{{Name: "a", Shape: []int{1}}, {Name: "a", Shape: []int{1}}}, nil, "listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			err := WriteFile(filepath.Join(dir, "x.gguf"), c.kvs, c.tensors, c.write)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("left %d files behind (%s)", len(ents), ents[0].Name())
			}
		})
	}
}
