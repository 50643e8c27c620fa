// Package mlxdir writes a model folder in mlx_lm's output layout, the one
// its save (mlx-compat.md §14) gives after convert and fuse: sharded
// model*.safetensors with the index (tensors in mlx_lm's order,
// SortNames), config.json with sorted keys and the
// quantization entries, the tokenizer and side files, and a model card
// (a hub source's own card metadata, as create_model_card). Everything is
// written into a hidden temporary folder beside the destination (Create)
// and renamed into place only when complete (Folder.Commit); a failed run
// leaves nothing. pkg/convert and pkg/fuse both write through it.
package mlxdir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// Config is config.json twice: in its key order (for writing it back as
// mlx_lm does) and as plain Go values (for the sanitize plans and
// predicates).
type Config struct {
	Obj   *pyjson.Object
	Plain map[string]any
}

// ReadConfig reads dir/config.json as mlx_lm's load_config does: the
// generation_config.json eos_token_id, when present and truthy, replaces
// the config's.
func ReadConfig(dir string) (*Config, error) {
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
	c := &Config{Obj: obj}
	raw, err := pyjson.Marshal(obj, pyjson.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &c.Plain); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// truthy is Python's bool() of a decoded JSON value.
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

// Str is the string value of a top-level key, "" when absent or not a
// string.
func (c *Config) Str(key string) string {
	s, _ := c.Plain[key].(string)
	return s
}

// CheckModelType refuses a config mlxgo cannot build a model from: no
// model_type, or a model_file naming custom Python code (mlx_lm would
// import it). dir names the folder in the error.
func (c *Config) CheckModelType(dir string) error {
	if c.Str("model_type") == "" {
		return fmt.Errorf("%s: config.json has no model_type", filepath.Join(dir, "config.json"))
	}
	if mf, ok := c.Plain["model_file"]; ok && mf != nil {
		return fmt.Errorf("%s: the model needs the custom Python module %v to build its architecture; mlxgo runs no model code from repositories", dir, mf)
	}
	return nil
}

// SetQuantization sets what Marshal writes as the quantization entries:
// drop removes quantization and quantization_config; then a non-nil q
// becomes quantization (and, through Marshal, quantization_config). It
// changes Obj only; Plain keeps the source's values.
func (c *Config) SetQuantization(q *pyjson.Object, drop bool) {
	if drop {
		c.Obj.Delete("quantization")
		c.Obj.Delete("quantization_config")
	}
	if q != nil {
		c.Obj.Set("quantization", q)
	}
}

// Marshal writes the config as mlx_lm's save_config: _name_or_path and
// vision_config dropped, quantization_config a copy of quantization, keys
// sorted at the top level only, json.dump(indent=4).
func (c *Config) Marshal() ([]byte, error) {
	o := c.Obj
	o.Delete("_name_or_path")
	o.Delete("vision_config")
	if q, ok := o.Get("quantization"); ok {
		o.Set("quantization_config", q)
	}
	keys := append([]string(nil), o.Keys...)
	sort.Strings(keys)
	return pyjson.Marshal(&pyjson.Object{Keys: keys, Values: o.Values}, pyjson.Options{Indent: 4})
}
