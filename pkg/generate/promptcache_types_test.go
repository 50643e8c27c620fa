package generate

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/qwen3_next"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// dh32Llama is a random llama with head dim 32: every fixture in
// testdata/models has head dim 16, below MLX's smallest quantization group
// (32), so --kv-bits cannot run on them.
func dh32Llama(t *testing.T) model.Model {
	t.Helper()
	cfg, err := model.NewConfig(map[string]any{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256, "rms_norm_eps": 1e-5, "tie_word_embeddings": true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 11)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func loadFixture(t *testing.T, dir string) model.Model {
	t.Helper()
	m, _, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tokens(n, mul, add, vocab int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*mul + add) % vocab
	}
	return out
}

// TestPromptCacheRoundTripTypes saves the caches of each type mid-
// conversation (a prompt, 4 generated tokens, committed), loads them, and
// continues with more prompt and 8 greedy tokens: the tokens equal those of
// the same conversation whose caches were never saved. It also checks the
// classes the file records.
func TestPromptCacheRoundTripTypes(t *testing.T) {
	llama := loadFixture(t, fixture)
	next := loadFixture(t, "../../testdata/models/qwen3_next-f32")
	small := dh32Llama(t)
	for _, tc := range []struct {
		name    string
		m       model.Model
		o       model.CacheOptions
		classes []string
	}{
		{"kv", llama, model.CacheOptions{}, []string{"KVCache", "KVCache"}},
		{"max-kv-size", llama, model.CacheOptions{MaxKVSize: 12}, []string{"RotatingKVCache", "RotatingKVCache"}},
		{"max-kv-size-unwrapped", llama, model.CacheOptions{MaxKVSize: 200}, []string{"RotatingKVCache", "RotatingKVCache"}},
		{"kv-bits-8", small, model.CacheOptions{KVBits: 8, KVGroupSize: 32}, []string{"QuantizedKVCache", "QuantizedKVCache"}},
		{"kv-bits-4", small, model.CacheOptions{KVBits: 4, KVGroupSize: 32}, []string{"QuantizedKVCache", "QuantizedKVCache"}},
		{"kv-bits-before-start", small, model.CacheOptions{KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 1000}, []string{"KVCache", "KVCache"}},
		{"max-kv-size-kv-bits", small, model.CacheOptions{MaxKVSize: 16, KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 4}, []string{"QuantizedRotatingKVCache", "QuantizedRotatingKVCache"}},
		{"qwen3_next", next, model.CacheOptions{}, []string{"ArraysCache", "KVCache"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			V := tc.m.VocabSize()
			prefix, rest := tokens(20, 37, 5, V), tokens(6, 11, 3, V)
			g, err := New(tc.m, prefix, Options{MaxTokens: 4, CacheOptions: tc.o})
			if err != nil {
				t.Fatal(err)
			}
			collect(t, g)
			if err := g.Commit(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "cache.safetensors")
			if err := SavePromptCache(path, g.Caches(), map[string]string{"model": tc.name}); err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.classes {
				if got := f.Metadata()[fmt.Sprintf("2.%d", i)]; got != want {
					t.Errorf("layer %d class %q, want %q", i, got, want)
				}
			}
			f.Close()
			loaded, user, err := LoadPromptCache(path)
			if err != nil {
				t.Fatal(err)
			}
			if user["model"] != tc.name || len(loaded) != len(g.Caches()) {
				t.Fatalf("loaded %d caches, metadata %v", len(loaded), user)
			}
			for i, c := range loaded {
				if c.Offset() != g.Caches()[i].Offset() || c.Offset() != len(prefix)+4 {
					t.Errorf("layer %d: offset %d after loading, %d saved, want %d", i, c.Offset(), g.Caches()[i].Offset(), len(prefix)+4)
				}
			}
			// The states read back exactly.
			for i, c := range loaded {
				sa, sb := c.State(), g.Caches()[i].State()
				if len(sa) != len(sb) {
					t.Fatalf("layer %d: %d state arrays after loading, %d saved", i, len(sa), len(sb))
				}
				for j := range sa {
					a, errA := sa[j].Bytes()
					b, errB := sb[j].Bytes()
					if errA != nil || errB != nil || !slices.Equal(sa[j].Shape(), sb[j].Shape()) || sa[j].DType() != sb[j].DType() || !slices.Equal(a, b) {
						t.Fatalf("layer %d state %d: %s%v after loading, %s%v saved, or the values differ (%v %v)", i, j, sa[j].DType(), sa[j].Shape(), sb[j].DType(), sb[j].Shape(), errA, errB)
					}
				}
			}
			got := collect(t, mustNew(t, tc.m, rest, Options{MaxTokens: 8, Caches: loaded}))
			want := collect(t, mustNew(t, tc.m, rest, Options{MaxTokens: 8, Caches: g.Caches()}))
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("after loading %v, never saved %v", ids(got), ids(want))
			}
			// The same arithmetic on the same state: equal log-probabilities
			// too (greedy tokens alone miss a damaged recurrent state), up
			// to float32 rounding should a kernel split work by layout.
			for i := range got {
				for j, w := range want[i].Logprobs {
					if d := math.Abs(float64(got[i].Logprobs[j] - w)); d > 1e-5 {
						t.Fatalf("token %d: log-probability of %d is %v after loading, %v never saved", i, j, got[i].Logprobs[j], w)
					}
				}
			}
		})
	}
}

func mustNew(t *testing.T, m model.Model, prompt []int, o Options) *Generator {
	t.Helper()
	g, err := New(m, prompt, o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestPromptCacheKVBitsStart: a cache saved with --kv-bits before
// --quantized-kv-start was reached is a KVCache file (as mlx_lm's is);
// loaded and passed through ApplyCacheOptions with the same flags it
// quantizes once the start is passed (mlx_lm's maybe_quantize_kv_cache
// converts loaded KVCache layers) and gives the tokens of the run that was
// never saved, which quantized at the same point.
func TestPromptCacheKVBitsStart(t *testing.T) {
	m := dh32Llama(t)
	prefix, rest := tokens(20, 37, 5, 256), tokens(6, 11, 3, 256)
	o := model.CacheOptions{KVBits: 4, KVGroupSize: 32, QuantizedKVStart: 27}
	g := mustNew(t, m, prefix, Options{MaxTokens: 4, CacheOptions: o})
	collect(t, g)
	if err := g.Commit(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cache.safetensors")
	if err := SavePromptCache(path, g.Caches(), nil); err != nil {
		t.Fatal(err)
	}
	loaded, _, err := LoadPromptCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := loaded[0].(*model.KVCache); !ok {
		t.Fatalf("loaded %T, want a KVCache (the start was not reached)", loaded[0])
	}
	loaded = model.ApplyCacheOptions(loaded, o)
	got := ids(collect(t, mustNew(t, m, rest, Options{MaxTokens: 8, Caches: loaded})))
	want := ids(collect(t, mustNew(t, m, rest, Options{MaxTokens: 8, Caches: g.Caches()})))
	if !slices.Equal(got, want) {
		t.Fatalf("after loading %v, never saved %v", got, want)
	}
	for i, c := range loaded {
		q, ok := c.(*model.QuantizedKVCache)
		if !ok || !q.Quantized() {
			t.Errorf("layer %d: %T did not quantize after the start", i, c)
		}
	}
}

// goldenLayout is the header of a prompt-cache file: tensor names with
// dtype and shape, and the metadata.
type goldenLayout struct {
	Generator string            `json:"generator"`
	Tensors   map[string]string `json:"tensors"` // name -> "DTYPE[shape]"
	Metadata  map[string]string `json:"metadata"`
}

// TestPromptCacheGoldenFormat writes one layer of each class and compares
// the file's tensor names, dtypes, shapes and metadata with
// testdata/promptcache/layout.json, written by hand from mlx_lm's
// save_prompt_cache (mlx_lm/models/cache.py: tree_flatten of [c.state] and
// of [[c.meta_state], metadata, [type(c).__name__]]) and the state and
// meta_state properties of KVCache, RotatingKVCache, QuantizedKVCache and
// ArraysCache at ml-explore/mlx-lm 11a6ce75.
func TestPromptCacheGoldenFormat(t *testing.T) {
	seq := func(shape ...int) *engine.Array {
		n := 1
		for _, d := range shape {
			n *= d
		}
		f := make([]float32, n)
		for i := range f {
			f[i] = float32(i%17) - 8
		}
		return engine.FromFloat32s(f, shape...)
	}
	// 0: KVCache of 3 positions, Hk 2, Dh 4.
	kv := &model.KVCache{}
	kv.Update(seq(1, 2, 3, 4), seq(1, 2, 3, 4))
	// 1: RotatingKVCache max 4, keep 1, after 6 single positions (wrapped:
	// offset 6, _idx 3).
	rot := model.NewRotatingKVCache(4, 1)
	for range 6 {
		rot.Update(seq(1, 2, 1, 4), seq(1, 2, 1, 4))
	}
	// 2: QuantizedKVCache, 4 bits, group 32, Dh 64, after 5 positions
	// (converted from the start).
	q := model.NewQuantizedKVCache(32, 4, 0)
	q.Update(seq(1, 2, 2, 64), seq(1, 2, 2, 64))
	q.Update(seq(1, 2, 3, 64), seq(1, 2, 3, 64))
	// 3: qwen3_next's linear-attention cache (ArraysCache): convolution
	// [B, K−1, C] and delta-rule state [B, Nv, Dk=2, Dv=3] (saved as
	// [B, Nv, Dv, Dk]).
	ssm := seq(1, 2, 2, 3)
	lin := &qwen3_next.LinearCache{Conv: seq(1, 3, 5), SSM: ssm}
	path := filepath.Join(t.TempDir(), "golden.safetensors")
	if err := SavePromptCache(path, []model.Cache{kv, rot, q, lin}, map[string]string{"model": "m", "tokenizer_config": "{}"}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := goldenLayout{Tensors: map[string]string{}, Metadata: f.Metadata()}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		got.Tensors[n] = fmt.Sprintf("%s%v", info.DType, info.Shape)
	}
	raw, err := os.ReadFile("../../testdata/promptcache/layout.json")
	if err != nil {
		t.Fatal(err)
	}
	var want goldenLayout
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if d := diffMaps(got.Tensors, want.Tensors); d != "" {
		t.Errorf("tensors differ from mlx_lm's layout:\n%s", d)
	}
	if d := diffMaps(got.Metadata, want.Metadata); d != "" {
		t.Errorf("metadata differs from mlx_lm's:\n%s", d)
	}
	// The delta-rule state is stored transposed to mlx_lm's [B, Nv, Dv, Dk].
	tt, err := f.Tensor("3.0.1")
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := tt.Float32s()
	orig, _ := ssm.Float32s()
	for h := range 2 {
		for dv := range 3 {
			for dk := range 2 {
				if a, b := vals[h*6+dv*2+dk], orig[h*6+dk*3+dv]; a != b {
					t.Fatalf("3.0.1[0, %d, %d, %d] = %v, want S[%d, %d, %d] = %v", h, dv, dk, a, h, dk, dv, b)
				}
			}
		}
	}
}

func diffMaps(got, want map[string]string) string {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if g != w || gok != wok {
			out = append(out, fmt.Sprintf("  %q: got %q (present %v), want %q (present %v)", k, g, gok, w, wok))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestPromptCacheLoadsMLXLayouts loads files laid out as mlx_lm writes
// them but SavePromptCache does not: an ArraysCache from mlx-lm up to
// v0.31.3 (state = the cache list alone) and a QuantizedKVCache whose
// scales and biases are bfloat16 (mlx_lm keeps them in the model's dtype).
func TestPromptCacheLoadsMLXLayouts(t *testing.T) {
	f32 := func(name string, vals []float32, shape ...int) safetensors.Data {
		return safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: name, DType: safetensors.F32, Shape: shape}, Bytes: safetensors.AsBytes(vals)}
	}
	conv := make([]float32, 1*3*5)
	ssm := make([]float32, 1*2*3*2) // [B, Nv, Dv=3, Dk=2]
	for i := range ssm {
		ssm[i] = float32(i)
	}
	path := filepath.Join(t.TempDir(), "old.safetensors")
	if err := safetensors.Save(path, []safetensors.Data{f32("0.0", conv, 1, 3, 5), f32("0.1", ssm, 1, 2, 3, 2)},
		map[string]string{"0.0": "", "2.0": "ArraysCache"}); err != nil {
		t.Fatal(err)
	}
	caches, _, err := LoadPromptCache(path)
	if err != nil {
		t.Fatal(err)
	}
	lc, ok := caches[0].(*qwen3_next.LinearCache)
	if !ok || !slices.Equal(lc.SSM.Shape(), []int{1, 2, 2, 3}) {
		t.Fatalf("old ArraysCache loaded as %T %v", caches[0], lc)
	}
	if v, _ := lc.SSM.Float32s(); v[1] != 2 || v[3] != 1 { // S[0,0,dk=0,dv=1] = saved[0,0,dv=1,dk=0]
		t.Errorf("delta-rule state not transposed back: %v", v)
	}

	// A bfloat16 QuantizedKVCache of 2 positions, Dh 32, 8 bits, group 32.
	x := engine.AsType(engine.Reshape(engine.Arange(0, 64, 1, engine.Float32), 1, 1, 2, 32), engine.BFloat16)
	qc := model.NewQuantizedKVCache(32, 8, 0)
	qc.Update(engine.SliceAxis(x, 2, 0, 1), engine.SliceAxis(x, 2, 0, 1))
	qc.Update(engine.SliceAxis(x, 2, 1, 2), engine.SliceAxis(x, 2, 1, 2))
	var data []safetensors.Data
	for i, a := range qc.State() {
		if i%3 != 0 {
			a = engine.AsType(a, engine.BFloat16)
		}
		b, err := a.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		dt := safetensors.BF16
		if i%3 == 0 {
			dt = safetensors.U32
		}
		data = append(data, safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: fmt.Sprintf("0.%d.%d", i/3, i%3), DType: dt, Shape: a.Shape()}, Bytes: b})
	}
	path = filepath.Join(t.TempDir(), "q.safetensors")
	if err := safetensors.Save(path, data, map[string]string{"0.0.0": "2", "0.0.1": "32", "0.0.2": "8", "2.0": "QuantizedKVCache"}); err != nil {
		t.Fatal(err)
	}
	caches, _, err = LoadPromptCache(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := caches[0].Update(engine.SliceAxis(x, 2, 0, 1), engine.SliceAxis(x, 2, 0, 1))
	if err := k.Err(); err != nil || k.DType() != engine.BFloat16 || k.Dim(2) != 3 {
		t.Fatalf("bf16 quantized cache after loading: %v %v %v", err, k.DType(), k.Shape())
	}
	kv, _ := k.Float32s()
	if kv[40] < 39 || kv[40] > 41 || kv[64] != 0 || kv[95] < 30 || kv[95] > 32 {
		t.Errorf("dequantized keys %v", kv)
	}
}

// TestPromptCacheLoadErrors: bad files give one error naming the file,
// the layer and what was expected.
func TestPromptCacheLoadErrors(t *testing.T) {
	dir := t.TempDir()
	f32 := func(name string, shape ...int) safetensors.Data {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: name, DType: safetensors.F32, Shape: shape}, Bytes: make([]byte, 4*n)}
	}
	kv := []safetensors.Data{f32("0.0", 1, 1, 2, 4), f32("0.1", 1, 1, 2, 4)}
	for _, tc := range []struct {
		name    string
		tensors []safetensors.Data
		meta    map[string]string
		want    []string
	}{
		{"unknown class", kv, map[string]string{"0.0": "", "2.0": "MambaCache"}, []string{`layer 0 (MambaCache): unknown cache class "MambaCache" (known: `, "KVCache"}},
		{"missing tensor", kv[:1], map[string]string{"0.0": "", "2.0": "KVCache"}, []string{`layer 0 (KVCache): missing tensor "0.1" (want keys and values [B, Hk, T, Dh]: 0.0, 0.1)`}},
		{"unexpected tensor", append(slices.Clone(kv), f32("0.2", 1)), map[string]string{"0.0": "", "2.0": "KVCache"}, []string{`layer 0 (KVCache): unexpected tensor "0.2"`}},
		{"rotating meta count", kv, map[string]string{"0.0.0": "4", "0.0.1": "8", "0.0.2": "2", "2.0": "RotatingKVCache"}, []string{"layer 0 (RotatingKVCache): RotatingKVCache meta_state: want 4 values (keep, max_size, offset, _idx), got 3"}},
		{"quantized meta count", kv, map[string]string{"0.0.0": "2", "2.0": "QuantizedKVCache"}, []string{"layer 0 (QuantizedKVCache): QuantizedKVCache meta_state: want 3 values (offset, group_size, bits), got 1"}},
		{"quantized tensors", kv, map[string]string{"0.0.0": "2", "0.0.1": "32", "0.0.2": "4", "2.0": "QuantizedKVCache"}, []string{`layer 0 (QuantizedKVCache): missing tensor "0.0.0" (want keys then values as (packed, scales, biases)`}},
		{"kv meta", kv, map[string]string{"0.0.0": "2", "2.0": "KVCache"}, []string{"layer 0 (KVCache): KVCache has no meta_state, got 1 values"}},
		{"meta gap", kv, map[string]string{"0.0.1": "8", "2.0": "RotatingKVCache"}, []string{`layer 0 (RotatingKVCache): meta_state value "0.0.0" missing`}},
		{"tensor without layer", append(slices.Clone(kv), f32("1.0", 1)), map[string]string{"0.0": "", "2.0": "KVCache"}, []string{`tensor "1.0" for layer 1 but only 1 layers have a class`}},
		{"arrays batched", []safetensors.Data{f32("0.0.0", 1, 3, 5), f32("0.0.1", 1, 2, 3, 2), f32("0.1", 1), f32("0.2", 0)}, map[string]string{"0.0": "", "2.0": "ArraysCache"}, []string{"layer 0 (ArraysCache): ", "a batched ArraysCache"}},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors")
		if err := safetensors.Save(path, tc.tensors, tc.meta); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadPromptCache(path)
		if err == nil {
			t.Errorf("%s: loaded", tc.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "load prompt cache "+path+": ") || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q does not start with the file name or has several lines", tc.name, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", tc.name, msg, w)
			}
		}
	}
}
