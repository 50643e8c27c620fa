package hub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// frontMatterRe is huggingface_hub's REGEX_YAML_BLOCK.
var frontMatterRe = regexp.MustCompile(`^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))`)

// RewriteModelCard returns README.md content rewritten like mlx_lm's
// upload_to_hub: the YAML front matter is kept, the body becomes the "Use
// with mlx" card for uploadRepo, with a provenance paragraph when the front
// matter names a base_model. tool and version name what converted it
// (mlx_lm writes "mlx-lm" and its version).
func RewriteModelCard(readme []byte, uploadRepo, tool, version string) []byte {
	yaml := "{}"
	if m := frontMatterRe.FindSubmatch(readme); m != nil {
		yaml = strings.TrimSpace(string(m[2]))
		if yaml == "" {
			yaml = "{}"
		}
	}
	provenance := ""
	if base := baseModel(yaml); base != "" {
		provenance = fmt.Sprintf("\nThis model [%[1]s](https://huggingface.co/%[1]s) was\n"+
			"converted to MLX format from [%[2]s](https://huggingface.co/%[2]s)\n"+
			"using %[3]s version **%[4]s**.\n", uploadRepo, base, tool, version)
	}
	body := "\n# " + uploadRepo + "\n" + provenance + `
## Use with mlx

` + "```bash" + `
pip install mlx-lm
` + "```" + `

` + "```python" + `
from mlx_lm import load, generate

model, tokenizer = load("` + uploadRepo + `")

prompt = "hello"

if tokenizer.chat_template is not None:
    messages = [{"role": "user", "content": prompt}]
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_dict=False,
    )

response = generate(model, tokenizer, prompt=prompt, verbose=True)
` + "```" + "\n"
	return []byte("---\n" + yaml + "\n---\n" + body)
}

// baseModel reads base_model from a front matter block: a scalar, or the
// first item of a list.
func baseModel(yaml string) string {
	lines := strings.Split(yaml, "\n")
	for i, l := range lines {
		v, ok := strings.CutPrefix(l, "base_model:")
		if !ok {
			continue
		}
		if v = strings.TrimSpace(v); v != "" {
			return strings.Trim(v, `"'`)
		}
		if i+1 < len(lines) {
			if item, ok := strings.CutPrefix(strings.TrimSpace(lines[i+1]), "- "); ok {
				return strings.Trim(strings.TrimSpace(item), `"'`)
			}
		}
	}
	return ""
}

// UploadModel does what mlx_lm's upload_to_hub does for `convert
// --upload-repo` and `fuse --upload-repo`: rewrite dir/README.md with
// RewriteModelCard (when it exists), create the repo if needed and upload
// the folder. It returns the commit.
func (c *Client) UploadModel(ctx context.Context, dir, repoID, tool, version string) (*CommitInfo, error) {
	if err := ValidateRepoID(repoID); err != nil {
		return nil, err
	}
	card := filepath.Join(dir, "README.md")
	b, err := os.ReadFile(card)
	switch {
	case err == nil:
		if err := writeFileAtomic(card, RewriteModelCard(b, repoID, tool, version)); err != nil {
			return nil, fmt.Errorf("upload: model card: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("upload: model card: %w", err)
	}
	return c.UploadFolder(ctx, repoID, dir, UploadOptions{Message: "Upload folder using mlxgo"})
}
