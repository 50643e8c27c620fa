package generate

import (
	"context"
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
