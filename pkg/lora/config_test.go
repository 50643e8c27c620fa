package lora

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/pyjson"
)

func TestMergePrecedence(t *testing.T) {
	dir := t.TempDir()
	y := writeFile(t, dir, "c.yaml", `
model: from-yaml
batch_size: 2
learning_rate: 2e-5
iters: 50
lora_parameters:
  rank: 4
  alpha: 16
lr_schedule:
  name: cosine_decay
  warmup: 10
  arguments: [1e-5, 100, 1e-7]
extra_key: kept
`)
	cli := pyjson.NewObject()
	cli.Set("batch_size", pyjson.Int("8"))
	cli.Set("train", true)
	c, err := MergeConfig(cli, y)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "from-yaml" || c.BatchSize != 8 || c.LearningRate != 2e-5 || c.Iters != 50 || c.NumLayers != 16 {
		t.Errorf("precedence wrong: %+v", c)
	}
	if c.LoRAParameters.Rank != 4 || c.LoRAParameters.Scale != 4 || c.LoRAParameters.Dropout != 0 {
		t.Errorf("lora_parameters %+v, want rank 4, scale 16/4, dropout 0", c.LoRAParameters)
	}
	if len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "alpha 16 to scale 4") {
		t.Errorf("notes %q", c.Notes)
	}
	if c.LRSchedule == nil || c.LRSchedule.Warmup != 10 || len(c.LRSchedule.Arguments) != 3 {
		t.Errorf("lr_schedule %+v", c.LRSchedule)
	}
	if err := WriteAdapterConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	s := string(data)
	for _, want := range []string{
		"{\n    \"adapter_path\": \"adapters\",\n    \"batch_size\": 8,\n",
		"\"extra_key\": \"kept\"",
		"\"learning_rate\": 2e-05,",
		"\"lora_parameters\": {\n        \"rank\": 4,\n        \"dropout\": 0.0,\n        \"scale\": 4.0\n    },",
		"\"resume_adapter_file\": null,",
		"\"config\": \"" + y + "\"",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("adapter_config.json lacks %q:\n%s", want, s)
		}
	}
}

func TestMergeDefaultsAndErrors(t *testing.T) {
	cli := pyjson.NewObject()
	cli.Set("test", true)
	c, err := MergeConfig(cli, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "Qwen/Qwen3-0.6b" || c.LoRAParameters.Scale != 20 || c.LoRAParameters.Rank != 8 || c.Optimizer != "adam" || c.MaxSeqLength != 2048 {
		t.Errorf("defaults %+v", c)
	}
	bad := []struct {
		key  string
		val  any
		want string
	}{
		{"fine_tune_type", "qlora", "fine_tune_type \"qlora\""},
		{"optimizer", "rmsprop", "optimizer \"rmsprop\""},
		{"batch_size", pyjson.Int("0"), "batch_size must be at least 1"},
		{"num_layers", pyjson.Int("-2"), "num_layers"},
		{"test", false, "at least one of --train or --test"},
	}
	for _, b := range bad {
		cli := pyjson.NewObject()
		cli.Set("train", true)
		cli.Set(b.key, b.val)
		if b.key == "test" {
			cli.Set("train", false)
		}
		if _, err := MergeConfig(cli, ""); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s=%v: error %v, want %q", b.key, b.val, err, b.want)
		}
	}
	dir := t.TempDir()
	for body, want := range map[string]string{
		"a: [1,":                      "c.yaml",
		"- 1\n- 2\n":                  "expected a mapping",
		"lora_parameters: 3\n":        "lora_parameters must be a mapping",
		"lr_schedule: {name: nope}\n": "unknown name",
	} {
		p := writeFile(t, dir, "c.yaml", body)
		cli := pyjson.NewObject()
		cli.Set("train", true)
		if _, err := MergeConfig(cli, p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("yaml %q: error %v, want %q", body, err, want)
		}
	}
}
