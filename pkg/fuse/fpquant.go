package fuse

import (
	"fmt"

	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// MLX's float quantization modes (mxfp4, nvfp4, mxfp8): 4- or 8-bit float
// codes packed LSB-first in uint32 words, one uint8 scale per group (E8M0,
// a power of two, for mxfp4/mxfp8; E4M3 for nvfp4), no biases. A fused
// layer is decoded as mx.dequantize does (bfloat16, the default for these
// modes, as mlx_lm's fuse then adds the change in the weight's dtype) and
// re-encoded as mx.quantize's Metal kernel, both by pkg/quant's float-mode
// codec (the one convert uses).

func isFPMode(mode string) bool { return quant.IsFloatMode(mode) }

// checkFPSettings refuses settings other than the mode's own.
func checkFPSettings(set quant.Settings) error {
	if !isFPMode(set.Mode) || quant.FPModes[set.Mode] != [2]int{set.GroupSize, set.Bits} {
		return fmt.Errorf("float quantization %s with group size %d and %d bits", set.Mode, set.GroupSize, set.Bits)
	}
	return nil
}

// fpDequantize decodes rows of cols values: code value × scale in float32.
func fpDequantize(q []uint32, s []byte, cols int, set quant.Settings) ([]float32, error) {
	if err := checkFPSettings(set); err != nil {
		return nil, err
	}
	out := make([]float32, len(q)*32/set.Bits)
	if err := quant.DequantizeFP(q, s, cols, set.Mode, out); err != nil {
		return nil, err
	}
	return out, nil
}

// fpQuantize encodes rows of cols values.
func fpQuantize(v []float32, cols int, set quant.Settings) (q []uint32, s []byte, err error) {
	if err := checkFPSettings(set); err != nil {
		return nil, nil, err
	}
	q = make([]uint32, len(v)*set.Bits/32)
	s = make([]byte, len(v)/set.GroupSize)
	if err := quant.QuantizeFP(v, cols, set.Mode, q, s); err != nil {
		return nil, nil, err
	}
	return q, s, nil
}

// fpRound rounds float-mode decoded values to dtype (mx.dequantize's
// output type) in place.
func fpRound(v []float32, dtype st.DType) {
	if r := rounder(dtype); r != nil {
		for i, x := range v {
			v[i] = r(x)
		}
	}
}
