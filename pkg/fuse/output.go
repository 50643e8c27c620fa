package fuse

// The output folder follows mlx_lm's save (mlx-compat.md §14), as
// pkg/convert writes it. convert keeps these helpers unexported, so the
// few that fuse needs (config.json round trip, side files, template model
// card) are repeated here in their smallest form.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// config is config.json in its key order (written back as mlx_lm does)
// and as plain Go values.
type config struct {
	obj   *pyjson.Object
	plain map[string]any
}

// readConfig reads config.json as mlx_lm's load_config: a truthy
// generation_config.json eos_token_id replaces the config's.
func readConfig(dir string) (*config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: no config.json (expected a model folder)", dir)
		}
		return nil, err
	}
	v, err := pyjson.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	obj, ok := v.(*pyjson.Object)
	if !ok {
		return nil, fmt.Errorf("%s: expected a JSON object", path)
	}
	if g, err := os.ReadFile(filepath.Join(dir, "generation_config.json")); err == nil {
		if gv, err := pyjson.Decode(g); err == nil {
			if gobj, ok := gv.(*pyjson.Object); ok {
				if eos, ok := gobj.Get("eos_token_id"); ok && truthy(eos) {
					obj.Set("eos_token_id", eos)
				}
			}
		}
	}
	c := &config{obj: obj}
	raw, err := pyjson.Marshal(obj, pyjson.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &c.plain); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case *pyjson.Object:
		return len(x.Keys) > 0
	case pyjson.Int:
		return strings.Trim(string(x), "-0") != ""
	case float64:
		return x != 0
	}
	return true
}

// marshal writes the config as mlx_lm's save_config: _name_or_path and
// vision_config dropped, quantization_config a copy of quantization, top
// level keys sorted, indent 4.
func (c *config) marshal() ([]byte, error) {
	o := c.obj
	o.Delete("_name_or_path")
	o.Delete("vision_config")
	if q, ok := o.Get("quantization"); ok {
		o.Set("quantization_config", q)
	}
	keys := append([]string(nil), o.Keys...)
	sort.Strings(keys)
	return pyjson.Marshal(&pyjson.Object{Keys: keys, Values: o.Values}, pyjson.Options{Indent: 4})
}

// tokenizerFiles are what tokenizer.save_pretrained writes (or a
// tokenizer reads); copyPatterns what mlx_lm's save copies besides.
var (
	tokenizerFiles = []string{
		"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
		"tokenizer.model", "chat_template.jinja", "chat_template.json",
		"vocab.json", "vocab.txt", "merges.txt", "tiktoken.model", "spiece.model", "sentencepiece.bpe.model",
	}
	copyPatterns = []string{"*.py", "generation_config.json", "*.tiktoken"}
)

// copySideFiles copies the tokenizer and side files of src into dst.
func copySideFiles(src, dst string) error {
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

// modelCard is mlx_lm's create_model_card template: base_model for a hub
// source, library_name mlx, pipeline_tag text-generation, tag mlx.
func modelCard(repoID string) string {
	var b strings.Builder
	b.WriteString("---\n")
	if repoID == "" {
		b.WriteString("language: en\n")
	} else {
		b.WriteString("base_model: " + repoID + "\n")
	}
	b.WriteString("library_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n")
	return b.String()
}

// mkdirParents creates dir and its missing parents and returns the
// topmost folder it created ("" if none), so a failed run can remove it.
func mkdirParents(dir string) (string, error) {
	top := ""
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
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

func finishPerms(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return os.Chmod(p, 0o644)
	})
}

// checkSavePath decides whether dst may be written. mlx_lm's fuse writes
// into an existing folder; mlxgo replaces it whole at the end (so no file
// of an earlier model is left mixed in) when it is empty or holds a model
// (config.json), and refuses anything else, or a folder holding the base
// model or the adapter.
func checkSavePath(dst string, keep ...string) (exists bool, err error) {
	fi, err := os.Lstat(dst)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("--save-path %s exists and is not a folder", dst)
	}
	abs, _ := filepath.Abs(dst)
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	for _, k := range keep {
		ka, _ := filepath.Abs(k)
		if r, err := filepath.EvalSymlinks(ka); err == nil {
			ka = r
		}
		if rel, err := filepath.Rel(abs, ka); err == nil && (rel == "." || !strings.HasPrefix(rel, "..")) {
			return false, fmt.Errorf("--save-path %s holds the input %s; save the fused model somewhere else", dst, k)
		}
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		return false, err
	}
	if len(entries) == 0 {
		return true, nil
	}
	if _, err := os.Stat(filepath.Join(dst, "config.json")); err != nil {
		return false, fmt.Errorf("--save-path %s exists and does not hold a model (no config.json); refusing to replace it", dst)
	}
	return true, nil
}
