package gguf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	parser "github.com/gpustack/gguf-parser-go"
)

func exportTiny(t *testing.T, tn tiny, cfg []byte, src *memSource, spm, prepend bool, out Type, edits ...func(tokDir string)) parsed {
	t.Helper()
	dir := t.TempDir()
	tokDir := filepath.Join(dir, "m")
	must(t, os.Mkdir(tokDir, 0o755))
	if spm {
		writeSPMTokenizer(t, tokDir, prepend)
	} else {
		writeByteLevelTokenizer(t, tokDir)
	}
	for _, e := range edits {
		e(tokDir)
	}
	dst := filepath.Join(dir, "out.gguf")
	must(t, Export(dst, cfg, tokDir, src, out))
	return parse(t, dst)
}

func names(p parsed) map[string]parser.GGUFTensorInfo {
	m := map[string]parser.GGUFTensorInfo{}
	for _, ti := range p.f.TensorInfos {
		m[ti.Name] = ti
	}
	return m
}

func withConfig(tn tiny, edit func(map[string]any)) []byte {
	var c map[string]any
	json.Unmarshal(tn.config(), &c)
	edit(c)
	b, _ := json.Marshal(c)
	return b
}

func TestExportGemma(t *testing.T) {
	for _, mt := range []string{"gemma", "gemma2", "gemma3_text"} {
		t.Run(mt, func(t *testing.T) {
			tn := tiny{modelType: mt, d: 64, heads: 4, kv: 1, dh: 16, ff: 64, layers: 1, vocab: spmTokens + 1, sandwich: mt != "gemma", qkn: mt == "gemma3_text"}
			cfg := withConfig(tn, func(c map[string]any) {
				c["sliding_window"] = 512
				c["final_logit_softcapping"] = 30.0
				c["attn_logit_softcapping"] = 50.0
				if mt == "gemma3_text" {
					delete(c, "attn_logit_softcapping")
				}
			})
			src := tn.source(2)
			p := exportTiny(t, tn, cfg, src, true, false, F16)
			if q := exportTiny(t, tn, cfg, src, true, false, Q4_0); Type(names(q)["token_embd.weight"].Type) != Q8_0 ||
				Type(names(q)["blk.0.attn_q.weight"].Type) != Q4_0 {
				t.Error("Q4_0 with a tied output: want token_embd Q8_0 (it is the output layer), the rest Q4_0")
			}
			arch := map[string]string{"gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3"}[mt]
			if got := p.kv(t, "general.architecture").ValueString(); got != arch {
				t.Fatalf("architecture %q, want %q", got, arch)
			}
			ts := names(p)
			if _, ok := ts["output.weight"]; ok {
				t.Error("gemma ties the output to the embedding: output.weight must not be written")
			}
			norms := map[string]string{
				"blk.0.attn_norm.weight": "model.layers.0.input_layernorm.weight",
				"output_norm.weight":     "model.norm.weight",
			}
			if mt == "gemma" {
				norms["blk.0.ffn_norm.weight"] = "model.layers.0.post_attention_layernorm.weight"
			} else {
				norms["blk.0.post_attention_norm.weight"] = "model.layers.0.post_attention_layernorm.weight"
				norms["blk.0.ffn_norm.weight"] = "model.layers.0.pre_feedforward_layernorm.weight"
				norms["blk.0.post_ffw_norm.weight"] = "model.layers.0.post_feedforward_layernorm.weight"
			}
			if mt == "gemma3_text" {
				norms["blk.0.attn_q_norm.weight"] = "model.layers.0.self_attn.q_norm.weight"
				norms["blk.0.attn_k_norm.weight"] = "model.layers.0.self_attn.k_norm.weight"
			}
			for gg, hf := range norms {
				got, typ := p.values(t, gg)
				if typ != F32 {
					t.Errorf("%s is %v, want F32", gg, typ)
				}
				for i, v := range src.data[hf] {
					if got[i] != v+1 {
						t.Fatalf("%s[%d] = %g, want source+1 = %g (Gemma's (1+w) norm)", gg, i, got[i], v+1)
					}
				}
			}
			// gemma uses NEOX rope in llama.cpp: q is not permuted
			q, _ := p.values(t, "blk.0.attn_q.weight")
			within(t, "attn_q", F16, q, src.data["model.layers.0.self_attn.q_proj.weight"])
			if len(ts) != len(norms)+8 {
				t.Errorf("%d tensors, want %d", len(ts), len(norms)+8)
			}
			if mt == "gemma2" {
				if v := p.kv(t, "gemma2.attn_logit_softcapping").ValueFloat32(); v != 50 {
					t.Errorf("attn softcap %v", v)
				}
				if v := p.kv(t, "gemma2.attention.sliding_window").ValueUint32(); v != 512 {
					t.Errorf("sliding window %v", v)
				}
			}
			if v := p.kv(t, arch+".rope.freq_base").ValueFloat32(); v != 500000 {
				t.Errorf("%s.rope.freq_base = %v, want config's rope_theta 500000", arch, v)
			}
			checkSPMTokenizer(t, p, false)
		})
	}
}

func checkSPMTokenizer(t *testing.T, p parsed, prefix bool) {
	t.Helper()
	if m := p.kv(t, "tokenizer.ggml.model").ValueString(); m != "llama" {
		t.Fatalf("tokenizer model %q, want llama", m)
	}
	if _, ok := p.f.Header.MetadataKV.Get("tokenizer.ggml.merges"); ok {
		t.Error("SentencePiece-style vocab should carry scores, not merges")
	}
	tokens := p.kv(t, "tokenizer.ggml.tokens").ValueArray().ValuesString()
	if len(tokens) != spmTokens+1 || tokens[3] != "<0x00>" || tokens[258] != "<0xFF>" || tokens[264] != "▁a" || tokens[268] != "[PAD268]" {
		t.Errorf("tokens: %d, [3] %q [258] %q [264] %q [268] %q", len(tokens), tokens[3], tokens[258], tokens[264], tokens[268])
	}
	types := p.kv(t, "tokenizer.ggml.token_type").ValueArray().ValuesInt32()
	if fmt.Sprint(types[:4]) != "[2 3 3 6]" || types[258] != 6 || fmt.Sprint(types[259:]) != "[1 1 1 1 1 1 1 1 1 5]" {
		t.Errorf("token types %v ... %v, want unk=2, <s>/</s>=3, bytes=6, pieces=1, pad=5", types[:4], types[258:])
	}
	// merges "b c", "▁ a", "a b", "▁a b" form bc, ▁a, ab, ▁ab (263-266):
	// scores -1..-4; no merge forms xy (267): below every merge, -5
	scores := p.kv(t, "tokenizer.ggml.scores").ValueArray().ValuesFloat32()
	if scores[0] != 0 || scores[100] != 0 || scores[262] != 0 || fmt.Sprint(scores[263:]) != "[-1 -2 -3 -4 -5 -1000]" {
		t.Errorf("scores [263:] %v", scores[263:])
	}
	if got := p.kv(t, "tokenizer.ggml.add_space_prefix").ValueBool(); got != prefix {
		t.Errorf("add_space_prefix %v, want %v", got, prefix)
	}
	for k, v := range map[string]uint32{"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0} {
		if got := p.kv(t, k).ValueUint32(); got != v {
			t.Errorf("%s = %d, want %d", k, got, v)
		}
	}
	if !p.kv(t, "tokenizer.ggml.add_bos_token").ValueBool() || p.kv(t, "tokenizer.ggml.add_eos_token").ValueBool() {
		t.Error("add_bos/add_eos not as tokenizer_config.json says")
	}
	if p.kv(t, "tokenizer.chat_template").ValueString() != "D" || p.kv(t, "tokenizer.chat_template.tool_use").ValueString() != "T" {
		t.Error("named chat templates not written")
	}
}

func TestExportMistralSPM(t *testing.T) {
	tn := llamaTiny
	tn.modelType, tn.vocab = "mistral", spmTokens+1
	p := exportTiny(t, tn, tn.config(), tn.source(3), true, true, Q8_0)
	if a := p.kv(t, "general.architecture").ValueString(); a != "llama" {
		t.Errorf("mistral exports as %q, want llama (as llama.cpp's converter)", a)
	}
	checkSPMTokenizer(t, p, true)
}

func TestExportMixtralExpertsBothLayouts(t *testing.T) {
	base := tiny{modelType: "mixtral", d: 32, heads: 2, kv: 1, dh: 16, ff: 64, layers: 2, vocab: byteLevelTokens, experts: 3, used: 2, lmHead: true}
	hf := base.source(4)
	mlx := base
	mlx.mlxExperts = true
	// MLX layout: stack the same per-expert values into [E, out, in]
	ms := &memSource{data: map[string][]float32{}, reads: map[string]int{}}
	for _, st := range hf.list {
		if strings.Contains(st.Name, ".experts.") {
			continue
		}
		ms.list = append(ms.list, st)
		ms.data[st.Name] = hf.data[st.Name]
	}
	for l := 0; l < base.layers; l++ {
		for w, proj := range map[string]string{"w1": "gate_proj", "w2": "down_proj", "w3": "up_proj"} {
			name := fmt.Sprintf("model.layers.%d.block_sparse_moe.switch_mlp.%s.weight", l, proj)
			var stacked []float32
			var shape []int
			for e := 0; e < base.experts; e++ {
				k := fmt.Sprintf("model.layers.%d.block_sparse_moe.experts.%d.%s.weight", l, e, w)
				stacked = append(stacked, hf.data[k]...)
				for _, s := range hf.list {
					if s.Name == k {
						shape = append([]int{base.experts}, s.Shape...)
					}
				}
			}
			ms.list = append(ms.list, SourceTensor{Name: name, Shape: shape, DType: "BF16"})
			ms.data[name] = stacked
		}
	}
	a := exportTiny(t, base, base.config(), hf, false, false, Q8_0)
	b := exportTiny(t, mlx, mlx.config(), ms, false, false, Q8_0)
	if !bytes.Equal(a.bytes, b.bytes) {
		t.Fatal("HF per-expert and MLX stacked checkpoints of the same weights give different files")
	}
	ts := names(a)
	for name, dims := range map[string]string{
		"blk.1.ffn_gate_exps.weight": "[32 64 3]", "blk.1.ffn_up_exps.weight": "[32 64 3]",
		"blk.0.ffn_down_exps.weight": "[64 32 3]", "blk.0.ffn_gate_inp.weight": "[32 3]",
	} {
		if got := fmt.Sprint(ts[name].Dimensions); got != dims {
			t.Errorf("%s dims %s, want %s", name, got, dims)
		}
	}
	if Type(ts["blk.0.ffn_gate_inp.weight"].Type) != F32 || Type(ts["blk.0.ffn_gate_exps.weight"].Type) != Q8_0 {
		t.Errorf("router %v experts %v, want F32 and Q8_0", Type(ts["blk.0.ffn_gate_inp.weight"].Type), Type(ts["blk.0.ffn_gate_exps.weight"].Type))
	}
	got, typ := a.values(t, "blk.1.ffn_down_exps.weight")
	within(t, "ffn_down_exps", typ, got, ms.data["model.layers.1.block_sparse_moe.switch_mlp.down_proj.weight"])
	if a.kv(t, "llama.expert_count").ValueUint32() != 3 || a.kv(t, "llama.expert_used_count").ValueUint32() != 2 {
		t.Error("expert counts")
	}
}

func TestExportQwen(t *testing.T) {
	for _, mt := range []string{"qwen2", "qwen3"} {
		t.Run(mt, func(t *testing.T) {
			tn := tiny{modelType: mt, d: 64, heads: 4, kv: 2, dh: 16, ff: 64, layers: 1, vocab: byteLevelTokens, bias: mt == "qwen2", qkn: mt == "qwen3"}
			src := tn.source(5)
			// Qwen's tokenizer_config.json: bos_token null, no add_bos_token
			p := exportTiny(t, tn, tn.config(), src, false, false, BF16, func(dir string) {
				writeJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{"bos_token": nil, "eos_token": "<|end|>"})
			})
			ts := names(p)
			if mt == "qwen2" {
				for _, b := range []string{"attn_q", "attn_k", "attn_v"} {
					ti, ok := ts["blk.0."+b+".bias"]
					if !ok || Type(ti.Type) != F32 {
						t.Errorf("blk.0.%s.bias missing or not F32", b)
					}
				}
				got, _ := p.values(t, "blk.0.attn_q.bias")
				within(t, "q bias", F32, got, src.data["model.layers.0.self_attn.q_proj.bias"])
			} else {
				if _, ok := ts["blk.0.attn_q_norm.weight"]; !ok {
					t.Error("attn_q_norm missing")
				}
			}
			// NEOX rope: no permutation
			q, _ := p.values(t, "blk.0.attn_q.weight")
			within(t, "attn_q", BF16, q, src.data["model.layers.0.self_attn.q_proj.weight"])
			if a := p.kv(t, "general.architecture").ValueString(); a != mt {
				t.Errorf("architecture %q", a)
			}
			if p.kv(t, "tokenizer.ggml.add_bos_token").ValueBool() {
				t.Error("add_bos_token true; want false (no add_bos_token, bos_token null)")
			}
			if _, ok := p.f.Header.MetadataKV.Get(mt + ".embedding_length"); !ok {
				t.Error("embedding_length missing")
			}
		})
	}
}

func TestParseType(t *testing.T) {
	for s, want := range map[string]Type{"f32": F32, "F16": F16, "bf16": BF16, "q8_0": Q8_0, "Q4_0": Q4_0} {
		if got, err := ParseType(s); err != nil || got != want {
			t.Errorf("ParseType(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseType("q4_k"); err == nil {
		t.Error("ParseType(q4_k): no error")
	}
}

func TestPreTokenizerNames(t *testing.T) {
	qwen := `{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},{"type":"ByteLevel"}]}`
	gpt2 := `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`
	for raw, want := range map[string]string{qwen: "qwen2", gpt2: "gpt-2"} {
		if got := preTokenizerName(json.RawMessage(raw), "x"); got != want {
			t.Errorf("%s: got %q, want %q", raw[:40], got, want)
		}
	}
}

func TestLlama3RopeFreqs(t *testing.T) {
	tn := llamaTiny
	cfg := withConfig(tn, func(c map[string]any) {
		c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
		c["head_dim"] = 16
	})
	p := exportTiny(t, tn, cfg, tn.source(6), false, false, F32)
	got, _ := p.values(t, "rope_freqs.weight")
	// Dh = 16, base 5e5: freq_i = 5e5^(-2i/16); wavelength 2π/freq.
	// i=0: 2π < 2048 -> 1; i=7: 2π·5e5^(14/16) ≈ 6.9e5 > 8192 -> factor 8;
	// i=3: 2π·5e5^(6/16) ≈ 867 < 2048 -> 1; i=4: 2π·5e5^(8/16) ≈ 4443, between 2048 and 8192:
	// smooth = (8192/4443 - 1)/3 = 0.28128, factor 1/((1-smooth)/8 + smooth) = 1/0.37112 = 2.6945;
	// i=5: 2π·5e5^(10/16) ≈ 22909 > 8192 -> 8
	if len(got) != 8 || got[0] != 1 || got[3] != 1 || got[7] != 8 || got[5] != 8 || math.Abs(float64(got[4])-2.6945) > 2e-4 {
		t.Errorf("rope_freqs %v", got)
	}
}

func TestKVTypesReadBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.gguf")
	kvs := []KV{
		{"u8", uint8(200)}, {"i8", int8(-5)}, {"u16", uint16(60000)}, {"i16", int16(-300)},
		{"u32", uint32(4e9)}, {"i32", int32(-7)}, {"f32", float32(0.25)}, {"b", true},
		{"s", "héllo"}, {"u64", uint64(1 << 40)}, {"i64", int64(-1 << 40)}, {"f64", 1e-300},
		{"as", []string{"", "x y"}}, {"ai32", []int32{1, -2}}, {"af32", []float32{1.5}}, {"au8", []uint8{}},
	}
	must(t, WriteFile(path, kvs, nil, nil))
	p := parse(t, path)
	get := func(k string) parser.GGUFMetadataKV { return p.kv(t, k) }
	ok := get("u8").ValueUint8() == 200 && get("i8").ValueInt8() == -5 && get("u16").ValueUint16() == 60000 &&
		get("i16").ValueInt16() == -300 && get("u32").ValueUint32() == 4e9 && get("i32").ValueInt32() == -7 &&
		get("f32").ValueFloat32() == 0.25 && get("b").ValueBool() && get("s").ValueString() == "héllo" &&
		get("u64").ValueUint64() == 1<<40 && get("i64").ValueInt64() == -1<<40 && get("f64").ValueFloat64() == 1e-300 &&
		fmt.Sprint(get("as").ValueArray().ValuesString()) == "[ x y]" &&
		fmt.Sprint(get("ai32").ValueArray().ValuesInt32()) == "[1 -2]" &&
		fmt.Sprint(get("af32").ValueArray().ValuesFloat32()) == "[1.5]" && get("au8").ValueArray().Len == 0
	if !ok {
		t.Errorf("values read back differ: %+v", p.f.Header.MetadataKV)
	}
	if p.f.Header.TensorCount != 0 || p.f.Header.MetadataKVCount != uint64(len(kvs)) {
		t.Errorf("counts %d %d", p.f.Header.TensorCount, p.f.Header.MetadataKVCount)
	}
}

func TestExportBadInput(t *testing.T) {
	tn := llamaTiny
	cases := []struct {
		name  string
		cfg   []byte
		src   func() *memSource
		noTok bool
		want  string
	}{
		{"unsupported arch", withConfig(tn, func(c map[string]any) { c["model_type"] = "phi3" }), nil, false, `model_type "phi3" is not supported`},
		{"quantized config", withConfig(tn, func(c map[string]any) { c["quantization"] = map[string]any{"bits": 4, "group_size": 64} }), nil, false, "quantized model"},
		{"quantized tensor", nil, func() *memSource {
			s := tn.source(1)
			s.list[1].DType = "U32"
			return s
		}, false, "has dtype U32"},
		{"mlx scales", nil, func() *memSource {
			s := tn.source(1)
			s.list = append(s.list, SourceTensor{Name: "model.layers.0.mlp.up_proj.scales", Shape: []int{80, 1}, DType: "BF16"})
			return s
		}, false, "MLX quantization data"},
		{"shape mismatch", nil, func() *memSource {
			s := tn.source(1)
			s.list[1].Shape = []int{48, 64}
			return s
		}, false, "model.layers.0.self_attn.q_proj.weight has shape [48 64], config.json expects [64 64]"},
		{"source disagrees with shape", nil, func() *memSource {
			s := tn.source(1)
			s.data["model.layers.1.mlp.up_proj.weight"] = make([]float32, 10)
			return s
		}, false, "source gave 10 values"},
		{"layer beyond config", withConfig(tn, func(c map[string]any) { c["num_hidden_layers"] = 1 }), nil, false, "num_hidden_layers 1"},
		{"unknown tensor", nil, func() *memSource {
			s := tn.source(1)
			s.list = append(s.list, SourceTensor{Name: "model.layers.0.self_attn.rel_pos.weight", Shape: []int{4}, DType: "F32"})
			return s
		}, false, "no llama.cpp name"},
		{"missing tokenizer.json", nil, nil, true, "tokenizer.json not found"},
		{"lm_head rows", nil, func() *memSource {
			s := tn.source(1)
			s.list[len(s.list)-1].Shape = []int{300, 64}
			return s
		}, false, "lm_head.weight has 300 rows but the embedding has 266"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tokDir := filepath.Join(dir, "tok")
			must(t, os.Mkdir(tokDir, 0o755))
			if !c.noTok {
				writeByteLevelTokenizer(t, tokDir)
			}
			outDir := filepath.Join(dir, "out")
			must(t, os.Mkdir(outDir, 0o755))
			cfg := c.cfg
			if cfg == nil {
				cfg = tn.config()
			}
			src := tn.source(1)
			if c.src != nil {
				src = c.src()
			}
			err := Export(filepath.Join(outDir, "m.gguf"), cfg, tokDir, src, Q8_0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			if strings.Count(err.Error(), "gguf:") != 1 {
				t.Errorf("error %q: want one clear message", err)
			}
			if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
				t.Errorf("left %s behind", ents[0].Name())
			}
		})
	}
}

func TestExportQwen3MoE(t *testing.T) {
	tn := tiny{modelType: "qwen3_moe", d: 32, heads: 2, kv: 1, dh: 16, ff: 64, layers: 1, vocab: byteLevelTokens, experts: 4, used: 2, mlxExperts: true, qkn: true}
	in := tn.source(10)
	src := &memSource{data: map[string][]float32{}, reads: map[string]int{}}
	for _, st := range in.list { // MLX's qwen3_moe names: mlp.gate, mlp.switch_mlp.*
		name := strings.Replace(st.Name, "block_sparse_moe.", "mlp.", 1)
		src.data[name] = in.data[st.Name]
		st.Name = name
		src.list = append(src.list, st)
	}
	cfg := withConfig(tn, func(c map[string]any) {
		delete(c, "num_local_experts")
		c["num_experts"], c["moe_intermediate_size"] = 4, 64
	})
	p := exportTiny(t, tn, cfg, src, false, false, F16)
	ts := names(p)
	for name, dims := range map[string]string{
		"blk.0.ffn_gate_exps.weight": "[32 64 4]", "blk.0.ffn_down_exps.weight": "[64 32 4]",
		"blk.0.ffn_gate_inp.weight": "[32 4]", "blk.0.attn_k_norm.weight": "[16]",
	} {
		if got := fmt.Sprint(ts[name].Dimensions); got != dims {
			t.Errorf("%s dims %s, want %s", name, got, dims)
		}
	}
	for k, v := range map[string]uint32{"qwen3moe.expert_count": 4, "qwen3moe.expert_used_count": 2, "qwen3moe.expert_feed_forward_length": 64} {
		if got := p.kv(t, k).ValueUint32(); got != v {
			t.Errorf("%s = %d, want %d", k, got, v)
		}
	}
	got, typ := p.values(t, "blk.0.ffn_up_exps.weight")
	within(t, "ffn_up_exps", typ, got, src.data["model.layers.0.mlp.switch_mlp.up_proj.weight"])
}
