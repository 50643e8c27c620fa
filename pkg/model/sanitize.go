package model

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// TensorOp says how an output tensor is made from checkpoint tensors: as a
// TensorPlan's Op, how its sources are combined (OpCopy, OpStack, or the
// older one-source OpEvenRows/OpOddRows); as a Step's Op, what is then done
// to the result.
type TensorOp int

const (
	// OpCopy: one source, unchanged.
	OpCopy TensorOp = iota
	// OpStack: the sources stacked along a new leading axis, in order (MoE
	// experts: E tensors [out, in] become one [E, out, in]).
	OpStack
	// OpEvenRows / OpOddRows: the even or odd rows (axis -2) of one
	// source (the interleaved rows of an MXFP4 gate_up_proj).
	OpEvenRows
	OpOddRows
	// OpEvenCols / OpOddCols: the even or odd elements of the last axis
	// (transformers' gpt-oss gate_up_proj [E, D, 2I] and its [E, 2I] bias
	// interleave gate and up columns).
	OpEvenCols
	OpOddCols
	// OpTranspose swaps the last two axes ([E, D, I] → [E, I, D]).
	OpTranspose
	// OpReshape gives the data Step.Shape (same element count; one -1 is
	// inferred); with Step.DType set, the bytes are reinterpreted as that
	// dtype and the byte count is what must match (OpenAI's MXFP4 blocks,
	// uint8 [..., G, 16], are MLX's packed uint32 [..., 4G]).
	OpReshape
	// OpSlice keeps Step.Start ≤ i < Step.Stop along Step.Axis (negative
	// axes count from the end): with OpReshape, a split of a fused
	// projection (DeepSeek-V3's kv_b_proj into embed_q/unembed_out).
	OpSlice
	// OpAddScalar adds Step.Value to every element of a float tensor
	// (Qwen3-Next's norms: w − 1 on the hub, w in mlx_lm's layout). F16
	// and BF16 become F32 (the sum in float32, as transformers computes
	// 1 + w.float()); a converter casting it back to the half dtype rounds
	// once, giving the bytes of mlx_lm's half-precision add.
	OpAddScalar
)

// Step is one operation applied to a plan's tensor after its sources are
// combined.
type Step struct {
	Op    TensorOp // OpEvenRows … OpAddScalar
	Shape []int    // OpReshape
	DType string   // OpReshape: reinterpret the bytes as this dtype ("" keeps it)
	Axis  int      // OpSlice
	Start int      // OpSlice
	Stop  int      // OpSlice
	Value float64  // OpAddScalar
}

// TensorPlan makes one tensor of the loaded model from checkpoint tensors:
// Op combines Sources, then Steps apply in order.
type TensorPlan struct {
	Name    string
	Op      TensorOp
	Sources []string
	Steps   []Step
}

// TensorMeta describes a checkpoint tensor without its data.
type TensorMeta struct {
	DType string // safetensors dtype name: F32, BF16, U32, ...
	Shape []int
}

// SanitizeFunc is an architecture's checkpoint fix-up (mlx_lm's
// Model.sanitize) as a plan over tensor names and shapes, so the same
// logic serves the in-memory loader and the streaming converter: dropping
// tensors (rotary inv_freq, a tied lm_head), renaming, stacking experts,
// splitting, transposing, reshaping and shifting values (Steps; ApplyPlan
// runs them). It must be idempotent: a plan for an already-sanitized (MLX)
// checkpoint copies every tensor through. cfg is the raw config.json;
// tensors holds every tensor's dtype and shape.
//
// A layout change that spans several tensors gives each of them at least
// one step (a reshape to its own shape for a plain rename), so that
// SanitizePlan, which keeps stepped tensors as the checkpoint has them,
// keeps the whole group in the source layout.
type SanitizeFunc func(cfg map[string]any, tensors map[string]TensorMeta) ([]TensorPlan, error)

var (
	sanitizeMu sync.RWMutex
	sanitizers = map[string]SanitizeFunc{}
)

// RegisterSanitize sets the sanitize plan of a model_type. Architectures
// call it from init.
func RegisterSanitize(modelType string, f SanitizeFunc) {
	sanitizeMu.Lock()
	defer sanitizeMu.Unlock()
	sanitizers[modelType] = f
}

// FullSanitizePlan returns the plan for modelType (after the alias
// table), steps included: what mlx_lm's sanitize makes of the checkpoint.
// Without a registered sanitizer every tensor is copied through.
func FullSanitizePlan(modelType string, cfg map[string]any, tensors map[string]TensorMeta) ([]TensorPlan, error) {
	sanitizeMu.RLock()
	f := sanitizers[CanonicalType(modelType)]
	sanitizeMu.RUnlock()
	if f == nil {
		return IdentityPlan(tensors), nil
	}
	plan, err := f(cfg, tensors)
	if err != nil {
		return nil, fmt.Errorf("sanitize %s: %w", modelType, err)
	}
	return plan, nil
}

// SanitizePlan is FullSanitizePlan for consumers that apply only OpCopy,
// OpStack, OpEvenRows and OpOddRows: every planned tensor with steps is
// replaced by copies of its sources, unchanged and under their own names,
// so those tensors keep the checkpoint's layout (which the architectures
// also load). New code should use FullSanitizePlan with ApplyPlan.
func SanitizePlan(modelType string, cfg map[string]any, tensors map[string]TensorMeta) ([]TensorPlan, error) {
	plan, err := FullSanitizePlan(modelType, cfg, tensors)
	if err != nil {
		return nil, err
	}
	return Unstepped(plan), nil
}

// Unstepped replaces every tensor of plan that has steps by copies of its
// sources (each once), keeping the order otherwise.
func Unstepped(plan []TensorPlan) []TensorPlan {
	out := make([]TensorPlan, 0, len(plan))
	made := map[string]bool{}
	for _, p := range plan {
		if len(p.Steps) == 0 {
			out = append(out, p)
			made[p.Name] = true
		}
	}
	for _, p := range plan {
		if len(p.Steps) == 0 {
			continue
		}
		for _, s := range p.Sources {
			if !made[s] {
				made[s] = true
				out = append(out, TensorPlan{Name: s, Op: OpCopy, Sources: []string{s}})
			}
		}
	}
	return out
}

// IdentityPlan copies every tensor, in name order.
func IdentityPlan(tensors map[string]TensorMeta) []TensorPlan {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	plan := make([]TensorPlan, len(names))
	for i, n := range names {
		plan[i] = TensorPlan{Name: n, Op: OpCopy, Sources: []string{n}}
	}
	return plan
}

// aliases is mlx_lm's MODEL_REMAPPING, the one place model types alias.
var aliases = map[string]string{
	"mistral":         "llama",
	"iquestcoder":     "llama",
	"joyai_llm_flash": "deepseek_v3",
	"kimi_k2":         "deepseek_v3",
	"minimax_m2":      "minimax",
}

// CanonicalType maps a config model_type to the architecture that runs it.
func CanonicalType(modelType string) string {
	if a, ok := aliases[modelType]; ok {
		return a
	}
	return modelType
}

// Drop is the plan that copies every tensor except those drop selects
// (rotary inv_freq buffers, a tied lm_head), in name order.
func Drop(tensors map[string]TensorMeta, drop func(name string) bool) []TensorPlan {
	var plan []TensorPlan
	for _, p := range IdentityPlan(tensors) {
		if !drop(p.Name) {
			plan = append(plan, p)
		}
	}
	return plan
}

// StackExperts returns a plan that copies every tensor except per-expert
// ones, "<prefix>N<from>E.<src>.<suffix>" (e.g. "model.layers.0" +
// ".block_sparse_moe.experts." + "3" + ".w1.weight"), which it stacks over
// e = 0..E−1 into "<prefix>N<to><dst>.<suffix>" for each {src, dst} in
// names (mlx_lm's per-layer expert stacking in sanitize). Every expert
// of a stacked tensor must be present with one shape, and none beyond E.
func StackExperts(tensors map[string]TensorMeta, E int, from, to string, names [][2]string) ([]TensorPlan, error) {
	type key struct{ prefix, src, suffix string }
	groups := map[key]bool{}
	var plan []TensorPlan
	for _, p := range IdentityPlan(tensors) {
		i := strings.Index(p.Name, from)
		if i < 0 {
			plan = append(plan, p)
			continue
		}
		rest := p.Name[i+len(from):] // "3.w1.weight"
		parts := strings.SplitN(rest, ".", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("tensor %q: expected %s<expert>.<name>.<weight|scales|biases>", p.Name, from)
		}
		if _, err := strconv.Atoi(parts[0]); err != nil {
			return nil, fmt.Errorf("tensor %q: expert index %q is not a number", p.Name, parts[0])
		}
		groups[key{p.Name[:i], parts[1], parts[2]}] = true
	}
	if len(groups) > 0 && E <= 0 {
		return nil, fmt.Errorf("the checkpoint has per-expert tensors but config.json gives no positive expert count")
	}
	dst := map[string]string{}
	for _, n := range names {
		dst[n[0]] = n[1]
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		return keys[a].prefix+keys[a].src+keys[a].suffix < keys[b].prefix+keys[b].src+keys[b].suffix
	})
	for _, k := range keys {
		d, ok := dst[k.src]
		if !ok {
			return nil, fmt.Errorf("tensor %q: unknown expert projection %q", k.prefix+from+"0."+k.src+"."+k.suffix, k.src)
		}
		srcs := make([]string, E)
		var shape []int
		for e := range E {
			n := k.prefix + from + strconv.Itoa(e) + "." + k.src + "." + k.suffix
			meta, ok := tensors[n]
			if !ok {
				return nil, fmt.Errorf("missing tensor %q (config.json has %d experts)", n, E)
			}
			if shape == nil {
				shape = meta.Shape
			} else if !slices.Equal(shape, meta.Shape) {
				return nil, fmt.Errorf("tensor %q: shape %v differs from expert 0's %v", n, meta.Shape, shape)
			}
			srcs[e] = n
		}
		// Extra experts beyond E would be silently dropped: refuse them.
		if extra := k.prefix + from + strconv.Itoa(E) + "." + k.src + "." + k.suffix; tensors[extra].Shape != nil {
			return nil, fmt.Errorf("tensor %q: expert index beyond config.json's %d experts", extra, E)
		}
		plan = append(plan, TensorPlan{Name: k.prefix + to + d + "." + k.suffix, Op: OpStack, Sources: srcs})
	}
	return plan, nil
}
