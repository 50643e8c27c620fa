package hub

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

// The bodies below are what mlx_lm's upload_to_hub (textwrap.dedent of its
// f-string) produces, printed by Python 3 for the same arguments.
const wantCardBody = "\n# mlx-community/tiny-4bit\n\nThis model [mlx-community/tiny-4bit](https://huggingface.co/mlx-community/tiny-4bit) was\nconverted to MLX format from [Qwen/tiny](https://huggingface.co/Qwen/tiny)\nusing mlx-lm version **0.31.3**.\n\n## Use with mlx\n\n```bash\npip install mlx-lm\n```\n\n```python\nfrom mlx_lm import load, generate\n\nmodel, tokenizer = load(\"mlx-community/tiny-4bit\")\n\nprompt = \"hello\"\n\nif tokenizer.chat_template is not None:\n    messages = [{\"role\": \"user\", \"content\": prompt}]\n    prompt = tokenizer.apply_chat_template(\n        messages, add_generation_prompt=True, return_dict=False,\n    )\n\nresponse = generate(model, tokenizer, prompt=prompt, verbose=True)\n```\n"

func TestRewriteModelCardMatchesMlxLm(t *testing.T) {
	readme := "---\nlicense: apache-2.0\nbase_model: Qwen/tiny\ntags:\n- mlx\n---\n\n# old body\n"
	got := string(RewriteModelCard([]byte(readme), "mlx-community/tiny-4bit", "mlx-lm", "0.31.3"))
	want := "---\nlicense: apache-2.0\nbase_model: Qwen/tiny\ntags:\n- mlx\n---\n" + wantCardBody
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	list := "---\nbase_model:\n- Qwen/tiny\n---\nx"
	if got := string(RewriteModelCard([]byte(list), "mlx-community/tiny-4bit", "mlx-lm", "0.31.3")); got != "---\nbase_model:\n- Qwen/tiny\n---\n"+wantCardBody {
		t.Errorf("list base_model: %q", got)
	}
	// No base model: no provenance paragraph (mlx_lm: "\n# repo\n\n## Use with mlx\n...").
	got = string(RewriteModelCard([]byte("no front matter"), "me/x", "mlxgo", "dev"))
	if want := "---\n{}\n---\n\n# me/x\n\n## Use with mlx\n"; got[:len(want)] != want {
		t.Errorf("no front matter: %q", got)
	}
}

func TestUploadModelRewritesTheCardAndUploads(t *testing.T) {
	s := hubtest.New(t)
	s.Token = "hf_w"
	c := testClient(t, s)
	c.Token = "hf_w"
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("---\nbase_model: Qwen/tiny\n---\nold"), 0o644)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "model.safetensors"), randBytes(5000, 3), 0o644)
	info, err := c.UploadModel(context.Background(), dir, "mlx-community/tiny-4bit", "mlx-lm", "0.31.3")
	if err != nil {
		t.Fatal(err)
	}
	files := s.Files("mlx-community/tiny-4bit", info.OID)
	if string(files["README.md"]) != "---\nbase_model: Qwen/tiny\n---\n"+wantCardBody || len(files["model.safetensors"]) != 5000 {
		t.Errorf("uploaded README %q", files["README.md"])
	}
}
