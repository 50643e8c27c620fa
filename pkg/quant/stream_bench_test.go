package quant_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// writeSource writes a bf16 [rows, cols] tensor "w.weight" to dir.
func writeSource(tb testing.TB, dir string, rows, cols int) []uint16 {
	rng := rand.New(rand.NewPCG(9, 9))
	w := make([]uint16, rows*cols)
	for i := range w {
		w[i] = kernels.F32ToBF16(float32(rng.NormFloat64() * 0.02))
	}
	err := st.Save(filepath.Join(dir, "model.safetensors"), []st.Data{{TensorSpec: st.TensorSpec{Name: "w.weight", DType: st.BF16, Shape: []int{rows, cols}}, Bytes: st.AsBytes(w)}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// streamQuantize is the convert path for one tensor: mmap the source,
// quantize, write weight/scales/biases through the streaming writer.
func streamQuantize(tb testing.TB, src, dst string, o quant.Options) {
	m, err := st.OpenModel(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer m.Close()
	t, err := m.Tensor("w.weight")
	if err != nil {
		tb.Fatal(err)
	}
	w, err := t.Uint16s()
	if err != nil {
		tb.Fatal(err)
	}
	rows, cols := t.Shape[0], t.Shape[1]
	pc := quant.PackedCols(cols, o.Bits)
	nG := rows * cols / o.GroupSize
	q := make([]uint32, rows*pc)
	s, b := make([]uint16, nG), make([]uint16, nG)
	if err := quant.QuantizeHalf(w, kernels.BF16, cols, o, q, s, b); err != nil {
		tb.Fatal(err)
	}
	t.Release()
	specs := []st.TensorSpec{
		{Name: "w.weight", DType: st.U32, Shape: []int{rows, pc}, Params: quant.PackedParams([]int{rows, pc}, o.Bits)},
		{Name: "w.scales", DType: st.BF16, Shape: []int{rows, cols / o.GroupSize}, Params: st.NoParams},
		{Name: "w.biases", DType: st.BF16, Shape: []int{rows, cols / o.GroupSize}, Params: st.NoParams},
	}
	wr, err := st.NewWriter(dst, specs, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for _, x := range []struct {
		n string
		b []byte
	}{{"w.weight", st.AsBytes(q)}, {"w.scales", st.AsBytes(s)}, {"w.biases", st.AsBytes(b)}} {
		if err := wr.WriteTensor(x.n, x.b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		tb.Fatal(err)
	}
}

// TestStreamRoundTrip: a bf16 tensor read through mmap, quantized and
// written with the streaming writer reads back as the same codes, and
// the index counts the weight's parameters unpacked (as mlx_lm does).
func TestStreamRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	rows, cols := 64, 256
	w := writeSource(t, src, rows, cols)
	o := quant.Options{Bits: 5, GroupSize: 32}
	streamQuantize(t, src, dst, o)
	m, err := st.OpenModel(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Index.TotalParameters != int64(rows*cols) || m.Metadata()["format"] != "mlx" {
		t.Errorf("total_parameters %d, metadata %v", m.Index.TotalParameters, m.Metadata())
	}
	qt, _ := m.Tensor("w.weight")
	st16, _ := m.Tensor("w.scales")
	bt16, _ := m.Tensor("w.biases")
	q, err1 := qt.Uint32s()
	s, err2 := st16.Uint16s()
	b, err3 := bt16.Uint16s()
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatal(err1, err2, err3)
	}
	nG := rows * cols / o.GroupSize
	wantQ := make([]uint32, rows*quant.PackedCols(cols, o.Bits))
	wantS, wantB := make([]uint16, nG), make([]uint16, nG)
	quant.QuantizeHalf(w, kernels.BF16, cols, o, wantQ, wantS, wantB)
	for i := range wantQ {
		if q[i] != wantQ[i] {
			t.Fatalf("word %d differs", i)
		}
	}
	for i := range wantS {
		if s[i] != wantS[i] || b[i] != wantB[i] {
			t.Fatalf("group %d differs", i)
		}
	}
	if entries, _ := os.ReadDir(dst); len(entries) != 2 {
		t.Errorf("output folder has %d entries", len(entries))
	}
}

// BenchmarkStreamQuantize measures the whole per-tensor convert path
// (mmap read, 4-bit quantize, streaming write) on a 4096×4096 bf16 tensor;
// MB/s is source bytes per second.
func BenchmarkStreamQuantize(b *testing.B) {
	src := b.TempDir()
	writeSource(b, src, 4096, 4096)
	b.SetBytes(4096 * 4096 * 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst := b.TempDir()
		b.StartTimer()
		streamQuantize(b, src, dst, quant.Options{Bits: 4, GroupSize: 64})
	}
}
