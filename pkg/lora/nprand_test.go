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

// A Sibling draws from the same generator, as mlx_lm's validation batches
// draw from numpy's global one between training epochs. numpy 1.24:
// seed(0); permutation(10), permutation(4), permutation(10).
func TestSiblingSharesGenerator(t *testing.T) {
	ex := func(n int) []Example {
		var out []Example
		for i := 0; i < n; i++ {
			out = append(out, Example{Tokens: make([]int, i+2)}) // length-sorted = index order
		}
		return out
	}
	order := func(b *Batcher, n int) []int {
		var got []int
		for i := 0; i < n; i++ {
			batch, ok := b.Next()
			if !ok {
				t.Fatal("batcher ended early")
			}
			got = append(got, batch.Lengths[0]-2)
		}
		return got
	}
	train, err := NewBatcher(ex(10), 1, 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	train.Loop = true
	if got := order(train, 10); !slices.Equal(got, []int{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}) {
		t.Errorf("epoch 1: %v", got)
	}
	val, err := train.Sibling(ex(4), 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got := order(val, 4); !slices.Equal(got, []int{1, 3, 2, 0}) {
		t.Errorf("validation: %v", got)
	}
	if got := order(train, 10); !slices.Equal(got, []int{5, 2, 3, 4, 9, 0, 7, 6, 1, 8}) {
		t.Errorf("epoch 2: %v", got)
	}
}
