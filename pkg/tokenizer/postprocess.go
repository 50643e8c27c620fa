package tokenizer

// postProcessor adds special tokens around an encoded sequence.
type postProcessor interface {
	process(ids []int) []int
}

type seqPost []postProcessor

func (q seqPost) process(ids []int) []int {
	for _, p := range q {
		ids = p.process(ids)
	}
	return ids
}

// templatePost is HF's TemplateProcessing for a single sequence: each item
// is either the sequence ($A) or a special token's ids.
type templatePost struct {
	items [][]int // nil marks the sequence
}

func (t templatePost) process(ids []int) []int {
	out := make([]int, 0, len(ids)+4)
	for _, it := range t.items {
		if it == nil {
			out = append(out, ids...)
		} else {
			out = append(out, it...)
		}
	}
	return out
}

// wrapPost is RobertaProcessing / BertProcessing: cls + ids + sep.
type wrapPost struct{ cls, sep int }

func (w wrapPost) process(ids []int) []int {
	out := make([]int, 0, len(ids)+2)
	out = append(out, w.cls)
	out = append(out, ids...)
	return append(out, w.sep)
}

type noopPost struct{}

func (noopPost) process(ids []int) []int { return ids }
