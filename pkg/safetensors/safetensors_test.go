package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	nlp "github.com/nlpodyssey/safetensors"
)

// rawFile builds a safetensors file from a literal JSON header and data.
func rawFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i*7)
	}
	return b
}

type testTensor struct {
	spec TensorSpec
	data []byte
}

func sampleTensors() []testTensor {
	return []testTensor{
		{TensorSpec{Name: "model.layers.0.self_attn.q_proj.weight", DType: U32, Shape: []int{4, 2}, Params: 4 * 2 * 32 / 4}, seq(32, 1)},
		{TensorSpec{Name: "model.layers.0.self_attn.q_proj.scales", DType: BF16, Shape: []int{4, 1}, Params: NoParams}, seq(8, 3)},
		{TensorSpec{Name: "model.layers.0.self_attn.q_proj.biases", DType: BF16, Shape: []int{4, 1}, Params: NoParams}, seq(8, 5)},
		{TensorSpec{Name: "model.norm.weight", DType: F32, Shape: []int{3}}, f32Bytes(1.5, -2, 3.25)},
		{TensorSpec{Name: "a.f16", DType: F16, Shape: []int{2, 3}}, seq(12, 9)},
		{TensorSpec{Name: "a.i32", DType: I32, Shape: []int{2}}, seq(8, 11)},
		{TensorSpec{Name: "a.i64", DType: I64, Shape: []int{1, 2}}, seq(16, 13)},
		{TensorSpec{Name: "a.u8", DType: U8, Shape: []int{5}}, seq(5, 17)},
		{TensorSpec{Name: "a.bool", DType: BOOL, Shape: []int{3}}, []byte{1, 0, 1}},
		{TensorSpec{Name: "a.fp8", DType: F8E4M3, Shape: []int{2, 2}}, seq(4, 19)},
		{TensorSpec{Name: "a.e8m0", DType: F8E8M0, Shape: []int{3}}, seq(3, 23)},
		{TensorSpec{Name: "a.scalar", DType: F32}, f32Bytes(7)},
		{TensorSpec{Name: "a.empty", DType: F32, Shape: []int{0, 4}}, nil},
		{TensorSpec{Name: "ünï.weight", DType: U8, Shape: []int{1}}, []byte{42}},
	}
}

func writeModel(t *testing.T, dir string, ts []testTensor, opts *WriterOptions) *Writer {
	t.Helper()
	specs := make([]TensorSpec, len(ts))
	for i, x := range ts {
		specs[i] = x.spec
	}
	w, err := NewWriter(dir, specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Write in reverse order to prove order does not matter.
	for i := len(ts) - 1; i >= 0; i-- {
		if err := w.WriteTensor(ts[i].spec.Name, ts[i].data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ts := sampleTensors()
	w := writeModel(t, dir, ts, nil)
	if got := w.Shards(); !reflect.DeepEqual(got, []string{"model.safetensors"}) {
		t.Fatalf("shards %v", got)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"model.safetensors", IndexName}) {
		t.Fatalf("folder holds %v (temporary files left?)", names)
	}

	m, err := OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Index == nil {
		t.Fatal("index not read")
	}
	if md := m.Metadata(); !reflect.DeepEqual(md, map[string]string{"format": "mlx"}) {
		t.Fatalf("metadata %v", md)
	}
	var wantNames []string
	var totalSize, totalParams int64
	for _, x := range ts {
		wantNames = append(wantNames, x.spec.Name)
		totalSize += int64(len(x.data))
		switch x.spec.Params {
		case 0:
			totalParams += x.spec.numElements()
		case NoParams:
		default:
			totalParams += x.spec.Params
		}
		got, err := m.Tensor(x.spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != x.spec.DType || !reflect.DeepEqual(got.Shape, append([]int{}, x.spec.Shape...)) && len(x.spec.Shape) > 0 || !bytes.Equal(got.Bytes(), x.data) {
			t.Errorf("%s: got %s %v %x, want %s %v %x", x.spec.Name, got.DType, got.Shape, got.Bytes(), x.spec.DType, x.spec.Shape, x.data)
		}
	}
	sort.Strings(wantNames)
	if !reflect.DeepEqual(m.Names(), wantNames) {
		t.Errorf("names %v, want %v", m.Names(), wantNames)
	}
	if m.Index.TotalSize != totalSize || m.Index.TotalParameters != totalParams {
		t.Errorf("index totals %d/%d, want %d/%d", m.Index.TotalSize, m.Index.TotalParameters, totalSize, totalParams)
	}
	// data section is 8-byte aligned
	if m.Files[0].Header.DataStart()%8 != 0 {
		t.Errorf("data starts at %d", m.Files[0].Header.DataStart())
	}

	// typed accessors
	tn, _ := m.Tensor("model.norm.weight")
	f, err := tn.Float32s()
	if err != nil || !reflect.DeepEqual(f, []float32{1.5, -2, 3.25}) {
		t.Errorf("Float32s = %v, %v", f, err)
	}
	if _, err := tn.Uint32s(); err == nil || !strings.Contains(err.Error(), "model.norm.weight") {
		t.Errorf("F32 read as uint32: err %v", err)
	}
	sc, _ := m.Tensor("a.scalar")
	if v, _ := sc.Float32s(); len(sc.Shape) != 0 || sc.NumElements() != 1 || len(v) != 1 || v[0] != 7 {
		t.Errorf("scalar: shape %v values %v", sc.Shape, v)
	}
	bo, _ := m.Tensor("a.bool")
	if v, _ := bo.Bools(); !reflect.DeepEqual(v, []bool{true, false, true}) {
		t.Errorf("bools %v", v)
	}
	i64, _ := m.Tensor("a.i64")
	v64, _ := i64.Int64s()
	if len(v64) != 2 || v64[1] != int64(binary.LittleEndian.Uint64(seq(16, 13)[8:])) {
		t.Errorf("int64s %v", v64)
	}
	fp8, _ := m.Tensor("a.fp8")
	if v, err := fp8.Uint8s(); err != nil || !bytes.Equal(v, seq(4, 19)) {
		t.Errorf("fp8 codes %v %v", v, err)
	}
	q, _ := m.Tensor("model.layers.0.self_attn.q_proj.weight")
	u32, _ := q.Uint32s()
	if len(u32) != 8 || u32[0] != binary.LittleEndian.Uint32(seq(32, 1)) {
		t.Errorf("uint32s %v", u32)
	}
	em, _ := m.Tensor("a.empty")
	if v, err := em.Float32s(); err != nil || len(v) != 0 {
		t.Errorf("empty: %v %v", v, err)
	}
}

// TestIndexFormat pins the index file to Python's json.dump(indent=4)
// output for the same dict (checked by hand against CPython 3).
func TestIndexFormat(t *testing.T) {
	dir := t.TempDir()
	idx := &Index{TotalSize: 1234, TotalParameters: 99, WeightMap: map[string]string{
		"z.weight": "model-00002-of-00002.safetensors",
		"a.weight": "model-00001-of-00002.safetensors",
		"é\"\\":    "model-00001-of-00002.safetensors",
	}}
	p := filepath.Join(dir, IndexName)
	if err := WriteIndex(p, idx); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	want := `{
    "metadata": {
        "total_size": 1234,
        "total_parameters": 99
    },
    "weight_map": {
        "a.weight": "model-00001-of-00002.safetensors",
        "z.weight": "model-00002-of-00002.safetensors",
        "\u00e9\"\\": "model-00001-of-00002.safetensors"
    }
}`
	if string(got) != want {
		t.Errorf("index:\n%s\nwant:\n%s", got, want)
	}
	back, err := ReadIndex(p)
	if err != nil || back.TotalSize != 1234 || back.TotalParameters != 99 || !reflect.DeepEqual(back.WeightMap, idx.WeightMap) {
		t.Errorf("ReadIndex = %+v, %v", back, err)
	}
}

func TestSharding(t *testing.T) {
	dir := t.TempDir()
	// 5 tensors of 40, 40, 100, 10, 30 bytes with a 90-byte cap: greedy
	// in order gives [40 40] [100] [10 30].
	sizes := []int{40, 40, 100, 10, 30}
	var ts []testTensor
	for i, n := range sizes {
		ts = append(ts, testTensor{TensorSpec{Name: string(rune('e'-i)) + ".weight", DType: U8, Shape: []int{n}}, seq(n, byte(i))})
	}
	w := writeModel(t, dir, ts, &WriterOptions{MaxShardSize: 90})
	want := []string{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"}
	if !reflect.DeepEqual(w.Shards(), want) {
		t.Fatalf("shards %v, want %v", w.Shards(), want)
	}
	wantMap := map[string]string{"e.weight": want[0], "d.weight": want[0], "c.weight": want[1], "b.weight": want[2], "a.weight": want[2]}
	idx, err := ReadIndex(filepath.Join(dir, IndexName))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(idx.WeightMap, wantMap) || idx.TotalSize != 220 || idx.TotalParameters != 220 {
		t.Errorf("index %+v", idx)
	}
	m, err := OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.Files) != 3 {
		t.Fatalf("%d files", len(m.Files))
	}
	for _, x := range ts {
		got, err := m.Tensor(x.spec.Name)
		if err != nil || !bytes.Equal(got.Bytes(), x.data) {
			t.Errorf("%s: %v", x.spec.Name, err)
		}
		if _, f, _ := m.Info(x.spec.Name); filepath.Base(f.Path) != wantMap[x.spec.Name] {
			t.Errorf("%s in %s", x.spec.Name, f.Path)
		}
	}
	// Entries walk the shards front to back.
	var order []string
	for _, e := range m.Entries() {
		order = append(order, filepath.Base(e.File.Path)+":"+e.Name)
	}
	wantOrder := []string{want[0] + ":e.weight", want[0] + ":d.weight", want[1] + ":c.weight", want[2] + ":b.weight", want[2] + ":a.weight"}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("entries %v, want %v", order, wantOrder)
	}
	// Default cap is mlx_lm's 5 GiB.
	if MaxShardSize != 5*1024*1024*1024 {
		t.Errorf("MaxShardSize %d", MaxShardSize)
	}
}

func TestWriterErrorsLeaveNothing(t *testing.T) {
	dir := t.TempDir()
	specs := []TensorSpec{{Name: "a", DType: F32, Shape: []int{2}}, {Name: "b", DType: F32, Shape: []int{1}}}
	w, err := NewWriter(dir, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", f32Bytes(1)); err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), "want 8") {
		t.Errorf("short data: %v", err)
	}
	if err := w.WriteTensor("nope", nil); err == nil {
		t.Error("unplanned tensor accepted")
	}
	if err := w.WriteTensor("a", f32Bytes(1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", f32Bytes(1, 2)); err == nil {
		t.Error("double write accepted")
	}
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), `"b"`) || !strings.Contains(err.Error(), "never written") {
		t.Errorf("Close with a missing tensor: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
	for _, bad := range [][]TensorSpec{
		{{Name: "a", DType: F32}, {Name: "a", DType: F32}},
		{{Name: "x", DType: "F4", Shape: []int{2}}},
		{{Name: "x", DType: F32, Shape: []int{-1}}},
		{{Name: "", DType: F32}},
	} {
		if _, err := NewWriter(dir, bad, nil); err == nil {
			t.Errorf("NewWriter(%v) succeeded", bad)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind %v", entries)
	}
}

// TestNLPInterop reads our files with nlpodyssey/safetensors (an
// independent implementation) and its files with ours.
func TestNLPInterop(t *testing.T) {
	dir := t.TempDir()
	var classic []testTensor
	for _, x := range sampleTensors() {
		if _, err := nlp.ParseDType(string(x.spec.DType)); err == nil && len(x.spec.Shape) > 0 {
			classic = append(classic, x)
		}
	}
	writeModel(t, dir, classic, nil)
	buf, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := nlp.Deserialize(buf)
	if err != nil {
		t.Fatalf("nlpodyssey cannot read our file: %v", err)
	}
	for _, x := range classic {
		v, ok := st.Tensor(x.spec.Name)
		if !ok {
			t.Fatalf("%s missing", x.spec.Name)
		}
		shape := make([]int, len(v.Shape()))
		for i, d := range v.Shape() {
			shape[i] = int(d)
		}
		if v.DType().String() != string(x.spec.DType) || !reflect.DeepEqual(shape, x.spec.Shape) || !bytes.Equal(v.Data(), x.data) {
			t.Errorf("%s differs through nlpodyssey", x.spec.Name)
		}
	}
	// and the other way
	views := map[string]nlp.TensorView{}
	for _, x := range classic {
		if len(x.data) == 0 {
			continue
		}
		shape := make([]uint64, len(x.spec.Shape))
		for i, d := range x.spec.Shape {
			shape[i] = uint64(d)
		}
		dt, _ := nlp.ParseDType(string(x.spec.DType))
		v, err := nlp.NewTensorView(dt, shape, x.data)
		if err != nil {
			t.Fatal(err)
		}
		views[x.spec.Name] = v
	}
	theirs, err := nlp.Serialize(views, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := FromBytes("theirs", theirs)
	if err != nil {
		t.Fatalf("cannot read nlpodyssey's file: %v", err)
	}
	if f.Metadata()["k"] != "v" || len(f.Header.Tensors) != len(views) {
		t.Errorf("metadata %v, %d tensors", f.Metadata(), len(f.Header.Tensors))
	}
	for name, v := range views {
		got, err := f.Tensor(name)
		if err != nil || !bytes.Equal(got.Bytes(), v.Data()) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestUnknownDTypeFailsOnlyThatTensor(t *testing.T) {
	hdr := `{"__metadata__":{"format":"mlx"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"q":{"dtype":"F4","shape":[4],"data_offsets":[8,10]}}`
	f, err := FromBytes("mixed.safetensors", rawFile(hdr, append(f32Bytes(1, 2), 0xab, 0xcd)))
	if err != nil {
		t.Fatalf("file with an F4 tensor rejected: %v", err)
	}
	w, _ := f.Tensor("w")
	if v, err := w.Float32s(); err != nil || v[1] != 2 {
		t.Errorf("w: %v %v", v, err)
	}
	q, err := f.Tensor("q")
	if err != nil || q.DType != "F4" || !bytes.Equal(q.Bytes(), []byte{0xab, 0xcd}) {
		t.Fatalf("q: %v %v", q, err)
	}
	if _, err := q.Uint8s(); err == nil || !strings.Contains(err.Error(), "mixed.safetensors") || !strings.Contains(err.Error(), `"q"`) || !strings.Contains(err.Error(), "F4") {
		t.Errorf("typed read of F4: %v", err)
	}
	if q.DType.Known() || !F8E8M0.Known() {
		t.Error("Known() wrong")
	}
}

func TestMisalignedViewCopies(t *testing.T) {
	hdr := `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[9,11]}}`
	buf := rawFile(hdr, append(append([]byte{5}, f32Bytes(-1.25, 8)...), 0x80, 0x3f))
	for shift := 0; shift < 4; shift++ { // move the whole file around in memory
		mem := make([]byte, len(buf)+shift)[shift:]
		copy(mem, buf)
		f, err := FromBytes("x", mem)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := f.Tensor("b")
		v, err := b.Float32s()
		if err != nil || !reflect.DeepEqual(v, []float32{-1.25, 8}) {
			t.Errorf("shift %d: %v %v", shift, v, err)
		}
		c, _ := f.Tensor("c")
		if h, _ := c.Uint16s(); h[0] != 0x3f80 {
			t.Errorf("shift %d: bf16 %x", shift, h)
		}
	}
}

func TestCorruptFiles(t *testing.T) {
	good := rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, f32Bytes(1, 2, 3))
	huge := make([]byte, 16)
	binary.LittleEndian.PutUint64(huge, MaxHeaderSize+1)
	cases := []struct {
		name string
		buf  []byte
		want []string
	}{
		{"empty", nil, []string{"too short"}},
		{"truncated length", good[:5], []string{"too short"}},
		{"header too large", huge, []string{"header size", "limit"}},
		{"header past end", good[:20], []string{"truncated"}},
		{"data truncated", good[:len(good)-1], []string{`"v"`, "past the end", "truncated"}},
		{"bad json", rawFile(`{"w":`, nil), []string{"not a JSON object"}},
		{"json array", rawFile(`[1,2]`, nil), []string{"not a JSON object"}},
		{"json null", rawFile(`null`, nil), []string{"null"}},
		{"tensor not object", rawFile(`{"w":3}`, nil), []string{`"w"`}},
		{"missing dtype", rawFile(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, f32Bytes(1)), []string{`"w"`, "dtype"}},
		{"missing shape", rawFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, f32Bytes(1)), []string{`"w"`, "shape"}},
		{"negative dim", rawFile(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32Bytes(1)), []string{`"w"`, "non-negative"}},
		{"float dim", rawFile(`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, f32Bytes(1)), []string{`"w"`, "non-negative"}},
		{"three offsets", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, f32Bytes(1)), []string{`"w"`, "want 2"}},
		{"reversed offsets", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, f32Bytes(1, 2)), []string{`"w"`, "end before"}},
		{"size mismatch", rawFile(`{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}`, f32Bytes(1)), []string{`"w"`, "needs 6 bytes", "hold 4"}},
		{"shape overflow", rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, f32Bytes(1)), []string{`"w"`, "2^64"}},
		{"overlap", rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32Bytes(1, 2)), []string{"overlap"}},
		{"out of range", rawFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, f32Bytes(1)), []string{`"w"`, "past the end"}},
		{"metadata not string", rawFile(`{"__metadata__":{"a":1}}`, nil), []string{"__metadata__", `"a"`, "want a string"}},
	}
	for _, c := range cases {
		_, err := FromBytes("bad.safetensors", c.buf)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "bad.safetensors") {
			t.Errorf("%s: error does not name the file: %s", c.name, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q lacks %q", c.name, msg, w)
			}
		}
	}
	if _, err := FromBytes("good", good); err != nil {
		t.Errorf("good file rejected: %v", err)
	}
	// Gaps, trailing bytes and MLX's `"__metadata__": null` are accepted
	// (MLX and Python read them).
	ok := rawFile(`{"__metadata__":null,"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32Bytes(9, 1, 2))
	if _, err := FromBytes("gap", ok); err != nil {
		t.Errorf("gap/trailing: %v", err)
	}
}

func TestOpenErrorsOnDisk(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenModel(dir); err == nil || !strings.Contains(err.Error(), "no "+IndexName) {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := OpenModel(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
	// a zero-length file
	os.WriteFile(filepath.Join(dir, "model.safetensors"), nil, 0o644)
	if _, err := OpenModel(dir); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("empty file: %v", err)
	}
	// a truncated real file
	full := t.TempDir()
	writeModel(t, full, sampleTensors(), nil)
	buf, _ := os.ReadFile(filepath.Join(full, "model.safetensors"))
	os.WriteFile(filepath.Join(dir, "model.safetensors"), buf[:len(buf)-3], 0o644)
	if _, err := Open(filepath.Join(dir, "model.safetensors")); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated file: %v", err)
	}

	// duplicate names across shards (no index): model-a and model-b
	dup := t.TempDir()
	one := rawFile(`{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1})
	os.WriteFile(filepath.Join(dup, "model-a.safetensors"), one, 0o644)
	os.WriteFile(filepath.Join(dup, "model-b.safetensors"), one, 0o644)
	if _, err := OpenModel(dup); err == nil || !strings.Contains(err.Error(), "also in") {
		t.Errorf("duplicate tensor: %v", err)
	}
	// a stray non-model file is ignored when model*.safetensors exist
	os.Remove(filepath.Join(dup, "model-b.safetensors"))
	os.WriteFile(filepath.Join(dup, "consolidated.safetensors"), one, 0o644)
	m, err := OpenModel(dup)
	if err != nil || len(m.Files) != 1 {
		t.Errorf("glob: %v", err)
	} else {
		m.Close()
	}

	// index naming a tensor its shard does not hold
	idx := map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": map[string]string{"w": "model-a.safetensors", "ghost": "model-a.safetensors"}}
	b, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dup, IndexName), b, 0o644)
	if _, err := OpenModel(dup); err == nil || !strings.Contains(err.Error(), `"ghost"`) {
		t.Errorf("index ghost: %v", err)
	}
	os.WriteFile(filepath.Join(dup, IndexName), []byte(`{"weight_map": {"w": "../x.safetensors"}}`), 0o644)
	if _, err := OpenModel(dup); err == nil || !strings.Contains(err.Error(), "plain file name") {
		t.Errorf("index path escape: %v", err)
	}
	os.WriteFile(filepath.Join(dup, IndexName), []byte(`{"weight_map": `), 0o644)
	if _, err := OpenModel(dup); err == nil || !strings.Contains(err.Error(), IndexName) {
		t.Errorf("bad index JSON: %v", err)
	}
}

func TestSaveSingleFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "adapters.safetensors")
	err := Save(p, []Data{
		{TensorSpec{Name: "b", DType: F32, Shape: []int{1}}, f32Bytes(2)},
		{TensorSpec{Name: "a", DType: F32, Shape: []int{2}}, f32Bytes(0.5, 1)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata() != nil || !reflect.DeepEqual(f.Names(), []string{"b", "a"}) {
		t.Errorf("metadata %v names %v", f.Metadata(), f.Names())
	}
	a, _ := f.Tensor("a")
	a.WillNeed()
	if v, _ := a.Float32s(); !reflect.DeepEqual(v, []float32{0.5, 1}) {
		t.Errorf("a = %v", v)
	}
	a.Release()
	if v, _ := a.Float32s(); !reflect.DeepEqual(v, []float32{0.5, 1}) { // still readable after Release
		t.Errorf("a after Release = %v", v)
	}
	if err := Save(p, []Data{{TensorSpec{Name: "x", DType: F32, Shape: []int{2}}, f32Bytes(1)}}, nil); err == nil {
		t.Error("Save with wrong byte count succeeded")
	}
}

func TestConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	var specs []TensorSpec
	for i := 0; i < 64; i++ {
		specs = append(specs, TensorSpec{Name: "t" + strings.Repeat("x", i%5) + string(rune('A'+i)), DType: U8, Shape: []int{i + 1}})
	}
	w, err := NewWriter(dir, specs, &WriterOptions{MaxShardSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, len(specs))
	for _, s := range specs {
		go func(s TensorSpec) { errs <- w.WriteTensor(s.Name, seq(s.Shape[0], byte(s.Shape[0]))) }(s)
	}
	for range specs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(w.Shards()) < 3 {
		t.Errorf("expected several shards, got %v", w.Shards())
	}
	m, err := OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, s := range specs {
		got, err := m.Tensor(s.Name)
		if err != nil || !bytes.Equal(got.Bytes(), seq(s.Shape[0], byte(s.Shape[0]))) {
			t.Fatalf("%s: %v", s.Name, err)
		}
	}
}

func TestAsBytes(t *testing.T) {
	if b := AsBytes([]float32{1.5, -2}); !bytes.Equal(b, f32Bytes(1.5, -2)) {
		t.Errorf("float32: %x", b)
	}
	if b := AsBytes([]uint16{0x3f80, 0x1234}); !bytes.Equal(b, []byte{0x80, 0x3f, 0x34, 0x12}) {
		t.Errorf("uint16: %x", b)
	}
	if b := AsBytes([]uint32(nil)); len(b) != 0 {
		t.Errorf("nil: %x", b)
	}
}
