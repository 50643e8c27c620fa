package fuse

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// bar is a byte progress bar over the base's tensors; a nil bar draws
// nothing.
type bar struct{ b *progressbar.ProgressBar }

func newBar(w io.Writer, total int64) *bar {
	if w == nil {
		return nil
	}
	return &bar{progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("Fusing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(w, "\n") }),
	)}
}

func (b *bar) add(n int64) {
	if b != nil && n > 0 {
		_ = b.b.Add64(n)
	}
}

func (b *bar) finish() {
	if b != nil {
		_ = b.b.Finish()
	}
}

func (b *bar) abort() {
	if b != nil {
		_ = b.b.Exit()
	}
}

// sourceBytes is the bytes of every tensor the jobs read.
func (p *planned) sourceBytes() int64 {
	var n int64
	for _, j := range p.jobs {
		for _, s := range j.sources() {
			n += s.numBytes()
		}
	}
	return n
}

func (s *source) numBytes() int64 {
	var n int64
	for _, t := range s.srcs {
		n += t.NumBytes()
	}
	return n
}
