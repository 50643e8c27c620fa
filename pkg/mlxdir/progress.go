package mlxdir

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Bar is a byte progress bar over the source tensors a command reads while
// it writes the folder; a nil Bar (no writer) draws nothing.
type Bar struct{ b *progressbar.ProgressBar }

// NewBar draws on w ("Converting", "Fusing", ... as description) up to
// total bytes; nil when w is nil.
func NewBar(w io.Writer, description string, total int64) *Bar {
	if w == nil {
		return nil
	}
	return &Bar{progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(w, "\n") }),
	)}
}

// Add moves the bar n bytes on.
func (b *Bar) Add(n int64) {
	if b != nil && n > 0 {
		_ = b.b.Add64(n)
	}
}

// Finish completes the bar.
func (b *Bar) Finish() {
	if b != nil {
		_ = b.b.Finish()
	}
}

// Abort stops drawing, leaving the bar where it is.
func (b *Bar) Abort() {
	if b != nil {
		_ = b.b.Exit()
	}
}
