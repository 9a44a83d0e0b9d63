package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear, like HdrHistogram: values below histSub land in a
// bucket of their own; above, each power of two is split into histSub equal buckets, so a
// bucket is at most 1/histSub (0.8%) of its values wide. It covers all of uint64 in 7,424
// counters (58 KiB) whatever the number of samples, so millions of deliveries cost nothing
// more than a few.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits + 1) * histSub
)

// bucketOf is the bucket index of v.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return (shift+1)*histSub + int(v>>uint(shift)) - histSub
}

// bucketBounds are the lowest and highest values that land in bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i)
	}
	shift := uint(i/histSub - 1)
	mant := uint64(i%histSub + histSub)
	lo = mant << shift
	hi = lo + (uint64(1) << shift) - 1
	return lo, hi
}

// histogram counts samples (nanoseconds) concurrently: Record is lock-free and may be called
// from any goroutine. Its zero value is ready to use.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	min    atomic.Uint64 // stored as ^min so that the zero value means "none yet"
	max    atomic.Uint64
}

// Record adds one sample; negative values (clock skew) count as zero.
func (h *histogram) Record(d time.Duration) {
	var v uint64
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		cur := h.max.Load()
		if v <= cur || h.max.CompareAndSwap(cur, v) {
			break
		}
	}
	inv := ^v
	for {
		cur := h.min.Load()
		if inv <= cur || h.min.CompareAndSwap(cur, inv) {
			break
		}
	}
}

// shardedHistogram spreads writers over several histograms so that readers on different
// cores rarely touch the same counter; Snapshot merges them.
type shardedHistogram struct {
	shards []histogram
}

func newShardedHistogram(n int) *shardedHistogram {
	if n < 1 {
		n = 1
	}
	return &shardedHistogram{shards: make([]histogram, n)}
}

// Record adds d to the shard chosen by key (any stable number, such as a socket index).
func (s *shardedHistogram) Record(key int, d time.Duration) {
	if key < 0 {
		key = -key
	}
	s.shards[key%len(s.shards)].Record(d)
}

// Snapshot is a merged, immutable copy of the counts.
func (s *shardedHistogram) Snapshot() *histSnapshot {
	out := &histSnapshot{}
	for i := range s.shards {
		h := &s.shards[i]
		n := h.n.Load()
		if n == 0 {
			continue
		}
		for b := range h.counts {
			out.counts[b] += h.counts[b].Load()
		}
		out.n += n
		out.sum += h.sum.Load()
		if m := h.max.Load(); m > out.max {
			out.max = m
		}
		if m := ^h.min.Load(); out.n == n || m < out.min {
			out.min = m
		}
	}
	return out
}

// histSnapshot is a plain histogram: the result of merging shards, or built by tests.
type histSnapshot struct {
	counts   [histBuckets]uint64
	n, sum   uint64
	min, max uint64
}

// add records v (for tests and single-goroutine use).
func (s *histSnapshot) add(v uint64) {
	s.counts[bucketOf(v)]++
	if s.n == 0 || v < s.min {
		s.min = v
	}
	if v > s.max {
		s.max = v
	}
	s.n++
	s.sum += v
}

// Count is the number of samples.
func (s *histSnapshot) Count() uint64 { return s.n }

// Quantile returns the value at quantile q (0 < q <= 1): the highest value of the bucket
// holding the sample of rank ceil(q*n), kept within [min, max]. The answer is never below
// the true quantile and at most 0.8% above it.
func (s *histSnapshot) Quantile(q float64) uint64 {
	if s.n == 0 {
		return 0
	}
	if q <= 0 {
		return s.min
	}
	if q >= 1 {
		return s.max
	}
	rank := uint64(math.Ceil(q * float64(s.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return clampU64(hi, s.min, s.max)
		}
	}
	return s.max
}

// Mean is the average sample (exact).
func (s *histSnapshot) Mean() float64 {
	if s.n == 0 {
		return 0
	}
	return float64(s.sum) / float64(s.n)
}

func clampU64(v, lo, hi uint64) uint64 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// latencySummary is the report's view of a histogram, in milliseconds.
type latencySummary struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"minMs"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func nsToMs(v float64) float64 { return math.Round(v/1e3) / 1e3 }

func (s *histSnapshot) Summary() latencySummary {
	if s.n == 0 {
		return latencySummary{}
	}
	return latencySummary{
		Count:  s.n,
		MinMs:  nsToMs(float64(s.min)),
		MeanMs: nsToMs(s.Mean()),
		P50Ms:  nsToMs(float64(s.Quantile(0.50))),
		P90Ms:  nsToMs(float64(s.Quantile(0.90))),
		P99Ms:  nsToMs(float64(s.Quantile(0.99))),
		P999Ms: nsToMs(float64(s.Quantile(0.999))),
		MaxMs:  nsToMs(float64(s.max)),
	}
}
