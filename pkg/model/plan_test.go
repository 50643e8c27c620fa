package model

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
)

func f32Raw(shape []int, v []float32) RawTensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return RawTensor{DType: "F32", Shape: shape, Data: b}
}

func rawF32s(r RawTensor) []float32 {
	out := make([]float32, len(r.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.Data[4*i:]))
	}
	return out
}

func iota32(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	return v
}

// TestApplyPlan checks every op against values worked out by hand, and
// PlanMeta against the shapes ApplyPlan makes.
func TestApplyPlan(t *testing.T) {
	a := f32Raw([]int{2, 2, 4}, iota32(16)) // [[0 1 2 3][4 5 6 7]], [[8 .. 11][12 .. 15]]
	cases := []struct {
		name  string
		p     TensorPlan
		srcs  []RawTensor
		shape []int
		want  []float32
	}{
		{"copy", TensorPlan{Op: OpCopy}, []RawTensor{a}, []int{2, 2, 4}, iota32(16)},
		{"stack", TensorPlan{Op: OpStack}, []RawTensor{f32Raw([]int{2}, []float32{1, 2}), f32Raw([]int{2}, []float32{3, 4})}, []int{2, 2}, []float32{1, 2, 3, 4}},
		{"even rows", TensorPlan{Op: OpEvenRows}, []RawTensor{a}, []int{2, 1, 4}, []float32{0, 1, 2, 3, 8, 9, 10, 11}},
		{"odd rows step", TensorPlan{Steps: []Step{{Op: OpOddRows}}}, []RawTensor{a}, []int{2, 1, 4}, []float32{4, 5, 6, 7, 12, 13, 14, 15}},
		{"even cols", TensorPlan{Steps: []Step{{Op: OpEvenCols}}}, []RawTensor{a}, []int{2, 2, 2}, []float32{0, 2, 4, 6, 8, 10, 12, 14}},
		{"odd cols", TensorPlan{Steps: []Step{{Op: OpOddCols}}}, []RawTensor{a}, []int{2, 2, 2}, []float32{1, 3, 5, 7, 9, 11, 13, 15}},
		{"transpose", TensorPlan{Steps: []Step{{Op: OpTranspose}}}, []RawTensor{a}, []int{2, 4, 2}, []float32{0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15}},
		{"odd cols then transpose", TensorPlan{Steps: []Step{{Op: OpOddCols}, {Op: OpTranspose}}}, []RawTensor{a}, []int{2, 2, 2}, []float32{1, 5, 3, 7, 9, 13, 11, 15}},
		{"reshape -1", TensorPlan{Steps: []Step{{Op: OpReshape, Shape: []int{4, -1}}}}, []RawTensor{a}, []int{4, 4}, iota32(16)},
		{"reshape, slice, transpose", TensorPlan{Steps: []Step{{Op: OpReshape, Shape: []int{2, 4, 2}}, {Op: OpSlice, Axis: 1, Start: 1, Stop: 3}, {Op: OpTranspose}}}, []RawTensor{a}, []int{2, 2, 2}, []float32{2, 4, 3, 5, 10, 12, 11, 13}},
		{"slice last", TensorPlan{Steps: []Step{{Op: OpSlice, Axis: -1, Start: 3, Stop: 4}}}, []RawTensor{a}, []int{2, 2, 1}, []float32{3, 7, 11, 15}},
		{"add", TensorPlan{Steps: []Step{{Op: OpAddScalar, Value: 1}}}, []RawTensor{f32Raw([]int{3}, []float32{-1, 0, 0.5})}, []int{3}, []float32{0, 1, 1.5}},
	}
	for _, c := range cases {
		c.p.Name = c.name
		for range c.srcs {
			c.p.Sources = append(c.p.Sources, "src")
		}
		got, err := ApplyPlan(c.p, c.srcs)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(got.Shape, c.shape) || !slices.Equal(rawF32s(got), c.want) {
			t.Errorf("%s: %v %v, want %v %v", c.name, got.Shape, rawF32s(got), c.shape, c.want)
		}
		metas := make([]TensorMeta, len(c.srcs))
		for i, s := range c.srcs {
			metas[i] = TensorMeta{DType: s.DType, Shape: s.Shape}
		}
		if m, err := PlanMeta(c.p, metas); err != nil || m.DType != "F32" || !slices.Equal(m.Shape, c.shape) {
			t.Errorf("%s: PlanMeta %+v %v", c.name, m, err)
		}
	}
	if before := rawF32s(a); !slices.Equal(before, iota32(16)) {
		t.Error("a source was written")
	}

	// bf16 and f16: the sum is float32, exact (no rounding to the half
	// dtype: 1 + (1 + 2^-7) and 1 + (1 + 2^-10) need more mantissa bits).
	for _, c := range []struct {
		dtype string
		bits  uint16
		want  float32
	}{{"BF16", 0x3f81, 2.0078125}, {"F16", 0x3c01, 2.0009765625}} {
		src := RawTensor{DType: c.dtype, Shape: []int{1}, Data: []byte{byte(c.bits), byte(c.bits >> 8)}}
		p := TensorPlan{Name: "n", Sources: []string{"n"}, Steps: []Step{{Op: OpAddScalar, Value: 1}}}
		got, err := ApplyPlan(p, []RawTensor{src})
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != "F32" || !slices.Equal(rawF32s(got), []float32{c.want}) {
			t.Errorf("%s: 1+1ulp + 1 = %s %v, want F32 %v", c.dtype, got.DType, rawF32s(got), c.want)
		}
		if m, err := PlanMeta(p, []TensorMeta{{DType: c.dtype, Shape: []int{1}}}); err != nil || m.DType != "F32" {
			t.Errorf("%s: PlanMeta %+v %v", c.dtype, m, err)
		}
	}

	for _, c := range []struct {
		p    TensorPlan
		srcs []RawTensor
		want string
	}{
		{TensorPlan{Steps: []Step{{Op: OpAddScalar, Value: 1}}}, []RawTensor{{DType: "U32", Shape: []int{1}, Data: make([]byte, 4)}}, "float"},
		{TensorPlan{Steps: []Step{{Op: OpReshape, Shape: []int{3, 5}}}}, []RawTensor{a}, "reshape"},
		{TensorPlan{Steps: []Step{{Op: OpSlice, Axis: 2, Start: 2, Stop: 5}}}, []RawTensor{a}, "slice"},
		{TensorPlan{Steps: []Step{{Op: OpEvenCols}}}, []RawTensor{f32Raw([]int{3}, iota32(3))}, "even"},
		{TensorPlan{Steps: []Step{{Op: OpTranspose}}}, []RawTensor{f32Raw([]int{3}, iota32(3))}, "transpose"},
		{TensorPlan{Op: OpStack}, []RawTensor{a, f32Raw([]int{16}, iota32(16))}, "stack"},
		{TensorPlan{}, []RawTensor{{DType: "F32", Shape: []int{4}, Data: make([]byte, 8)}}, "bytes"},
	} {
		c.p.Name = "x"
		for range c.srcs {
			c.p.Sources = append(c.p.Sources, "src")
		}
		if _, err := ApplyPlan(c.p, c.srcs); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("want an error about %s naming x, got %v", c.want, err)
		}
	}
}

// TestUnstepped: tensors with steps become copies of their sources (each
// once), the rest stays.
func TestUnstepped(t *testing.T) {
	plan := []TensorPlan{
		{Name: "e.gate_proj.weight", Sources: []string{"e.gate_up_proj"}, Steps: []Step{{Op: OpEvenCols}, {Op: OpTranspose}}},
		{Name: "e.up_proj.weight", Sources: []string{"e.gate_up_proj"}, Steps: []Step{{Op: OpOddCols}, {Op: OpTranspose}}},
		{Name: "norm.weight", Sources: []string{"norm.weight"}, Steps: []Step{{Op: OpAddScalar, Value: 1}}},
		{Name: "s", Op: OpStack, Sources: []string{"a", "b"}},
	}
	got := Unstepped(plan)
	var names []string
	for _, p := range got {
		if len(p.Steps) != 0 || (p.Op == OpCopy && p.Sources[0] != p.Name) {
			t.Errorf("%+v", p)
		}
		names = append(names, p.Name)
	}
	if want := []string{"s", "e.gate_up_proj", "norm.weight"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
}

// TestTransposeSizes: every element size and sizes off the 32 tile.
func TestTransposeSizes(t *testing.T) {
	for _, es := range []int{1, 2, 4, 8} {
		B, R, C := 3, 37, 70
		src := make([]byte, B*R*C*es)
		for i := range src {
			src[i] = byte(i*7 + i/251)
		}
		dst := make([]byte, len(src))
		transpose(dst, src, B, R, C, es)
		for b := range B {
			for r := range R {
				for c := range C {
					i, o := ((b*R+r)*C+c)*es, ((b*C+c)*R+r)*es
					if !slices.Equal(dst[o:o+es], src[i:i+es]) {
						t.Fatalf("es %d: [%d %d %d] moved wrong", es, b, r, c)
					}
				}
			}
		}
	}
}

// TestAxis0Slabs: where Axis0Slabs says so, the plan applied to slabs of
// the leading axis, concatenated, equals the plan applied to the whole;
// plans that mix the leading axis are refused.
func TestAxis0Slabs(t *testing.T) {
	src := f32Raw([]int{4, 6, 8}, iota32(4*6*8))
	meta := TensorMeta{DType: "F32", Shape: src.Shape}
	for _, steps := range [][]Step{
		{{Op: OpEvenCols}, {Op: OpTranspose}},
		{{Op: OpOddCols}, {Op: OpTranspose}},
		{{Op: OpTranspose}},
		{{Op: OpOddRows}},
		{{Op: OpSlice, Axis: 1, Start: 2, Stop: 5}, {Op: OpSlice, Axis: -1, Start: 1, Stop: 3}},
		{{Op: OpAddScalar, Value: 1}},
	} {
		p := TensorPlan{Name: "x", Op: OpCopy, Sources: []string{"x"}, Steps: steps}
		if !Axis0Slabs(p, meta) {
			t.Errorf("%+v: not slab-wise", steps)
			continue
		}
		whole, err := ApplyPlan(p, []RawTensor{src})
		if err != nil {
			t.Fatal(err)
		}
		var joined []byte
		row := len(src.Data) / 4
		for _, r := range [][2]int{{0, 1}, {1, 3}, {3, 4}} {
			slab := RawTensor{DType: "F32", Shape: []int{r[1] - r[0], 6, 8}, Data: src.Data[r[0]*row : r[1]*row]}
			part, err := ApplyPlan(p, []RawTensor{slab})
			if err != nil {
				t.Fatal(err)
			}
			joined = append(joined, part.Data...)
		}
		if !slices.Equal(joined, whole.Data) {
			t.Errorf("%+v: slabs differ from the whole", steps)
		}
	}
	for _, steps := range [][]Step{
		{{Op: OpReshape, Shape: []int{2, 2, 48}}, {Op: OpSlice, Axis: 1, Start: 0, Stop: 1}}, // kv_b_proj-like
		{{Op: OpSlice, Axis: 0, Start: 1, Stop: 2}},
		{{Op: OpReshape, Shape: []int{4, 48}}},
	} {
		if Axis0Slabs(TensorPlan{Name: "x", Op: OpCopy, Sources: []string{"x"}, Steps: steps}, meta) {
			t.Errorf("%+v: slab-wise", steps)
		}
	}
	if Axis0Slabs(TensorPlan{Name: "x", Op: OpCopy, Sources: []string{"x"}, Steps: []Step{{Op: OpTranspose}}}, TensorMeta{DType: "F32", Shape: []int{6, 8}}) {
		t.Error("2-D transpose is slab-wise")
	}
	if Axis0Slabs(TensorPlan{Name: "x", Op: OpCopy, Sources: []string{"x"}, Steps: []Step{{Op: OpEvenCols}}}, TensorMeta{DType: "F32", Shape: []int{8}}) {
		t.Error("1-D even split is slab-wise")
	}
}
