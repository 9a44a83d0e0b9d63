package bustest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/bus"
)

// PayloadSize is the size of the benchmarks' messages and entries (a chat event's order).
const PayloadSize = 200

// BenchPublishFanout runs benchPublishFanout with 1 and 100 subscriptions, each on a fresh
// bus from newBus.
func BenchPublishFanout(b *testing.B, newBus func(b *testing.B) bus.Bus) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) { benchPublishFanout(b, newBus(b), subs) })
	}
}

// BenchAppendConsume runs benchAppendConsume sequential, pipelined, and pipelined with
// Concurrency 4, each on a fresh bus from newBus.
func BenchAppendConsume(b *testing.B, newBus func(b *testing.B) bus.Bus) {
	for _, c := range []struct {
		name      string
		pipelined bool
		opts      bus.ConsumeOptions
	}{
		{"sequential", false, bus.ConsumeOptions{}},
		{"pipelined", true, bus.ConsumeOptions{}},
		{"pipelined-concurrency=4", true, bus.ConsumeOptions{Concurrency: 4}},
	} {
		b.Run(c.name, func(b *testing.B) { benchAppendConsume(b, newBus(b), c.opts, c.pipelined) })
	}
}

// benchPublishFanout measures one publisher sending b.N messages of PayloadSize bytes to
// subs subscriptions of one subject, each read by its own goroutine. The clock stops once
// every message has reached (or been dropped by) every subscription. It reports msgs/s
// (published) and deliveries/s, and dropped/op, the share of deliveries lost by readers that
// could not keep up.
func benchPublishFanout(b *testing.B, bb bus.Bus, subs int) {
	ctx := context.Background()
	const subject = "bench"
	var received atomic.Uint64
	ss := make([]bus.Subscription, subs)
	var wg sync.WaitGroup
	for i := range ss {
		s, err := bb.Subscribe(ctx, subject)
		if err != nil {
			b.Fatalf("Subscribe: %v", err)
		}
		ss[i] = s
		wg.Go(func() {
			for range s.Messages() {
				received.Add(1)
			}
		})
	}
	defer func() {
		for _, s := range ss {
			_ = s.Close()
		}
		wg.Wait()
	}()
	payload := bytes.Repeat([]byte("x"), PayloadSize)

	b.SetBytes(PayloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := bb.Publish(ctx, subject, payload); err != nil {
			b.Fatalf("Publish: %v", err)
		}
	}
	want := uint64(b.N) * uint64(subs)
	dropped := func() uint64 {
		var d uint64
		for _, s := range ss {
			d += s.Dropped()
		}
		return d
	}
	deadline := time.Now().Add(time.Minute)
	for received.Load()+dropped() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries after a minute", received.Load()+dropped(), want)
		}
		time.Sleep(100 * time.Microsecond) // polling interval
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(received.Load())/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(dropped())/float64(want), "dropped/op")
}

// benchAppendConsume measures b.N entries of PayloadSize bytes through a stream: appended by
// one goroutine, handled (and acked) by one consumer with opts. With pipelined, the consumer
// runs while entries are appended (the send path's shape); without, all are appended first,
// then consumed. It reports append/s, consume/s and entries/s end to end.
func benchAppendConsume(b *testing.B, bb bus.Bus, opts bus.ConsumeOptions, pipelined bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	payload := bytes.Repeat([]byte("x"), PayloadSize)
	var handled atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	var consumeStart time.Time
	done := make(chan error, 1)
	startConsumer := func() {
		consumeStart = time.Now()
		go func() {
			done <- bb.Consume(ctx, stream, "g", "c", opts, func(context.Context, bus.Entry) error {
				if handled.Add(1) == n {
					close(all)
				}
				return nil
			})
		}()
	}

	b.SetBytes(PayloadSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if pipelined {
		startConsumer()
	}
	for i := range b.N {
		if _, err := bb.Append(ctx, stream, payload); err != nil {
			b.Fatalf("Append %d: %v", i, err)
		}
	}
	appended := time.Since(start)
	if !pipelined {
		startConsumer()
	}
	select {
	case <-all:
	case err := <-done:
		b.Fatalf("Consume returned: %v", err)
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d entries handled after a minute", handled.Load(), n)
	}
	total := time.Since(start)
	consumed := time.Since(consumeStart)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/appended.Seconds(), "append/s")
	b.ReportMetric(float64(b.N)/consumed.Seconds(), "consume/s")
	b.ReportMetric(float64(b.N)/total.Seconds(), "entries/s")
}
