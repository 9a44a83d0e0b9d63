package redisbus_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/themesh/mesh/internal/testredis"
	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/bus/bustest"
	"github.com/themesh/mesh/pkg/bus/redisbus"
)

func TestMain(m *testing.M) { testredis.Main(m) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newBus returns a bus on addr with a key prefix of its own, closed when t ends.
func newBus(t *testing.T, addr string, opts redisbus.Options) *redisbus.Bus {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = testredis.Prefix(t)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := redisbus.New(testredis.Client(t, addr), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	addr := testredis.Start(t)
	bustest.Run(t, func(t *testing.T) bus.Bus {
		return newBus(t, addr, redisbus.Options{SubscriptionBuffer: 256, ReadBlock: 50 * time.Millisecond})
	})
}

func TestNewNilClient(t *testing.T) {
	if _, err := redisbus.New(nil, redisbus.Options{}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestPrefixesIsolate(t *testing.T) {
	addr := testredis.Start(t)
	ctx := context.Background()
	a := newBus(t, addr, redisbus.Options{Prefix: testredis.Prefix(t) + "a:"})
	b := newBus(t, addr, redisbus.Options{Prefix: testredis.Prefix(t) + "b:"})
	sa, err := a.Subscribe(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Subscribe(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "x", []byte("for a")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sa.Messages():
		if m.Subject != "x" || string(m.Data) != "for a" {
			t.Fatalf("got %s %q", m.Subject, m.Data)
		}
	case <-time.After(bustest.Eventually):
		t.Fatal("no message")
	}
	select {
	case m := <-sb.Messages():
		t.Fatalf("another prefix got %s %q", m.Subject, m.Data)
	case <-time.After(bustest.Quiet):
	}
}

func TestStreamMaxLenTrims(t *testing.T) {
	addr := testredis.Start(t)
	prefix := testredis.Prefix(t)
	b := newBus(t, addr, redisbus.Options{Prefix: prefix, StreamMaxLen: 10})
	ctx := context.Background()
	for range 1000 {
		if _, err := b.Append(ctx, "s", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := testredis.Client(t, addr).XLen(ctx, prefix+"s").Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims whole radix-tree nodes (100 entries by default).
	if n >= 1000 || n < 10 {
		t.Fatalf("stream has %d entries, want about 10 (at most a node more)", n)
	}
}

func TestStatsCountDrops(t *testing.T) {
	addr := testredis.Start(t)
	b := newBus(t, addr, redisbus.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, "s", "g", "c", bus.ConsumeOptions{ReclaimIdle: 30 * time.Millisecond, MaxDeliveries: 2},
			func(context.Context, bus.Entry) error { return errors.New("always") })
	}()
	if _, err := b.Append(ctx, "s", []byte("x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(bustest.Eventually)
	for b.Stats().DroppedEntries != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want 1 dropped entry", b.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := b.Stats(); s.Reclaimed != 1 {
		t.Fatalf("stats %+v, want 1 reclaimed", s)
	}
	cancel()
	<-done
}

// TestSurvivesRestart stops Redis under a live subscription and a live consumer, starts it
// again on the same port, and checks that both work again without being recreated. An Add
// made while Redis is down returns once Redis is back.
func TestSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stop   func(*testredis.Server) error
		outage time.Duration // how long Redis stays down
	}{
		{"stop", (*testredis.Server).Stop, 0},
		{"kill", (*testredis.Server).Kill, 0},
		{"kill-long-outage", (*testredis.Server).Kill, 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testSurvivesRestart(t, tc.stop, tc.outage)
		})
	}
}

func testSurvivesRestart(t *testing.T, stop func(*testredis.Server) error, outage time.Duration) {
	srv := testredis.New(t)
	b := newBus(t, srv.Addr(), redisbus.Options{ReadBlock: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 3*bustest.Eventually)
	defer cancel()

	sub, err := b.Subscribe(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 100)
	consumeCtx, stopConsume := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(consumeCtx, "s", "g", "c", bus.ConsumeOptions{ReclaimIdle: 200 * time.Millisecond},
			func(_ context.Context, e bus.Entry) error {
				got <- string(e.Data)
				return nil
			})
	}()
	if _, err := b.Append(ctx, "s", []byte("before")); err != nil {
		t.Fatal(err)
	}
	expectEntry(t, got, "before")

	if err := stop(srv); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	added := make(chan error, 1)
	go func() { added <- sub.Add(ctx, "y") }()
	if outage > 0 {
		time.Sleep(outage) // Redis stays down meanwhile; nothing to wait for
	}
	select {
	case err := <-added:
		t.Fatalf("Add returned %v while Redis was down", err)
	default:
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	defer func() { t.Logf("recovered %s after the restart", time.Since(restarted)) }()

	// Appends may fail until the client has reconnected.
	retry(t, "append after restart", func() error {
		_, err := b.Append(ctx, "s", []byte("after"))
		return err
	})
	expectEntry(t, got, "after")
	t.Logf("consumed %s after the restart", time.Since(restarted))

	// Add returns once Redis has confirmed: a message published then is delivered.
	select {
	case err := <-added:
		if err != nil {
			t.Fatalf("Add during the outage: %v", err)
		}
	case <-time.After(bustest.Eventually):
		t.Fatal("Add made during the outage did not return after it")
	}
	t.Logf("Add returned %s after the restart", time.Since(restarted))
	if err := b.Publish(ctx, "y", []byte("on y")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, sub, "y", "on y")

	// The subject held before the outage is subscribed again too.
	if err := b.Publish(ctx, "x", []byte("on x")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, sub, "x", "on x")

	select {
	case err := <-done:
		t.Fatalf("Consume returned during the restart: %v", err)
	default:
	}
	stopConsume()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume: %v", err)
	}
}

func expectMsg(t *testing.T, sub bus.Subscription, subject, data string) {
	t.Helper()
	select {
	case m := <-sub.Messages():
		if m.Subject != subject || string(m.Data) != data {
			t.Fatalf("got %s %q, want %s %q", m.Subject, m.Data, subject, data)
		}
	case <-time.After(bustest.Eventually):
		t.Fatalf("no message %s %q within %s", subject, data, bustest.Eventually)
	}
}

// TestConsumeWaitsForRedis starts a consumer while Redis is down: it keeps retrying, and
// consumes once Redis is up.
func TestConsumeWaitsForRedis(t *testing.T) {
	srv := testredis.New(t)
	b := newBus(t, srv.Addr(), redisbus.Options{ReadBlock: 50 * time.Millisecond})
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*bustest.Eventually)
	defer cancel()
	got := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, "s", "g", "c", bus.ConsumeOptions{}, func(_ context.Context, e bus.Entry) error {
			got <- string(e.Data)
			return nil
		})
	}()
	if err := b.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with Redis down")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	retry(t, "append", func() error {
		_, err := b.Append(ctx, "s", []byte("up"))
		return err
	})
	expectEntry(t, got, "up")
	cancel()
	<-done
}

func expectEntry(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case d := <-got:
		if d != want {
			t.Fatalf("got entry %q, want %q", d, want)
		}
	case <-time.After(bustest.Eventually):
		t.Fatalf("entry %q not consumed within %s", want, bustest.Eventually)
	}
}

func retry(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(bustest.Eventually)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, bustest.Eventually, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func BenchmarkPublishFanout(b *testing.B) {
	addr := testredis.Start(b)
	bustest.BenchPublishFanout(b, func(b *testing.B) bus.Bus { return benchBus(b, addr) })
}

func BenchmarkAppendConsume(b *testing.B) {
	addr := testredis.Start(b)
	bustest.BenchAppendConsume(b, func(b *testing.B) bus.Bus { return benchBus(b, addr) })
}

func benchBus(b *testing.B, addr string) *redisbus.Bus {
	bb, err := redisbus.New(testredis.Client(b, addr), redisbus.Options{
		Prefix:       testredis.Prefix(b),
		StreamMaxLen: -1, // the benchmark consumes what it appends
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = bb.Close() })
	return bb
}

func TestNoGoroutineLeak(t *testing.T) {
	addr := testredis.Start(t)
	b := newBus(t, addr, redisbus.Options{ReadBlock: 50 * time.Millisecond})
	if err := b.Ping(context.Background()); err != nil { // the pool's first connection
		t.Fatal(err)
	}
	bustest.CheckNoLeak(t, b)
}
