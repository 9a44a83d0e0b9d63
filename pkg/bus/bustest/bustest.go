// Package bustest is the conformance suite of bus.Bus: every implementation runs it, so that
// membus and redisbus cannot drift apart.
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) bus.Bus { ... })
//	}
package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/bus"
)

// Eventually is how long the suite waits for something that must happen. It is generous:
// when things work, they happen in milliseconds; the limit only bounds a failing test. A test
// that expects the suite to fail may lower it before calling Run.
var Eventually = 10 * time.Second

// Quiet is how long the suite watches for something that must not happen (a message to a
// subscription that does not hold its subject, a redelivery of an acked entry). It bounds
// what the suite can catch, not how long a passing test waits for anything to happen.
const Quiet = 150 * time.Millisecond

// ReclaimIdle is the ReclaimIdle the suite's consumers use.
const ReclaimIdle = 200 * time.Millisecond

// MaxSubscriptionBuffer is the largest subscription buffer the suite's slow-subscriber test
// can detect: newBus must give subscriptions a buffer no larger.
const MaxSubscriptionBuffer = 1000

// Run runs the conformance suite. newBus returns a new bus whose subjects and streams no other
// test uses (a fresh membus, or a redisbus with a key prefix of its own), configured with a
// subscription buffer of at most MaxSubscriptionBuffer; newBus closes it when t ends (the
// suite tolerates bus.ErrClosed from a second Close). Subtests run in parallel.
func Run(t *testing.T, newBus func(t *testing.T) bus.Bus) {
	type test struct {
		name string
		fn   func(t *testing.T, b bus.Bus)
	}
	groups := []struct {
		name  string
		tests []test
	}{
		{"PubSub", []test{
			{"ReachesHoldersOnly", testReachesHoldersOnly},
			{"OrderPerSubject", testOrderPerSubject},
			{"AddRemoveOnReturn", testAddRemoveOnReturn},
			{"AddIsIdempotent", testAddIsIdempotent},
			{"AddThenPublish", testAddThenPublish},
			{"SubscriptionClose", testSubscriptionClose},
			{"SlowSubscriber", testSlowSubscriber},
		}},
		{"Streams", []test{
			{"AppendIDs", testAppendIDs},
			{"OrderWithConcurrencyOne", testStreamOrder},
			{"GroupsShareConsumersSplit", testGroups},
			{"ErrorRedelivers", testErrorRedelivers},
			{"StoppedConsumerReclaimed", testStoppedConsumerReclaimed},
			{"SlowHandlerKeepsEntries", testSlowHandlerKeepsEntries},
			{"MaxDeliveriesDropsPoison", testMaxDeliveries},
			{"Concurrency", testConcurrency},
			{"ConsumeReturnsOnCancel", testConsumeReturnsOnCancel},
		}},
		{"Bus", []test{
			{"Ping", testPing},
			{"Close", testBusClose},
		}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, newBus(t))
				})
			}
		})
	}
}

// ---- helpers ----

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*Eventually)
	t.Cleanup(cancel)
	return ctx
}

func subscribe(t *testing.T, b bus.Bus, subjects ...string) bus.Subscription {
	t.Helper()
	s, err := b.Subscribe(testCtx(t), subjects...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", subjects, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func publish(t *testing.T, b bus.Bus, subject, data string) {
	t.Helper()
	if err := b.Publish(testCtx(t), subject, []byte(data)); err != nil {
		t.Fatalf("Publish(%q, %q): %v", subject, data, err)
	}
}

// next returns the subscription's next message, failing the test after Eventually.
func next(t *testing.T, s bus.Subscription) bus.Msg {
	t.Helper()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			t.Fatal("Messages() closed, want a message")
		}
		return m
	case <-time.After(Eventually):
		t.Fatalf("no message within %s", Eventually)
		return bus.Msg{}
	}
}

func expectMsg(t *testing.T, s bus.Subscription, subject, data string) {
	t.Helper()
	m := next(t, s)
	if m.Subject != subject || string(m.Data) != data {
		t.Fatalf("got %s %q, want %s %q", m.Subject, m.Data, subject, data)
	}
}

// expectNone fails if the subscription receives anything during Quiet.
func expectNone(t *testing.T, s bus.Subscription) {
	t.Helper()
	select {
	case m, ok := <-s.Messages():
		if ok {
			t.Fatalf("unexpected message %s %q", m.Subject, m.Data)
		}
		t.Fatal("Messages() closed unexpectedly")
	case <-time.After(Quiet):
	}
}

// consume runs Consume in a goroutine until the test ends or the returned cancel is called;
// the returned channel yields Consume's result.
func consume(t *testing.T, b bus.Bus, stream, group, consumer string, opts bus.ConsumeOptions, h bus.Handler) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancelCtx := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		ch <- b.Consume(ctx, stream, group, consumer, opts, h)
		close(finished)
	}()
	t.Cleanup(func() {
		cancelCtx()
		select {
		case <-finished:
		case <-time.After(Eventually):
			t.Errorf("Consume(%s, %s, %s) did not return within %s of cancel", stream, group, consumer, Eventually)
		}
	})
	return cancelCtx, ch
}

func appendN(t *testing.T, b bus.Bus, stream string, from, to int) []string {
	t.Helper()
	ids := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		id, err := b.Append(testCtx(t), stream, []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("Append(%s, %d): %v", stream, i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Eventually)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, Eventually)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an event
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Eventually):
		t.Fatalf("%s: not within %s", what, Eventually)
		var zero T
		return zero
	}
}

// trySend sends v unless ch is full: a handler reporting to the test never blocks.
func trySend[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// expectAllAcked stops nothing but starts a new consumer of group with a short ReclaimIdle:
// if any entry of stream were left pending (not acked), it would be reclaimed and delivered
// to it within the window.
func expectAllAcked(t *testing.T, b bus.Bus, stream, group string) {
	t.Helper()
	got := make(chan bus.Entry, 100)
	cancel, _ := consume(t, b, stream, group, "ack-checker", fastOpts(), func(_ context.Context, e bus.Entry) error {
		trySend(got, e)
		return nil
	})
	defer cancel()
	select {
	case e := <-got:
		t.Fatalf("entry %s (%q) was not acked: delivery %d to a new consumer", e.ID, e.Data, e.Deliveries)
	case <-time.After(5 * ReclaimIdle):
	}
}

func fastOpts() bus.ConsumeOptions {
	return bus.ConsumeOptions{Concurrency: 1, ReclaimIdle: ReclaimIdle, MaxDeliveries: 10, Batch: 16}
}

// ---- pub/sub ----

func testReachesHoldersOnly(t *testing.T, b bus.Bus) {
	a := subscribe(t, b, "x")
	ab := subscribe(t, b, "x", "y")
	c := subscribe(t, b, "y")
	none := subscribe(t, b)
	publish(t, b, "x", "1")
	publish(t, b, "y", "2")
	publish(t, b, "z", "3") // nobody holds z
	expectMsg(t, a, "x", "1")
	m1, m2 := next(t, ab), next(t, ab)
	if m1.Subject == "y" { // order across subjects is not part of the contract
		m1, m2 = m2, m1
	}
	if m1.Subject != "x" || string(m1.Data) != "1" || m2.Subject != "y" || string(m2.Data) != "2" {
		t.Fatalf("subscription of x and y got %s %q and %s %q", m1.Subject, m1.Data, m2.Subject, m2.Data)
	}
	expectMsg(t, c, "y", "2")
	for _, s := range []bus.Subscription{a, ab, c, none} {
		expectNone(t, s)
	}
}

func testOrderPerSubject(t *testing.T, b bus.Bus) {
	const (
		n     = 300
		chunk = 50 // published before waiting for the readers, so no buffer overflows
	)
	subs := []bus.Subscription{subscribe(t, b, "x"), subscribe(t, b, "x", "other")}
	var wg sync.WaitGroup
	got := make([][]int, len(subs))
	count := make([]atomic.Int64, len(subs))
	for i, s := range subs {
		wg.Go(func() {
			for len(got[i]) < n {
				select {
				case m := <-s.Messages():
					if m.Subject == "other" {
						continue
					}
					v, err := strconv.Atoi(string(m.Data))
					if err != nil || m.Subject != "x" {
						t.Errorf("unexpected message %s %q", m.Subject, m.Data)
						return
					}
					got[i] = append(got[i], v)
					count[i].Add(1)
				case <-time.After(Eventually):
					t.Errorf("subscription %d: %d of %d messages", i, len(got[i]), n)
					return
				}
			}
		})
	}
	for i := range n {
		publish(t, b, "x", strconv.Itoa(i))
		if i%chunk == chunk-1 {
			publish(t, b, "other", "noise")
			waitFor(t, "readers catching up", func() bool {
				return count[0].Load() > int64(i) && count[1].Load() > int64(i)
			})
		}
	}
	wg.Wait()
	for i, vs := range got {
		if len(vs) != n {
			t.Fatalf("subscription %d got %d of %d messages", i, len(vs), n)
		}
		for j, v := range vs {
			if v != j {
				t.Fatalf("subscription %d: message %d is %d, want publish order", i, j, v)
			}
		}
		if d := subs[i].Dropped(); d != 0 {
			t.Fatalf("subscription %d dropped %d messages while reading", i, d)
		}
	}
}

func testAddRemoveOnReturn(t *testing.T, b bus.Bus) {
	ctx := testCtx(t)
	s := subscribe(t, b)
	for round := range 3 {
		if err := s.Add(ctx, "x", "y"); err != nil {
			t.Fatalf("Add: %v", err)
		}
		// Published right after Add returned: must be delivered, every time.
		publish(t, b, "x", fmt.Sprintf("held %d", round))
		expectMsg(t, s, "x", fmt.Sprintf("held %d", round))
		if err := s.Remove(ctx, "x"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		// Published right after Remove returned: must never be delivered, even once x is
		// held again below.
		publish(t, b, "x", fmt.Sprintf("removed %d", round))
		publish(t, b, "y", fmt.Sprintf("still held %d", round))
		expectMsg(t, s, "y", fmt.Sprintf("still held %d", round))
		if err := s.Remove(ctx, "y", "never-held"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
	}
	expectNone(t, s)
}

// testAddThenPublish publishes right after Add, many times, to catch an Add that returns
// before the subscription is in place (on Redis: before the server confirmed SUBSCRIBE).
func testAddThenPublish(t *testing.T, b bus.Bus) {
	ctx := testCtx(t)
	s := subscribe(t, b)
	const rounds = 200
	for i := range rounds {
		subj := "r" + strconv.Itoa(i)
		if err := s.Add(ctx, subj); err != nil {
			t.Fatalf("Add: %v", err)
		}
		publish(t, b, subj, "m")
	}
	got := make(map[string]int)
	deadline := time.After(Eventually)
	for len(got) < rounds {
		select {
		case m := <-s.Messages():
			got[m.Subject]++
		case <-deadline:
			for i := range rounds {
				if subj := "r" + strconv.Itoa(i); got[subj] == 0 {
					t.Fatalf("the message on %s, published after Add(%s) returned, was lost", subj, subj)
				}
			}
		}
	}
	for subj, n := range got {
		if n != 1 {
			t.Fatalf("%d messages on %s, want 1", n, subj)
		}
	}
}

func testAddIsIdempotent(t *testing.T, b bus.Bus) {
	ctx := testCtx(t)
	s := subscribe(t, b, "x")
	if err := s.Add(ctx, "x", "x"); err != nil {
		t.Fatalf("Add: %v", err)
	}
	publish(t, b, "x", "once")
	expectMsg(t, s, "x", "once")
	expectNone(t, s) // not delivered twice
	// One Remove undoes any number of Adds (no reference counting).
	if err := s.Remove(ctx, "x"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	publish(t, b, "x", "gone")
	expectNone(t, s)
}

func testSubscriptionClose(t *testing.T, b bus.Bus) {
	ctx := testCtx(t)
	s := subscribe(t, b, "x")
	other := subscribe(t, b, "x")
	publish(t, b, "x", "before")
	expectMsg(t, other, "x", "before")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Messages is closed (after whatever was still buffered).
	deadline := time.After(Eventually)
	for open := true; open; {
		select {
		case _, open = <-s.Messages():
		case <-deadline:
			t.Fatal("Messages() not closed after Close")
		}
	}
	if err := s.Add(ctx, "y"); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Add after Close: %v, want bus.ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("second Close: %v, want bus.ErrClosed", err)
	}
	// The others are unaffected.
	publish(t, b, "x", "after")
	expectMsg(t, other, "x", "after")
}

func testSlowSubscriber(t *testing.T, b bus.Bus) {
	const n = 2 * MaxSubscriptionBuffer
	slow := subscribe(t, b, "x") // not read until the end
	fast := subscribe(t, b, "x") // read all along
	var fastRead atomic.Uint64
	stopFast := make(chan struct{})
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		for {
			select {
			case <-fast.Messages():
				fastRead.Add(1)
			case <-stopFast:
				return
			}
		}
	}()
	payload := bytes.Repeat([]byte("p"), 200)
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for range n {
			if err := b.Publish(ctx, "x", payload); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := recv(t, done, "Publish with a subscriber that never reads"); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// Every message is either read, buffered or counted as dropped, for each subscription.
	waitFor(t, "fast: read + dropped = published", func() bool {
		return fastRead.Load()+fast.Dropped() == n
	})
	waitFor(t, "slow: buffered + dropped = published", func() bool {
		return uint64(len(slow.Messages()))+slow.Dropped() == n
	})
	if slow.Dropped() == 0 {
		t.Fatalf("slow subscriber dropped nothing of %d messages", n)
	}
	close(stopFast)
	<-fastDone
	// Both still work once read again.
	for len(slow.Messages()) > 0 {
		<-slow.Messages()
	}
	publish(t, b, "x", "again")
	expectMsg(t, slow, "x", "again")
	expectMsg(t, fast, "x", "again")
}

// ---- streams ----

func testAppendIDs(t *testing.T, b bus.Bus) {
	ids := appendN(t, b, "s", 0, 50)
	seen := make(map[string]bool)
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Fatalf("Append returned id %q twice or empty", id)
		}
		seen[id] = true
	}
	got := make(chan bus.Entry, 50)
	consume(t, b, "s", "g", "c", fastOpts(), func(_ context.Context, e bus.Entry) error {
		got <- e
		return nil
	})
	for i, id := range ids {
		e := recv(t, got, "entry")
		if e.ID != id || e.Stream != "s" || string(e.Data) != strconv.Itoa(i) || e.Deliveries != 1 {
			t.Fatalf("entry %d: got {ID:%s Stream:%s Data:%q Deliveries:%d}, want {ID:%s Stream:s Data:%q Deliveries:1}",
				i, e.ID, e.Stream, e.Data, e.Deliveries, id, strconv.Itoa(i))
		}
	}
}

func testStreamOrder(t *testing.T, b bus.Bus) {
	const n = 300
	appendN(t, b, "s", 0, n/2) // before the group exists: it starts at the stream's start
	got := make(chan int, n)
	consume(t, b, "s", "g", "c", fastOpts(), func(_ context.Context, e bus.Entry) error {
		v, _ := strconv.Atoi(string(e.Data))
		got <- v
		return nil
	})
	appendN(t, b, "s", n/2, n)
	for i := range n {
		if v := recv(t, got, "entry"); v != i {
			t.Fatalf("entry %d is %d, want stream order", i, v)
		}
	}
}

func testGroups(t *testing.T, b bus.Bus) {
	const n = 200
	appendN(t, b, "s", 0, n/2)
	appendN(t, b, "other", 0, 10) // never seen by consumers of s
	type key struct {
		group string
		data  string
	}
	var (
		mu    sync.Mutex
		count = make(map[key]int)
		total = make(map[string]int)
	)
	handler := func(group string) bus.Handler {
		return func(_ context.Context, e bus.Entry) error {
			if e.Stream != "s" {
				t.Errorf("consumer of s got an entry of %q", e.Stream)
			}
			mu.Lock()
			count[key{group, string(e.Data)}]++
			total[group]++
			mu.Unlock()
			return nil
		}
	}
	opts := fastOpts()
	opts.ReclaimIdle = time.Minute // no reclaim: exactly once per group
	for _, c := range []string{"c1", "c2", "c3"} {
		consume(t, b, "s", "split", c, opts, handler("split"))
	}
	consume(t, b, "s", "solo", "c1", opts, handler("solo"))
	appendN(t, b, "s", n/2, n)
	waitFor(t, "every group sees every entry", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return total["split"] >= n && total["solo"] >= n
	})
	expectAllAcked(t, b, "s", "split")
	mu.Lock()
	defer mu.Unlock()
	for _, g := range []string{"split", "solo"} {
		for i := range n {
			if c := count[key{g, strconv.Itoa(i)}]; c != 1 {
				t.Errorf("group %s: entry %d handled %d times, want 1", g, i, c)
			}
		}
	}
}

func testErrorRedelivers(t *testing.T, b bus.Bus) {
	type delivery struct {
		e  bus.Entry
		at time.Time
	}
	got := make(chan delivery, 10)
	consume(t, b, "s", "g", "c", fastOpts(), func(_ context.Context, e bus.Entry) error {
		got <- delivery{e, time.Now()}
		if e.Deliveries < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	id := appendN(t, b, "s", 0, 1)[0]
	var last time.Time
	for want := int64(1); want <= 3; want++ {
		d := recv(t, got, fmt.Sprintf("delivery %d", want))
		if d.e.ID != id || d.e.Deliveries != want {
			t.Fatalf("got entry %s delivery %d, want %s delivery %d", d.e.ID, d.e.Deliveries, id, want)
		}
		if want > 1 {
			if gap := d.at.Sub(last); gap < ReclaimIdle*3/4 {
				t.Fatalf("redelivered %s after the failure, before ReclaimIdle %s", gap, ReclaimIdle)
			}
		}
		last = d.at
	}
	// Acked by the third: never delivered again.
	select {
	case d := <-got:
		t.Fatalf("acked entry delivered again (delivery %d)", d.e.Deliveries)
	case <-time.After(2 * ReclaimIdle):
	}
}

func testStoppedConsumerReclaimed(t *testing.T, b bus.Bus) {
	started := make(chan bus.Entry, 1)
	cancelA, doneA := consume(t, b, "s", "g", "a", fastOpts(), func(ctx context.Context, e bus.Entry) error {
		started <- e
		<-ctx.Done() // a handler stuck until its consumer stops: it never acks
		return ctx.Err()
	})
	id := appendN(t, b, "s", 0, 1)[0]
	if e := recv(t, started, "delivery to a"); e.ID != id {
		t.Fatalf("a got %s, want %s", e.ID, id)
	}
	cancelA()
	if err := recv(t, doneA, "Consume of a returning"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume of a returned %v, want context.Canceled", err)
	}
	stoppedAt := time.Now()
	got := make(chan bus.Entry, 1)
	consume(t, b, "s", "g", "b", fastOpts(), func(_ context.Context, e bus.Entry) error {
		got <- e
		return nil
	})
	e := recv(t, got, "reclaim by b")
	if e.ID != id || e.Deliveries != 2 {
		t.Fatalf("b got %s delivery %d, want %s delivery 2", e.ID, e.Deliveries, id)
	}
	if time.Since(stoppedAt) > Eventually/2 {
		t.Fatalf("reclaimed %s after a stopped, ReclaimIdle is %s", time.Since(stoppedAt), ReclaimIdle)
	}
}

// testSlowHandlerKeepsEntries checks that a live consumer keeps the entries it holds (in its
// handler, or fetched and waiting for it) however long they take, past ReclaimIdle.
func testSlowHandlerKeepsEntries(t *testing.T, b bus.Bus) {
	const n = 3
	var (
		mu      sync.Mutex
		handled = make(map[string]string) // data -> consumer
		total   atomic.Int64
	)
	started := make(chan struct{}, n)
	taken := make(chan string, 100)
	handler := func(consumer string, work time.Duration) bus.Handler {
		return func(_ context.Context, e bus.Entry) error {
			trySend(started, struct{}{})
			time.Sleep(work) // a slow handler, not a wait for an event
			mu.Lock()
			prev, dup := handled[string(e.Data)]
			handled[string(e.Data)] = consumer
			mu.Unlock()
			if dup || e.Deliveries != 1 {
				trySend(taken, fmt.Sprintf("entry %s delivery %d to %s (handled by %s before)", e.Data, e.Deliveries, consumer, prev))
			}
			total.Add(1)
			return nil
		}
	}
	// A longer ReclaimIdle than elsewhere: an implementation may keep its entries with a
	// heartbeat, which needs some slack on a loaded test machine.
	opts := fastOpts()
	opts.ReclaimIdle = 2 * ReclaimIdle
	consume(t, b, "s", "g", "slow", opts, handler("slow", opts.ReclaimIdle*3/2))
	appendN(t, b, "s", 0, n)
	recv(t, started, "slow handler start")
	consume(t, b, "s", "g", "other", opts, handler("other", 0))
	waitFor(t, "every entry handled", func() bool { return total.Load() >= n })
	select {
	case what := <-taken:
		t.Fatalf("taken from a live consumer: %s", what)
	case <-time.After(2 * opts.ReclaimIdle):
	}
}

func testMaxDeliveries(t *testing.T, b bus.Bus) {
	const maxDeliveries = 3
	var poisonCalls, goodCalls atomic.Int64
	poisonSeen := make(chan int64, 10)
	goodSeen := make(chan struct{}, 10)
	opts := fastOpts()
	opts.MaxDeliveries = maxDeliveries
	consume(t, b, "s", "g", "c", opts, func(_ context.Context, e bus.Entry) error {
		if string(e.Data) == "poison" {
			poisonCalls.Add(1)
			poisonSeen <- e.Deliveries
			return errors.New("poison")
		}
		goodCalls.Add(1)
		goodSeen <- struct{}{}
		return nil
	})
	if _, err := b.Append(testCtx(t), "s", []byte("poison")); err != nil {
		t.Fatal(err)
	}
	appendN(t, b, "s", 0, 1)
	recv(t, goodSeen, "the entry after the poison") // not blocked behind it
	for want := int64(1); want <= maxDeliveries; want++ {
		if d := recv(t, poisonSeen, "poison delivery"); d != want {
			t.Fatalf("poison delivery %d has Deliveries %d", want, d)
		}
	}
	// Dropped now: not delivered again, however long we wait.
	select {
	case d := <-poisonSeen:
		t.Fatalf("poison delivered again (Deliveries %d) past MaxDeliveries %d", d, maxDeliveries)
	case <-time.After(3 * ReclaimIdle):
	}
	// Not even to a new consumer of the group.
	got := make(chan bus.Entry, 1)
	consume(t, b, "s", "g", "late", opts, func(_ context.Context, e bus.Entry) error {
		got <- e
		return nil
	})
	select {
	case e := <-got:
		t.Fatalf("late consumer got %q (delivery %d)", e.Data, e.Deliveries)
	case <-time.After(2 * ReclaimIdle):
	}
	if p, g := poisonCalls.Load(), goodCalls.Load(); p != maxDeliveries || g != 1 {
		t.Fatalf("handled poison %d times and the good entry %d times, want %d and 1", p, g, maxDeliveries)
	}
}

func testConcurrency(t *testing.T, b bus.Bus) {
	const n = 4
	var (
		inFlight atomic.Int64
		handled  atomic.Int64
		all      = make(chan struct{})
		once     sync.Once
	)
	opts := fastOpts()
	opts.Concurrency = n
	opts.ReclaimIdle = time.Minute
	consume(t, b, "s", "g", "c", opts, func(ctx context.Context, e bus.Entry) error {
		if inFlight.Add(1) == n {
			once.Do(func() { close(all) })
		}
		select {
		case <-all: // every handler runs at once, or none returns
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(Eventually):
			return errors.New("handlers did not run in parallel")
		}
		handled.Add(1)
		return nil
	})
	appendN(t, b, "s", 0, n)
	recv(t, all, fmt.Sprintf("%d handlers in parallel", n))
	waitFor(t, "every entry handled", func() bool { return handled.Load() == n })
	appendN(t, b, "s", n, 2*n)
	waitFor(t, "the next entries handled", func() bool { return handled.Load() == 2*n })
	expectAllAcked(t, b, "s", "g")
	if h := handled.Load(); h != 2*n {
		t.Fatalf("%d entries handled, want %d", h, 2*n)
	}
}

func testConsumeReturnsOnCancel(t *testing.T, b bus.Bus) {
	// Idle consumer.
	cancel, done := consume(t, b, "s", "g", "idle", fastOpts(), func(context.Context, bus.Entry) error { return nil })
	cancel()
	if err := recv(t, done, "Consume returning"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v, want context.Canceled", err)
	}

	// Busy consumer: Consume waits for the handler in flight.
	var returned atomic.Bool
	started := make(chan struct{})
	cancel, done = consume(t, b, "t", "g", "busy", fastOpts(), func(ctx context.Context, e bus.Entry) error {
		close(started)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond) // some work after the cancel
		returned.Store(true)
		return nil
	})
	appendN(t, b, "t", 0, 1)
	recv(t, started, "handler start")
	cancel()
	if err := recv(t, done, "Consume returning"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v, want context.Canceled", err)
	}
	if !returned.Load() {
		t.Fatal("Consume returned before its handler in flight")
	}

	// Already cancelled.
	ctx, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	errCh := make(chan error, 1)
	go func() {
		errCh <- b.Consume(ctx, "s", "g", "late", fastOpts(), func(context.Context, bus.Entry) error { return nil })
	}()
	if err := recv(t, errCh, "Consume with a done ctx"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v, want context.Canceled", err)
	}
}

// ---- bus ----

func testPing(t *testing.T, b bus.Bus) {
	if err := b.Ping(testCtx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testBusClose(t *testing.T, b bus.Bus) {
	ctx := testCtx(t)
	s := subscribe(t, b, "x")
	started := make(chan struct{}, 1)
	_, done := consume(t, b, "s", "g", "c", fastOpts(), func(context.Context, bus.Entry) error {
		started <- struct{}{}
		return nil
	})
	appendN(t, b, "s", 0, 1)
	recv(t, started, "handler start")

	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.After(Eventually)
	for open := true; open; {
		select {
		case _, open = <-s.Messages():
		case <-deadline:
			t.Fatal("subscription's Messages() not closed by the bus's Close")
		}
	}
	if err := recv(t, done, "Consume returning after Close"); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Consume returned %v after Close, want bus.ErrClosed", err)
	}
	checks := map[string]error{
		"Publish": b.Publish(ctx, "x", []byte("late")),
		"Consume": b.Consume(ctx, "s", "g", "c", fastOpts(), func(context.Context, bus.Entry) error { return nil }),
		"Close":   b.Close(),
		"Ping":    b.Ping(ctx),
	}
	_, err := b.Subscribe(ctx, "x")
	checks["Subscribe"] = err
	_, err = b.Append(ctx, "s", []byte("late"))
	checks["Append"] = err
	for name, err := range checks {
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s on a closed bus: %v, want bus.ErrClosed", name, err)
		}
	}
}

// CheckNoLeak exercises b (subscriptions, consumers with handlers in flight), closes it, and
// fails unless the number of goroutines falls back to what it was before. Call it from a test
// that does not run in parallel with others.
func CheckNoLeak(t *testing.T, b bus.Bus) {
	t.Helper()
	before := runtime.NumGoroutine()
	ctx := testCtx(t)
	for i := range 3 {
		s, err := b.Subscribe(ctx, "x", "y"+strconv.Itoa(i))
		if err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
		if i == 0 {
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	}
	publish(t, b, "x", "m")
	started := make(chan struct{}, 10)
	consumeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 2)
	for _, name := range []string{"a", "b"} {
		go func() {
			done <- b.Consume(consumeCtx, "s", "g", name, bus.ConsumeOptions{Concurrency: 3, ReclaimIdle: ReclaimIdle},
				func(ctx context.Context, e bus.Entry) error {
					trySend(started, struct{}{})
					<-ctx.Done()
					return ctx.Err()
				})
		}()
	}
	appendN(t, b, "s", 0, 4)
	recv(t, started, "a handler start")
	cancel()
	for range 2 {
		recv(t, done, "Consume returning")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitFor(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}
