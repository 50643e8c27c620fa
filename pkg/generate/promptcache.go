package generate

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/safetensors"
)

// Prompt-cache files are mlx_lm's save_prompt_cache format
// (mlx_lm/models/cache.py): one safetensors file whose tensors are each
// layer's state tree flattened with tree_flatten, "<layer>.<path>" (keys
// "<layer>.0" and values "<layer>.1" [B, Hk, T, Dh] for a KVCache;
// "<layer>.<0|1>.<0|1|2>" for a QuantizedKVCache's keys|values
// packed|scales|biases; see model.SavedCache), and whose metadata is the
// flattened list [meta states, user metadata, class names]: "0.<layer>"
// ("" for a class without meta_state) or "0.<layer>.<i>", "1.<key>",
// "2.<layer>".

// SavePromptCache writes caches and user metadata (mlx_lm's cache_prompt
// writes "model" and "tokenizer_config") to path, atomically.
func SavePromptCache(path string, caches []model.Cache, metadata map[string]string) error {
	var tensors []safetensors.Data
	meta := map[string]string{}
	for k, v := range metadata {
		meta["1."+k] = v
	}
	for i, c := range caches {
		s, err := model.SaveCache(c)
		if err != nil {
			return fmt.Errorf("save prompt cache %s: layer %d: %w", path, i, err)
		}
		s.Layer = i
		meta[fmt.Sprintf("2.%d", i)] = s.Class
		if len(s.Meta) == 0 {
			meta[fmt.Sprintf("0.%d", i)] = ""
		}
		for j, m := range s.Meta {
			meta[fmt.Sprintf("0.%d.%d", i, j)] = m
		}
		paths := make([]string, 0, len(s.Arrays))
		for p := range s.Arrays {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			a, name := s.Arrays[p], s.Name(p)
			dt, err := stDType(a.DType())
			if err != nil {
				return fmt.Errorf("save prompt cache %s: tensor %s: %w", path, name, err)
			}
			b, err := a.Bytes()
			if err != nil {
				return fmt.Errorf("save prompt cache %s: tensor %s: %w", path, name, err)
			}
			tensors = append(tensors, safetensors.Data{TensorSpec: safetensors.TensorSpec{Name: name, DType: dt, Shape: a.Shape()}, Bytes: b})
		}
	}
	if err := safetensors.Save(path, tensors, meta); err != nil {
		return fmt.Errorf("save prompt cache: %w", err)
	}
	return nil
}

// LoadPromptCache reads a prompt-cache file written by mlx_lm or
// SavePromptCache and returns one cache per layer and the user metadata.
// Every class registered with model.RegisterCacheClass loads: KVCache,
// RotatingKVCache, QuantizedKVCache, and ArraysCache once the
// architecture that uses it (qwen3_next) is linked in. Caches whose class
// does not record the tokens seen (ArraysCache) take the other layers'
// offset. With --kv-bits, pass the caches through model.ApplyCacheOptions
// so that KVCache layers quantize at --quantized-kv-start as mlx_lm's do.
func LoadPromptCache(path string) ([]model.Cache, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load prompt cache: %w", err)
	}
	f, err := safetensors.FromBytes(path, data)
	if err != nil {
		return nil, nil, fmt.Errorf("load prompt cache: %w", err)
	}
	fail := func(format string, args ...any) ([]model.Cache, map[string]string, error) {
		return nil, nil, fmt.Errorf("load prompt cache %s: "+format, append([]any{path}, args...)...)
	}
	user := map[string]string{}
	classes := map[int]string{}
	metas := map[int]map[int]string{}
	for k, v := range f.Metadata() {
		switch {
		case strings.HasPrefix(k, "1."):
			user[k[2:]] = v
		case strings.HasPrefix(k, "2."):
			i, err := strconv.Atoi(k[2:])
			if err != nil || i < 0 {
				return fail("metadata key %q: expected \"2.<layer>\"", k)
			}
			classes[i] = v
		case strings.HasPrefix(k, "0."):
			layer, idx, hasIdx := strings.Cut(k[2:], ".")
			i, err := strconv.Atoi(layer)
			j, err2 := strconv.Atoi(idx)
			if err != nil || i < 0 || (hasIdx && (err2 != nil || j < 0)) || (!hasIdx && v != "") {
				return fail("metadata key %q: expected \"0.<layer>\" (empty) or \"0.<layer>.<index>\"", k)
			}
			if metas[i] == nil {
				metas[i] = map[int]string{}
			}
			if hasIdx {
				metas[i][j] = v
			}
		}
	}
	if len(classes) == 0 {
		return fail("no cache classes in the metadata (\"2.<layer>\"); not a prompt-cache file")
	}
	layers := make([]int, 0, len(classes))
	for i := range classes {
		layers = append(layers, i)
	}
	sort.Ints(layers)
	saved := make([]model.SavedCache, len(layers))
	for n, i := range layers {
		if i != n {
			return fail("layer %d has no class (\"2.%d\" missing)", n, n)
		}
		saved[i] = model.SavedCache{Layer: i, Class: classes[i], Arrays: map[string]*engine.Array{}}
		for j := range len(metas[i]) {
			m, ok := metas[i][j]
			if !ok {
				return fail("layer %d (%s): meta_state value \"0.%d.%d\" missing", i, classes[i], i, j)
			}
			saved[i].Meta = append(saved[i].Meta, m)
		}
	}
	for i := range metas {
		if i >= len(saved) {
			return fail("meta_state for layer %d but only %d layers have a class", i, len(saved))
		}
	}
	for _, name := range f.Names() {
		layer, p, ok := strings.Cut(name, ".")
		i, err := strconv.Atoi(layer)
		if !ok || err != nil || i < 0 || p == "" {
			return fail("tensor %q: expected \"<layer>.<index>\"", name)
		}
		if i >= len(saved) {
			return fail("tensor %q for layer %d but only %d layers have a class", name, i, len(saved))
		}
		a, err := arrayOf(f, name)
		if err != nil {
			return fail("%w", err)
		}
		saved[i].Arrays[p] = a
	}
	caches := make([]model.Cache, len(saved))
	offset := 0
	for i, s := range saved {
		c, err := model.LoadCache(s)
		if err != nil {
			return fail("layer %d (%s): %w", i, s.Class, err)
		}
		caches[i] = c
		offset = max(offset, c.Offset())
	}
	for _, c := range caches {
		if r, ok := c.(model.OffsetRestorer); ok {
			r.RestoreOffset(offset)
		}
	}
	if err := evalStates(caches); err != nil {
		return fail("%w", err)
	}
	return caches, user, nil
}

func arrayOf(f *safetensors.File, name string) (*engine.Array, error) {
	t, err := f.Tensor(name)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	var dt engine.DType
	switch t.DType {
	case safetensors.F32:
		dt = engine.Float32
	case safetensors.F16:
		dt = engine.Float16
	case safetensors.BF16:
		dt = engine.BFloat16
	case safetensors.U32:
		dt = engine.Uint32
	default:
		return nil, fmt.Errorf("tensor %q has dtype %s (expected F32, F16, BF16 or U32)", name, t.DType)
	}
	a := engine.FromBytes(dt, t.Shape, t.Bytes())
	if err := a.Err(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	return a, nil
}

func stDType(dt engine.DType) (safetensors.DType, error) {
	switch dt {
	case engine.Float32:
		return safetensors.F32, nil
	case engine.Float16:
		return safetensors.F16, nil
	case engine.BFloat16:
		return safetensors.BF16, nil
	case engine.Uint32:
		return safetensors.U32, nil
	}
	return "", fmt.Errorf("dtype %v cannot be saved in a prompt cache", dt)
}
