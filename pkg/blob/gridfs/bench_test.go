package gridfs

import (
	"bytes"
	"crypto/rand"
	"io"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/internal/testmongo"
)

var benchSizes = []struct {
	name string
	size int
}{{"1MiB", 1 << 20}, {"10MiB", 10 << 20}}

// BenchmarkPut replaces one id's bytes. The replaced file is swept after each Put, outside
// the timer, so that the database holds one file throughout (on FerretDB v1 a query on
// chunks reads them all: its cost grows with what is stored).
func BenchmarkPut(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s := openTest(b, testmongo.Shared(b))
			var offset atomic.Int64
			s.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			s.lastRun.Store(math.MaxInt64)
			data := make([]byte, bs.size)
			_, _ = rand.Read(data)
			b.SetBytes(int64(bs.size))
			b.ResetTimer()
			for range b.N {
				if _, err := s.Put(b.Context(), "bench1", bytes.NewReader(data), int64(bs.size)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				offset.Add(int64(SweepDelay + time.Minute))
				if _, err := s.Sweep(b.Context()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkOpen opens one id's bytes and reads them to the end, in a database holding only
// them.
func BenchmarkOpen(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s := openTest(b, testmongo.Shared(b))
			data := make([]byte, bs.size)
			_, _ = rand.Read(data)
			if _, err := s.Put(b.Context(), "bench1", bytes.NewReader(data), int64(bs.size)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bs.size))
			b.ResetTimer()
			for range b.N {
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
