package main

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock whose After advances time at once: a paced loop runs through
// simulated seconds instantly and deterministically, with no sleeping.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waits   int
	onAfter func(d time.Duration) // optional hook, called with the lock released
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	if c.onAfter != nil {
		c.onAfter(d)
	}
	c.mu.Lock()
	c.waits++
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

func TestPacerRateAccuracy(t *testing.T) {
	for _, rate := range []float64{1, 7, 150, 333.3, 1000, 25_000} {
		clk := newFakeClock()
		start := clk.Now()
		dur := 10 * time.Second
		p := newPacer(start, rate, 8, time.Second)
		var stamps []time.Time
		n := runPaced(context.Background(), clk, p, start.Add(dur), func() bool {
			stamps = append(stamps, clk.Now())
			return true
		})
		want := rate * dur.Seconds()
		if math.Abs(float64(n)-want) > 1 {
			t.Errorf("rate %v: %d events in %s, want %.0f±1", rate, n, dur, want)
		}
		if p.Skipped() != 0 {
			t.Errorf("rate %v: %d skipped with a punctual caller", rate, p.Skipped())
		}
		// Every event is emitted at or after its due time, and never late by a whole interval.
		interval := time.Duration(float64(time.Second) / rate)
		for k, at := range stamps {
			due := p.dueAt(uint64(k))
			if at.Before(due) {
				t.Fatalf("rate %v: event %d at %s, before its due time %s", rate, k, at.Sub(start), due.Sub(start))
			}
			if late := at.Sub(due); late > interval && late > time.Microsecond {
				t.Fatalf("rate %v: event %d late by %s", rate, k, late)
			}
		}
	}
}

func TestPacerCatchUpIsBounded(t *testing.T) {
	start := time.Unix(1000, 0)
	p := newPacer(start, 100, 5, 0) // 10 ms interval, no skipping
	// 95 ms late: events 0..9 are due; the pacer hands out at most 5 at once.
	n, wait := p.Due(start.Add(95 * time.Millisecond))
	if n != 5 || wait != 0 {
		t.Fatalf("first call: n=%d wait=%s, want 5, 0", n, wait)
	}
	n, wait = p.Due(start.Add(95 * time.Millisecond))
	if n != 5 || wait != 5*time.Millisecond {
		t.Fatalf("second call: n=%d wait=%s, want 5, 5ms", n, wait)
	}
	n, _ = p.Due(start.Add(96 * time.Millisecond))
	if n != 0 {
		t.Fatalf("nothing is due yet, got %d", n)
	}
}

func TestPacerSkipsBacklogOlderThanMaxLag(t *testing.T) {
	start := time.Unix(1000, 0)
	p := newPacer(start, 100, 1000, time.Second)
	// The caller stalls for 5 s: 501 events are due, those due before 4 s are skipped.
	n, _ := p.Due(start.Add(5 * time.Second))
	if p.Skipped() != 400 {
		t.Fatalf("skipped %d, want 400", p.Skipped())
	}
	if n != 101 {
		t.Fatalf("emitted %d, want 101 (the last second's events)", n)
	}
	if p.issued != 501 {
		t.Fatalf("issued %d, want 501", p.issued)
	}
}

func TestPacerBeforeStart(t *testing.T) {
	start := time.Unix(1000, 0)
	p := newPacer(start, 10, 1, 0)
	n, wait := p.Due(start.Add(-time.Second))
	if n != 0 || wait != time.Second {
		t.Fatalf("before start: n=%d wait=%s", n, wait)
	}
	n, wait = p.Due(start)
	if n != 1 || wait != 100*time.Millisecond {
		t.Fatalf("at start: n=%d wait=%s", n, wait)
	}
}

func TestRunPacedStops(t *testing.T) {
	t.Run("emit false", func(t *testing.T) {
		clk := newFakeClock()
		p := newPacer(clk.Now(), 1000, 8, time.Second)
		count := 0
		n := runPaced(context.Background(), clk, p, clk.Now().Add(time.Hour), func() bool {
			count++
			return count < 42
		})
		if n != 41 || count != 42 {
			t.Fatalf("n=%d count=%d, want 41, 42", n, count)
		}
	})
	t.Run("context", func(t *testing.T) {
		clk := newFakeClock()
		ctx, cancel := context.WithCancel(context.Background())
		start := clk.Now()
		clk.onAfter = func(time.Duration) {
			if clk.Now().Sub(start) >= 3*time.Second {
				cancel()
			}
		}
		p := newPacer(start, 10, 8, time.Second)
		n := runPaced(ctx, clk, p, start.Add(time.Hour), func() bool { return true })
		if n != 31 {
			t.Fatalf("n=%d, want 31 (events at 0, 0.1, ..., 3 s)", n)
		}
	})
	t.Run("end before start", func(t *testing.T) {
		clk := newFakeClock()
		p := newPacer(clk.Now(), 10, 8, time.Second)
		n := runPaced(context.Background(), clk, p, clk.Now(), func() bool { return true })
		if n != 0 {
			t.Fatalf("n=%d, want 0", n)
		}
	})
}

func TestRunPacedSlowEmitter(t *testing.T) {
	// Each emit takes 3 intervals of (fake) time: the pacer catches up in bursts, and once
	// the backlog is over maxLag it skips; emitted + skipped still covers the schedule.
	clk := newFakeClock()
	start := clk.Now()
	p := newPacer(start, 100, 4, 200*time.Millisecond)
	n := runPaced(context.Background(), clk, p, start.Add(10*time.Second), func() bool {
		clk.Advance(30 * time.Millisecond)
		return true
	})
	if n < 300 || n > 340 {
		t.Fatalf("emitted %d, want about 333 (one per 30 ms)", n)
	}
	if p.Skipped() == 0 {
		t.Fatal("nothing skipped though the emitter was 3× too slow")
	}
	// The schedule holds 1000 events; at the end, up to maxLag (20 events) plus what fell
	// due during the last burst (4 × 30 ms: 12 events) may still be owed.
	if total := n + p.Skipped(); total < 1000-20-12-1 || total > 1000 {
		t.Fatalf("emitted+skipped = %d, want 967..1000", total)
	}
}
