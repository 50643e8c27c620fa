package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Parallel splits [0, n) into contiguous chunks of at least grain (grain < 1
// counts as 1; only the last chunk may be shorter) and runs fn on them
// concurrently; it returns when all are done. It cuts about four chunks per
// core and hands them out from a shared counter, so a core slowed by other
// work takes fewer; the calling goroutine works through chunks too.
//
// The helpers are persistent goroutines (GOMAXPROCS-1 of them) that spin
// for a short while after each job before they sleep: a decode step calls
// Parallel a few hundred times with microseconds between calls, and waking
// a sleeping thread costs tens of microseconds on a virtual machine. A call
// made while another is running (from inside fn, or from another goroutine)
// runs fn(0, n) on the calling goroutine: the cores are busy with the
// running job already, and nested calls (a GEMM inside an attention task)
// would otherwise pay for goroutines that have no core to run on.
func Parallel(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	maxChunks := (n + grain - 1) / grain
	workers := min(runtime.GOMAXPROCS(0), maxChunks)
	if workers <= 1 {
		fn(0, n)
		return
	}
	chunk := max(grain, (n+4*workers-1)/(4*workers))
	j := &job{fn: fn, n: n, chunk: chunk, nchunks: (n + chunk - 1) / chunk}
	workers = min(workers, j.nchunks)
	if !pool.mu.TryLock() {
		fn(0, n)
		return
	}
	pool.start(workers - 1)
	pool.cur.Store(j)
	pool.gen.Add(1)
	if pool.sleepers.Load() > 0 {
		pool.park.Lock()
		pool.wake.Broadcast()
		pool.park.Unlock()
	}
	j.work()
	for spins := 0; j.done.Load() < int64(j.nchunks); spins++ {
		if spins > 1<<12 {
			runtime.Gosched()
		}
	}
	pool.mu.Unlock()
}

// job is one Parallel call: chunks handed out by next, counted by done.
type job struct {
	fn                func(lo, hi int)
	n, chunk, nchunks int
	next, done        atomic.Int64
}

// work runs chunks until none is left.
func (j *job) work() {
	for {
		c := int(j.next.Add(1) - 1)
		if c >= j.nchunks {
			return
		}
		lo := c * j.chunk
		j.fn(lo, min(lo+j.chunk, j.n))
		j.done.Add(1)
	}
}

// spinFor is how long an idle helper keeps polling for the next job before
// it sleeps.
const spinFor = 200 * time.Microsecond

// workerPool holds the persistent helpers. mu is held by the goroutine
// whose job they run; gen counts jobs and cur is the newest. A helper that
// finished a job polls gen for spinFor, then sleeps on wake (sleepers
// counts the sleeping ones).
type workerPool struct {
	mu       sync.Mutex
	started  int // helpers running (guarded by mu)
	gen      atomic.Uint64
	cur      atomic.Pointer[job]
	sleepers atomic.Int32
	park     sync.Mutex
	wake     sync.Cond
}

var pool = newWorkerPool()

func newWorkerPool() *workerPool {
	p := &workerPool{}
	p.wake.L = &p.park
	return p
}

// start makes sure n helpers run (called with mu held).
func (p *workerPool) start(n int) {
	for ; p.started < n; p.started++ {
		go p.helper(p.started, p.gen.Load())
	}
}

// helper runs every job published after seen, for good.
func (p *workerPool) helper(index int, seen uint64) {
	for {
		g := p.gen.Load()
		if g == seen {
			g = p.await(index, seen)
		}
		seen = g
		p.cur.Load().work()
	}
}

// await returns the job count once it moves past seen: it polls for
// spinFor, then sleeps until Parallel wakes it.
func (p *workerPool) await(index int, seen uint64) uint64 {
	deadline := time.Now().Add(spinFor)
	if index+1 >= runtime.GOMAXPROCS(0) {
		// GOMAXPROCS went down since this helper started: polling would
		// take a P the callers need.
		deadline = time.Time{}
	}
	for i := 0; ; i++ {
		if g := p.gen.Load(); g != seen {
			return g
		}
		if i&255 == 255 && time.Now().After(deadline) {
			break
		}
	}
	p.park.Lock()
	p.sleepers.Add(1)
	g := p.gen.Load()
	for g == seen {
		p.wake.Wait()
		g = p.gen.Load()
	}
	p.sleepers.Add(-1)
	p.park.Unlock()
	return g
}

// scratchPool holds float32 scratch buffers (GEMM packing) reused across
// calls; getScratch returns one of at least n elements, unzeroed.
var scratchPool sync.Pool

func getScratch(n int) *[]float32 {
	if p, ok := scratchPool.Get().(*[]float32); ok {
		if cap(*p) >= n {
			*p = (*p)[:n]
			return p
		}
	}
	b := make([]float32, n)
	return &b
}

func putScratch(p *[]float32) { scratchPool.Put(p) }
