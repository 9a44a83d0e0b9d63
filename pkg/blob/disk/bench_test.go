package disk

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
)

var benchSizes = []struct {
	name string
	size int
}{{"1MiB", 1 << 20}, {"10MiB", 10 << 20}}

// BenchmarkPut replaces one id's bytes (written, synced, renamed, folder synced).
func BenchmarkPut(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, bs.size)
			_, _ = rand.Read(data)
			b.SetBytes(int64(bs.size))
			for b.Loop() {
				if _, err := s.Put(b.Context(), "bench1", bytes.NewReader(data), int64(bs.size)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen opens one id's bytes and reads them to the end (from the page cache).
func BenchmarkOpen(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s, err := Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, bs.size)
			_, _ = rand.Read(data)
			if _, err := s.Put(b.Context(), "bench1", bytes.NewReader(data), int64(bs.size)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bs.size))
			for b.Loop() {
				r, n, err := s.Open(b.Context(), "bench1")
				if err != nil {
					b.Fatal(err)
				}
				if got, err := io.Copy(io.Discard, r); err != nil || got != n {
					b.Fatalf("read %d of %d: %v", got, n, err)
				}
				r.Close()
			}
		})
	}
}
