package safetensors

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IndexName is the shard index file mlx_lm and transformers write.
const IndexName = "model.safetensors.index.json"

// Index is a model.safetensors.index.json.
type Index struct {
	// Metadata keeps every metadata entry as raw JSON; TotalSize and
	// TotalParameters are decoded from it when present.
	Metadata        map[string]json.RawMessage
	TotalSize       int64
	TotalParameters int64
	WeightMap       map[string]string // tensor name -> shard file name
}

// ReadIndex reads and checks an index file.
func ReadIndex(path string) (*Index, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read index", Err: err}
	}
	var raw struct {
		Metadata  map[string]json.RawMessage `json:"metadata"`
		WeightMap map[string]string          `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, &Error{File: path, Msg: `index is not JSON of the form {"metadata": {...}, "weight_map": {name: file}}`, Err: err}
	}
	if raw.WeightMap == nil {
		return nil, errf(path, "", `index has no "weight_map"`)
	}
	idx := &Index{Metadata: raw.Metadata, WeightMap: raw.WeightMap}
	for key, dst := range map[string]*int64{"total_size": &idx.TotalSize, "total_parameters": &idx.TotalParameters} {
		if v, ok := raw.Metadata[key]; ok {
			var f float64 // some writers store these as floats
			if err := json.Unmarshal(v, &f); err != nil {
				return nil, &Error{File: path, Msg: "metadata." + key + " is not a number", Err: err}
			}
			*dst = int64(f)
		}
	}
	for name, file := range raw.WeightMap {
		if file == "" || filepath.Base(file) != file || file == "." || file == ".." {
			return nil, errf(path, name, "weight_map names shard %q, want a plain file name in the same folder", file)
		}
	}
	return idx, nil
}

// Model is a set of safetensors files read as one: a single file, or a
// folder of shards.
type Model struct {
	Dir   string
	Files []*File
	Index *Index // nil when the folder has no index file
	where map[string]*File
	names []string
}

// OpenModel opens path: a .safetensors file, or a folder. In a folder it
// reads the shards named by model.safetensors.index.json when present, else
// every model*.safetensors (mlx_lm's rule), else every *.safetensors.
// A tensor name found in two files is an error.
func OpenModel(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot open", Err: err}
	}
	m := &Model{where: map[string]*File{}}
	var files []string
	if !st.IsDir() {
		m.Dir = filepath.Dir(path)
		files = []string{path}
	} else {
		m.Dir = path
		idxPath := filepath.Join(path, IndexName)
		if _, err := os.Stat(idxPath); err == nil {
			idx, err := ReadIndex(idxPath)
			if err != nil {
				return nil, err
			}
			m.Index = idx
			seen := map[string]bool{}
			for _, f := range idx.WeightMap {
				if !seen[f] {
					seen[f] = true
					files = append(files, filepath.Join(path, f))
				}
			}
			sort.Strings(files)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, &Error{File: idxPath, Msg: "cannot stat index", Err: err}
		} else {
			files, _ = filepath.Glob(filepath.Join(path, "model*.safetensors"))
			if len(files) == 0 {
				files, _ = filepath.Glob(filepath.Join(path, "*.safetensors"))
			}
			if len(files) == 0 {
				return nil, errf(path, "", "no %s and no *.safetensors files in the folder", IndexName)
			}
			sort.Strings(files)
		}
	}
	for _, p := range files {
		f, err := Open(p)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.Files = append(m.Files, f)
		for _, t := range f.Header.Tensors {
			if other, dup := m.where[t.Name]; dup {
				m.Close()
				return nil, errf(p, t.Name, "tensor is also in %s", other.Path)
			}
			m.where[t.Name] = f
			m.names = append(m.names, t.Name)
		}
	}
	if m.Index != nil {
		for name, file := range m.Index.WeightMap {
			f, ok := m.where[name]
			if !ok || filepath.Base(f.Path) != file {
				m.Close()
				return nil, errf(filepath.Join(m.Dir, IndexName), name, "index puts the tensor in %s, which does not hold it", file)
			}
		}
	}
	sort.Strings(m.names)
	return m, nil
}

// Close closes every file.
func (m *Model) Close() error {
	var first error
	for _, f := range m.Files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Names lists every tensor, sorted.
func (m *Model) Names() []string { return m.names }

// Info describes a tensor and names its file.
func (m *Model) Info(name string) (TensorInfo, *File, bool) {
	f, ok := m.where[name]
	if !ok {
		return TensorInfo{}, nil, false
	}
	t, _ := f.Info(name)
	return t, f, true
}

// Entry is a tensor and the file that holds it.
type Entry struct {
	File *File
	TensorInfo
}

// Entries lists every tensor in storage order (file by file, then by data
// offset), the order that reads each file front to back once.
func (m *Model) Entries() []Entry {
	out := make([]Entry, 0, len(m.names))
	for _, f := range m.Files {
		for _, t := range f.Header.Tensors {
			out = append(out, Entry{File: f, TensorInfo: t})
		}
	}
	return out
}

// Has reports whether the model holds a tensor.
func (m *Model) Has(name string) bool { _, ok := m.where[name]; return ok }

// Tensor returns a zero-copy view of a tensor.
func (m *Model) Tensor(name string) (Tensor, error) {
	f, ok := m.where[name]
	if !ok {
		return Tensor{}, errf(m.Dir, name, "no such tensor in %s", m.describe())
	}
	return f.Tensor(name)
}

// Metadata is the __metadata__ of the first file.
func (m *Model) Metadata() map[string]string {
	if len(m.Files) == 0 {
		return nil
	}
	return m.Files[0].Metadata()
}

func (m *Model) describe() string {
	names := make([]string, len(m.Files))
	for i, f := range m.Files {
		names[i] = filepath.Base(f.Path)
	}
	if len(names) > 3 {
		return strings.Join(names[:3], ", ") + ", …"
	}
	return strings.Join(names, ", ")
}
