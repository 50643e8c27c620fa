package lora

import (
	"fmt"
	"sort"
)

// Batch is a right-padded batch of token ids.
type Batch struct {
	// Tokens [B, T] row-major, padded with 0.
	Tokens []int32
	B, T   int
	// Offsets and Lengths [B]: the loss covers target positions whose
	// un-shifted index lies in [Offset, Length).
	Offsets, Lengths []int
}

// Batcher yields batches as mlx_lm's iterate_batches does: examples sorted
// by length and cut into consecutive groups of batchSize; the group order is
// a fresh numpy permutation each epoch (np.random.seed(seed) once, so the
// order matches mlx_lm for the same --seed); rows padded to one plus the next
// multiple of 32, capped at maxSeqLen; longer rows truncated.
type Batcher struct {
	examples  []Example
	groups    [][]int
	batchSize int
	maxSeqLen int
	rng       *mt19937
	order     []int
	pos       int
	Loop      bool
	// Warn, when set, receives mlx_lm's truncation warning.
	Warn func(string)
}

// NewBatcher checks there are enough examples and builds the length-sorted groups.
func NewBatcher(examples []Example, batchSize, maxSeqLen int, seed uint32) (*Batcher, error) {
	return newBatcher(examples, batchSize, maxSeqLen, newMT19937(seed))
}

// Sibling is a Batcher over other examples drawing its permutations from
// b's generator, as every iterate_batches call of mlx_lm draws from numpy's
// one global generator (validation batches interleave with training epochs).
func (b *Batcher) Sibling(examples []Example, batchSize, maxSeqLen int) (*Batcher, error) {
	return newBatcher(examples, batchSize, maxSeqLen, b.rng)
}

func newBatcher(examples []Example, batchSize, maxSeqLen int, rng *mt19937) (*Batcher, error) {
	if batchSize < 1 {
		return nil, fmt.Errorf("batch size must be at least 1, got %d", batchSize)
	}
	if len(examples) < batchSize {
		return nil, fmt.Errorf("dataset must have at least batch_size=%d examples but only has %d", batchSize, len(examples))
	}
	idx := make([]int, len(examples))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return len(examples[idx[a]].Tokens) < len(examples[idx[b]].Tokens) })
	var groups [][]int
	for i := 0; i+batchSize <= len(idx); i += batchSize {
		groups = append(groups, idx[i:i+batchSize])
	}
	b := &Batcher{examples: examples, groups: groups, batchSize: batchSize, maxSeqLen: maxSeqLen, rng: rng}
	b.order = b.rng.permutation(len(groups))
	return b, nil
}

// Next returns the next batch; ok is false after one epoch unless Loop.
func (b *Batcher) Next() (batch Batch, ok bool) {
	if b.pos == len(b.order) {
		if !b.Loop {
			return Batch{}, false
		}
		b.order = b.rng.permutation(len(b.groups))
		b.pos = 0
	}
	g := b.groups[b.order[b.pos]]
	b.pos++
	longest := 0
	for _, i := range g {
		longest = max(longest, len(b.examples[i].Tokens))
	}
	if longest > b.maxSeqLen && b.Warn != nil {
		b.Warn(fmt.Sprintf("[WARNING] Some sequences are longer than %d tokens. The longest sentence %d will be truncated to %d. Consider pre-splitting your data to save memory.", b.maxSeqLen, longest, b.maxSeqLen))
	}
	const padTo = 32
	T := min(1+padTo*((longest+padTo-1)/padTo), b.maxSeqLen)
	batch = Batch{Tokens: make([]int32, len(g)*T), B: len(g), T: T}
	for r, i := range g {
		ex := b.examples[i]
		n := min(len(ex.Tokens), b.maxSeqLen)
		for j := 0; j < n; j++ {
			batch.Tokens[r*T+j] = int32(ex.Tokens[j])
		}
		batch.Offsets = append(batch.Offsets, ex.Offset)
		batch.Lengths = append(batch.Lengths, n)
	}
	return batch, true
}

// LossMask returns the [B, T-1] mask over next-token targets: target k
// (predicting token k+1) counts when Offset <= k+1 < Length. mlx_lm's
// default_loss uses k+1 <= Length, which also trains every row to predict
// the pad id 0 after its last token (mlx-lm PR #1697, closed unmerged);
// mlxgo leaves that pad position out.
func (b Batch) LossMask() []bool {
	m := make([]bool, b.B*(b.T-1))
	for r := 0; r < b.B; r++ {
		for k := 0; k < b.T-1; k++ {
			step := k + 1
			m[r*(b.T-1)+k] = step >= b.Offsets[r] && step < b.Lengths[r]
		}
	}
	return m
}
