package lora

import (
	"slices"
	"testing"
)

// Values printed by numpy (legacy RandomState) for these seeds.
func TestNumpyPermutation(t *testing.T) {
	cases := []struct {
		seed uint32
		n    int
		want []int
	}{
		{0, 10, []int{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}},
	}
	for _, c := range cases {
		if got := newMT19937(c.seed).permutation(c.n); !slices.Equal(got, c.want) {
			t.Errorf("seed %d permutation(%d) = %v, want %v", c.seed, c.n, got, c.want)
		}
	}
}

// MT19937 reference output: the first outputs of init_genrand(5489).
func TestMT19937(t *testing.T) {
	m := newMT19937(5489)
	want := []uint32{3499211612, 581869302, 3890346734, 3586334585, 545404204}
	for i, w := range want {
		if got := m.next(); got != w {
			t.Fatalf("output %d = %d, want %d", i, got, w)
		}
	}
}
