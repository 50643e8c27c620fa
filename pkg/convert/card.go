package convert

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mlxgo/mlxgo/pkg/hub"
)

// yamlBlock is huggingface_hub's REGEX_YAML_BLOCK: the metadata block at the
// start of a card.
var yamlBlock = regexp.MustCompile(`^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))`)

// cardFor makes the README.md for the output. A local source gets mlx_lm's
// template card; a hub source gets its own card's metadata (as mlx_lm's
// ModelCard.load(repo)) with library_name, pipeline_tag, the mlx tag and
// base_model set, and the text emptied. When the source card cannot be
// fetched, the template with base_model is used.
func cardFor(ctx context.Context, o Options, repoID string) string {
	if repoID == "" {
		return modelCard("")
	}
	c := o.Hub
	if c == nil {
		c = hub.NewClient()
		c.Retry.Max = 1 // the card is optional: do not wait long for it
	}
	path, err := c.DownloadFile(ctx, repoID, "README.md", "")
	if err != nil {
		return modelCard(repoID)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return modelCard(repoID)
	}
	card, err := sourceCard(data, repoID)
	if err != nil {
		return modelCard(repoID)
	}
	return card
}

// sourceCard rewrites a source card's metadata the way mlx_lm's
// create_model_card does: keys keep their order, null values are dropped,
// new keys come after in ModelCardData's field order (base_model,
// library_name, pipeline_tag, tags). The YAML is re-emitted with PyYAML's
// block style (2-space indent, list items under their key); quoting and
// line folding may differ from PyYAML's.
func sourceCard(readme []byte, repoID string) (string, error) {
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
