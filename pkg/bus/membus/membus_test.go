package membus_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/bus/bustest"
	"github.com/themesh/mesh/pkg/bus/membus"
)

func newBus(t *testing.T, opts membus.Options) *membus.Bus {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	b := membus.New(opts)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return newBus(t, membus.Options{SubscriptionBuffer: 256})
	})
}

func TestStreamMaxLenTrims(t *testing.T) {
	b := newBus(t, membus.Options{StreamMaxLen: 10})
	ctx := context.Background()
	for i := range 25 {
		if _, err := b.Append(ctx, "s", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 25)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, "s", "g", "c", bus.ConsumeOptions{}, func(_ context.Context, e bus.Entry) error {
			got <- string(e.Data)
			return nil
		})
	}()
	for want := 15; want < 25; want++ {
		select {
		case d := <-got:
			if d != strconv.Itoa(want) {
				t.Fatalf("got entry %s, want %d (the 10 newest)", d, want)
			}
		case <-time.After(bustest.Eventually):
			t.Fatal("entry not delivered")
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume: %v", err)
	}
}

func TestStatsCountDropsAndReclaims(t *testing.T) {
	b := newBus(t, membus.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan int64, 10)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, "s", "g", "c", bus.ConsumeOptions{ReclaimIdle: 20 * time.Millisecond, MaxDeliveries: 2},
			func(_ context.Context, e bus.Entry) error {
				seen <- e.Deliveries
				return errors.New("always")
			})
	}()
	if _, err := b.Append(ctx, "s", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for want := int64(1); want <= 2; want++ {
		select {
		case d := <-seen:
			if d != want {
				t.Fatalf("delivery %d, want %d", d, want)
			}
		case <-time.After(bustest.Eventually):
			t.Fatal("no delivery")
		}
	}
	deadline := time.Now().Add(bustest.Eventually)
	for b.Stats().DroppedEntries != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 1 dropped entry", b.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	if s := b.Stats(); s.Reclaimed != 1 {
		t.Fatalf("stats %+v, want 1 reclaimed", s)
	}
	cancel()
	<-done
}

func TestPublishCopiesData(t *testing.T) {
	b := newBus(t, membus.Options{})
	ctx := context.Background()
	s, err := b.Subscribe(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("abc")
	if err := b.Publish(ctx, "x", data); err != nil {
		t.Fatal(err)
	}
	data[0] = 'z'
	if m := <-s.Messages(); string(m.Data) != "abc" {
		t.Fatalf("got %q: Publish kept the caller's buffer", m.Data)
	}
}

func TestHandlerPanicIsAFailure(t *testing.T) {
	b := newBus(t, membus.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	acked := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, "s", "g", "c", bus.ConsumeOptions{ReclaimIdle: 10 * time.Millisecond},
			func(_ context.Context, e bus.Entry) error {
				if calls.Add(1) == 1 {
					panic("boom")
				}
				close(acked)
				return nil
			})
	}()
	if _, err := b.Append(ctx, "s", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-acked:
	case <-time.After(bustest.Eventually):
		t.Fatal("entry not redelivered after a panic")
	}
	cancel()
	<-done
}

func BenchmarkPublishFanout(b *testing.B) {
	bustest.BenchPublishFanout(b, func(b *testing.B) bus.Bus { return benchBus(b) })
}

func BenchmarkAppendConsume(b *testing.B) {
	bustest.BenchAppendConsume(b, func(b *testing.B) bus.Bus { return benchBus(b) })
}

func benchBus(b *testing.B) *membus.Bus {
	bb := membus.New(membus.Options{StreamMaxLen: -1}) // the benchmark consumes what it appends
	b.Cleanup(func() { _ = bb.Close() })
	return bb
}

func TestNoGoroutineLeak(t *testing.T) {
	bustest.CheckNoLeak(t, newBus(t, membus.Options{}))
}
