package mlxdir

import (
	"sort"
	"strconv"
	"strings"
)

// SortNames sorts tensor names in place by LessName.
func SortNames(names []string) {
	sort.Slice(names, func(i, j int) bool { return LessName(names[i], names[j]) })
}

// paramRank orders the parameters of one module as MLX's modules define
// them: weight, then a quantized layer's scales and biases, then bias;
// anything else after, by name.
func paramRank(p string) int {
	switch p {
	case "weight":
		return 0
	case "scales":
		return 1
	case "biases":
		return 2
	case "bias":
		return 3
	}
	return 4
}

// LessName orders tensor names the way mlx_lm's tree_flatten of a model
// would as far as names can tell (the order of the shards convert and fuse
// write, and of per-layer quantization config entries): module paths compared component by
// component with numbers compared as numbers (layers.2 before layers.10),
// and within one module weight, scales, biases, bias. (MLX follows the
// attribute order of each Python module, which names alone cannot give;
// the order only decides where shards split and the order of per-layer
// config entries.)
func LessName(a, b string) bool {
	ma, pa := SplitParam(a)
	mb, pb := SplitParam(b)
	if ma != mb {
		return lessPath(ma, mb)
	}
	ra, rb := paramRank(pa), paramRank(pb)
	if ra != rb {
		return ra < rb
	}
	return pa < pb
}

// SplitParam splits a tensor name into its module path and parameter
// name ("model.norm.weight" → "model.norm", "weight"; a name without a
// dot is a parameter of the root module).
func SplitParam(name string) (module, param string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// componentRank orders the module names of the common decoder layouts as
// mlx_lm's model classes define them (model before lm_head; embeddings,
// layers, final norm; attention, MLP, then the norms; q, k, v, o;
// gate, down, up). Other names come after, by name.
var componentRank = map[string]int{
	"model": 0, "lm_head": 1,
	"embed_tokens": 0, "layers": 1, "norm": 2,
	"self_attn": 0, "mlp": 1, "block_sparse_moe": 1, "input_layernorm": 2, "post_attention_layernorm": 3,
	"q_proj": 0, "k_proj": 1, "v_proj": 2, "o_proj": 3,
	"gate_proj": 0, "down_proj": 1, "up_proj": 2,
}

func rank(c string) int {
	if r, ok := componentRank[c]; ok {
		return r
	}
	return len(componentRank)
}

// lessPath compares dotted paths component by component: numbers as
// numbers, known module names by componentRank, others by name.
func lessPath(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		if x == y {
			continue
		}
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil:
			if nx != ny {
				return nx < ny
			}
			return x < y
		case ex == nil:
			return true
		case ey == nil:
			return false
		}
		if rx, ry := rank(x), rank(y); rx != ry {
			return rx < ry
		}
		return x < y
	}
	return len(as) < len(bs)
}
