package engine

import (
	"math"
	"slices"
	"sort"
	"testing"
)

func moments(f []float64) (mean, std float64) {
	for _, v := range f {
		mean += v
	}
	mean /= float64(len(f))
	for _, v := range f {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(f)))
}

func TestRandom(t *testing.T) {
	k := NewKey(42)
	n := 1 << 16
	u := mustF(t, RandomUniform(-1, 3, []int{n}, Float32, &k))
	if slices.Min(u) < -1 || slices.Max(u) >= 3 {
		t.Errorf("uniform out of [-1, 3): %v %v", slices.Min(u), slices.Max(u))
	}
	if m, s := moments(u); math.Abs(m-1) > 0.03 || math.Abs(s-4/math.Sqrt(12)) > 0.03 {
		t.Errorf("uniform mean %v std %v", m, s)
	}
	again := mustF(t, RandomUniform(-1, 3, []int{n}, Float32, &k))
	if !slices.Equal(u, again) {
		t.Error("same key gave different samples")
	}
	k2 := k.Split(2)[1]
	other := mustF(t, RandomUniform(-1, 3, []int{n}, Float32, &k2))
	if slices.Equal(u, other) {
		t.Error("split key gave the same samples")
	}
	z := mustF(t, RandomNormal([]int{n}, 2, 0.5, BFloat16, &k))
	if m, s := moments(z); math.Abs(m-2) > 0.02 || math.Abs(s-0.5) > 0.02 {
		t.Errorf("normal mean %v std %v", m, s)
	}
	// categorical frequencies
	p := []float64{0.2, 0.5, 0.3}
	logits := BroadcastTo(Log(FromFloat64s(p, 3)), 20000, 3)
	c, err := RandomCategorical(logits, -1, &k).Int32s()
	if err != nil {
		t.Fatal(err)
	}
	cnt := make([]float64, 3)
	for _, v := range c {
		cnt[v]++
	}
	for i := range p {
		if f := cnt[i] / 20000; math.Abs(f-p[i]) > 0.02 {
			t.Errorf("categorical freq[%d] = %v, want %v", i, f, p[i])
		}
	}
	bs, _ := RandomBernoulli(0.3, []int{n}, &k).Bools()
	var on float64
	for _, b := range bs {
		if b {
			on++
		}
	}
	if f := on / float64(n); math.Abs(f-0.3) > 0.02 {
		t.Errorf("bernoulli rate %v", f)
	}
	// the global key is seedable
	Seed(7)
	a := mustF(t, RandomNormal([]int{8}, 0, 1, Float32, nil))
	Seed(7)
	b := mustF(t, RandomNormal([]int{8}, 0, 1, Float32, nil))
	if !slices.Equal(a, b) {
		t.Error("Seed did not make the global key reproducible")
	}
}

func TestSortTopK(t *testing.T) {
	x := distinct(3, 7)
	xt := Transpose(x.arr()) // sort along axis 0 of the view = rows of x
	idx, err := ArgSort(xt, 0).Int32s()
	if err != nil {
		t.Fatal(err)
	}
	srt := mustF(t, Sort(x.arr(), -1))
	for r := 0; r < 3; r++ {
		row := slices.Clone(x.data[r*7 : r*7+7])
		order := make([]int, 7)
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return row[order[a]] < row[order[b]] })
		for i := 0; i < 7; i++ {
			if int(idx[i*3+r]) != order[i] {
				t.Fatalf("ArgSort row %d: got %v", r, idx)
			}
			if srt[r*7+i] != row[order[i]] {
				t.Fatalf("Sort row %d wrong", r)
			}
		}
		sorted := slices.Clone(row)
		slices.Sort(sorted)
		top := mustF(t, TopK(SliceAxis(x.arr(), 0, r, r+1), 3, -1))
		tops := slices.Clone(top)
		slices.Sort(tops)
		if !slices.Equal(tops, sorted[4:]) {
			t.Errorf("TopK row %d = %v, want %v", r, top, sorted[4:])
		}
		part, _ := ArgPartition(SliceAxis(x.arr(), 0, r, r+1), 2, -1).Int32s()
		for i, j := range part {
			v := row[j]
			if (i < 2 && v > sorted[2]) || (i == 2 && v != sorted[2]) || (i > 2 && v < sorted[2]) {
				t.Errorf("ArgPartition row %d not partitioned at 2: %v", r, part)
				break
			}
		}
	}
	gradCheck(t, "TopK", func(xs []*Array) *Array { return TopK(xs[0], 3, -1) }, distinct(2, 6))
	gradCheck(t, "Sort", func(xs []*Array) *Array { return Sort(xs[0], 0) }, distinct(4, 3))
	if TopK(x.arr(), 9, -1).Err() == nil {
		t.Error("TopK with k > n did not fail")
	}
}
