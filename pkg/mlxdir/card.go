package mlxdir

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mlxgo/mlxgo/pkg/hub"
)

// yamlBlock is huggingface_hub's REGEX_YAML_BLOCK: the metadata block at the
// start of a card.
var yamlBlock = regexp.MustCompile(`^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))`)

// Card is the README.md for a model written from repoID's files: for a
// local source (repoID "") mlx_lm's template card; for a hub source its
// own card's metadata (as mlx_lm's ModelCard.load(repo)) with
// library_name, pipeline_tag, the mlx tag and base_model set, and the text
// emptied. When the source card cannot be fetched or read, the template
// with base_model is used. c fetches the card; nil means a hub.NewClient
// that does not retry (the card is optional: do not wait long for it).
func Card(ctx context.Context, c *hub.Client, repoID string) string {
	if repoID == "" {
		return TemplateCard("")
	}
	if c == nil {
		c = hub.NewClient()
		c.Retry.Max = 1
	}
	path, err := c.DownloadFile(ctx, repoID, "README.md", "")
	if err != nil {
		return TemplateCard(repoID)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return TemplateCard(repoID)
	}
	card, err := SourceCard(data, repoID)
	if err != nil {
		return TemplateCard(repoID)
	}
	return card
}

// SourceCard rewrites a source card's metadata the way mlx_lm's
// create_model_card does: keys keep their order, null values are dropped,
// new keys come after in ModelCardData's field order (base_model,
// library_name, pipeline_tag, tags). The YAML is re-emitted with PyYAML's
// block style (2-space indent, list items under their key); quoting and
// line folding may differ from PyYAML's.
func SourceCard(readme []byte, repoID string) (string, error) {
	var doc yaml.Node
	if m := yamlBlock.FindSubmatch(readme); m != nil {
		if err := yaml.Unmarshal(m[2], &doc); err != nil {
			return "", err
		}
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root == nil || root.Kind != yaml.MappingNode {
		if root != nil && !(root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			return "", fmt.Errorf("card metadata is not a mapping")
		}
		root = &yaml.Node{Kind: yaml.MappingNode}
	}
	// Drop null values (CardData.to_dict).
	var kept []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if v := root.Content[i+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue
		}
		kept = append(kept, root.Content[i], root.Content[i+1])
	}
	root.Content = kept
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	set := func(key string, v *yaml.Node) {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key {
				root.Content[i+1] = v
				return
			}
		}
		root.Content = append(root.Content, str(key), v)
	}
	get := func(key string) *yaml.Node {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == key {
				return root.Content[i+1]
			}
		}
		return nil
	}
	set("base_model", str(repoID))
	set("library_name", str("mlx"))
	set("pipeline_tag", str("text-generation"))
	tags := get("tags")
	switch {
	case tags == nil:
		tags = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{str("mlx")}}
	case tags.Kind == yaml.ScalarNode:
		tags = &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{tags}}
	}
	if tags.Kind == yaml.SequenceNode {
		has := false
		for _, t := range tags.Content {
			has = has || t.Value == "mlx"
		}
		if !has {
			tags.Content = append(tags.Content, str("mlx"))
		}
		tags.Style = 0 // block style, as PyYAML dumps
	}
	set("tags", tags)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(root); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return "---\n" + strings.TrimSpace(b.String()) + "\n---\n", nil
}

// TemplateCard is the README.md mlx_lm's create_model_card writes when
// there is no source card to start from: for a local source (repoID "")
// huggingface_hub's template (language: en), for a hub source base_model;
// then library_name mlx, pipeline_tag text-generation, tag mlx, and no
// text.
func TemplateCard(repoID string) string {
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

// Upload sends the finished folder dir to the hub repo as mlx_lm's
// upload_to_hub: README.md rewritten into the usage card (its provenance
// line naming mlxgo version), the repo created if needed, the folder
// uploaded (hub.Client.UploadModel). c nil means a hub.NewClient drawing
// its progress on progress; version "" means "dev".
func Upload(ctx context.Context, c *hub.Client, progress io.Writer, dir, repo, version string) error {
	if c == nil {
		c = hub.NewClient()
		c.Progress = progress
	}
	if version == "" {
		version = "dev"
	}
	if _, err := c.UploadModel(ctx, dir, repo, "mlxgo", version); err != nil {
		return fmt.Errorf("upload to %s: %w", repo, err)
	}
	return nil
}
