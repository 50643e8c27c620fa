package gguf

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
)

// SourceTensor names one tensor of the checkpoint being exported.
type SourceTensor struct {
	Name  string // checkpoint key, e.g. model.layers.0.self_attn.q_proj.weight
	Shape []int  // row-major: [out, in] for a Linear, [E, out, in] for MLX stacked experts
	DType string // safetensors dtype: F32, F16 or BF16 (anything else is refused)
}

// TensorSource is the checkpoint Export reads: it lists the tensors and
// reads one at a time, widened to float32 (row-major), when Export asks.
// Export holds at most one source tensor in memory at a time. F16/BF16
// storage can be widened with kernels.HalfToF32Slice.
type TensorSource interface {
	Tensors() []SourceTensor
	ReadFloat32(name string) ([]float32, error)
}

// plan is one output tensor: its table entry and where its data comes from.
type plan struct {
	info    TensorInfo
	block   int
	sources []string // one tensor, or E per-expert tensors stacked on dim 0
	permute int      // q/k row permutation with this many heads (0: none)
	plusOne bool     // gemma norm: w + 1
	values  []float32
}

// Export writes the checkpoint as a GGUF file at dst (through a temporary
// file renamed into place; nothing is left behind on error).
//
// config is the model's config.json; tokenizerDir holds tokenizer.json
// (required), tokenizer_config.json and chat_template.jinja (optional);
// outType is the type of the 2-D weights: F32, F16, BF16, Q8_0 or Q4_0.
// As in llama.cpp's converter, 1-D tensors, norms, biases and the MoE router
// stay F32, and a weight whose rows are not a multiple of 32 falls back to
// F16 under Q8_0/Q4_0. Under Q4_0 the output layer (or, when the output is
// tied to it, the embedding) is written Q8_0, where llama-quantize would use
// Q6_K, which this package does not write.
//
// Supported model_type values: see SupportedModelTypes. A quantized checkpoint
// (config "quantization", or integer tensors) is refused: dequantize first.
func Export(dst string, config []byte, tokenizerDir string, src TensorSource, outType Type) error {
	switch outType {
	case F32, F16, BF16, Q8_0, Q4_0:
	default:
		return fmt.Errorf("gguf: output type %v is not supported (want F32, F16, BF16, Q8_0 or Q4_0)", outType)
	}
	c, spec, err := parseConfig(config)
	if err != nil {
		return err
	}
	plans, err := planTensors(c, spec, src.Tensors(), outType)
	if err != nil {
		return err
	}
	nVocab := 0
	for _, p := range plans {
		if p.info.Name == "token_embd.weight" {
			nVocab = p.info.Shape[0]
		}
	}
	if nVocab == 0 {
		return fmt.Errorf("gguf: checkpoint has no model.embed_tokens.weight")
	}
	for _, p := range plans {
		if p.info.Name == "output.weight" && p.info.Shape[0] != nVocab {
			return fmt.Errorf("gguf: tensor %s has %d rows but the embedding has %d: llama.cpp needs one vocabulary size", p.sources[0], p.info.Shape[0], nVocab)
		}
	}
	tok, err := tokenizerKVs(tokenizerDir, c, spec, nVocab)
	if err != nil {
		return err
	}
	name := filepath.Base(filepath.Clean(tokenizerDir))
	kvs := []KV{
		{"general.architecture", spec.gguf},
		{"general.type", "model"},
		{"general.name", name},
	}
	kvs = append(kvs, modelKVs(c, spec, nVocab)...)
	kvs = append(kvs, KV{"general.file_type", outType.FileType()}, KV{"general.quantization_version", uint32(QuantizationVersion)})
	kvs = append(kvs, tok...)

	infos := make([]TensorInfo, len(plans))
	for i, p := range plans {
		infos[i] = p.info
	}
	var buf []byte
	return WriteFile(dst, kvs, infos, func(i int, w io.Writer) error {
		p := plans[i]
		if p.values != nil {
			b, err := Encode(buf[:0], p.info.Type, p.values)
			if err != nil {
				return err
			}
			_, err = w.Write(b)
			return err
		}
		per := p.info.NumElements() / len(p.sources)
		for _, s := range p.sources {
			x, err := src.ReadFloat32(s)
			if err != nil {
				return fmt.Errorf("reading %s: %w", s, err)
			}
			if len(x) != per {
				return fmt.Errorf("%s: source gave %d values, its shape needs %d", s, len(x), per)
			}
			if p.permute > 0 {
				rows := p.info.Shape[0]
				x = permuteRows(x, p.permute, rows, per/rows)
			}
			if p.plusOne {
				y := make([]float32, len(x))
				for j, v := range x {
					y[j] = v + 1
				}
				x = y
			}
			b, err := Encode(buf[:0], p.info.Type, x)
			if err != nil {
				return err
			}
			buf = b
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
}

func planTensors(c *hfConfig, spec archSpec, tensors []SourceTensor, outType Type) ([]*plan, error) {
	byName := map[string]*plan{}
	type expertPart struct {
		idx  int
		name string
		sh   []int
	}
	experts := map[string][]expertPart{}
	var plans []*plan
	for _, t := range tensors {
		if strings.HasSuffix(t.Name, ".scales") || strings.HasSuffix(t.Name, ".biases") {
			return nil, fmt.Errorf("gguf: tensor %s is MLX quantization data: GGUF export needs float weights; dequantize first (mlxgo fuse --dequantize)", t.Name)
		}
		switch t.DType {
		case "F32", "F16", "BF16":
		default:
			return nil, fmt.Errorf("gguf: tensor %s has dtype %s: GGUF export reads F32, F16 or BF16 weights (a quantized model must be dequantized first: mlxgo fuse --dequantize)", t.Name, t.DType)
		}
		m, err := mapName(spec, t.Name)
		if err != nil {
			return nil, err
		}
		if m.skip {
			continue
		}
		if m.block >= c.NumHiddenLayers {
			return nil, fmt.Errorf("gguf: tensor %s is for layer %d but config.json has num_hidden_layers %d", t.Name, m.block, c.NumHiddenLayers)
		}
		if err := checkShape(c, t); err != nil {
			return nil, err
		}
		if m.expert >= 0 {
			experts[m.name] = append(experts[m.name], expertPart{m.expert, t.Name, t.Shape})
			continue
		}
		if byName[m.name] != nil {
			return nil, fmt.Errorf("gguf: tensors %s and %s both map to %s", byName[m.name].sources[0], t.Name, m.name)
		}
		p := &plan{info: TensorInfo{Name: m.name, Shape: append([]int(nil), t.Shape...)}, block: m.block, sources: []string{t.Name}}
		if spec.permuteQK {
			switch {
			case strings.HasSuffix(t.Name, "self_attn.q_proj.weight"), strings.HasSuffix(t.Name, "self_attn.q_proj.bias"):
				p.permute = c.NumAttentionHeads
			case strings.HasSuffix(t.Name, "self_attn.k_proj.weight"), strings.HasSuffix(t.Name, "self_attn.k_proj.bias"):
				p.permute = c.NumKeyValueHeads
			}
			if p.permute > 0 && (t.Shape[0]%p.permute != 0 || (t.Shape[0]/p.permute)%2 != 0) {
				return nil, fmt.Errorf("gguf: tensor %s has %d rows, not %d heads of an even head size", t.Name, t.Shape[0], p.permute)
			}
		}
		p.plusOne = spec.normPlusOne && strings.HasSuffix(t.Name, "norm.weight")
		byName[m.name] = p
		plans = append(plans, p)
	}
	for name, parts := range experts {
		n := c.experts()
		if len(parts) != n {
			return nil, fmt.Errorf("gguf: %s: found %d per-expert tensors, config.json has %d experts", name, len(parts), n)
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i].idx < parts[j].idx })
		p := &plan{block: -1}
		for i, e := range parts {
			if e.idx != i {
				return nil, fmt.Errorf("gguf: %s: expert %d is missing", name, i)
			}
			if len(e.sh) != 2 || !equalInts(e.sh, parts[0].sh) {
				return nil, fmt.Errorf("gguf: tensor %s has shape %v, expert 0 has %v", e.name, e.sh, parts[0].sh)
			}
			p.sources = append(p.sources, e.name)
		}
		m, _ := mapName(spec, parts[0].name)
		p.block = m.block
		p.info = TensorInfo{Name: name, Shape: []int{n, parts[0].sh[0], parts[0].sh[1]}}
		plans = append(plans, p)
	}
	if rt, _ := ropeType(c.RopeScaling); rt == "llama3" && spec.gguf == "llama" {
		v := llama3RopeFactors(c)
		plans = append(plans, &plan{info: TensorInfo{Name: "rope_freqs.weight", Shape: []int{len(v)}}, block: -1, values: v})
	}
	tied := true
	for _, p := range plans {
		if p.info.Name == "output.weight" {
			tied = false
		}
	}
	for _, p := range plans {
		p.info.Type = tensorType(p.info, outType)
		// with a tied output layer the embedding is the output layer
		if outType == Q4_0 && tied && p.info.Name == "token_embd.weight" && p.info.Type == Q4_0 {
			p.info.Type = Q8_0
		}
	}
	// token_embd and other global tensors first, then the blocks in order,
	// output_norm and output last (as llama.cpp's converter usually leaves them).
	rank := func(p *plan) int {
		switch {
		case p.block >= 0:
			return 1
		case p.info.Name == "output_norm.weight":
			return 2
		case p.info.Name == "output.weight":
			return 3
		}
		return 0
	}
	sort.SliceStable(plans, func(i, j int) bool {
		a, b := plans[i], plans[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.block != b.block {
			return a.block < b.block
		}
		return a.info.Name < b.info.Name
	})
	return plans, nil
}

// tensorType applies llama.cpp's converter rules for which tensors keep F32.
func tensorType(t TensorInfo, out Type) Type {
	name := t.Name
	if len(t.Shape) <= 1 || strings.HasSuffix(name, "_norm.weight") || !strings.HasSuffix(name, ".weight") ||
		strings.HasSuffix(name, ".ffn_gate_inp.weight") {
		return F32
	}
	if out == Q8_0 || out == Q4_0 {
		if t.Shape[len(t.Shape)-1]%QK != 0 {
			return F16
		}
		if out == Q4_0 && name == "output.weight" {
			return Q8_0
		}
	}
	return out
}

// checkShape checks the shapes config.json fixes, so an adapter or checkpoint
// for another model is refused before anything is written.
func checkShape(c *hfConfig, t SourceTensor) error {
	d, dh := c.HiddenSize, c.headDim()
	var want []int
	n := t.Name
	switch {
	case strings.HasSuffix(n, "embed_tokens.weight"):
		if len(t.Shape) != 2 || t.Shape[1] != d {
			return fmt.Errorf("gguf: tensor %s has shape %v, config.json (hidden_size %d) expects [V, %d]", n, t.Shape, d, d)
		}
		return nil
	case strings.HasSuffix(n, "self_attn.q_proj.weight"):
		want = []int{c.NumAttentionHeads * dh, d}
	case strings.HasSuffix(n, "self_attn.k_proj.weight"), strings.HasSuffix(n, "self_attn.v_proj.weight"):
		want = []int{c.NumKeyValueHeads * dh, d}
	case strings.HasSuffix(n, "self_attn.o_proj.weight"):
		want = []int{d, c.NumAttentionHeads * dh}
	case strings.HasSuffix(n, "input_layernorm.weight"), n == "model.norm.weight" || n == "language_model.model.norm.weight":
		want = []int{d}
	case (strings.HasSuffix(n, "mlp.gate_proj.weight") || strings.HasSuffix(n, "mlp.up_proj.weight")) && !moeName(n):
		want = []int{c.IntermediateSize, d}
	case strings.HasSuffix(n, "mlp.down_proj.weight") && !moeName(n):
		want = []int{d, c.IntermediateSize}
	}
	if want != nil && !equalInts(t.Shape, want) {
		return fmt.Errorf("gguf: tensor %s has shape %v, config.json expects %v", n, t.Shape, want)
	}
	if len(t.Shape) == 0 || len(t.Shape) > 3 {
		return fmt.Errorf("gguf: tensor %s has shape %v: want 1 to 3 dimensions", n, t.Shape)
	}
	return nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func moeName(n string) bool {
	return strings.Contains(n, ".experts.") || strings.Contains(n, ".switch_mlp.")
}
