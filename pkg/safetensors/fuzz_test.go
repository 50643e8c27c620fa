package safetensors

import (
	"sort"
	"testing"
)

// FuzzParseHeader checks that no input makes the parser panic and that
// whatever it accepts is self-consistent: every tensor inside the data
// section, sizes matching shape×dtype, no overlaps.
func FuzzParseHeader(f *testing.F) {
	f.Add(rawFile(`{"__metadata__":{"format":"mlx"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f32Bytes(1, 2)))
	f.Add(rawFile(`{"a":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[4,7]}}`, seq(7, 0)))
	f.Add(rawFile(`{"q":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}`, seq(2, 0)))
	f.Add(rawFile(`{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, seq(4, 0)))
	f.Add(rawFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, seq(8, 0)))
	f.Add(rawFile(`{"__metadata__":null}`, nil))
	f.Add(rawFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, seq(4, 0)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, buf []byte) {
		h, err := ParseHeader("fuzz", buf, int64(len(buf)))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		dataLen := int64(len(buf)) - h.DataStart()
		spans := make([]TensorInfo, 0, len(h.Tensors))
		for _, ti := range h.Tensors {
			if ti.Begin < 0 || ti.End < ti.Begin || ti.End > dataLen {
				t.Fatalf("tensor %q [%d,%d] outside data of %d bytes", ti.Name, ti.Begin, ti.End, dataLen)
			}
			if size, ok := ti.DType.Size(); ok && int64(ti.NumElements()*size) != ti.NumBytes() {
				t.Fatalf("tensor %q: %v × %d != %d bytes", ti.Name, ti.Shape, size, ti.NumBytes())
			}
			if ti.End > ti.Begin {
				spans = append(spans, ti)
			}
		}
		sort.Slice(spans, func(i, j int) bool { return spans[i].Begin < spans[j].Begin })
		for i := 1; i < len(spans); i++ {
			if spans[i].Begin < spans[i-1].End {
				t.Fatalf("accepted overlap %q/%q", spans[i-1].Name, spans[i].Name)
			}
		}
		// Views of every tensor must be in bounds.
		file, err := FromBytes("fuzz", buf)
		if err != nil {
			t.Fatalf("ParseHeader accepted but FromBytes failed: %v", err)
		}
		for _, ti := range h.Tensors {
			v, err := file.Tensor(ti.Name)
			if err != nil || int64(len(v.Bytes())) != ti.NumBytes() {
				t.Fatalf("view %q: %v", ti.Name, err)
			}
		}
	})
}
