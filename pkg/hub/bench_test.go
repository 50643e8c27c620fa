package hub

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/hub/hubtest"
)

const benchSize = 64 << 20

// BenchmarkSnapshotLFS downloads one 64 MiB LFS file through the fake Hub
// (HEAD, redirect, GET from the CDN host, sha256, rename, symlink) into a
// fresh cache each iteration. Compare with BenchmarkCeilingGETToFile.
func BenchmarkSnapshotLFS(b *testing.B) {
	s := hubtest.New(b)
	s.AddRepo("org/big", map[string][]byte{"model.safetensors": randBytes(benchSize, 11)})
	c := FromEnv(func(string) string { return "" })
	c.Endpoint = s.URL()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, _ := os.MkdirTemp("", "hubbench")
		c.CacheDir = dir
		b.StartTimer()
		if _, err := c.Snapshot(context.Background(), "org/big", SnapshotOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// BenchmarkCeilingGETToFile is the ceiling: one plain GET of the same bytes
// from the same CDN host, copied to a file, no hashing, no cache logic.
func BenchmarkCeilingGETToFile(b *testing.B) {
	s := hubtest.New(b)
	data := randBytes(benchSize, 11)
	s.AddRepo("org/big", map[string][]byte{"model.safetensors": data})
	u := s.CDN.URL + "/lfs/" + hubtest.SHA256(data)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, _ := os.MkdirTemp("", "hubbench")
		b.StartTimer()
		resp, err := http.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := os.Create(filepath.Join(dir, "blob"))
		if _, err := io.Copy(f, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		f.Sync()
		f.Close()
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
