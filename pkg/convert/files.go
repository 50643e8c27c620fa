package convert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

// config is config.json twice: in its key order (for writing it back as
// mlx_lm does) and as plain Go values (for the sanitize plans and
// predicates).
type config struct {
	obj   *pyjson.Object
	plain map[string]any
}

// readConfig reads config.json as mlx_lm's load_config does: the
// generation_config.json eos_token_id, when present and truthy, replaces
// the config's.
func readConfig(dir string) (*config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: no config.json (is this a Hugging Face model folder?)", dir)
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

func (c *config) str(key string) string {
	s, _ := c.plain[key].(string)
	return s
}

// sourceDtype is the dtype mlx_lm's convert casts to when --dtype is not
// given: config torch_dtype, else text_config.dtype; "" when neither names
// one of float16, bfloat16, float32.
func (c *config) sourceDtype() string {
	d, _ := c.plain["torch_dtype"].(string)
	if _, present := c.plain["torch_dtype"]; !present || c.plain["torch_dtype"] == nil {
		if tc, ok := c.plain["text_config"].(map[string]any); ok && len(tc) > 0 {
			d, _ = tc["dtype"].(string)
		}
	}
	return d
}

// marshalConfig writes the config as mlx_lm's save_config: _name_or_path and
// vision_config dropped, quantization_config a copy of quantization, keys
// sorted at the top level only, json.dump(indent=4).
func (c *config) marshal() ([]byte, error) {
	o := c.obj
	o.Delete("_name_or_path")
	o.Delete("vision_config")
	if q, ok := o.Get("quantization"); ok {
		o.Set("quantization_config", q)
	}
	keys := append([]string(nil), o.Keys...)
	sort.Strings(keys)
	sorted := &pyjson.Object{Keys: keys, Values: o.Values}
	return pyjson.Marshal(sorted, pyjson.Options{Indent: 4})
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

// copySideFiles copies the tokenizer files and mlx_lm's extra files from
// src to dst (top level only, symlinks followed, as shutil.copy).
func copySideFiles(src, dst string) ([]string, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	var copied []string
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
			return nil, err
		}
		copied = append(copied, name)
	}
	return copied, nil
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

// modelCard is the README.md mlx_lm's create_model_card writes when there
// is no source card to start from: for a local source huggingface_hub's
// template (language: en), for a hub source base_model; then library_name
// mlx, pipeline_tag text-generation, tag mlx, and no text.
func modelCard(repoID string) string {
	var b strings.Builder
	b.WriteString("---\n")
	if repoID == "" {
		b.WriteString("language: en\n")
	} else {
		b.WriteString("base_model: " + yamlScalar(repoID) + "\n")
	}
	b.WriteString("library_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n---\n")
	return b.String()
}

// yamlScalar quotes s when PyYAML would not write it plain.
func yamlScalar(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r)) {
			plain = false
		}
	}
	if plain && strings.ContainsAny(s[:1], "-.") {
		plain = false
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// uploadCard is the README.md mlx_lm's upload_to_hub writes before
// uploading: the same YAML block and a usage text.
func uploadCard(card []byte, uploadRepo, baseModel, version string) []byte {
	head := card
	if i := bytes.Index(card[3:], []byte("\n---\n")); bytes.HasPrefix(card, []byte("---\n")) && i >= 0 {
		head = card[:3+i+5]
	}
	var b strings.Builder
	b.Write(head)
	fmt.Fprintf(&b, "\n# %s\n", uploadRepo)
	if baseModel != "" {
		fmt.Fprintf(&b, "\nThis model [%s](https://huggingface.co/%s) was\n", uploadRepo, uploadRepo)
		fmt.Fprintf(&b, "converted to MLX format from [%s](https://huggingface.co/%s)\n", baseModel, baseModel)
		fmt.Fprintf(&b, "using mlxgo version **%s**.\n\n", version)
	} else {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "## Use with mlx\n\n```bash\npip install mlx-lm\n```\n\n```python\nfrom mlx_lm import load, generate\n\n"+
		"model, tokenizer = load(%q)\n\nprompt = \"hello\"\n\nif tokenizer.chat_template is not None:\n"+
		"    messages = [{\"role\": \"user\", \"content\": prompt}]\n    prompt = tokenizer.apply_chat_template(\n"+
		"        messages, add_generation_prompt=True, return_dict=False,\n    )\n\n"+
		"response = generate(model, tokenizer, prompt=prompt, verbose=True)\n```\n", uploadRepo)
	return []byte(b.String())
}

// isLocal reports whether path names an existing file or folder (mlx_lm's
// Path(path).exists()); anything else is a hub repo id.
func isLocal(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
