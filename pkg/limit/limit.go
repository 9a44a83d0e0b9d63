// Package limit counts events in fixed time windows, for rate limits that hold across every
// process of a mesh: registrations per address, failed logins per account, uploads per
// participant. Implementations: memlimit (one process: the all-in-one mesh) and redislimit
// (every API worker of a cluster shares the counts in Redis). limittest is the conformance
// suite both pass.
package limit

import (
	"context"
	"time"
)

// Counter counts events per key in fixed windows: the window of an instant is the interval
// [k·w, (k+1)·w) of Unix time that holds it, the same for every process (given clocks that
// agree), so counts from several processes add up. A window's count starts at zero.
type Counter interface {
	// Add counts n events (n ≥ 0; 0 only reads) under key in the window of length w that
	// holds now, and returns the count after adding and the end of that window. Concurrent
	// Adds of one key and window all count: none is lost.
	Add(ctx context.Context, key string, n int, w time.Duration, now time.Time) (count int, end time.Time, err error)
}

// Window returns the start and end of the window of length w that holds now.
func Window(now time.Time, w time.Duration) (start, end time.Time) {
	ms := w.Milliseconds()
	if ms <= 0 {
		ms = 1
	}
	k := now.UnixMilli() / ms
	return time.UnixMilli(k * ms), time.UnixMilli((k + 1) * ms)
}
