package safetensors

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxShardSize is mlx_lm's MAX_FILE_SIZE_GB: 5 GiB of tensor data per shard.
const MaxShardSize int64 = 5 << 30

// NoParams marks a tensor that adds nothing to total_parameters.
const NoParams int64 = -1

// TensorSpec is what a Writer needs to plan a tensor before its data exists.
type TensorSpec struct {
	Name  string
	DType DType
	Shape []int
	// Params is what the tensor adds to the index's total_parameters, which
	// mlx_lm counts per layer with quantized weights unpacked: 0 means the
	// element count; NoParams means nothing (the scales and biases of a
	// quantized layer); a packed uint32 weight of a b-bit layer counts
	// numel·32/b.
	Params int64
}

func (s TensorSpec) numBytes() (int64, error) {
	size, ok := s.DType.Size()
	if !ok {
		return 0, fmt.Errorf("dtype %q has no known element size", s.DType)
	}
	n := uint64(size)
	for _, d := range s.Shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", s.Shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, fmt.Errorf("shape %v is too large", s.Shape)
		}
		n = lo
	}
	return int64(n), nil
}

func (s TensorSpec) numElements() int64 {
	n := int64(1)
	for _, d := range s.Shape {
		n *= int64(d)
	}
	return n
}

// WriterOptions tunes a Writer; the zero value is mlx_lm's behaviour.
type WriterOptions struct {
	// MaxShardSize caps the tensor bytes of a shard (default 5 GiB). A
	// tensor larger than the cap gets a shard of its own.
	MaxShardSize int64
	// Metadata for every shard's __metadata__ (default {"format": "mlx"}).
	Metadata map[string]string
}

// Writer writes a model's tensors as mlx_lm's save_model does, streaming:
// NewWriter plans the shards from the specs, WriteTensor stores each
// tensor's bytes (in any order, from any goroutine), Close renames the
// shards into place and writes the index. Until Close succeeds only hidden
// temporary files exist in the folder; Abort removes them.
type Writer struct {
	dir    string
	shards []*shard
	where  map[string]*planned
	index  *Index

	mu      sync.Mutex
	done    bool
	pending int
}

type shard struct {
	name    string
	tensors []*planned
	header  []byte
	size    int64 // whole file
	tmp     *os.File
}

type planned struct {
	spec    TensorSpec
	shard   *shard
	offset  int64 // in the file
	nbytes  int64
	written bool
}

// NewWriter plans the shards of dir (which must exist) for specs, in their
// order, and creates the temporary shard files.
func NewWriter(dir string, specs []TensorSpec, opts *WriterOptions) (*Writer, error) {
	var o WriterOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxShardSize <= 0 {
		o.MaxShardSize = MaxShardSize
	}
	if o.Metadata == nil {
		o.Metadata = map[string]string{"format": "mlx"}
	}
	w := &Writer{dir: dir, where: make(map[string]*planned, len(specs)), pending: len(specs)}
	idx := &Index{WeightMap: make(map[string]string, len(specs))}

	// Greedy split in spec order, as mlx_lm's make_shards (which would
	// also emit an empty first shard when the first tensor alone exceeds
	// the cap; we do not).
	var cur *shard
	var curSize int64
	for _, s := range specs {
		if s.Name == "" {
			return nil, errf(dir, "", "tensor with an empty name")
		}
		if _, dup := w.where[s.Name]; dup {
			return nil, errf(dir, s.Name, "tensor listed twice")
		}
		n, err := s.numBytes()
		if err != nil {
			return nil, &Error{File: dir, Tensor: s.Name, Msg: "cannot plan", Err: err}
		}
		if cur == nil || (len(cur.tensors) > 0 && curSize+n > o.MaxShardSize) {
			cur = &shard{}
			w.shards = append(w.shards, cur)
			curSize = 0
		}
		p := &planned{spec: s, shard: cur, offset: curSize, nbytes: n}
		cur.tensors = append(cur.tensors, p)
		w.where[s.Name] = p
		curSize += n
		idx.TotalSize += n
		switch {
		case s.Params == 0:
			idx.TotalParameters += s.numElements()
		case s.Params > 0:
			idx.TotalParameters += s.Params
		}
	}
	if len(w.shards) == 0 { // mlx_lm writes one empty model.safetensors
		w.shards = append(w.shards, &shard{})
	}
	for i, sh := range w.shards {
		sh.name = "model.safetensors"
		if len(w.shards) > 1 {
			sh.name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(w.shards))
		}
		sh.header = encodeHeader(sh.tensors, o.Metadata)
		start := int64(len(sh.header))
		sh.size = start
		for _, p := range sh.tensors {
			p.offset += start
			sh.size += p.nbytes
			idx.WeightMap[p.spec.Name] = sh.name
		}
	}
	w.index = idx
	for _, sh := range w.shards {
		f, err := os.CreateTemp(dir, "."+sh.name+".*.tmp")
		if err != nil {
			w.Abort()
			return nil, &Error{File: filepath.Join(dir, sh.name), Msg: "cannot create temporary shard", Err: err}
		}
		sh.tmp = f
		// os.CreateTemp makes 0600 files; a model is readable like any
		// file mlx_lm writes.
		if err := f.Chmod(0o644); err != nil {
			w.Abort()
			return nil, &Error{File: f.Name(), Msg: "cannot set the file mode", Err: err}
		}
		if _, err := f.WriteAt(sh.header, 0); err != nil {
			w.Abort()
			return nil, &Error{File: f.Name(), Msg: "cannot write header", Err: err}
		}
		if err := f.Truncate(sh.size); err != nil {
			w.Abort()
			return nil, &Error{File: f.Name(), Msg: "cannot size shard", Err: err}
		}
	}
	return w, nil
}

// Shards lists the shard file names in order.
func (w *Writer) Shards() []string {
	names := make([]string, len(w.shards))
	for i, sh := range w.shards {
		names[i] = sh.name
	}
	return names
}

// Index is the index Close will write.
func (w *Writer) Index() *Index { return w.index }

// WriteTensor stores the little-endian bytes of a planned tensor. It may be
// called from several goroutines for different tensors.
func (w *Writer) WriteTensor(name string, data []byte) error {
	w.mu.Lock()
	p, ok := w.where[name]
	switch {
	case w.done:
		w.mu.Unlock()
		return errf(w.dir, name, "writer already closed")
	case !ok:
		w.mu.Unlock()
		return errf(w.dir, name, "tensor was not planned")
	case p.written:
		w.mu.Unlock()
		return errf(w.dir, name, "tensor written twice")
	case int64(len(data)) != p.nbytes:
		w.mu.Unlock()
		return errf(w.dir, name, "got %d bytes, want %d for %s %v", len(data), p.nbytes, p.spec.DType, p.spec.Shape)
	}
	p.written = true
	w.mu.Unlock()
	if _, err := p.shard.tmp.WriteAt(data, p.offset); err != nil {
		return &Error{File: p.shard.tmp.Name(), Tensor: name, Msg: "cannot write", Err: err}
	}
	w.mu.Lock()
	w.pending--
	w.mu.Unlock()
	return nil
}

// Close checks every planned tensor was written, syncs and renames the
// shards into place, then writes model.safetensors.index.json. On error
// nothing but already-renamed files remain.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return nil
	}
	if w.pending != 0 {
		var missing []string
		for name, p := range w.where {
			if !p.written {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
		w.mu.Unlock()
		w.Abort()
		return errf(w.dir, missing[0], "%d planned tensor(s) never written", len(missing))
	}
	w.done = true
	w.mu.Unlock()
	for _, sh := range w.shards {
		if err := sh.tmp.Sync(); err != nil {
			w.removeTemps()
			return &Error{File: sh.tmp.Name(), Msg: "cannot sync", Err: err}
		}
		if err := sh.tmp.Close(); err != nil {
			w.removeTemps()
			return &Error{File: sh.tmp.Name(), Msg: "cannot close", Err: err}
		}
	}
	for _, sh := range w.shards {
		if err := os.Rename(sh.tmp.Name(), filepath.Join(w.dir, sh.name)); err != nil {
			w.removeTemps()
			return &Error{File: filepath.Join(w.dir, sh.name), Msg: "cannot rename into place", Err: err}
		}
	}
	return WriteIndex(filepath.Join(w.dir, IndexName), w.index)
}

// Abort removes the temporary files; the Writer cannot be used afterwards.
func (w *Writer) Abort() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
	w.removeTemps()
}

func (w *Writer) removeTemps() {
	for _, sh := range w.shards {
		if sh.tmp != nil {
			sh.tmp.Close()
			os.Remove(sh.tmp.Name())
		}
	}
}

// encodeHeader builds the 8-byte length and JSON header: keys sorted as
// MLX's nlohmann::json writes them, compact, padded with spaces so the
// data section starts 8-byte aligned (as the Rust safetensors crate does).
func encodeHeader(ts []*planned, metadata map[string]string) []byte {
	type entry struct {
		key string
		val string
	}
	entries := make([]entry, 0, len(ts)+1)
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(quoteJSON(k, false))
			b.WriteByte(':')
			b.WriteString(quoteJSON(metadata[k], false))
		}
		b.WriteByte('}')
		entries = append(entries, entry{"__metadata__", b.String()})
	}
	var begin int64
	for _, p := range ts {
		var b strings.Builder
		b.WriteString(`{"data_offsets":[`)
		b.WriteString(strconv.FormatInt(begin, 10))
		b.WriteByte(',')
		b.WriteString(strconv.FormatInt(begin+p.nbytes, 10))
		b.WriteString(`],"dtype":`)
		b.WriteString(quoteJSON(string(p.spec.DType), false))
		b.WriteString(`,"shape":[`)
		for i, d := range p.spec.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		b.WriteString("]}")
		entries = append(entries, entry{p.spec.Name, b.String()})
		begin += p.nbytes
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	var b strings.Builder
	b.WriteString("12345678{") // length placeholder
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(quoteJSON(e.key, false))
		b.WriteByte(':')
		b.WriteString(e.val)
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	out := []byte(b.String())
	n := uint64(len(out) - 8)
	for i := 0; i < 8; i++ {
		out[i] = byte(n >> (8 * i))
	}
	return out
}

// quoteJSON quotes s as a JSON string. With ascii it escapes every
// character outside printable ASCII as \uXXXX (Python's json.dump with
// ensure_ascii); otherwise it writes UTF-8 as is (nlohmann::json).
func quoteJSON(s string, ascii bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (ascii && r >= 0x7f):
				if r > 0xffff {
					r1, r2 := utf16Surrogates(r)
					fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
				} else {
					fmt.Fprintf(&b, `\u%04x`, r)
				}
			case r == utf8.RuneError:
				b.WriteString(`\ufffd`)
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func utf16Surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// WriteIndex writes idx as mlx_lm does (json.dump with indent=4: metadata
// total_size then total_parameters, weight_map sorted), atomically.
func WriteIndex(path string, idx *Index) error {
	var b strings.Builder
	b.WriteString("{\n    \"metadata\": {\n")
	fmt.Fprintf(&b, "        \"total_size\": %d,\n", idx.TotalSize)
	fmt.Fprintf(&b, "        \"total_parameters\": %d\n", idx.TotalParameters)
	b.WriteString("    },\n    \"weight_map\": ")
	names := make([]string, 0, len(idx.WeightMap))
	for k := range idx.WeightMap {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) == 0 {
		b.WriteString("{}")
	} else {
		b.WriteString("{\n")
		for i, k := range names {
			b.WriteString("        ")
			b.WriteString(quoteJSON(k, true))
			b.WriteString(": ")
			b.WriteString(quoteJSON(idx.WeightMap[k], true))
			if i < len(names)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString("    }")
	}
	b.WriteString("\n}")
	return writeFileAtomic(path, []byte(b.String()))
}

// writeFileAtomic writes data to a temporary file beside path, then renames.
func writeFileAtomic(path string, data []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic streams fill into a temporary file beside path, syncs it and
// renames it to path; on any error the temporary file is removed.
func writeAtomic(path string, fill func(w io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return &Error{File: path, Msg: "cannot create temporary file", Err: err}
	}
	if err := f.Chmod(0o644); err != nil { // os.CreateTemp makes 0600 files
		f.Close()
		os.Remove(f.Name())
		return &Error{File: path, Msg: "cannot set the file mode", Err: err}
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	werr := fill(bw)
	if werr == nil {
		werr = bw.Flush()
	}
	var serr error
	if werr == nil {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(f.Name())
		return &Error{File: path, Msg: "cannot write", Err: err}
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return &Error{File: path, Msg: "cannot rename into place", Err: err}
	}
	return nil
}

// Data is a tensor with its bytes, for Save.
type Data struct {
	TensorSpec
	Bytes []byte
}

// Save writes tensors to one safetensors file at path (data in the given
// order), atomically. metadata may be nil (no __metadata__ entry).
func Save(path string, tensors []Data, metadata map[string]string) error {
	ps := make([]*planned, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		n, err := t.numBytes()
		if err != nil {
			return &Error{File: path, Tensor: t.Name, Msg: "cannot save", Err: err}
		}
		if n != int64(len(t.Bytes)) {
			return errf(path, t.Name, "got %d bytes, want %d for %s %v", len(t.Bytes), n, t.DType, t.Shape)
		}
		if seen[t.Name] {
			return errf(path, t.Name, "tensor listed twice")
		}
		seen[t.Name] = true
		ps[i] = &planned{spec: t.TensorSpec, nbytes: n}
	}
	header := encodeHeader(ps, metadata)
	return writeAtomic(path, func(w io.Writer) error {
		if _, err := w.Write(header); err != nil {
			return err
		}
		for _, t := range tensors {
			if _, err := w.Write(t.Bytes); err != nil {
				return err
			}
		}
		return nil
	})
}
