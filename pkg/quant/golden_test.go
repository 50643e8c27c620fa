package quant

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/kernels"
)

// golden mirrors testdata/quant/golden.json.gz, written by
// scripts/gen_quant_golden.py from MLX's published algorithm.
type golden struct {
	Generator string       `json:"generator"`
	Cases     []goldenCase `json:"cases"`
}

type goldenCase struct {
	DType     string   `json:"dtype"`
	GroupSize int      `json:"group_size"`
	Rows      int      `json:"rows"`
	Cols      int      `json:"cols"`
	Labels    []string `json:"labels"`
	Input     []uint32 `json:"input"`
	Quant     []struct {
		Bits   int       `json:"bits"`
		Metal  bool      `json:"metal"`
		Packed []uint32  `json:"packed"`
		Scales []*uint32 `json:"scales"`
		Biases []*uint32 `json:"biases"`
	} `json:"quant"`
}

func loadGolden(t *testing.T) *golden {
	t.Helper()
	f, err := os.Open("../../testdata/quant/golden.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.NewDecoder(zr).Decode(&g); err != nil {
		t.Fatal(err)
	}
	return &g
}

// TestGolden checks the encoder bit for bit against the golden vectors for
// every dtype × bits × group size, group by group.
func TestGolden(t *testing.T) {
	g := loadGolden(t)
	seen := map[string]bool{}
	for _, c := range g.Cases {
		for _, q := range c.Quant {
			name := fmt.Sprintf("%s/g%d/b%d", c.DType, c.GroupSize, q.Bits)
			if q.Metal {
				name += "/metal"
			}
			seen[name] = true
			o := Options{Bits: q.Bits, GroupSize: c.GroupSize, Metal: q.Metal}
			n := c.Rows * c.Cols
			groups := n / c.GroupSize
			packed := make([]uint32, c.Rows*PackedCols(c.Cols, q.Bits))
			scales := make([]uint32, groups)
			biases := make([]uint32, groups)
			switch c.DType {
			case "f32":
				w := make([]float32, n)
				for i, u := range c.Input {
					w[i] = math.Float32frombits(u)
				}
				s, b := make([]float32, groups), make([]float32, groups)
				if err := QuantizeF32(w, c.Cols, o, packed, s, b); err != nil {
					t.Fatal(err)
				}
				for i := range s {
					scales[i], biases[i] = math.Float32bits(s[i]), math.Float32bits(b[i])
				}
			default:
				kind := kernels.BF16
				if c.DType == "f16" {
					kind = kernels.F16
				}
				w := make([]uint16, n)
				for i, u := range c.Input {
					w[i] = uint16(u)
				}
				s, b := make([]uint16, groups), make([]uint16, groups)
				if err := QuantizeHalf(w, kind, c.Cols, o, packed, s, b); err != nil {
					t.Fatal(err)
				}
				for i := range s {
					scales[i], biases[i] = uint32(s[i]), uint32(b[i])
				}
			}
			wpg := c.GroupSize * q.Bits / 32
			bad := 0
			for gi := 0; gi < groups; gi++ {
				if q.Scales[gi] == nil { // not reproduced (Metal, non-finite)
					continue
				}
				same := *q.Scales[gi] == scales[gi] && *q.Biases[gi] == biases[gi]
				for k := gi * wpg; k < (gi+1)*wpg; k++ {
					same = same && packed[k] == q.Packed[k]
				}
				if !same {
					bad++
					if bad <= 3 {
						t.Errorf("%s group %q: scale %#x bias %#x, want %#x %#x; words %x, want %x", name, c.Labels[gi],
							scales[gi], biases[gi], *q.Scales[gi], *q.Biases[gi], packed[gi*wpg:(gi+1)*wpg], q.Packed[gi*wpg:(gi+1)*wpg])
					}
				}
			}
		}
	}
	for _, dt := range []string{"f32", "bf16", "f16"} {
		for _, gs := range []int{32, 64, 128} {
			for _, b := range []int{2, 3, 4, 5, 6, 8} {
				if !seen[fmt.Sprintf("%s/g%d/b%d", dt, gs, b)] {
					t.Errorf("golden file lacks %s g%d b%d", dt, gs, b)
				}
			}
		}
	}
}
