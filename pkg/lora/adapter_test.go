package lora

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const fixtures = "../../testdata/lora"

func TestLoadMLXAdapters(t *testing.T) {
	for _, kind := range []string{"lora", "dora"} {
		a, err := LoadAdapter(filepath.Join(fixtures, kind))
		if err != nil {
			t.Fatal(err)
		}
		if a.FineTuneType != kind || a.NumLayers != 2 || a.Parameters.Rank != 4 || a.Parameters.Scale != 2 {
			t.Errorf("%s: %+v", kind, a)
		}
		if mods := a.Modules(); len(mods) != 14 || mods[0] != "model.layers.0.mlp.down_proj" {
			t.Errorf("%s: modules %v", kind, mods)
		}
		q := a.Tensors["model.layers.1.self_attn.q_proj.lora_a"]
		if !slices.Equal(q.Shape, []int{64, 4}) || len(q.Data) != 256 {
			t.Errorf("%s: q_proj.lora_a %v", kind, q.Shape)
		}
		_, hasM := a.Tensors["model.layers.1.self_attn.q_proj.m"]
		if hasM != (kind == "dora") {
			t.Errorf("%s: has m = %v", kind, hasM)
		}
	}
}

// The PEFT fixture is the exact transpose of the mlx one (see testdata/lora/peft/README.md).
func TestImportPEFTEqualsMLX(t *testing.T) {
	mlx, err := LoadAdapter(filepath.Join(fixtures, "lora"))
	if err != nil {
		t.Fatal(err)
	}
	peft, err := LoadAdapter(filepath.Join(fixtures, "peft"))
	if err != nil {
		t.Fatal(err)
	}
	if peft.Source != "peft" || peft.Parameters.Scale != mlx.Parameters.Scale || peft.Parameters.Rank != 4 || peft.NumLayers != 2 {
		t.Fatalf("peft settings %+v, mlx %+v", peft.Parameters, mlx.Parameters)
	}
	if len(peft.Tensors) != len(mlx.Tensors) {
		t.Fatalf("peft has %d tensors, mlx %d", len(peft.Tensors), len(mlx.Tensors))
	}
	for name, want := range mlx.Tensors {
		got, ok := peft.Tensors[name]
		if !ok {
			t.Fatalf("peft import lacks %s", name)
		}
		if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Data, want.Data) {
			t.Fatalf("%s: peft %v differs from mlx %v", name, got.Shape, want.Shape)
		}
	}
}

func TestSaveTensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadAdapter(filepath.Join(fixtures, "dora"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(fixtures, "dora", "adapter_config.json"))
	os.WriteFile(filepath.Join(dir, "adapter_config.json"), cfg, 0o644)
	if err := SaveTensors(filepath.Join(dir, AdapterFile), a.Tensors); err != nil {
		t.Fatal(err)
	}
	b, err := LoadAdapter(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range a.Tensors {
		if !slices.Equal(b.Tensors[name].Data, want.Data) {
			t.Fatalf("%s changed in the round trip", name)
		}
	}
	if CheckpointName(100) != "0000100_adapters.safetensors" {
		t.Errorf("checkpoint name %q", CheckpointName(100))
	}
}

func TestBadAdapters(t *testing.T) {
	write := func(dir, cfg string, tensors map[string]Tensor, file string) string {
		os.MkdirAll(dir, 0o755)
		if cfg != "" {
			os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(cfg), 0o644)
		}
		if tensors != nil {
			if err := SaveTensors(filepath.Join(dir, file), tensors); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	root := t.TempDir()
	okCfg := `{"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": {"rank": 4, "scale": 2.0, "dropout": 0.0}}`
	a4 := Tensor{Shape: []int{8, 4}, Data: make([]float32, 32)}
	b4 := Tensor{Shape: []int{4, 8}, Data: make([]float32, 32)}
	b3 := Tensor{Shape: []int{3, 8}, Data: make([]float32, 24)}
	cases := []struct {
		dir  string
		want string
	}{
		{write(filepath.Join(root, "noconfig"), "", nil, ""), "no adapter_config.json"},
		{write(filepath.Join(root, "noweights"), okCfg, nil, ""), "adapters.safetensors not found"},
		{write(filepath.Join(root, "badname"), okCfg, map[string]Tensor{"x.weight": a4}, AdapterFile), `"x.weight" is not an adapter weight`},
		{write(filepath.Join(root, "lonely"), okCfg, map[string]Tensor{"p.lora_a": a4}, AdapterFile), "only one of lora_a and lora_b"},
		{write(filepath.Join(root, "rank"), okCfg, map[string]Tensor{"p.lora_a": a4, "p.lora_b": b3}, AdapterFile), "disagree on the rank"},
		{write(filepath.Join(root, "type"), `{"fine_tune_type": "qlora", "num_layers": 1, "lora_parameters": {}}`, map[string]Tensor{"p.lora_a": a4, "p.lora_b": b4}, AdapterFile), `fine_tune_type "qlora"`},
		{write(filepath.Join(root, "fifo"), `{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "fan_in_fan_out": true}`, nil, ""), "fan_in_fan_out"},
		{write(filepath.Join(root, "ia3"), `{"peft_type": "IA3"}`, nil, ""), "only LORA"},
	}
	for _, c := range cases {
		_, err := LoadAdapter(c.dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", filepath.Base(c.dir), err, c.want)
		}
	}
}
