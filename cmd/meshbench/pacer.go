package main

import (
	"context"
	"math"
	"time"
)

// clock is the time source of paced loops; tests use a fake one.
type clock interface {
	Now() time.Time
	// After delivers on the channel once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// pacer schedules events at a fixed rate from a start time: event k (from 0) is due at
// start + k/rate. It is open-loop: a caller that falls behind catches up (at most maxBurst
// events at once), and a backlog older than maxLag is skipped and counted rather than sent
// in a burst that would measure the catch-up instead of the rate.
type pacer struct {
	start    time.Time
	interval float64 // nanoseconds between events
	issued   uint64  // events handed out or skipped so far
	skipped  uint64
	maxBurst int
	maxLag   time.Duration
}

// newPacer paces rate events a second from start. rate must be > 0.
func newPacer(start time.Time, rate float64, maxBurst int, maxLag time.Duration) *pacer {
	if maxBurst < 1 {
		maxBurst = 1
	}
	return &pacer{start: start, interval: 1e9 / rate, maxBurst: maxBurst, maxLag: maxLag}
}

// dueAt is when event k is due.
func (p *pacer) dueAt(k uint64) time.Time {
	return p.start.Add(time.Duration(math.Round(float64(k) * p.interval)))
}

// Due returns how many events to emit now (at most maxBurst) and how long to wait before
// asking again. The caller must emit exactly n events before its next call.
func (p *pacer) Due(now time.Time) (n int, wait time.Duration) {
	elapsed := now.Sub(p.start)
	if elapsed < 0 {
		return 0, -elapsed
	}
	// Events 0..due-1 are due by now: the estimate is corrected against dueAt, so that
	// rounding can never make an event due by one test and not yet due by the other.
	due := uint64(math.Floor(float64(elapsed)/p.interval)) + 1
	for !p.dueAt(due).After(now) {
		due++
	}
	for due > 0 && p.dueAt(due-1).After(now) {
		due--
	}
	if p.maxLag > 0 && due > p.issued {
		// Skip the events due before now-maxLag that were never issued.
		oldest := elapsed - p.maxLag
		if oldest > 0 {
			keep := uint64(math.Ceil(float64(oldest) / p.interval)) // first event still kept
			if keep > due {
				keep = due
			}
			if keep > p.issued {
				p.skipped += keep - p.issued
				p.issued = keep
			}
		}
	}
	if due > p.issued {
		backlog := due - p.issued
		if backlog > uint64(p.maxBurst) {
			backlog = uint64(p.maxBurst)
		}
		p.issued += backlog
		n = int(backlog)
	}
	if p.issued < due {
		return n, 0 // still behind: come back at once
	}
	return n, p.dueAt(p.issued).Sub(now)
}

// Skipped is the number of events dropped because the caller fell more than maxLag behind.
func (p *pacer) Skipped() uint64 { return p.skipped }

// runPaced calls emit once per event of p until end (events due at or after end are not
// emitted), ctx is done, or emit returns false. It returns the number of emitted events.
func runPaced(ctx context.Context, clk clock, p *pacer, end time.Time, emit func() bool) uint64 {
	var emitted uint64
	for {
		if ctx.Err() != nil {
			return emitted
		}
		now := clk.Now()
		if !now.Before(end) {
			return emitted
		}
		n, wait := p.Due(now)
		for i := 0; i < n; i++ {
			// Events of this batch were due before now < end.
			if !emit() {
				return emitted
			}
			emitted++
		}
		if wait <= 0 {
			continue
		}
		if rest := end.Sub(now); wait > rest {
			wait = rest
		}
		select {
		case <-ctx.Done():
			return emitted
		case <-clk.After(wait):
		}
	}
}
