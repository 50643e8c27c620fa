package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestParallel checks that the chunks cover [0, n) once each, are
// contiguous, and are at least grain long but for the last.
func TestParallel(t *testing.T) {
	for _, n := range []int{0, 1, 7, 31, 32, 33, 100, 1000, 151936} {
		for _, grain := range []int{0, 1, 8, 32, 1000} {
			t.Run(fmt.Sprintf("n%d/grain%d", n, grain), func(t *testing.T) {
				var mu sync.Mutex
				var chunks [][2]int
				Parallel(n, grain, func(lo, hi int) {
					mu.Lock()
					chunks = append(chunks, [2]int{lo, hi})
					mu.Unlock()
				})
				slices.SortFunc(chunks, func(a, b [2]int) int { return a[0] - b[0] })
				next := 0
				for i, c := range chunks {
					if c[0] != next || c[1] <= c[0] {
						t.Fatalf("chunk %d is [%d, %d), want one starting at %d", i, c[0], c[1], next)
					}
					if i < len(chunks)-1 && c[1]-c[0] < max(grain, 1) {
						t.Fatalf("chunk [%d, %d) shorter than grain %d", c[0], c[1], grain)
					}
					next = c[1]
				}
				if next != n {
					t.Fatalf("chunks cover [0, %d), want [0, %d)", next, n)
				}
			})
		}
	}
}

// TestQMatmulConcurrent runs QMatmul from several goroutines at once, on
// shapes and row counts that differ from call to call (so the pooled
// scratch is reused across K and M), and checks each result against the
// same call made alone.
func TestQMatmulConcurrent(t *testing.T) {
	type job struct {
		q    *QWeight
		x    []float32
		M    int
		want []float32
	}
	r := rand.New(rand.NewPCG(31, 32))
	var jobs []job
	for i, sh := range [][3]int{{64, 896, 1}, {96, 4864, 3}, {40, 128, 20}, {128, 2048, 1}, {32, 1024, 5}, {64, 256, 2}} {
		bits := []int{4, 8}[i%2]
		q := randQWeight(r, sh[0], sh[1], bits, 64, "bf16")
		x := randAct(r, sh[2], sh[1])
		want := make([]float32, sh[2]*sh[0])
		QMatmul(want, x, sh[2], q)
		jobs = append(jobs, job{q, x, sh[2], want})
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range 20 {
				j := jobs[(g+it)%len(jobs)]
				got := make([]float32, len(j.want))
				QMatmul(got, j.x, j.M, j.q)
				if !slices.Equal(got, j.want) {
					errs <- fmt.Sprintf("goroutine %d, job [%d, %d] M=%d: result differs from the call made alone", g, j.q.N, j.q.K, j.M)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestParallelNestedAndConcurrent calls Parallel from inside fn and from
// several goroutines at once (the persistent helpers serve one call at a
// time, the others start goroutines of their own) and checks every index
// is visited exactly once per call.
func TestParallelNestedAndConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range 200 {
				n := 50 + (g*31+it*17)%400
				seen := make([]int32, n*n)
				var mu sync.Mutex
				Parallel(n, 4, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						Parallel(n, 8, func(a, b int) {
							mu.Lock()
							for j := a; j < b; j++ {
								seen[i*n+j]++
							}
							mu.Unlock()
						})
					}
				})
				for k, c := range seen {
					if c != 1 {
						errs <- fmt.Sprintf("goroutine %d call %d: index (%d, %d) visited %d times", g, it, k/n, k%n, c)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestParallelAfterIdle runs a call after the helpers have gone to sleep
// (past spinFor) and checks it completes and covers its range.
func TestParallelAfterIdle(t *testing.T) {
	for range 3 {
		Parallel(1000, 1, func(lo, hi int) {})
		time.Sleep(2 * spinFor)
		var sum atomic.Int64
		Parallel(1000, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				sum.Add(int64(i))
			}
		})
		if got := sum.Load(); got != 999*1000/2 {
			t.Fatalf("sum over [0, 1000) = %d, want %d", got, 999*1000/2)
		}
	}
}
