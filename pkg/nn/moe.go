package nn

import "github.com/mlxgo/mlxgo/pkg/engine"

// Mixture-of-experts routing shared by the MoE architectures. Each rule
// is named by its order of operations, since the orders are not
// interchangeable once renormalisation, bias or scaling enter.

// TopKIndices returns the indices [..., k] of the k largest entries along
// the last axis of a [..., E], in no particular order.
func TopKIndices(a *engine.Array, k int) *engine.Array {
	n := a.Dim(-1)
	return engine.SliceAxis(engine.ArgPartition(a, n-k, -1), -1, n-k, n)
}

// TopKSoftmax keeps the k largest router logits [..., E] and softmaxes
// them: indices and weights [..., K]. This equals softmax over all E, top
// k, renormalised (mixtral, gpt_oss).
func TopKSoftmax(logits *engine.Array, k int) (inds, weights *engine.Array) {
	inds = TopKIndices(logits, k)                                           // [..., K]
	return inds, engine.Softmax(engine.TakeAlongAxis(logits, inds, -1), -1) // [..., K]
}

// SoftmaxTopK softmaxes the router logits [..., E] over all E experts and
// keeps the k largest probabilities, divided by their sum when norm
// (norm_topk_prob): indices and weights [..., K] (qwen3_moe, qwen3_next).
func SoftmaxTopK(logits *engine.Array, k int, norm bool) (inds, weights *engine.Array) {
	probs := engine.Softmax(logits, -1)             // [..., E]
	inds = TopKIndices(probs, k)                    // [..., K]
	weights = engine.TakeAlongAxis(probs, inds, -1) // [..., K]
	if norm {
		weights = engine.Divide(weights, engine.Sum(weights, true, -1))
	}
	return inds, weights
}

// WeightedExpertSum maps the K experts' outputs y [..., K, D] and their
// weights [..., K] to Σ_k weights·y [..., D].
func WeightedExpertSum(y, weights *engine.Array) *engine.Array {
	return engine.Sum(engine.Multiply(y, engine.ExpandDims(weights, -1)), false, -2)
}

// SigmoidGroupedTopK is the router of DeepSeek-V3 and GLM-4-MoE
// (transformers' DeepseekV3TopkRouter / Glm4MoeTopkRouter, mlx_lm's
// MoEGate).
type SigmoidGroupedTopK struct {
	Weight               *engine.Array // weight [E, D]
	EScoreCorrectionBias *engine.Array // e_score_correction_bias [E]
	K                    int           // num_experts_per_tok
	Groups               int           // n_group
	TopkGroup            int           // topk_group
	Norm                 bool          // norm_topk_prob
	Scaling              float64       // routed_scaling_factor
}

// Route maps x [B, L, D] to expert indices and weights [B, L, K], in
// float32 throughout: sigmoid scores; choice scores = scores +
// e_score_correction_bias; each of n_group groups is rated by the sum of
// its two best choice scores and all but the topk_group best groups are
// zeroed; the top k choice scores pick the experts, weighted by their
// sigmoid scores, renormalised when norm_topk_prob (also for k = 1,
// unlike mlx_lm) and times routed_scaling_factor.
func (g *SigmoidGroupedTopK) Route(x *engine.Array) (inds, weights *engine.Array) {
	f32 := engine.Float32
	logits := engine.Matmul(engine.AsType(x, f32), engine.SwapAxes(engine.AsType(g.Weight, f32), 0, 1)) // [B, L, E]
	scores := engine.Sigmoid(logits)
	choice := engine.Add(scores, engine.AsType(g.EScoreCorrectionBias, f32)) // [B, L, E]
	if err := choice.Err(); err != nil {
		return choice, choice
	}
	shape := choice.Shape()
	E := shape[len(shape)-1]
	if g.Groups > 1 && g.TopkGroup < g.Groups {
		G := g.Groups
		gshape := append(append([]int(nil), shape[:len(shape)-1]...), G, E/G)
		grouped := engine.Reshape(choice, gshape...)                                      // [B, L, G, E/G]
		rating := engine.Sum(engine.TopK(grouped, 2, -1), false, -1)                      // [B, L, G]
		keep := TopKIndices(rating, g.TopkGroup)                                          // [B, L, topk_group]
		mask := engine.PutAlongAxis(engine.ZerosLike(rating), keep, engine.Scalar(1), -1) // [B, L, G]
		grouped = engine.Multiply(grouped, engine.ExpandDims(mask, -1))
		choice = engine.Reshape(grouped, shape...)
	}
	inds = TopKIndices(choice, g.K)                  // [B, L, K]
	weights = engine.TakeAlongAxis(scores, inds, -1) // [B, L, K]
	if g.Norm {
		den := engine.Add(engine.Sum(weights, true, -1), engine.Scalar(1e-20))
		weights = engine.Divide(weights, den)
	}
	return inds, engine.Multiply(weights, engine.Scalar(g.Scaling))
}
