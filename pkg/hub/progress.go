package hub

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// TerminalOrNil returns w when it is a terminal and nil otherwise, so a
// progress bar is drawn only for a person watching (not into logs or pipes).
func TerminalOrNil(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return w
	}
	return nil
}

// progress is one byte bar for a whole run; a nil *progress does nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

func newProgress(w io.Writer, total int64, desc string) *progress {
	if w == nil {
		return nil
	}
	if total <= 0 {
		total = -1
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(w, "\n") }),
	)
	return &progress{bar: bar}
}

// done counts n more bytes as present (negative n takes bytes back after a
// restart).
func (p *progress) done(n int64) {
	if p == nil || n == 0 {
		return
	}
	if n < 0 {
		cur := p.bar.State().CurrentNum
		_ = p.bar.Set64(cur + n)
		return
	}
	_ = p.bar.Add64(n)
}

// grow changes the expected total by n bytes.
func (p *progress) grow(n int64) {
	if p == nil || n == 0 {
		return
	}
	p.bar.ChangeMax64(p.bar.GetMax64() + n)
}

// skip counts n bytes found in the cache; unknown sizes (n < 0) are ignored.
func (p *progress) skip(n int64) {
	if n > 0 {
		p.done(n)
	}
}

// abort ends the bar's line where it stands (before an error is printed).
func (p *progress) abort() {
	if p == nil {
		return
	}
	_ = p.bar.Exit()
}

func (p *progress) finish() {
	if p == nil {
		return
	}
	_ = p.bar.Finish()
}
