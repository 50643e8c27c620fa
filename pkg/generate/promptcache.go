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

// Prompt-cache files are mlx_lm's save_prompt_cache format: one safetensors
// file whose tensors are each layer's state, named "<layer>.<i>" (keys
// "<layer>.0" and values "<layer>.1" [B, Hk, T, Dh] for a KVCache; "<layer>.<k|v>.<packed|scales|biases>"
// for a QuantizedKVCache), and whose metadata is the flattened list
// [meta states, user metadata, class names]: "0.<layer>[.<i>]", "1.<key>",
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
		class, err := cacheClass(c)
		if err != nil {
			return fmt.Errorf("save prompt cache %s: layer %d: %w", path, i, err)
		}
		meta[fmt.Sprintf("2.%d", i)] = class
		m := c.Meta()
		if len(m) == 0 {
			meta[fmt.Sprintf("0.%d", i)] = ""
		}
		for j, s := range m {
			meta[fmt.Sprintf("0.%d.%d", i, j)] = s
		}
		st := c.State()
		for j, a := range st {
			name := fmt.Sprintf("%d.%d", i, j)
			if len(st) == 6 { // quantized: (keys, values) x (packed, scales, biases)
				name = fmt.Sprintf("%d.%d.%d", i, j/3, j%3)
			}
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
// Only standard KVCache layers can be restored for now.
func LoadPromptCache(path string) ([]model.Cache, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load prompt cache: %w", err)
	}
	f, err := safetensors.FromBytes(path, data)
	if err != nil {
		return nil, nil, fmt.Errorf("load prompt cache: %w", err)
	}
	user := map[string]string{}
	classes := map[int]string{}
	for k, v := range f.Metadata() {
		switch {
		case strings.HasPrefix(k, "1."):
			user[k[2:]] = v
		case strings.HasPrefix(k, "2."):
			i, err := strconv.Atoi(k[2:])
			if err != nil || i < 0 {
				return nil, nil, fmt.Errorf("load prompt cache %s: metadata key %q: expected \"2.<layer>\"", path, k)
			}
			classes[i] = v
		}
	}
	if len(classes) == 0 {
		return nil, nil, fmt.Errorf("load prompt cache %s: no cache classes in the metadata (\"2.<layer>\"); not a prompt-cache file", path)
	}
	layers := make([]int, 0, len(classes))
	for i := range classes {
		layers = append(layers, i)
	}
	sort.Ints(layers)
	caches := make([]model.Cache, len(layers))
	for n, i := range layers {
		if i != n {
			return nil, nil, fmt.Errorf("load prompt cache %s: layer %d has no class (\"2.%d\" missing)", path, n, n)
		}
		if classes[i] != "KVCache" {
			return nil, nil, fmt.Errorf("load prompt cache %s: layer %d is a %s; only KVCache layers can be loaded yet", path, i, classes[i])
		}
		k, err := arrayOf(f, fmt.Sprintf("%d.0", i))
		if err != nil {
			return nil, nil, fmt.Errorf("load prompt cache %s: %w", path, err)
		}
		v, err := arrayOf(f, fmt.Sprintf("%d.1", i))
		if err != nil {
			return nil, nil, fmt.Errorf("load prompt cache %s: %w", path, err)
		}
		if k.NDim() != 4 || !equalShapes(k.Shape(), v.Shape()) {
			return nil, nil, fmt.Errorf("load prompt cache %s: layer %d: keys %v and values %v must both be [B, Hk, T, Dh]", path, i, k.Shape(), v.Shape())
		}
		c := &model.KVCache{}
		if err := c.SetState(k, v); err != nil {
			return nil, nil, fmt.Errorf("load prompt cache %s: layer %d: %w", path, i, err)
		}
		caches[i] = c
	}
	if err := evalStates(caches); err != nil {
		return nil, nil, fmt.Errorf("load prompt cache %s: %w", path, err)
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
	default:
		return nil, fmt.Errorf("tensor %q has dtype %s (expected F32, F16 or BF16)", name, t.DType)
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

// cacheClass is the mlx_lm class name of a cache.
func cacheClass(c model.Cache) (string, error) {
	switch c := c.(type) {
	case *model.KVCache:
		return "KVCache", nil
	case *model.RotatingKVCache:
		return "RotatingKVCache", nil
	case *model.QuantizedKVCache:
		if !c.Quantized() {
			return "KVCache", nil // mlx_lm converts the class at --quantized-kv-start
		}
		return "QuantizedKVCache", nil
	}
	return "", fmt.Errorf("cache type %T has no mlx_lm equivalent", c)
}

func equalShapes(a, b []int) bool {
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
