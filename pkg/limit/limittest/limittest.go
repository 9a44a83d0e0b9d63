// Package limittest is the conformance suite of limit.Counter: memlimit and redislimit run
// it, so that a mesh's limits mean the same all-in-one and in a cluster.
package limittest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/limit"
)

// Run runs the suite. newCounter returns a fresh Counter, with no counts, each time.
func Run(t *testing.T, newCounter func(t *testing.T) limit.Counter) {
	ctx := context.Background()
	// The middle of the current minute's window: windows are predictable, and none has
	// ended yet (counts that live in Redis expire with their window, on Redis's clock).
	base := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	t.Run("Counts", func(t *testing.T) {
		c := newCounter(t)
		for i := 1; i <= 5; i++ {
			n, end, err := c.Add(ctx, "k", 1, time.Minute, base)
			if err != nil || n != i || !end.Equal(base.Add(30*time.Second)) {
				t.Fatalf("Add #%d = %d, %v, %v", i, n, end, err)
			}
		}
		if n, _, _ := c.Add(ctx, "k", 3, time.Minute, base); n != 8 {
			t.Fatalf("Add 3 = %d, want 8", n)
		}
	})
	t.Run("ZeroReads", func(t *testing.T) {
		c := newCounter(t)
		if n, _, err := c.Add(ctx, "k", 0, time.Minute, base); err != nil || n != 0 {
			t.Fatalf("read of nothing = %d, %v", n, err)
		}
		_, _, _ = c.Add(ctx, "k", 2, time.Minute, base)
		for range 3 {
			if n, _, _ := c.Add(ctx, "k", 0, time.Minute, base); n != 2 {
				t.Fatalf("read = %d, want 2 (reads do not count)", n)
			}
		}
	})
	t.Run("KeysApart", func(t *testing.T) {
		c := newCounter(t)
		_, _, _ = c.Add(ctx, "a", 4, time.Minute, base)
		if n, _, _ := c.Add(ctx, "b", 1, time.Minute, base); n != 1 {
			t.Fatalf("b = %d after a's events", n)
		}
		if n, _, _ := c.Add(ctx, "a", 0, time.Hour, base); n != 0 {
			t.Fatalf("a in another window length = %d", n)
		}
	})
	t.Run("WindowsApart", func(t *testing.T) {
		c := newCounter(t)
		_, _, _ = c.Add(ctx, "k", 4, time.Minute, base)
		// The last instant of the window still counts with it; the next one starts afresh.
		if n, _, _ := c.Add(ctx, "k", 0, time.Minute, base.Add(29999*time.Millisecond)); n != 4 {
			t.Fatalf("end of the window = %d, want 4", n)
		}
		n, end, _ := c.Add(ctx, "k", 1, time.Minute, base.Add(30*time.Second))
		if n != 1 || !end.Equal(base.Add(90*time.Second)) {
			t.Fatalf("next window = %d, ends %v", n, end)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		c := newCounter(t)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					if _, _, err := c.Add(ctx, "k", 1, time.Minute, base); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if n, _, _ := c.Add(ctx, "k", 0, time.Minute, base); n != 200 {
			t.Fatalf("after 200 concurrent Adds: %d", n)
		}
	})
	t.Run("Window", func(t *testing.T) {
		start, end := limit.Window(base, time.Minute)
		if !start.Equal(base.Add(-30*time.Second)) || !end.Equal(base.Add(30*time.Second)) {
			t.Fatalf("Window = %v, %v", start, end)
		}
	})
}

// RunShared checks that two Counters of one store (two processes on one Redis), from
// newPair, add up their counts.
func RunShared(t *testing.T, newPair func(t *testing.T) (limit.Counter, limit.Counter)) {
	ctx := context.Background()
	base := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	a, b := newPair(t)
	_, _, _ = a.Add(ctx, "k", 3, time.Minute, base)
	if n, _, _ := b.Add(ctx, "k", 1, time.Minute, base); n != 4 {
		t.Fatalf("the second process counts %d, want 4", n)
	}
}
