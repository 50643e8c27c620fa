package convert

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/model/modeltest"
)

// positions picks the reference's logits positions out of [1, L, V] logits.
func positions(logits []float32, pos []int, v int) []float32 {
	var out []float32
	for _, p := range pos {
		out = append(out, logits[p*v:(p+1)*v]...)
	}
	return out
}

// TestConvertedFolderLoads: the folders convert writes load with
// model.Load and give the HF reference logits of the dequantized weights:
// quantized (run through the quantized kernels, QuantKernels tolerance)
// and dequantized with -d (plain float32 weights equal to the reference's,
// F32 tolerance).
func TestConvertedFolderLoads(t *testing.T) {
	for _, c := range []struct {
		src, ref string
		bits     int
	}{{"llama-f32", "llama-q4", 4}, {"llama-f32", "llama-q8", 8}, {"qwen2-f32", "qwen2-q4", 4}} {
		t.Run(c.ref, func(t *testing.T) {
			ref, err := modeltest.ReadReference(filepath.Join(fixtures, c.ref))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(model.Supported(), ref.ModelType) {
				t.Skipf("architecture %s not registered yet", ref.ModelType)
			}
			q, _, _ := run(t, Options{HFPath: filepath.Join(fixtures, c.src), Quantize: true, GroupSize: 32, Bits: c.bits})
			d, _, _ := run(t, Options{HFPath: q, Dequantize: true})
			for _, x := range []struct {
				name, dir string
				tol       float64
			}{{"quantized", q, modeltest.QuantKernels.Logits}, {"dequantized", d, modeltest.F32.Logits}} {
				m, _, err := model.Load(x.dir)
				if err != nil {
					t.Fatalf("load %s: %v", x.dir, err)
				}
				got := positions(modeltest.Logits(t, m, nil, ref.InputIDs), ref.LogitsPositions, ref.V)
				if e := modeltest.RelErr(got, ref.Logits); e > x.tol {
					t.Errorf("%s: logits relative error %.3g > %.3g", x.name, e, x.tol)
				} else {
					t.Logf("%s: logits relative error %.3g (tolerance %.3g)", x.name, e, x.tol)
				}
			}
		})
	}
}
