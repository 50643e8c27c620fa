package engine

// Conv1d is mx.conv1d: x [B, L, Cin] (channels last), w [Cout, K, Cin/groups]
// (MLX's weight layout); the result is [B, Lout, Cout] with
// Lout = (L + 2·padding − dilation·(K−1) − 1)/stride + 1. Built from
// slices, products and sums, so it is differentiable in x and w. Depthwise
// convolution (groups = Cin = Cout, as in Mamba and the gated delta nets)
// is a sum of K shifted elementwise products.
func Conv1d(x, w *Array, stride, padding, dilation, groups int) *Array {
	if err := firstErr(x, w); err != nil {
		return errArray(err)
	}
	if len(x.shape) != 3 || len(w.shape) != 3 {
		return Errorf("engine: Conv1d: need x [B, L, Cin] and w [Cout, K, Cin/groups], got %v and %v", x.shape, w.shape)
	}
	B, L, Cin := x.shape[0], x.shape[1], x.shape[2]
	Cout, K, Cg := w.shape[0], w.shape[1], w.shape[2]
	if stride < 1 || dilation < 1 || padding < 0 || groups < 1 || Cin%groups != 0 || Cout%groups != 0 || Cg != Cin/groups {
		return Errorf("engine: Conv1d: x %v, w %v, stride %d, padding %d, dilation %d, groups %d do not fit", x.shape, w.shape, stride, padding, dilation, groups)
	}
	Lout := (L+2*padding-dilation*(K-1)-1)/stride + 1
	if Lout < 1 {
		return Errorf("engine: Conv1d: input length %d too short for kernel %d (dilation %d, padding %d)", L, K, dilation, padding)
	}
	xp := x
	if padding > 0 {
		xp = Pad(x, []int{0, padding, 0}, []int{0, padding, 0}, 0)
	}
	// tap k reads positions l·stride + k·dilation: [B, Lout, Cin]
	tap := func(k int) *Array {
		s := k * dilation
		return Slice(xp, []int{0, s, 0}, []int{B, s + (Lout-1)*stride + 1, Cin}, []int{1, stride, 1})
	}
	if groups == Cin && Cout == Cin {
		var y *Array
		for k := 0; k < K; k++ {
			t := Multiply(tap(k), Reshape(SliceAxis(w, 1, k, k+1), Cout)) // w[:, k, 0]
			if y == nil {
				y = t
			} else {
				y = Add(y, t)
			}
		}
		return y
	}
	taps := make([]*Array, K)
	for k := range taps {
		taps[k] = tap(k)
	}
	cols := Stack(taps, 2) // [B, Lout, K, Cin]
	if groups == 1 {
		return Matmul(Reshape(cols, B, Lout, K*Cin), Transpose(Reshape(w, Cout, K*Cin)))
	}
	og := Cout / groups
	outs := make([]*Array, groups)
	for g := range outs {
		cg := Reshape(SliceAxis(cols, 3, g*Cg, (g+1)*Cg), B, Lout, K*Cg)
		wg := Reshape(SliceAxis(w, 0, g*og, (g+1)*og), og, K*Cg)
		outs[g] = Matmul(cg, Transpose(wg))
	}
	return Concatenate(outs, 2)
}
