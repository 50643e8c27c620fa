package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// BenchmarkEncode measures encode throughput on testdata/tokenizer/bench.txt
// (the text scripts/gen_tokenizer_golden.py --bench times HF tokenizers on).
// Each iteration uses a fresh word cache, so the number is a cold encode
// of the whole text, as HF's single encode call is.
func BenchmarkEncode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testdataDir, "bench.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	for _, name := range goldenNames {
		b.Run(name, func(b *testing.B) {
			tk := realTokenizer(b, name)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if bm, ok := tk.model.(*bpeModel); ok {
					bm.cache.reset()
				}
				b.StartTimer()
				tk.Encode(text, false)
			}
		})
	}
}

// BenchmarkEncodeWarm is the same with the word cache kept between
// iterations (a server encoding similar prompts).
func BenchmarkEncodeWarm(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testdataDir, "bench.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	for _, name := range goldenNames {
		b.Run(name, func(b *testing.B) {
			tk := realTokenizer(b, name)
			tk.Encode(text, false)
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tk.Encode(text, false)
			}
		})
	}
}

// BenchmarkEncodeBatch encodes bench.txt's lines with EncodeBatch on all
// cores (HF's encode_batch is the peer), starting each iteration with an
// empty word cache.
func BenchmarkEncodeBatch(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(testdataDir, "bench.txt"))
	if err != nil {
		b.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	for _, name := range goldenNames {
		b.Run(name, func(b *testing.B) {
			tk := realTokenizer(b, name)
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if bm, ok := tk.model.(*bpeModel); ok {
					bm.cache.reset()
				}
				b.StartTimer()
				tk.EncodeBatch(lines, false, 0)
			}
		})
	}
}

func TestEncodeBatchEqualsEncode(t *testing.T) {
	tk := realTokenizer(t, "qwen3")
	g := readGolden(t, "qwen3")
	var texts []string
	for _, c := range g.Cases {
		texts = append(texts, c.Text)
	}
	got := tk.EncodeBatch(texts, true, 4)
	for i, c := range g.Cases {
		if !slices.Equal(got[i], c.IDs) {
			t.Errorf("EncodeBatch[%d] (%q) = %v, want %v", i, c.Text, got[i], c.IDs)
		}
	}
}
