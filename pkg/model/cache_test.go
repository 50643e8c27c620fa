package model_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
)

// positions makes keys [1, 1, L, 2] whose values are their positions.
func positions(from, n int) *engine.Array {
	f := make([]float32, 0, 2*n)
	for p := from; p < from+n; p++ {
		f = append(f, float32(p), float32(p))
	}
	return engine.FromFloat32s(f, 1, 1, n, 2)
}

func stored(t *testing.T, k *engine.Array) []int {
	t.Helper()
	f, err := k.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for i := 0; i < len(f); i += 2 {
		out = append(out, int(f[i]))
	}
	return out
}

func TestKVCacheGrows(t *testing.T) {
	c := &model.KVCache{}
	pos := 0
	for _, n := range []int{100, 200, 1, 1, 300} {
		k, v := c.Update(positions(pos, n), positions(pos, n))
		pos += n
		got := stored(t, k)
		if len(got) != pos || got[0] != 0 || got[pos-1] != pos-1 || !slices.Equal(got, stored(t, v)) {
			t.Fatalf("after %d positions: keys %v...", pos, got[:min(8, len(got))])
		}
	}
	if c.Trim(5) != 5 || c.Offset() != pos-5 {
		t.Fatalf("trim: offset %d", c.Offset())
	}
	k, _ := c.Update(positions(pos-5, 1), positions(pos-5, 1))
	if got := stored(t, k); len(got) != pos-4 || got[pos-5] != pos-5 {
		t.Fatalf("after trim and update: %d keys, last %d", len(got), got[len(got)-1])
	}
	st := c.State()
	if len(st) != 2 || st[0].Dim(2) != pos-4 {
		t.Fatalf("state %v", st)
	}
}

// TestRotatingKVCache checks which positions a rotating cache attends:
// single-token updates see the Keep first positions and the most recent
// others (MaxSize in all); a multi-token update sees them in temporal
// order followed by the new ones.
func TestRotatingKVCache(t *testing.T) {
	const maxSize, keep = 8, 2
	c := model.NewRotatingKVCache(maxSize, keep)
	pos := 0
	k, _ := c.Update(positions(0, 5), positions(0, 5))
	pos = 5
	if got := stored(t, k); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("prefill: %v", got)
	}
	for range 10 {
		k, _ = c.Update(positions(pos, 1), positions(pos, 1))
		pos++
		got := stored(t, k)
		slices.Sort(got)
		want := []int{0, 1}
		for p := max(keep, pos-(maxSize-keep)); p < pos; p++ {
			want = append(want, p)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after %d positions: attends %v, want %v", pos, got, want)
		}
	}
	if c.Trimmable() {
		t.Error("a wrapped rotating cache claims to be trimmable")
	}
	// Multi-token update: temporal order, MaxSize−1 old positions kept
	// (keep first), then the new ones.
	k, _ = c.Update(positions(pos, 3), positions(pos, 3))
	got := stored(t, k)
	want := []int{0, 1}
	for p := pos - (maxSize - 1 - keep); p < pos+3; p++ {
		want = append(want, p)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("multi-token update: %v, want %v", got, want)
	}
	pos += 3
	m := c.Mask(3, 0)
	if !m.Causal || m.Window != maxSize {
		t.Errorf("mask %+v, want causal window %d", m, maxSize)
	}
	if c.Offset() != pos {
		t.Errorf("offset %d, want %d", c.Offset(), pos)
	}
	// Single-token updates after it keep rotating correctly.
	for range 5 {
		k, _ = c.Update(positions(pos, 1), positions(pos, 1))
		pos++
		got := stored(t, k)
		slices.Sort(got)
		if len(got) != maxSize || got[0] != 0 || got[1] != 1 || got[maxSize-1] != pos-1 || got[2] != pos-(maxSize-keep) {
			t.Fatalf("after %d positions: attends %v", pos, got)
		}
	}
}

func TestNewCaches(t *testing.T) {
	cs := model.NewCaches(3, []int{8, 0, 8}, model.CacheOptions{KVBits: 4, KVGroupSize: 32})
	if r, ok := cs[0].(*model.RotatingKVCache); !ok || r.MaxSize != 8 || r.Keep != 0 {
		t.Errorf("sliding layer cache %T %+v", cs[0], cs[0])
	}
	if q, ok := cs[1].(*model.QuantizedKVCache); !ok || q.Bits != 4 || q.GroupSize != 32 {
		t.Errorf("global layer cache %T", cs[1])
	}
	cs = model.NewCaches(2, nil, model.CacheOptions{MaxKVSize: 100})
	if r, ok := cs[1].(*model.RotatingKVCache); !ok || r.MaxSize != 100 || r.Keep != 4 {
		t.Errorf("max-kv-size cache %T", cs[1])
	}
}

// smallLlama is an in-memory llama with head dim 32 (the fixtures' 16 is
// below the smallest quantization group).
func smallLlama(t *testing.T, window int) model.Model {
	t.Helper()
	keys := map[string]any{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
		"num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256, "rms_norm_eps": 1e-5, "tie_word_embeddings": true}
	if window > 0 {
		keys["sliding_window"] = window
		keys["layer_types"] = []string{"sliding_attention", "full_attention"}
	}
	cfg, err := model.NewConfig(keys)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.RandomModel(cfg, engine.Float32, 7)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestQuantizedKVCache(t *testing.T) {
	m := smallLlama(t, 0)
	ids := make([]int, 40)
	for i := range ids {
		ids[i] = (i*37 + 11) % 256
	}
	tol := modeltest.F32
	tol.QuantizedCache = 1e-2
	modeltest.QuantizedCache(t, m, ids, tol)
}

// TestSlidingWindowCache: a sliding-window layer's rotating cache decodes
// like the full forward with the window mask.
func TestSlidingWindowCache(t *testing.T) {
	m := smallLlama(t, 6)
	ids := make([]int, 30)
	for i := range ids {
		ids[i] = (i*53 + 5) % 256
	}
	full := modeltest.Logits(t, m, nil, ids)
	if e := modeltest.RelErr(modeltest.Logits(t, smallLlama(t, 0), nil, ids), full); e < 1e-4 {
		t.Fatalf("the window changes nothing (rel err %.3g): the test would not see a wrong mask", e)
	}
	for _, chunks := range [][]int{{1}, {10}, {10, 7}} {
		caches := m.NewCaches(model.CacheOptions{})
		var got []float32
		for pos := 0; pos < len(ids); {
			n := 1
			if len(chunks) > 0 {
				n, chunks = chunks[0], chunks[1:]
			}
			got = append(got, modeltest.Logits(t, m, caches, ids[pos:pos+n])...)
			pos += n
		}
		if e := modeltest.RelErr(got, full); e > 1e-5 {
			t.Errorf("chunks %v: rel err %.3g", chunks, e)
		}
	}
}

// TestCacheRestore saves rotating and quantized caches through State/Meta,
// restores them into fresh caches and checks decoding continues the same.
func TestCacheRestore(t *testing.T) {
	m := smallLlama(t, 0)
	ids := make([]int, 30)
	for i := range ids {
		ids[i] = (i*29 + 3) % 256
	}
	for _, o := range []model.CacheOptions{{MaxKVSize: 12}, {KVBits: 8, KVGroupSize: 32}, {MaxKVSize: 12, KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 6}} {
		caches := m.NewCaches(o)
		modeltest.Logits(t, m, caches, ids[:20])
		for _, id := range ids[20:25] {
			modeltest.Logits(t, m, caches, []int{id})
		}
		fresh := m.NewCaches(o)
		for i, c := range caches {
			var err error
			switch r := fresh[i].(type) {
			case *model.RotatingKVCache:
				err = r.Restore(c.State(), c.Meta(), engine.Float32)
			case *model.QuantizedKVCache:
				err = r.Restore(c.State(), c.Meta(), engine.Float32)
			}
			if err != nil {
				t.Fatalf("%+v: restore layer %d: %v", o, i, err)
			}
		}
		want := modeltest.Logits(t, m, caches, ids[25:])
		got := modeltest.Logits(t, m, fresh, ids[25:])
		if e := modeltest.RelErr(got, want); e > 1e-6 {
			t.Errorf("%+v: restored cache rel err %.3g", o, e)
		}
	}
}

// TestQuantizedRotatingKVCache: --max-kv-size with --kv-bits (which mlx_lm
// refuses) stays within quantization error of the float rotating cache,
// through the wrap and multi-token updates, and really quantizes.
func TestQuantizedRotatingKVCache(t *testing.T) {
	for _, window := range []int{0, 6} {
		m := smallLlama(t, window)
		ids := make([]int, 40)
		for i := range ids {
			ids[i] = (i*31 + 7) % 256
		}
		run := func(o model.CacheOptions) ([]float32, []model.Cache) {
			caches := m.NewCaches(o)
			var out []float32
			for pos, n := 0, 9; pos < len(ids); pos, n = pos+n, 1 {
				if pos == 30 {
					n = 4 // a multi-token update after wrapping
				}
				out = append(out, modeltest.Logits(t, m, caches, ids[pos:pos+n])...)
			}
			return out, caches
		}
		plain, _ := run(model.CacheOptions{MaxKVSize: 16})
		quant, caches := run(model.CacheOptions{MaxKVSize: 16, KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 10})
		V := m.VocabSize()
		if e := modeltest.RelErr(quant[:10*V], plain[:10*V]); e > 1e-6 { // offsets 0-9 < start 10: float
			t.Errorf("window %d: before quantizing: rel err %.3g", window, e)
		}
		if e := modeltest.RelErr(quant[10*V:11*V], plain[10*V:11*V]); e == 0 {
			t.Errorf("window %d: offset 10 = start still attended in float", window)
		}
		if e := modeltest.RelErr(quant, plain); e > 1e-2 || e == 0 {
			t.Errorf("window %d: 8-bit rotating cache rel err %.3g, want (0, 1e-2]", window, e)
		}
		for i, c := range caches {
			r, ok := c.(*model.RotatingKVCache)
			if !ok || !r.Quantized() || len(r.State()) != 6 {
				t.Errorf("window %d: layer %d cache %T not quantized", window, i, c)
			}
		}
	}
}

// TestSaveLoadCache: SaveCache/LoadCache round-trip each class by name,
// and LoadCache names what is wrong with a bad layer.
func TestSaveLoadCache(t *testing.T) {
	q := model.NewQuantizedKVCache(32, 4, 0)
	q.Update(engine.Zeros([]int{1, 1, 2, 32}, engine.Float32), engine.Zeros([]int{1, 1, 2, 32}, engine.Float32))
	q.Update(engine.Ones([]int{1, 1, 1, 32}, engine.Float32), engine.Ones([]int{1, 1, 1, 32}, engine.Float32))
	rq := model.NewQuantizedRotatingKVCache(4, 1, 32, 8, 0)
	for range 6 {
		rq.Update(engine.Ones([]int{1, 1, 1, 32}, engine.Float32), engine.Ones([]int{1, 1, 1, 32}, engine.Float32))
	}
	kv := &model.KVCache{}
	kv.Update(positions(0, 3), positions(0, 3))
	for _, tc := range []struct {
		c     model.Cache
		class string
		meta  []string
	}{
		{kv, "KVCache", nil},
		{q, "QuantizedKVCache", []string{"3", "32", "4"}},
		{rq, "QuantizedRotatingKVCache", []string{"1", "4", "6", "3", "32", "8"}},
	} {
		s, err := model.SaveCache(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if s.Class != tc.class || !slices.Equal(s.Meta, tc.meta) {
			t.Errorf("%T saved as %s %v, want %s %v", tc.c, s.Class, s.Meta, tc.class, tc.meta)
		}
		c, err := model.LoadCache(s)
		if err != nil {
			t.Fatalf("%s: %v", tc.class, err)
		}
		if c.Offset() != tc.c.Offset() || !slices.Equal(c.Meta(), tc.c.Meta()) {
			t.Errorf("%s: loaded offset %d meta %v, saved %d %v", tc.class, c.Offset(), c.Meta(), tc.c.Offset(), tc.c.Meta())
		}
	}
	if _, err := model.SaveCache(&model.KVCache{}); err == nil {
		t.Error("empty KVCache saved")
	}

	s, _ := model.SaveCache(q)
	s.Layer = 7
	bad := s
	bad.Meta = []string{"3", "32", "3"} // 3 bits do not fit 4-bit words
	if _, err := model.LoadCache(bad); err == nil || !strings.Contains(err.Error(), "do not fit group size 32 and 3 bits") {
		t.Errorf("wrong bits: %v", err)
	}
	bad.Meta = []string{"3", "16", "4"}
	if _, err := model.LoadCache(bad); err == nil || !strings.Contains(err.Error(), "group size 16 is not supported") {
		t.Errorf("wrong group: %v", err)
	}
	bad = s
	bad.Arrays = map[string]*engine.Array{}
	for k, v := range s.Arrays {
		bad.Arrays[k] = v
	}
	bad.Arrays["1.0"] = bad.Arrays["1.1"]
	if _, err := model.LoadCache(bad); err == nil || !strings.Contains(err.Error(), "values: want uint32 packed words") {
		t.Errorf("float packed words: %v", err)
	}
	delete(bad.Arrays, "1.0")
	if _, err := model.LoadCache(bad); err == nil || !strings.Contains(err.Error(), `missing tensor "7.1.0"`) {
		t.Errorf("missing tensor: %v", err)
	}
	bad.Class = "CacheList"
	if _, err := model.LoadCache(bad); err == nil || !strings.Contains(err.Error(), `unknown cache class "CacheList"`) {
		t.Errorf("unknown class: %v", err)
	}
}

// TestApplyCacheOptions: with --kv-bits a loaded KVCache becomes a
// QuantizedKVCache holding it that converts past the start, and an
// unquantized rotating cache takes the bits; without, nothing changes.
func TestApplyCacheOptions(t *testing.T) {
	kv := &model.KVCache{}
	x := engine.Ones([]int{1, 1, 3, 32}, engine.Float32)
	kv.Update(x, x)
	rot := model.NewRotatingKVCache(8, 2)
	rot.Update(x, x)
	caches := []model.Cache{kv, rot}
	if out := model.ApplyCacheOptions(caches, model.CacheOptions{}); out[0] != kv || rot.Bits != 0 {
		t.Fatal("changed without --kv-bits")
	}
	out := model.ApplyCacheOptions(caches, model.CacheOptions{KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 4})
	q, ok := out[0].(*model.QuantizedKVCache)
	if !ok || q.Offset() != 3 || q.Quantized() || rot.Bits != 8 || rot.GroupSize != 32 || rot.Start != 4 {
		t.Fatalf("got %T (offset %d), rotating bits %d group %d start %d", out[0], out[0].Offset(), rot.Bits, rot.GroupSize, rot.Start)
	}
	one := engine.Ones([]int{1, 1, 1, 32}, engine.Float32)
	for n := 4; n <= 6; n++ {
		k, _ := q.Update(one, one)
		out[1].Update(one, one)
		if k.Dim(2) != n {
			t.Fatalf("offset %d: keys %v", n, k.Shape())
		}
	}
	if !q.Quantized() || !rot.Quantized() {
		t.Errorf("not quantized past the start: %v %v", q.Quantized(), rot.Quantized())
	}
}

// TestQuantizeAtStart: a quantizing cache (standard or rotating, made by
// NewCaches or adapted by ApplyCacheOptions) converts right after the
// update that brings its offset to --quantized-kv-start, as mlx_lm's
// maybe_quantize_kv_cache (mlx_lm/generate.py) checks "c.offset >=
// quantized_kv_start" after each model call: that update is attended in
// float, the next one quantized. A cache loaded past the start converts
// after its first update.
func TestQuantizeAtStart(t *testing.T) {
	one := engine.Ones([]int{1, 1, 1, 32}, engine.Float32)
	three := engine.Ones([]int{1, 1, 3, 32}, engine.Float32)
	o := model.CacheOptions{KVBits: 8, KVGroupSize: 32, QuantizedKVStart: 4}
	type qcache interface {
		model.Cache
		model.QuantizedUpdater
		Quantized() bool
	}
	for _, size := range []int{0, 16} {
		o.MaxKVSize = size
		c := model.NewCaches(1, nil, o)[0].(qcache)
		for off := 1; off <= 5; off++ {
			kv, _, _ := c.UpdateQuantized(one, one)
			if attended := kv != nil; attended != (off-1 >= 4) {
				t.Errorf("max-kv-size %d: update to offset %d attended quantized: %v", size, off, attended)
			}
			if c.Quantized() != (off >= 4) {
				t.Errorf("max-kv-size %d: after offset %d quantized: %v, want %v", size, off, c.Quantized(), off >= 4)
			}
		}
		// Start 0: the first update is attended in float, then it converts.
		o0 := o
		o0.QuantizedKVStart = 0
		c = model.NewCaches(1, nil, o0)[0].(qcache)
		if kv, _, _ := c.UpdateQuantized(three, three); kv != nil || !c.Quantized() {
			t.Errorf("max-kv-size %d, start 0: first update quantized %v, converted after %v", size, kv != nil, c.Quantized())
		}
	}
	// Loaded past the start: the next update reads float, then converts.
	for _, loaded := range []model.Cache{&model.KVCache{}, model.NewRotatingKVCache(16, 4)} {
		loaded.Update(engine.Ones([]int{1, 1, 6, 32}, engine.Float32), engine.Ones([]int{1, 1, 6, 32}, engine.Float32))
		o.MaxKVSize = 0
		c := model.ApplyCacheOptions([]model.Cache{loaded}, o)[0].(qcache)
		if c.Quantized() {
			t.Errorf("%T: quantized before an update", loaded)
		}
		if kv, _, _ := c.UpdateQuantized(one, one); kv != nil || !c.Quantized() {
			t.Errorf("%T: update after loading attended quantized %v, converted after %v", loaded, kv != nil, c.Quantized())
		}
		if kv, _, _ := c.UpdateQuantized(one, one); kv == nil {
			t.Errorf("%T: second update after loading not attended quantized", loaded)
		}
	}
}
