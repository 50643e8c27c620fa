package gguf

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	parser "github.com/gpustack/gguf-parser-go"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// memSource is an in-memory TensorSource that counts reads.
type memSource struct {
	list  []SourceTensor
	data  map[string][]float32
	reads map[string]int
}

func (m *memSource) Tensors() []SourceTensor { return m.list }
func (m *memSource) ReadFloat32(name string) ([]float32, error) {
	m.reads[name]++
	d, ok := m.data[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %s", name)
	}
	return append([]float32(nil), d...), nil
}

func (m *memSource) add(r *rand.Rand, name, dtype string, shape ...int) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.5)
	}
	if dtype == "BF16" { // the source holds bf16: widen as a loader would
		h := make([]uint16, n)
		kernels.F32ToHalfSlice(h, x, kernels.BF16)
		kernels.HalfToF32Slice(x, h, kernels.BF16)
	}
	m.list = append(m.list, SourceTensor{Name: name, Shape: shape, DType: dtype})
	m.data[name] = x
}

type tiny struct {
	modelType             string
	d, heads, kv, dh, ff  int
	layers, vocab         int
	experts, used         int
	mlxExperts, bias, qkn bool
	lmHead                bool
	sandwich              bool
}

func (t tiny) config() []byte {
	c := map[string]any{
		"model_type": t.modelType, "hidden_size": t.d, "num_attention_heads": t.heads,
		"num_key_value_heads": t.kv, "head_dim": t.dh, "intermediate_size": t.ff,
		"num_hidden_layers": t.layers, "vocab_size": t.vocab, "max_position_embeddings": 2048,
		"rms_norm_eps": 1e-5, "rope_theta": 500000.0, "bos_token_id": 1, "eos_token_id": []int{2, 3},
	}
	if t.experts > 0 {
		c["num_local_experts"], c["num_experts_per_tok"] = t.experts, t.used
	}
	b, _ := json.Marshal(c)
	return b
}

func (t tiny) source(seed uint64) *memSource {
	r := rand.New(rand.NewPCG(seed, 7))
	m := &memSource{data: map[string][]float32{}, reads: map[string]int{}}
	m.add(r, "model.embed_tokens.weight", "BF16", t.vocab, t.d)
	for l := 0; l < t.layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		m.add(r, p+"self_attn.q_proj.weight", "BF16", t.heads*t.dh, t.d)
		m.add(r, p+"self_attn.k_proj.weight", "BF16", t.kv*t.dh, t.d)
		m.add(r, p+"self_attn.v_proj.weight", "BF16", t.kv*t.dh, t.d)
		m.add(r, p+"self_attn.o_proj.weight", "BF16", t.d, t.heads*t.dh)
		if t.bias {
			m.add(r, p+"self_attn.q_proj.bias", "BF16", t.heads*t.dh)
			m.add(r, p+"self_attn.k_proj.bias", "BF16", t.kv*t.dh)
			m.add(r, p+"self_attn.v_proj.bias", "BF16", t.kv*t.dh)
		}
		if t.qkn {
			m.add(r, p+"self_attn.q_norm.weight", "F32", t.dh)
			m.add(r, p+"self_attn.k_norm.weight", "F32", t.dh)
		}
		m.add(r, p+"input_layernorm.weight", "F32", t.d)
		m.add(r, p+"post_attention_layernorm.weight", "F32", t.d)
		if t.sandwich {
			m.add(r, p+"pre_feedforward_layernorm.weight", "F32", t.d)
			m.add(r, p+"post_feedforward_layernorm.weight", "F32", t.d)
		}
		switch {
		case t.experts > 0 && t.mlxExperts:
			m.add(r, p+"block_sparse_moe.gate.weight", "BF16", t.experts, t.d)
			m.add(r, p+"block_sparse_moe.switch_mlp.gate_proj.weight", "BF16", t.experts, t.ff, t.d)
			m.add(r, p+"block_sparse_moe.switch_mlp.up_proj.weight", "BF16", t.experts, t.ff, t.d)
			m.add(r, p+"block_sparse_moe.switch_mlp.down_proj.weight", "BF16", t.experts, t.d, t.ff)
		case t.experts > 0:
			m.add(r, p+"block_sparse_moe.gate.weight", "BF16", t.experts, t.d)
			for e := 0; e < t.experts; e++ {
				q := fmt.Sprintf("%sblock_sparse_moe.experts.%d.", p, e)
				m.add(r, q+"w1.weight", "BF16", t.ff, t.d)
				m.add(r, q+"w2.weight", "BF16", t.d, t.ff)
				m.add(r, q+"w3.weight", "BF16", t.ff, t.d)
			}
		default:
			m.add(r, p+"mlp.gate_proj.weight", "BF16", t.ff, t.d)
			m.add(r, p+"mlp.up_proj.weight", "BF16", t.ff, t.d)
			m.add(r, p+"mlp.down_proj.weight", "BF16", t.d, t.ff)
		}
	}
	m.add(r, "model.norm.weight", "F32", t.d)
	if t.lmHead {
		m.add(r, "lm_head.weight", "BF16", t.vocab, t.d)
	}
	return m
}

// byteLevelVocab is GPT-2's bytes_to_unicode table: the vocab string of each byte.
func byteLevelVocab() []string {
	var out [256]string
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out[:]
}

// Vocabulary sizes of the test tokenizers (embeddings get a few pad rows).
const (
	byteLevelTokens = 263 // 256 bytes, 4 merges, 3 added tokens
	spmTokens       = 268 // 3 specials, 256 byte tokens, 9 pieces
)

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	must(t, err)
	must(t, os.WriteFile(path, b, 0o644))
}

// writeByteLevelTokenizer writes a small Llama-3-style tokenizer: byte-level
// BPE with every byte (ids 0-255, id = byte value), merges ab (256), Ġa
// (257), abc (258), Ġab (259), specials <|begin|> (260), <|end|> (261) and
// the user token <user> (262).
func writeByteLevelTokenizer(t *testing.T, dir string) {
	t.Helper()
	vocab := map[string]int{}
	for i, s := range byteLevelVocab() {
		vocab[s] = i
	}
	for i, s := range []string{"ab", "Ġa", "abc", "Ġab"} {
		vocab[s] = 256 + i
	}
	tj := map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 260, "content": "<|begin|>", "special": true},
			map[string]any{"id": 261, "content": "<|end|>", "special": true},
			map[string]any{"id": 262, "content": "<user>", "special": false},
		},
		"normalizer": nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "Sequence", "processors": []any{
			map[string]any{"type": "ByteLevel"},
			map[string]any{"type": "TemplateProcessing", "single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<|begin|>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}}},
		}},
		"model": map[string]any{"type": "BPE", "byte_fallback": false, "ignore_merges": true, "vocab": vocab,
			"merges": [][2]string{{"a", "b"}, {"Ġ", "a"}, {"ab", "c"}, {"Ġ", "ab"}}},
	}
	writeJSON(t, filepath.Join(dir, "tokenizer.json"), tj)
	writeJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{
		"bos_token": "<|begin|>", "eos_token": map[string]any{"content": "<|end|>"},
		"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
}

// writeSPMTokenizer writes a small SentencePiece-style BPE tokenizer (byte
// fallback, ▁ word marker), as Llama 2 / Mistral / Gemma ship: <unk> <s>
// </s> (0-2), <0x00>..<0xFF> (3-258), ▁ a b c (259-262), then the merged
// pieces bc ▁a ab ▁ab (263-266) in merge order "b c", "▁ a", "a b", "▁a b",
// and xy (267), which no merge forms. "abc" tokenizes to [a, bc]: "b c"
// outranks "a b".
func writeSPMTokenizer(t *testing.T, dir string, prepend bool) {
	t.Helper()
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := 0; b < 256; b++ {
		vocab[fmt.Sprintf("<0x%02X>", b)] = 3 + b
	}
	for i, s := range []string{"▁", "a", "b", "c", "bc", "▁a", "ab", "▁ab", "xy"} {
		vocab[s] = 259 + i
	}
	var norm any = map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}
	if prepend {
		norm = map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}}}
	}
	tj := map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<unk>", "special": true},
			map[string]any{"id": 1, "content": "<s>", "special": true},
			map[string]any{"id": 2, "content": "</s>", "special": true},
		},
		"normalizer":    norm,
		"pre_tokenizer": nil,
		"decoder":       map[string]any{"type": "Sequence", "decoders": []any{}},
		"model": map[string]any{"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "vocab": vocab,
			"merges": []string{"b c", "▁ a", "a b", "▁a b"}},
	}
	writeJSON(t, filepath.Join(dir, "tokenizer.json"), tj)
	writeJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{
		"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true, "add_eos_token": false,
		"chat_template": []any{map[string]any{"name": "default", "template": "D"}, map[string]any{"name": "tool_use", "template": "T"}}})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// parsed is the file as the independent parser (gguf-parser-go) reads it.
type parsed struct {
	f     *parser.GGUFFile
	bytes []byte
}

func parse(t *testing.T, path string) parsed {
	t.Helper()
	f, err := parser.ParseGGUFFile(path)
	if err != nil {
		t.Fatalf("gguf-parser-go: %v", err)
	}
	b, err := os.ReadFile(path)
	must(t, err)
	return parsed{f, b}
}

func (p parsed) kv(t *testing.T, key string) parser.GGUFMetadataKV {
	t.Helper()
	kv, ok := p.f.Header.MetadataKV.Get(key)
	if !ok {
		t.Fatalf("metadata %s missing", key)
	}
	return kv
}

func (p parsed) tensor(t *testing.T, name string) parser.GGUFTensorInfo {
	t.Helper()
	for _, ti := range p.f.TensorInfos {
		if ti.Name == name {
			return ti
		}
	}
	t.Fatalf("tensor %s missing", name)
	return parser.GGUFTensorInfo{}
}

// values decodes a tensor found through the parser's offsets.
func (p parsed) values(t *testing.T, name string) ([]float32, Type) {
	t.Helper()
	ti := p.tensor(t, name)
	n := 1
	for _, d := range ti.Dimensions {
		n *= int(d)
	}
	start := int(p.f.TensorDataStartOffset) + int(ti.Offset)
	x, err := Decode(Type(ti.Type), p.bytes[start:], n)
	must(t, err)
	return x, Type(ti.Type)
}

// within checks got against want under the format's error bound (see
// TestDecodeErrorBounds): exact for F32/BF16 of bf16 sources, relative 2^-11
// for F16, d/2 + 127|d-d16| per Q8_0 block, |d| + 8|d-d16| per Q4_0 block.
func within(t *testing.T, name string, typ Type, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	for b := 0; b < len(want); b += QK {
		blk := want[b:min(b+QK, len(want))]
		var amax float64
		for _, v := range blk {
			amax = max(amax, math.Abs(float64(v)))
		}
		for j, w := range blk {
			var bound float64
			switch typ {
			case F32, BF16:
				bound = 0 // sources are bf16 values or f32 carried as is
			case F16:
				bound = math.Abs(float64(w))*math.Ldexp(1, -11) + math.Ldexp(1, -25)
			case Q8_0:
				d := amax / 127
				bound = d/2 + 127*d*math.Ldexp(1, -11)
			case Q4_0:
				d := amax / 8
				bound = d + 8*d*math.Ldexp(1, -11)
			}
			if e := math.Abs(float64(got[b+j]) - float64(w)); e > bound*(1+1e-6) {
				t.Fatalf("%s[%d] (%v): got %g want %g, error %g > bound %g", name, b+j, typ, got[b+j], w, e, bound)
			}
		}
	}
}

var llamaTiny = tiny{modelType: "llama", d: 64, heads: 4, kv: 2, dh: 16, ff: 80, layers: 2, vocab: byteLevelTokens + 3, lmHead: true}

func TestExportLlamaReadByIndependentParser(t *testing.T) {
	for _, out := range []Type{F32, F16, BF16, Q8_0, Q4_0} {
		t.Run(out.String(), func(t *testing.T) {
			dir := t.TempDir()
			tokDir := filepath.Join(dir, "tiny-llama")
			must(t, os.Mkdir(tokDir, 0o755))
			writeByteLevelTokenizer(t, tokDir)
			src := llamaTiny.source(1)
			dst := filepath.Join(dir, "out.gguf")
			must(t, Export(dst, llamaTiny.config(), tokDir, src, out))
			for name, n := range src.reads {
				if n != 1 {
					t.Errorf("%s read %d times, want once", name, n)
				}
			}
			p := parse(t, dst)
			checkLlamaFile(t, p, src, out)
		})
	}
}

func checkLlamaFile(t *testing.T, p parsed, src *memSource, out Type) {
	h := p.f.Header
	if h.Magic != parser.GGUFMagicGGUFLe || h.Version != 3 {
		t.Fatalf("magic %v version %v", h.Magic, h.Version)
	}
	// metadata
	str := map[string]string{
		"general.architecture": "llama", "general.name": "tiny-llama", "tokenizer.ggml.model": "gpt2",
		"tokenizer.ggml.pre": "llama-bpe", "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
	}
	for k, v := range str {
		if got := p.kv(t, k).ValueString(); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	u32 := map[string]uint32{
		"llama.context_length": 2048, "llama.embedding_length": 64, "llama.block_count": 2,
		"llama.feed_forward_length": 80, "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
		"llama.rope.dimension_count": 16, "llama.vocab_size": 266, "llama.attention.key_length": 16,
		"general.file_type": out.FileType(), "general.quantization_version": 2,
		"tokenizer.ggml.bos_token_id": 260, "tokenizer.ggml.eos_token_id": 261,
	}
	for k, v := range u32 {
		kv := p.kv(t, k)
		if kv.ValueType != parser.GGUFMetadataValueTypeUint32 || kv.ValueUint32() != v {
			t.Errorf("%s = %v (%v), want uint32 %d", k, kv.Value, kv.ValueType, v)
		}
	}
	if got := p.kv(t, "llama.rope.freq_base").ValueFloat32(); got != 500000 {
		t.Errorf("rope.freq_base = %v", got)
	}
	if got := p.kv(t, "llama.attention.layer_norm_rms_epsilon").ValueFloat32(); got != float32(1e-5) {
		t.Errorf("rms eps = %v", got)
	}
	if !p.kv(t, "tokenizer.ggml.add_bos_token").ValueBool() {
		t.Error("add_bos_token false, want true (post_processor adds <|begin|>)")
	}
	tok := p.f.Tokenizer()
	tokens := p.kv(t, "tokenizer.ggml.tokens").ValueArray().ValuesString()
	wantTokens := append(byteLevelVocab(), "ab", "Ġa", "abc", "Ġab", "<|begin|>", "<|end|>", "<user>", "[PAD263]", "[PAD264]", "[PAD265]")
	if strings.Join(tokens, ",") != strings.Join(wantTokens, ",") {
		t.Errorf("tokens %q, want %q", tokens, wantTokens)
	}
	if tokens[97] != "a" || tokens[32] != "Ġ" || tokens[10] != "Ċ" {
		t.Errorf("byte tokens: 97 %q, 32 %q, 10 %q", tokens[97], tokens[32], tokens[10])
	}
	types := p.kv(t, "tokenizer.ggml.token_type").ValueArray().ValuesInt32()
	if len(types) != 266 || types[0] != 1 || types[259] != 1 || fmt.Sprint(types[260:]) != "[3 3 4 5 5 5]" {
		t.Errorf("token types: %d entries, [260:] = %v, want normal up to 259 then [3 3 4 5 5 5]", len(types), types[260:])
	}
	merges := p.kv(t, "tokenizer.ggml.merges").ValueArray().ValuesString()
	if strings.Join(merges, "|") != "a b|Ġ a|ab c|Ġ ab" {
		t.Errorf("merges %q", merges)
	}
	if tok.Model != "gpt2" || tok.TokensLength != 266 || tok.BOSTokenID != 260 || tok.EOSTokenID != 261 {
		t.Errorf("parser's tokenizer view: %+v", tok)
	}

	// tensor table: names, dims (innermost first), types
	wantTensors := map[string]struct {
		dims []uint64
		typ  Type
	}{
		"token_embd.weight":        {[]uint64{64, 266}, out},
		"blk.0.attn_q.weight":      {[]uint64{64, 64}, out},
		"blk.0.attn_k.weight":      {[]uint64{64, 32}, out},
		"blk.1.attn_v.weight":      {[]uint64{64, 32}, out},
		"blk.1.attn_output.weight": {[]uint64{64, 64}, out},
		"blk.0.attn_norm.weight":   {[]uint64{64}, F32},
		"blk.0.ffn_norm.weight":    {[]uint64{64}, F32},
		"blk.1.ffn_gate.weight":    {[]uint64{64, 80}, out},
		"blk.1.ffn_up.weight":      {[]uint64{64, 80}, out},
		"blk.1.ffn_down.weight":    {[]uint64{80, 64}, fallback(out)},
		"output_norm.weight":       {[]uint64{64}, F32},
		"output.weight":            {[]uint64{64, 266}, outputType(out)},
		"blk.0.ffn_down.weight":    {[]uint64{80, 64}, fallback(out)},
		"blk.1.attn_norm.weight":   {[]uint64{64}, F32},
		"blk.0.attn_output.weight": {[]uint64{64, 64}, out},
		"blk.0.attn_v.weight":      {[]uint64{64, 32}, out},
		"blk.1.attn_q.weight":      {[]uint64{64, 64}, out},
		"blk.1.attn_k.weight":      {[]uint64{64, 32}, out},
		"blk.0.ffn_gate.weight":    {[]uint64{64, 80}, out},
		"blk.0.ffn_up.weight":      {[]uint64{64, 80}, out},
		"blk.1.ffn_norm.weight":    {[]uint64{64}, F32},
	}
	if len(p.f.TensorInfos) != len(wantTensors) {
		t.Errorf("%d tensors, want %d", len(p.f.TensorInfos), len(wantTensors))
	}
	if p.f.TensorInfos[0].Name != "token_embd.weight" || p.f.TensorInfos[len(p.f.TensorInfos)-1].Name != "output.weight" {
		t.Errorf("order: first %s, last %s", p.f.TensorInfos[0].Name, p.f.TensorInfos[len(p.f.TensorInfos)-1].Name)
	}
	for _, ti := range p.f.TensorInfos {
		w, ok := wantTensors[ti.Name]
		if !ok {
			t.Errorf("unexpected tensor %s", ti.Name)
			continue
		}
		if fmt.Sprint(ti.Dimensions) != fmt.Sprint(w.dims) || Type(ti.Type) != w.typ {
			t.Errorf("%s: dims %v type %v, want %v %v", ti.Name, ti.Dimensions, Type(ti.Type), w.dims, w.typ)
		}
		if ti.Offset%32 != 0 {
			t.Errorf("%s: offset %d not aligned to 32", ti.Name, ti.Offset)
		}
	}

	// values: unpermuted tensors equal the source within the format's bound
	for gg, hf := range map[string]string{
		"token_embd.weight": "model.embed_tokens.weight", "blk.1.ffn_down.weight": "model.layers.1.mlp.down_proj.weight",
		"blk.0.attn_v.weight": "model.layers.0.self_attn.v_proj.weight", "output_norm.weight": "model.norm.weight",
		"output.weight": "lm_head.weight",
	} {
		got, typ := p.values(t, gg)
		within(t, gg, typ, got, src.data[hf])
	}
	// q and k are permuted to llama.cpp's rope layout: per head, row 2j+i of
	// the output is row i*Dh/2+j of the input (Dh = 16: out 1 <- in 8, out 2 <- in 1).
	for _, c := range []struct {
		gg, hf string
		heads  int
	}{{"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", 4}, {"blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight", 2}} {
		got, typ := p.values(t, c.gg)
		x := src.data[c.hf]
		want := make([]float32, len(x))
		rows := len(x) / 64
		for r := 0; r < rows; r++ {
			h, k := r/16, r%16
			from := h*16 + (k%2)*8 + k/2
			copy(want[r*64:(r+1)*64], x[from*64:(from+1)*64])
		}
		within(t, c.gg, typ, got, want)
		if typ == F32 {
			if got[1*64] != x[8*64] || got[2*64+5] != x[1*64+5] || got[17*64] != x[24*64] {
				t.Errorf("%s: rows not permuted as llama.cpp expects", c.gg)
			}
		}
	}
}

func fallback(out Type) Type {
	if out == Q8_0 || out == Q4_0 {
		return F16 // 80 columns are not whole blocks of 32
	}
	return out
}

func outputType(out Type) Type {
	if out == Q4_0 {
		return Q8_0
	}
	return out
}
