package tokenizer

import (
	"os"
	"path/filepath"
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
					bm.mu.Lock()
					clear(bm.cache)
					bm.mu.Unlock()
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
