package model

import "testing"

func TestParseQuantization(t *testing.T) {
	q, err := ParseQuantization([]byte(`{"group_size": 64, "bits": 4, "mode": "affine",
		"model.layers.0.mlp.gate": {"group_size": 64, "bits": 8},
		"model.layers.1.self_attn.v_proj": {"group_size": null, "bits": 6},
		"lm_head": false, "model.embed_tokens": true}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path      string
		hasScales bool
		want      QuantSpec
		quantized bool
	}{
		{"model.layers.0.mlp.gate", false, QuantSpec{64, 8, "affine"}, true},
		{"model.layers.1.self_attn.v_proj", true, QuantSpec{64, 6, "affine"}, true},
		{"lm_head", true, QuantSpec{}, false},
		{"model.embed_tokens", false, QuantSpec{64, 4, "affine"}, true},
		{"model.layers.3.mlp.up_proj", true, QuantSpec{64, 4, "affine"}, true},
		{"model.norm", false, QuantSpec{}, false},
	}
	for _, c := range cases {
		got, ok := q.For(c.path, c.hasScales)
		if ok != c.quantized || got != c.want {
			t.Errorf("%s: %+v %v, want %+v %v", c.path, got, ok, c.want, c.quantized)
		}
	}
	legacy, err := ParseQuantization([]byte(`{"group_size": 32, "bits": 8}`))
	if err != nil || legacy.Default != (QuantSpec{32, 8, "affine"}) {
		t.Fatalf("missing mode: %+v %v", legacy, err)
	}
	for _, bad := range []string{`[1]`, `{"bits": 7}`, `{"group_size": 48}`, `{"mode": "int4"}`, `{"bits": 4, "x": "y"}`} {
		if _, err := ParseQuantization([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
