// Package memlimit is the in-process limit.Counter: the all-in-one mesh's, where one process
// sees every event.
package memlimit

import (
	"context"
	"sync"
	"time"

	"github.com/themesh/mesh/pkg/limit"
)

var _ limit.Counter = (*Counter)(nil)

// Counter keeps counts in memory; ended windows are dropped as new ones begin.
type Counter struct {
	mu     sync.Mutex
	counts map[slot]int
	// sweep is when ended windows were last dropped.
	sweep time.Time
}

type slot struct {
	key string
	w   time.Duration
	end int64 // the window's end, Unix ms
}

// New makes an empty Counter.
func New() *Counter { return &Counter{counts: map[slot]int{}} }

// Add implements limit.Counter.
func (c *Counter) Add(_ context.Context, key string, n int, w time.Duration, now time.Time) (int, time.Time, error) {
	_, end := limit.Window(now, w)
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.sweep) >= time.Minute {
		for s := range c.counts {
			if s.end <= now.UnixMilli() {
				delete(c.counts, s)
			}
		}
		c.sweep = now
	}
	s := slot{key, w, end.UnixMilli()}
	if n > 0 {
		c.counts[s] += n
	}
	return c.counts[s], end, nil
}
