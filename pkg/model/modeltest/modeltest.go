// Package modeltest checks an architecture against the HF transformers
// reference fixtures in testdata/models (see testdata/README.md): logits,
// padded batch, greedy ids, cached decode against the full forward, and
// the rotating and quantized caches. An architecture's test is a call to
// Run per fixture folder.
package modeltest

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// Reference is a fixture's reference.json (the parts the checks use) and
// reference.safetensors.
type Reference struct {
	ModelType       string `json:"model_type"`
	DType           string `json:"dtype"`
	InputIDs        []int  `json:"input_ids"`
	LogitsPositions []int  `json:"logits_positions"`
	Batch           struct {
		InputIDs  [][]int `json:"input_ids"`
		Lengths   []int   `json:"lengths"`
		Positions []int   `json:"positions"`
	} `json:"batch"`
	Greedy struct {
		PromptIDs []int     `json:"prompt_ids"`
		IDs       []int     `json:"ids"`
		Margins   []float64 `json:"margins"`
	} `json:"greedy"`
	Logits      []float32 // [len(LogitsPositions), V]
	BatchLogits []float32 // [2, len(Batch.Positions), V]
	V           int
}

// Dir returns testdata/models/<variant> from any package under pkg/.
func Dir(variant string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "models", variant)
}

// ReadReference reads dir's reference files.
func ReadReference(dir string) (*Reference, error) {
	data, err := os.ReadFile(filepath.Join(dir, "reference.json"))
	if err != nil {
		return nil, err
	}
	r := &Reference{}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("reference.json: %w", err)
	}
	st, err := safetensors.OpenModel(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	for name, dst := range map[string]*[]float32{"logits": &r.Logits, "batch_logits": &r.BatchLogits} {
		t, err := st.Tensor(name)
		if err != nil {
			return nil, err
		}
		f, err := t.Float32s()
		if err != nil {
			return nil, err
		}
		*dst = append([]float32(nil), f...)
		r.V = t.Shape[len(t.Shape)-1]
	}
	return r, nil
}

// Tolerances of one fixture run.
type Tolerances struct {
	// Logits: max |ours − ref| / max |ref| over the compared logits.
	Logits float64
	// Margin: greedy ids must match while the reference's top-1/top-2
	// margin exceeds this (the check stops at the first smaller margin).
	Margin float64
	// Cache: cached decode vs our own full forward, same metric as Logits.
	Cache float64
	// QuantizedCache: 8-bit quantized KV cache vs the full forward.
	QuantizedCache float64
}

// F32 are the tolerances for float32 fixtures (README: float32 noise
// ~1e-5 relative, margins ≥ 1e-3).
var F32 = Tolerances{Logits: 1e-4, Margin: 1e-3, Cache: 1e-5, QuantizedCache: 3e-2}

// BF16 are the tolerances for bf16 checkpoints run with bf16 activations
// (mlx_lm's default). bfloat16 keeps 8 significant bits (relative step
// 2^-8 ≈ 4e-3); every matmul output, norm and residual add is rounded to
// it, so after two layers logits carry a few of those steps relative to
// their scale. Greedy ids are demanded only where the reference margin
// exceeds 0.05 (≈ 10 bf16 steps of the logit scale), cached decode only
// equals the full forward to bf16 rounding of the cache contents.
var BF16 = Tolerances{Logits: 2e-2, Margin: 5e-2, Cache: 3e-2, QuantizedCache: 5e-2}

// QuantKernels are the tolerances for quantized checkpoints run through
// engine.QuantizedMatmul. On CPUs with AVX-512 VNNI its kernels round each
// activation block of 32 to int8 (step max|x|/127) and take integer dot
// products with the codes; the error of one output is up to
// Σ_k |scale·q_k|·step/2, which for these fixtures' 4-bit groups (scale·q
// spans the group's whole range, ~0.5) is a few percent of the logits'
// scale: measured 4.6e-2 on llama-q4. Greedy ids are demanded while the
// margin exceeds 0.1, cached decode (which changes the activation blocks
// only through the rows present) within the same bound.
var QuantKernels = Tolerances{Logits: 8e-2, Margin: 1e-1, Cache: 8e-2, QuantizedCache: 1e-1}

// RelErr is max |a − b| / max |b|.
func RelErr(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// Tokens makes an int32 array [B, L] from rows.
func Tokens(rows ...[]int) *engine.Array {
	L := len(rows[0])
	ids := make([]int32, 0, len(rows)*L)
	for _, r := range rows {
		for _, id := range r {
			ids = append(ids, int32(id))
		}
	}
	return engine.FromInt32s(ids, len(rows), L)
}

// Logits runs m on rows and returns float32 logits [B, L, V].
func Logits(t testing.TB, m model.Model, caches []model.Cache, rows ...[]int) []float32 {
	t.Helper()
	out := m.Forward(Tokens(rows...), caches)
	f, err := engine.AsType(out, engine.Float32).Float32s()
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	return f
}

// pick returns rows positions of a [L, V] slice.
func pick(f []float32, V int, positions []int) []float32 {
	var out []float32
	for _, p := range positions {
		out = append(out, f[p*V:(p+1)*V]...)
	}
	return out
}

func argmax(f []float32) int {
	best := 0
	for i, v := range f {
		if v > f[best] {
			best = i
		}
	}
	return best
}

// Run loads testdata/models/<variant> and runs every check as a subtest.
func Run(t *testing.T, variant string, tol Tolerances, opts ...model.LoadOptions) {
	dir := Dir(variant)
	ref, err := ReadReference(dir)
	if err != nil {
		t.Fatalf("%s: %v", variant, err)
	}
	m, cfg, err := model.Load(dir, opts...)
	if err != nil {
		t.Fatalf("load %s: %v", variant, err)
	}
	if m.VocabSize() != ref.V {
		t.Fatalf("vocab %d, reference %d", m.VocabSize(), ref.V)
	}
	if cfg.ModelType != ref.ModelType {
		t.Errorf("model_type %q, reference %q", cfg.ModelType, ref.ModelType)
	}
	V := ref.V
	full := Logits(t, m, nil, ref.InputIDs) // [L, V]
	t.Run("logits", func(t *testing.T) {
		got := pick(full, V, ref.LogitsPositions)
		if e := RelErr(got, ref.Logits); e > tol.Logits {
			t.Errorf("logits rel err %.3g > %.3g", e, tol.Logits)
		} else {
			t.Logf("logits rel err %.3g", e)
		}
	})
	t.Run("batch", func(t *testing.T) {
		f := Logits(t, m, nil, ref.Batch.InputIDs...) // [2, L, V]
		L := len(ref.Batch.InputIDs[0])
		var got []float32
		for b := range 2 {
			got = append(got, pick(f[b*L*V:(b+1)*L*V], V, ref.Batch.Positions)...)
		}
		if e := RelErr(got, ref.BatchLogits); e > tol.Logits {
			t.Errorf("batch logits rel err %.3g > %.3g", e, tol.Logits)
		}
	})
	t.Run("greedy", func(t *testing.T) { greedy(t, m, ref, tol, false) })
	t.Run("greedy_cached", func(t *testing.T) { greedy(t, m, ref, tol, true) })
	t.Run("cached_decode", func(t *testing.T) {
		// Prefill 13 tokens, then a chunk of 5, then one at a time: every
		// position's logits equal the full forward's.
		caches := m.NewCaches(model.CacheOptions{})
		got := decode(t, m, caches, ref.InputIDs, []int{13, 5})
		if e := RelErr(got, full); e > tol.Cache {
			t.Errorf("cached decode rel err %.3g > %.3g", e, tol.Cache)
		}
	})
	t.Run("rotating_cache", func(t *testing.T) {
		// A rotating cache larger than the sequence is exact.
		caches := m.NewCaches(model.CacheOptions{MaxKVSize: 64})
		got := decode(t, m, caches, ref.InputIDs, []int{10})
		if e := RelErr(got, full); e > tol.Cache {
			t.Errorf("rotating cache rel err %.3g > %.3g", e, tol.Cache)
		}
	})
	// The fixtures' head dim (16) is below MLX's smallest quantization
	// group (32), so the quantized cache is checked on in-memory models
	// (QuantizedCache).
}

// QuantizedCache checks an 8-bit quantized KV cache (group 32,
// --quantized-kv-start 8) against m's full forward on ids, prefilled 6
// then one at a time: the 8 positions up to the start are attended in
// float and equal a standard cache's, the 9th already reads the quantized
// cache, and all are within tol.QuantizedCache. mlx_lm converts a KVCache
// after the model call that brings its offset to the start
// (maybe_quantize_kv_cache in mlx_lm/generate.py: "c.offset >=
// quantized_kv_start"), so the call for position 8 (offset 8 → 9) is the
// first to attend quantized keys.
func QuantizedCache(t *testing.T, m model.Model, ids []int, tol Tolerances) {
	t.Helper()
	V := m.VocabSize()
	full := Logits(t, m, nil, ids)
	plain := decode(t, m, m.NewCaches(model.CacheOptions{}), ids, []int{6})
	caches := m.NewCaches(model.CacheOptions{KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 8})
	got := decode(t, m, caches, ids, []int{6})
	if e := RelErr(got[:8*V], full[:8*V]); e > tol.Cache {
		t.Errorf("before quantizing: rel err %.3g > %.3g", e, tol.Cache)
	}
	if e := RelErr(got[:8*V], plain[:8*V]); e != 0 {
		t.Errorf("positions 0-7 (offset below the start): rel err %.3g to a standard cache, want 0", e)
	}
	if e := RelErr(got[8*V:9*V], plain[8*V:9*V]); e == 0 {
		t.Errorf("position 8 (offset 8 = --quantized-kv-start) equals a standard cache's: the cache did not quantize at offset >= start")
	}
	if e := RelErr(got, full); e > tol.QuantizedCache {
		t.Errorf("8-bit kv cache rel err %.3g > %.3g", e, tol.QuantizedCache)
	} else {
		t.Logf("8-bit kv cache rel err %.3g", e)
	}
	q, ok := caches[0].(*model.QuantizedKVCache)
	if !ok || !q.Quantized() {
		t.Errorf("cache 0 is %T, not a converted QuantizedKVCache", caches[0])
	}
}

// decode feeds ids through caches in chunks of the given sizes, then one
// token at a time, returning logits [L, V].
func decode(t *testing.T, m model.Model, caches []model.Cache, ids []int, chunks []int) []float32 {
	t.Helper()
	var out []float32
	pos := 0
	for pos < len(ids) {
		n := 1
		if len(chunks) > 0 {
			n, chunks = chunks[0], chunks[1:]
		}
		out = append(out, Logits(t, m, caches, ids[pos:pos+n])...)
		pos += n
	}
	if caches[0].Offset() != len(ids) {
		t.Fatalf("cache offset %d after %d tokens", caches[0].Offset(), len(ids))
	}
	return out
}

// greedy replays the reference continuation (teacher forcing: each step
// appends the reference id) and demands our argmax equal it at every step
// whose reference margin is at least tol.Margin.
func greedy(t *testing.T, m model.Model, ref *Reference, tol Tolerances, cached bool) {
	ids := append([]int(nil), ref.Greedy.PromptIDs...)
	var caches []model.Cache
	if cached {
		caches = m.NewCaches(model.CacheOptions{})
	}
	next := ids
	V := ref.V
	checked := 0
	for step, want := range ref.Greedy.IDs {
		var f []float32
		if cached {
			f = Logits(t, m, caches, next)
		} else {
			f = Logits(t, m, nil, ids)
		}
		if got := argmax(f[len(f)-V:]); ref.Greedy.Margins[step] >= tol.Margin {
			checked++
			if got != want {
				t.Errorf("step %d: got id %d, reference %d (margin %.3g)", step, got, want, ref.Greedy.Margins[step])
			}
		}
		ids = append(ids, want)
		next = []int{want}
	}
	t.Logf("%d of %d greedy steps above margin %.2g checked", checked, len(ref.Greedy.IDs), tol.Margin)
	if checked == 0 {
		t.Errorf("no greedy step has a reference margin above %.2g", tol.Margin)
	}
}

// MLXLayout writes variant's checkpoint as its full sanitize plan makes
// it (mlx_lm's layout: what mlx_lm's sanitize produces) into a temporary
// folder with the fixture's config, and checks it: the plan of the
// written checkpoint copies every tensor through unchanged (idempotence),
// and loading it gives the reference logits within tol. It returns the
// written tensors' dtypes and shapes, for the caller's layout checks.
func MLXLayout(t *testing.T, variant string, tol float64) map[string]model.TensorMeta {
	t.Helper()
	src := Dir(variant)
	ref, err := ReadReference(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := model.ReadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]any{}
	data, _ := json.Marshal(cfg.Raw)
	_ = json.Unmarshal(data, &raw)
	st, err := safetensors.OpenModel(src)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	metas := map[string]model.TensorMeta{}
	for _, e := range st.Entries() {
		metas[e.Name] = model.TensorMeta{DType: string(e.DType), Shape: e.Shape}
	}
	plan, err := model.FullSanitizePlan(cfg.ModelType, raw, metas)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]model.TensorMeta{}
	var tensors []safetensors.Data
	for _, p := range plan {
		srcs := make([]model.RawTensor, len(p.Sources))
		for i, s := range p.Sources {
			tt, err := st.Tensor(s)
			if err != nil {
				t.Fatal(err)
			}
			srcs[i] = model.RawTensor{DType: string(tt.DType), Shape: tt.Shape, Data: tt.Bytes()}
		}
		r, err := model.ApplyPlan(p, srcs)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: p.Name, DType: safetensors.DType(r.DType), Shape: r.Shape}, Bytes: r.Data})
		out[p.Name] = model.TensorMeta{DType: r.DType, Shape: r.Shape}
	}
	dir := t.TempDir()
	if err := safetensors.Save(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "mlx"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		if err != nil && f == "config.json" {
			t.Fatal(err)
		}
	}

	again, err := model.FullSanitizePlan(cfg.ModelType, raw, out)
	if err != nil {
		t.Fatalf("plan of the MLX layout: %v", err)
	}
	for _, p := range again {
		if p.Op != model.OpCopy || len(p.Steps) != 0 || len(p.Sources) != 1 || p.Sources[0] != p.Name {
			t.Errorf("plan of the MLX layout changes %s: %+v", p.Name, p)
		}
	}
	if len(again) != len(out) {
		t.Errorf("plan of the MLX layout makes %d tensors of %d", len(again), len(out))
	}

	m, _, err := model.Load(dir)
	if err != nil {
		t.Fatalf("load the MLX layout: %v", err)
	}
	got := pick(Logits(t, m, nil, ref.InputIDs), ref.V, ref.LogitsPositions)
	if e := RelErr(got, ref.Logits); e > tol {
		t.Errorf("MLX layout: logits rel err %.3g > %.3g", e, tol)
	} else {
		t.Logf("MLX layout: logits rel err %.3g", e)
	}
	return out
}

// RunF32AndBF16 runs the fixture checks on <arch>-f32, on <arch>-bf16
// computed in float32 (the reference is exactly this: bf16 weights,
// float32 compute) and on <arch>-bf16 with bf16 activations, as mlx_lm
// runs a bf16 checkpoint; each is a subtest named by its variant.
func RunF32AndBF16(t *testing.T, arch string) {
	t.Run(arch+"-f32", func(t *testing.T) { Run(t, arch+"-f32", F32) })
	f32 := engine.Float32
	t.Run(arch+"-bf16/compute_f32", func(t *testing.T) {
		Run(t, arch+"-bf16", F32, model.LoadOptions{ComputeDType: &f32})
	})
	t.Run(arch+"-bf16", func(t *testing.T) { Run(t, arch+"-bf16", BF16) })
}
