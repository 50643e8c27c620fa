package modeltest

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/nn"
)

// CheckConverted loads the converted MLX folder dir with ExactQuantized
// true and then false. Each time experts(m) must be an
// nn.QuantizedSwitchLinear exactly when quantized, and the logits at
// ref's positions must be within tol of the reference (within
// QuantKernels.Logits for a quantized model on the non-exact kernels).
func CheckConverted(t *testing.T, dir string, ref *Reference, quantized bool, tol float64, experts func(model.Model) nn.SwitchLayer) {
	t.Helper()
	for _, exact := range []bool{true, false} {
		m, _, err := model.Load(dir, model.LoadOptions{ExactQuantized: exact})
		if err != nil {
			t.Fatal(err)
		}
		sw := experts(m)
		if _, q := sw.(*nn.QuantizedSwitchLinear); q != quantized {
			t.Errorf("experts are %T with quantize=%v", sw, quantized)
		}
		f := Logits(t, m, nil, ref.InputIDs)
		V := ref.V
		var got []float32
		for _, p := range ref.LogitsPositions {
			got = append(got, f[p*V:(p+1)*V]...)
		}
		lim := tol
		if !exact && quantized {
			lim = QuantKernels.Logits
		}
		if e := RelErr(got, ref.Logits); e > lim {
			t.Errorf("exact=%v: logits rel err %.3g > %.3g", exact, e, lim)
		} else {
			t.Logf("exact=%v: logits rel err %.3g", exact, e)
		}
	}
}
