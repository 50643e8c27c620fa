package mlxdir

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortNames: tensor names come out as mlx_lm's tree_flatten writes a
// decoder: model before lm_head; embeddings, layers (by number, 2 before
// 10), final norm; in a layer attention, MLP, then the norms; q, k, v, o;
// gate, down, up; a module's own parameters before its children's
// (gpt_oss's attention sinks, set before q_proj in mlx_lm); weight,
// scales, biases, bias within a module; unknown
// names after the known ones, by name. Any shuffle sorts to this order.
func TestSortNames(t *testing.T) {
	want := []string{
		"model.embed_tokens.weight",
		"model.embed_tokens.scales",
		"model.embed_tokens.biases",
		"model.layers.2.self_attn.sinks",
		"model.layers.2.self_attn.q_proj.weight",
		"model.layers.2.self_attn.q_proj.bias",
		"model.layers.2.self_attn.k_proj.weight",
		"model.layers.2.self_attn.v_proj.weight",
		"model.layers.2.self_attn.o_proj.weight",
		"model.layers.2.mlp.gate_proj.weight",
		"model.layers.2.mlp.gate_proj.scales",
		"model.layers.2.mlp.gate_proj.biases",
		"model.layers.2.mlp.down_proj.weight",
		"model.layers.2.mlp.up_proj.weight",
		"model.layers.2.input_layernorm.weight",
		"model.layers.2.post_attention_layernorm.weight",
		"model.layers.10.self_attn.q_proj.weight",
		"model.layers.10.input_layernorm.weight",
		"model.norm.weight",
		"lm_head.weight",
		"other.a",
		"other.b",
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		got := slices.Clone(want)
		r.Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		SortNames(got)
		if !slices.Equal(got, want) {
			t.Fatalf("sorted\n%q\nwant\n%q", got, want)
		}
	}
	for i, a := range want {
		for j, b := range want {
			if LessName(a, b) != (i < j) {
				t.Errorf("LessName(%q, %q) = %v", a, b, LessName(a, b))
			}
		}
	}
}
