package main

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	prevHi := uint64(0)
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketBounds(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		if got := bucketOf(lo); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", lo, got, i)
		}
		if got := bucketOf(hi); got != i {
			t.Fatalf("bucketOf(%d) = %d, want %d", hi, got, i)
		}
		if lo >= histSub && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d [%d,%d] is wider than 1/%d of its values", i, lo, hi, histSub)
		}
		prevHi = hi
	}
	if prevHi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d, want MaxUint64", prevHi)
	}
}

// exactQuantile is the sample of rank ceil(q*n) of sorted values.
func exactQuantile(sorted []uint64, q float64) uint64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestQuantilesWithinBucketError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() uint64{
		"uniform 1..1e6":    func() uint64 { return 1 + rng.Uint64N(1e6) },
		"exponential 2ms":   func() uint64 { return uint64(rng.ExpFloat64() * 2e6) },
		"bimodal":           func() uint64 { return []uint64{50_000, 80_000_000}[rng.IntN(2)] + rng.Uint64N(1000) },
		"constant":          func() uint64 { return 1_234_567 },
		"small values":      func() uint64 { return rng.Uint64N(100) },
		"heavy tail 1ns-1h": func() uint64 { return uint64(math.Exp(rng.Float64() * math.Log(3.6e12))) },
	}
	qs := []float64{0.001, 0.5, 0.9, 0.99, 0.999, 1}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h histSnapshot
			vals := make([]uint64, 200_000)
			for i := range vals {
				vals[i] = gen()
				h.add(vals[i])
			}
			sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
			if h.Count() != uint64(len(vals)) {
				t.Fatalf("count %d, want %d", h.Count(), len(vals))
			}
			for _, q := range qs {
				want := exactQuantile(vals, q)
				got := h.Quantile(q)
				if got < want {
					t.Errorf("q%.3f = %d, below the exact %d", q, got, want)
				}
				if tol := float64(want)/histSub + 1; float64(got-want) > tol {
					t.Errorf("q%.3f = %d, exact %d: error %d > %.0f", q, got, want, got-want, tol)
				}
			}
			if h.Quantile(0) != vals[0] || h.Quantile(1) != vals[len(vals)-1] {
				t.Errorf("min/max = %d/%d, want %d/%d", h.Quantile(0), h.Quantile(1), vals[0], vals[len(vals)-1])
			}
		})
	}
}

func TestEmptyHistogram(t *testing.T) {
	s := newShardedHistogram(4).Snapshot()
	if s.Count() != 0 || s.Quantile(0.99) != 0 || s.Mean() != 0 {
		t.Fatalf("empty snapshot: count %d p99 %d mean %f", s.Count(), s.Quantile(0.99), s.Mean())
	}
	if got := s.Summary(); got != (latencySummary{}) {
		t.Fatalf("empty summary = %+v", got)
	}
}

func TestShardedHistogramConcurrent(t *testing.T) {
	h := newShardedHistogram(8)
	const writers, each = 16, 5000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				h.Record(w, time.Duration(i)*time.Microsecond)
			}
		}(w)
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count() != writers*each {
		t.Fatalf("count %d, want %d", s.Count(), writers*each)
	}
	if s.min != uint64(time.Microsecond) || s.max != uint64(each*time.Microsecond) {
		t.Fatalf("min/max %d/%d", s.min, s.max)
	}
	wantMean := float64(each+1) / 2 * 1e3
	if math.Abs(s.Mean()-wantMean) > 1 {
		t.Fatalf("mean %f, want %f", s.Mean(), wantMean)
	}
	sum := s.Summary()
	if math.Abs(sum.P50Ms-2.5) > 2.5/histSub+0.001 || math.Abs(sum.P99Ms-4.95) > 4.95/histSub+0.001 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestRecordNegativeIsZero(t *testing.T) {
	h := newShardedHistogram(1)
	h.Record(3, -5*time.Millisecond)
	s := h.Snapshot()
	if s.Count() != 1 || s.max != 0 || s.min != 0 {
		t.Fatalf("negative sample: count %d min %d max %d", s.Count(), s.min, s.max)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := newShardedHistogram(histShards)
	b.RunParallel(func(pb *testing.PB) {
		k := rand.IntN(1000)
		v := time.Duration(0)
		for pb.Next() {
			v += 997
			h.Record(k, v%(50*time.Millisecond))
		}
	})
}
