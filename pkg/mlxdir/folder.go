package mlxdir

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// Folder is an output model folder under construction: a hidden temporary
// folder beside the destination that Commit renames into place. Until
// then Abort (deferred by the caller) removes it, and any parent folders
// Create made, so a failed run leaves nothing.
type Folder struct {
	Dir  string // the temporary folder the files are written into
	Path string // the destination

	created string // topmost parent folder Create made ("" if none)
	w       *st.Writer
	done    bool
}

// Create makes the temporary folder for dst beside it, creating dst's
// missing parents first (mlx_lm's mkdir(parents=True)).
func Create(dst string) (*Folder, error) {
	dst = filepath.Clean(dst)
	parent := filepath.Dir(dst)
	created, err := mkdirParents(parent)
	if err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		if created != "" {
			os.RemoveAll(created)
		}
		return nil, fmt.Errorf("cannot create a temporary folder in %s: %w", parent, err)
	}
	return &Folder{Dir: tmp, Path: dst, created: created}, nil
}

// NewWriter starts the safetensors writer for the tensors in specs, in
// mlx_lm's shards (maxShard bytes each; 0 means 5 GiB). Abort aborts it
// too.
func (f *Folder) NewWriter(specs []st.TensorSpec, maxShard int64) (*st.Writer, error) {
	w, err := st.NewWriter(f.Dir, specs, &st.WriterOptions{MaxShardSize: maxShard})
	if err != nil {
		return nil, err
	}
	f.w = w
	return w, nil
}

// Abort removes the unfinished folder (and the parents Create made); after
// Commit it does nothing.
func (f *Folder) Abort() {
	if f.done {
		return
	}
	if f.w != nil {
		f.w.Abort()
	}
	os.RemoveAll(f.Dir)
	if f.created != "" {
		os.RemoveAll(f.created)
	}
}

// WriteMeta writes what goes beside the tensors: config.json (cfg.Marshal,
// so set its quantization first), the tokenizer and side files copied from
// the source folder src, and README.md holding card. It returns the
// config.json bytes.
func (f *Folder) WriteMeta(cfg *Config, src, card string) ([]byte, error) {
	data, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "config.json"), data, 0o644); err != nil {
		return nil, err
	}
	if err := CopySideFiles(src, f.Dir); err != nil {
		return nil, fmt.Errorf("copying tokenizer and side files: %w", err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "README.md"), []byte(card), 0o644); err != nil {
		return nil, err
	}
	return data, nil
}

// Commit gives the files ordinary permissions and renames the folder into
// place. The destination must not exist unless replace is set; then the
// existing folder is moved aside and deleted only once the new one is in
// place. It returns the names of the folder's files, sorted.
func (f *Folder) Commit(replace bool) ([]string, error) {
	if err := finishPerms(f.Dir); err != nil {
		return nil, err
	}
	if err := moveInto(f.Dir, f.Path, replace); err != nil {
		return nil, err
	}
	f.done = true
	entries, _ := os.ReadDir(f.Path)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	return files, nil
}

// moveInto renames tmp to dst, moving an existing dst aside first when
// replace is set.
func moveInto(tmp, dst string, replace bool) error {
	if !replace {
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("cannot save to the path %s as it already exists (it appeared while the model was being written)", dst)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("cannot move the finished model into %s: %w", dst, err)
		}
		return nil
	}
	old, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".old-")
	if err != nil {
		return err
	}
	aside := filepath.Join(old, "model")
	if err := os.Rename(dst, aside); err != nil {
		os.Remove(old)
		return fmt.Errorf("cannot replace %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Rename(aside, dst)
		os.Remove(old)
		return fmt.Errorf("cannot move the finished model into %s: %w", dst, err)
	}
	return os.RemoveAll(old)
}

// mkdirParents creates dir and missing parents and returns the topmost
// folder it created, "" if none, so a failed run can remove it.
func mkdirParents(dir string) (string, error) {
	top := ""
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !os.IsNotExist(err) {
			return "", err
		}
		top = d
		if filepath.Dir(d) == d {
			break
		}
	}
	if top == "" {
		return "", nil
	}
	return top, os.MkdirAll(dir, 0o755)
}

// finishPerms gives the folders and files ordinary permissions (temporary
// files are created private).
func finishPerms(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
}

// tokenizerFiles are the files tokenizer.save_pretrained writes (or that a
// tokenizer reads), copied as they are.
var tokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
	"tokenizer.model", "chat_template.jinja", "chat_template.json",
	"vocab.json", "vocab.txt", "merges.txt", "tiktoken.model", "spiece.model", "sentencepiece.bpe.model",
}

// copyPatterns are what mlx_lm's save copies besides: *.py and
// generation_config.json, and tiktoken vocabularies.
var copyPatterns = []string{"*.py", "generation_config.json", "*.tiktoken"}

// CopySideFiles copies the tokenizer files and mlx_lm's extra files from
// src to dst (top level only, symlinks followed, as shutil.copy).
func CopySideFiles(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		want := false
		for _, t := range tokenizerFiles {
			want = want || name == t
		}
		for _, p := range copyPatterns {
			ok, _ := filepath.Match(p, name)
			want = want || ok
		}
		if !want {
			continue
		}
		fi, err := os.Stat(filepath.Join(src, name))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
