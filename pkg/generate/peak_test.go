package generate

import (
	"context"
	"runtime/debug"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/model"
)

// The reported peak counts the memory-mapped weights, as mlx_lm's does
// (MLX copies weights into its own buffers, so its peak includes them).
func TestPeakMemoryCountsMappedWeights(t *testing.T) {
	m, _, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if engine.MappedMemory() == 0 {
		t.Fatal("the fixture's float32 weights should be used in place from the memory map")
	}
	tok := loadTokenizer(t)
	g, err := New(m, tok.Encode("Once upon a time", false), Options{MaxTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	var last Response
	if err := Stream(context.Background(), g, tok, func(r Response) error { last = r; return nil }); err != nil {
		t.Fatal(err)
	}
	want := float64(engine.PeakMemory()+engine.MappedMemory()) / 1e9
	if last.PeakMemory < want*0.999 {
		t.Fatalf("peak memory %.6f GB, want the allocator peak plus %d mapped bytes = %.6f GB", last.PeakMemory, engine.MappedMemory(), want)
	}
}

// TestDecodeDoesNotCopyTheCache checks that a decode step writes the KV
// cache in place: with the collector off (nothing freed behind the
// loop's back), the allocator's active bytes after 40 more tokens grow by
// far less than one copy of the caches per token, which is what evaluating
// fresh views of a settled cache's state used to cost (each view pinned
// the buffer, so the next write copied it).
func TestDecodeDoesNotCopyTheCache(t *testing.T) {
	m, _, err := model.Load(fixture)
	if err != nil {
		t.Fatal(err)
	}
	tok := loadTokenizer(t)
	g, err := New(m, tok.Encode("Once upon a time", false), Options{MaxTokens: 60})
	if err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for range 10 {
		if _, err := g.Next(); err != nil {
			t.Fatal(err)
		}
	}
	var cacheBytes int64 // the caches' buffers, at their allocated size
	for _, c := range g.Caches() {
		for _, a := range c.State() {
			cacheBytes += int64(a.NBytes()) * 256 / int64(max(1, a.Dim(2)))
		}
	}
	before := engine.ActiveMemory()
	for range 40 {
		if _, err := g.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if grew := engine.ActiveMemory() - before; grew > 4*cacheBytes {
		t.Fatalf("active memory grew by %d bytes over 40 tokens (the caches are %d bytes): the cache is copied per step", grew, cacheBytes)
	}
}
