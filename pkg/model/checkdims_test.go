package model

import (
	"strings"
	"testing"
)

func TestCheckDims(t *testing.T) {
	c := &Config{Path: "m/config.json"}
	if err := c.CheckDims(64, 2, 128, 512, 4, 2, 16); err != nil {
		t.Fatalf("valid dims: %v", err)
	}
	cases := []struct {
		dims [7]int
		want string
	}{
		{[7]int{0, 2, 128, 512, 4, 2, 16}, "hidden_size, num_hidden_layers, intermediate_size and vocab_size must be positive"},
		{[7]int{64, 2, 128, -1, 4, 2, 16}, "vocab_size must be positive"},
		{[7]int{64, 2, 128, 512, 4, 3, 16}, "num_attention_heads 4 must be a positive multiple of num_key_value_heads 3"},
		{[7]int{64, 2, 128, 512, 4, 0, 16}, "num_key_value_heads 0"},
		{[7]int{64, 2, 128, 512, 4, 2, 15}, "head_dim 15 must be positive and even"},
	}
	for _, tc := range cases {
		d := tc.dims
		err := c.CheckDims(d[0], d[1], d[2], d[3], d[4], d[5], d[6])
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "m/config.json: ") {
			t.Errorf("%v: error %v, want %q naming the file", d, err, tc.want)
		}
	}
}
