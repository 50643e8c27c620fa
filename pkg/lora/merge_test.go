package lora

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func randT(rng *rand.Rand, shape ...int) Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	t := Tensor{Shape: shape, Data: make([]float32, n)}
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// For any x: x·W'ᵀ = x·Wᵀ + scale·(x·a)·b (the LoRA forward it replaces).
func TestMergeLinearEqualsLoRAForward(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	const out, in, r = 5, 7, 3
	w := randT(rng, out, in)
	a, b, x := randT(rng, in, r), randT(rng, r, out), randT(rng, in)
	scale := float32(2.5)
	fused := append([]float32(nil), w.Data...)
	if err := MergeLinear(fused, out, in, a, b, scale, nil); err != nil {
		t.Fatal(err)
	}
	for o := 0; o < out; o++ {
		var base, lora, got float64
		for i := 0; i < in; i++ {
			base += float64(x.Data[i] * w.Data[o*in+i])
			got += float64(x.Data[i] * fused[o*in+i])
		}
		for k := 0; k < r; k++ {
			var xa float64
			for i := 0; i < in; i++ {
				xa += float64(x.Data[i] * a.Data[i*r+k])
			}
			lora += xa * float64(b.Data[k*out+o])
		}
		if want := base + float64(scale)*lora; math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Fatalf("output %d: fused %g, base+lora %g", o, got, want)
		}
	}
}

func TestMergeDoRARowNorms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const out, in, r = 4, 6, 2
	w := randT(rng, out, in)
	a, b, m := randT(rng, in, r), randT(rng, r, out), randT(rng, out)
	if err := MergeDoRA(w.Data, out, in, a, b, m, 0.5, nil); err != nil {
		t.Fatal(err)
	}
	for o := 0; o < out; o++ {
		var ss float64
		for i := 0; i < in; i++ {
			ss += float64(w.Data[o*in+i]) * float64(w.Data[o*in+i])
		}
		if math.Abs(math.Sqrt(ss)-math.Abs(float64(m.Data[o]))) > 1e-5 {
			t.Fatalf("row %d norm %g, want |m| %g", o, math.Sqrt(ss), m.Data[o])
		}
	}
}

func TestMergeEmbeddingAndSwitch(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	e := randT(rng, 4, 3)
	a, b := randT(rng, 4, 2), randT(rng, 2, 3)
	orig := append([]float32(nil), e.Data...)
	if err := MergeEmbedding(e.Data, 4, 3, a, b, 2, nil); err != nil {
		t.Fatal(err)
	}
	want := orig[1*3+2] + 2*(a.Data[2]*b.Data[2]+a.Data[3]*b.Data[5])
	if math.Abs(float64(e.Data[5]-want)) > 1e-5 {
		t.Fatalf("embedding[1,2] %g, want %g", e.Data[5], want)
	}
	// Expert stack: each expert merges like MergeLinear with a[e]ᵀ and b[e]ᵀ.
	const E, out, in, r = 2, 3, 4, 2
	w := randT(rng, E, out, in)
	sa, sb := randT(rng, E, r, in), randT(rng, E, out, r)
	stack := append([]float32(nil), w.Data...)
	if err := MergeSwitch(stack, E, out, in, sa, sb, 1.5, nil); err != nil {
		t.Fatal(err)
	}
	for e := 0; e < E; e++ {
		la := Tensor{Shape: []int{in, r}, Data: make([]float32, in*r)}
		lb := Tensor{Shape: []int{r, out}, Data: make([]float32, r*out)}
		for k := 0; k < r; k++ {
			for i := 0; i < in; i++ {
				la.Data[i*r+k] = sa.Data[(e*r+k)*in+i]
			}
			for o := 0; o < out; o++ {
				lb.Data[k*out+o] = sb.Data[(e*out+o)*r+k]
			}
		}
		one := append([]float32(nil), w.Data[e*out*in:(e+1)*out*in]...)
		if err := MergeLinear(one, out, in, la, lb, 1.5, nil); err != nil {
			t.Fatal(err)
		}
		for i, v := range one {
			if math.Abs(float64(v-stack[e*out*in+i])) > 1e-5 {
				t.Fatalf("expert %d element %d: %g vs %g", e, i, stack[e*out*in+i], v)
			}
		}
	}
}

func TestMergeRoundsLikeTheWeightDtype(t *testing.T) {
	w := []float32{1}
	a := Tensor{Shape: []int{1, 1}, Data: []float32{1}}
	b := Tensor{Shape: []int{1, 1}, Data: []float32{1.0 / 512}}
	// 1 + 1/512 is below bf16's resolution at 1 (1/128): the update rounds away.
	if err := MergeLinear(w, 1, 1, a, b, 1, RoundBF16); err != nil {
		t.Fatal(err)
	}
	if w[0] != 1 {
		t.Fatalf("bf16 merge gave %v, want 1", w[0])
	}
	w[0] = 1
	MergeLinear(w, 1, 1, a, b, 1, nil)
	if w[0] == 1 {
		t.Fatal("float32 merge lost the update")
	}
}

func TestMergeShapeErrors(t *testing.T) {
	w := make([]float32, 6)
	err := MergeLinear(w, 2, 3, Tensor{Shape: []int{2, 1}, Data: make([]float32, 2)}, Tensor{Shape: []int{1, 2}, Data: make([]float32, 2)}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "do not fit a weight [2, 3]") {
		t.Fatalf("error %v", err)
	}
}
