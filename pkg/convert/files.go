package convert

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/mlxdir"
)

// sourceDtype is the dtype mlx_lm's convert casts to when --dtype is not
// given: config torch_dtype, else text_config.dtype; "" when neither names
// one of float16, bfloat16, float32.
func sourceDtype(c *mlxdir.Config) string {
	d, _ := c.Plain["torch_dtype"].(string)
	if _, present := c.Plain["torch_dtype"]; !present || c.Plain["torch_dtype"] == nil {
		if tc, ok := c.Plain["text_config"].(map[string]any); ok && len(tc) > 0 {
			d, _ = tc["dtype"].(string)
		}
	}
	return d
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
