// Package membus is the in-process bus.Bus: the all-in-one server's default, and the hot path
// of its send path (one Append per message, one Publish per event).
//
// It keeps Redis's semantics so behaviour cannot drift between modes:
//
//   - Pub/sub is at most once and lossy for slow subscribers. Each subscription has a bounded
//     buffer; Publish never blocks: a message that does not fit is dropped for that
//     subscription alone and counted (Subscription.Dropped). Messages of one subject published
//     by one goroutine reach each subscription in publish order.
//   - Streams are logs with consumer groups, pending entries and acks, like Redis streams. An
//     entry is acked when the handler returns nil; otherwise it stays pending and, once it has
//     been idle for the consumer's ReclaimIdle, any consumer of the group claims it. An entry
//     is "idle" from the moment its handler failed or its consumer stopped (its ctx was done
//     or the bus closed), even if that handler is still running: entries held by a live
//     consumer are never taken from it, however slow its handler. An entry delivered
//     MaxDeliveries times without success is acked, dropped, logged and counted.
//   - A stream keeps at most StreamMaxLen entries; older ones are trimmed whether or not every
//     group has read them (as XADD MAXLEN does).
//
// Nothing is persisted: entries live as long as the Bus.
package membus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/themesh/mesh/pkg/bus"
)

// Defaults of Options.
const (
	DefaultSubscriptionBuffer = 1024
	DefaultStreamMaxLen       = 100_000
)

// Defaults of bus.ConsumeOptions, as documented there.
const (
	defaultReclaimIdle   = 30 * time.Second
	defaultMaxDeliveries = 10
)

// Options configure a Bus. The zero value is ready to use.
type Options struct {
	// SubscriptionBuffer is how many messages a subscription holds for its reader before new
	// ones are dropped. Zero means DefaultSubscriptionBuffer.
	SubscriptionBuffer int
	// StreamMaxLen is how many entries a stream keeps; the oldest are trimmed beyond it, read
	// or not. Zero means DefaultStreamMaxLen; a negative value keeps every entry.
	StreamMaxLen int64
	// Logger receives reports of dropped entries and handler panics. Nil means slog.Default().
	Logger *slog.Logger
}

// Stats are counters of a Bus since it was made.
type Stats struct {
	// DroppedEntries counts stream entries dropped after MaxDeliveries failed deliveries.
	DroppedEntries uint64
	// Reclaimed counts stream entries claimed from a consumer that failed or stopped.
	Reclaimed uint64
}

// Bus is an in-process bus.Bus. Its methods are safe for concurrent use.
type Bus struct {
	subBuffer int
	maxLen    int64
	log       *slog.Logger

	// mu guards the pub/sub state and closed. Publish holds it for reading while it sends
	// (sends never block), so Close and Remove cannot race with a send.
	mu     sync.RWMutex
	subs   map[string][]*subscription
	all    map[*subscription]struct{}
	closed bool
	done   chan struct{} // closed by Close

	smu     sync.RWMutex
	streams map[string]*stream

	droppedEntries atomic.Uint64
	reclaimed      atomic.Uint64
}

var _ bus.Bus = (*Bus)(nil)

// New returns an empty Bus.
func New(opts Options) *Bus {
	b := &Bus{
		subBuffer: opts.SubscriptionBuffer,
		maxLen:    opts.StreamMaxLen,
		log:       opts.Logger,
		subs:      make(map[string][]*subscription),
		all:       make(map[*subscription]struct{}),
		done:      make(chan struct{}),
		streams:   make(map[string]*stream),
	}
	if b.subBuffer <= 0 {
		b.subBuffer = DefaultSubscriptionBuffer
	}
	if b.maxLen == 0 {
		b.maxLen = DefaultStreamMaxLen
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	return Stats{DroppedEntries: b.droppedEntries.Load(), Reclaimed: b.reclaimed.Load()}
}

// Ping reports bus.ErrClosed once the bus is closed, nil before.
func (b *Bus) Ping(context.Context) error {
	select {
	case <-b.done:
		return bus.ErrClosed
	default:
		return nil
	}
}

// Close closes every subscription (their Messages channels are closed) and stops every
// Consume (they return bus.ErrClosed once their handlers in flight have returned; those
// handlers' contexts are cancelled). Close does not wait for them. Later calls return
// bus.ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return bus.ErrClosed
	}
	b.closed = true
	for s := range b.all {
		s.closed = true
		close(s.ch)
	}
	clear(b.all)
	clear(b.subs)
	close(b.done)
	b.mu.Unlock()
	return nil
}

// ---- pub/sub ----

// Publish delivers data to every subscription holding subject when it is called. It never
// blocks: a subscription whose buffer is full loses the message and counts it. Data is copied
// once and shared by all receivers, which must not modify it.
func (b *Bus) Publish(_ context.Context, subject string, data []byte) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return bus.ErrClosed
	}
	subs := b.subs[subject]
	if len(subs) == 0 {
		return nil
	}
	msg := bus.Msg{Subject: subject, Data: clone(data)}
	for _, s := range subs {
		select {
		case s.ch <- msg:
		default:
			s.dropped.Add(1)
		}
	}
	return nil
}

// Subscribe returns a subscription holding subjects.
func (b *Bus) Subscribe(_ context.Context, subjects ...string) (bus.Subscription, error) {
	s := &subscription{
		b:        b,
		ch:       make(chan bus.Msg, b.subBuffer),
		subjects: make(map[string]struct{}, len(subjects)),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	b.all[s] = struct{}{}
	s.addLocked(subjects)
	return s, nil
}

type subscription struct {
	b       *Bus
	ch      chan bus.Msg
	dropped atomic.Uint64

	// Guarded by b.mu.
	subjects map[string]struct{}
	closed   bool
}

func (s *subscription) Messages() <-chan bus.Msg { return s.ch }
func (s *subscription) Dropped() uint64          { return s.dropped.Load() }

// Add holds subjects; messages published after it returns are delivered.
func (s *subscription) Add(_ context.Context, subjects ...string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.closed {
		return bus.ErrClosed
	}
	s.addLocked(subjects)
	return nil
}

func (s *subscription) addLocked(subjects []string) {
	for _, subj := range subjects {
		if _, ok := s.subjects[subj]; ok {
			continue
		}
		s.subjects[subj] = struct{}{}
		s.b.subs[subj] = append(s.b.subs[subj], s)
	}
}

// Remove stops holding subjects; messages published after it returns are not delivered.
func (s *subscription) Remove(_ context.Context, subjects ...string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.closed {
		return bus.ErrClosed
	}
	for _, subj := range subjects {
		if _, ok := s.subjects[subj]; !ok {
			continue
		}
		delete(s.subjects, subj)
		s.b.unlinkLocked(subj, s)
	}
	return nil
}

// Close stops the subscription and closes Messages (messages still buffered can be read).
func (s *subscription) Close() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.closed {
		return bus.ErrClosed
	}
	s.closed = true
	for subj := range s.subjects {
		s.b.unlinkLocked(subj, s)
	}
	clear(s.subjects)
	delete(s.b.all, s)
	close(s.ch)
	return nil
}

func (b *Bus) unlinkLocked(subject string, s *subscription) {
	subs := b.subs[subject]
	for i, x := range subs {
		if x == s {
			last := len(subs) - 1
			subs[i] = subs[last]
			subs[last] = nil
			subs = subs[:last]
			break
		}
	}
	if len(subs) == 0 {
		delete(b.subs, subject)
		return
	}
	b.subs[subject] = subs
}

// ---- streams ----

type stream struct {
	name string

	mu      sync.Mutex
	entries []entry // entries[i] has seq first+i
	first   uint64  // seq of entries[0]; equals next when the stream is empty
	next    uint64  // seq of the next entry appended; seqs start at 1
	lastMs  uint64  // id of the last entry: lastMs-lastN
	lastN   uint64
	groups  map[string]*group
	wake    chan struct{} // made by a waiting consumer, closed by notify
}

type entry struct {
	id   string
	data []byte
}

type group struct {
	cursor   uint64 // seq of the last entry delivered to the group (0: none)
	tokens   uint64
	pending  map[uint64]pending
	released []releasedRef // pending entries nobody holds, oldest release first
}

// pending is an entry delivered to a consumer of the group and not acked.
type pending struct {
	consumer   string
	deliveries int64
	token      uint64    // new on each delivery, so a stale handler cannot touch a later one
	held       bool      // a live consumer is handling it: not reclaimable
	releasedAt time.Time // when it stopped being held
}

type releasedRef struct {
	seq, token uint64
}

func (b *Bus) stream(name string) *stream {
	b.smu.RLock()
	s := b.streams[name]
	b.smu.RUnlock()
	if s != nil {
		return s
	}
	b.smu.Lock()
	defer b.smu.Unlock()
	s = b.streams[name]
	if s == nil {
		s = &stream{name: name, first: 1, next: 1, groups: make(map[string]*group)}
		b.streams[name] = s
	}
	return s
}

// Append adds data (copied) at the end of stream and returns its id, shaped like a Redis
// stream id ("<unix ms>-<n>", increasing). If the stream is longer than StreamMaxLen, its
// oldest entries are trimmed, pending or not.
func (b *Bus) Append(_ context.Context, name string, data []byte) (string, error) {
	select {
	case <-b.done:
		return "", bus.ErrClosed
	default:
	}
	d := clone(data)
	s := b.stream(name)
	s.mu.Lock()
	id := s.nextID()
	s.entries = append(s.entries, entry{id: id, data: d})
	s.next++
	if b.maxLen > 0 && int64(len(s.entries)) > b.maxLen {
		n := len(s.entries) - int(b.maxLen)
		clear(s.entries[:n])
		s.entries = s.entries[n:]
		s.first += uint64(n)
	}
	s.notify()
	s.mu.Unlock()
	return id, nil
}

// nextID returns an id greater than every previous one of the stream.
func (s *stream) nextID() string {
	ms := uint64(time.Now().UnixMilli())
	if ms <= s.lastMs {
		s.lastN++
	} else {
		s.lastMs, s.lastN = ms, 0
	}
	var buf [48]byte
	b := strconv.AppendUint(buf[:0], s.lastMs, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, s.lastN, 10)
	return string(b)
}

// notify wakes the consumers waiting on the stream. Called with s.mu held.
func (s *stream) notify() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

// waitChan returns a channel closed at the stream's next change. Called with s.mu held.
func (s *stream) waitChan() <-chan struct{} {
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

func (s *stream) group(name string) *group {
	g := s.groups[name]
	if g == nil {
		// Created at the stream's start: every entry still in the stream is delivered.
		g = &group{cursor: s.first - 1, pending: make(map[uint64]pending)}
		s.groups[name] = g
	}
	return g
}

// delivery is one entry handed to one worker.
type delivery struct {
	seq, token uint64
	e          bus.Entry
}

// consumer is one Consume call.
type consumer struct {
	b      *Bus
	s      *stream
	g      *group
	group  string
	name   string
	opts   bus.ConsumeOptions
	h      bus.Handler
	active []delivery // per worker, guarded by s.mu; token 0 when the worker is idle
	// stopped is set (under s.mu) once the consumer's ctx is done: it holds nothing after.
	stopped bool
}

// Consume implements bus.Streams. Workers (Concurrency of them) take entries one at a time,
// so an entry never waits behind another in a local buffer, and Batch is not used. Entries
// whose handler failed or that were left by a stopped consumer are delivered (to any consumer
// of the group) before new ones once they have been idle for ReclaimIdle. Consume returns
// ctx.Err() once ctx is done, or bus.ErrClosed if the bus was closed first, after every
// handler in flight has returned.
func (b *Bus) Consume(ctx context.Context, stream, group, name string, opts bus.ConsumeOptions, h bus.Handler) error {
	if h == nil {
		return errors.New("membus: consume: nil handler")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := b.Ping(ctx); err != nil {
		return err
	}
	opts = withDefaults(opts)
	s := b.stream(stream)
	s.mu.Lock()
	g := s.group(group)
	s.mu.Unlock()

	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-b.done:
			cancel(bus.ErrClosed)
		case <-ctx.Done():
		}
	}()

	c := &consumer{b: b, s: s, g: g, group: group, name: name, opts: opts, h: h,
		active: make([]delivery, opts.Concurrency)}
	// The moment the consumer stops, the entries it is handling become idle, so others can
	// reclaim them even if a handler never returns.
	stop := context.AfterFunc(ctx, c.stop)
	defer stop()

	var wg sync.WaitGroup
	for i := range opts.Concurrency {
		wg.Go(func() { c.work(ctx, i) })
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return err
	}
	return bus.ErrClosed
}

func withDefaults(o bus.ConsumeOptions) bus.ConsumeOptions {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.ReclaimIdle <= 0 {
		o.ReclaimIdle = defaultReclaimIdle
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = defaultMaxDeliveries
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	return o
}

func (c *consumer) work(ctx context.Context, slot int) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for ctx.Err() == nil {
		c.s.mu.Lock()
		if c.stopped {
			c.s.mu.Unlock()
			return
		}
		d, ok, wait := c.fetch(time.Now())
		if ok {
			c.active[slot] = d
			c.s.mu.Unlock()
			c.finish(slot, d, c.handle(ctx, d.e))
			continue
		}
		wake := c.s.waitChan()
		c.s.mu.Unlock()

		var tc <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tc = timer.C
		}
		select {
		case <-wake:
		case <-tc:
		case <-ctx.Done():
		}
	}
}

// fetch takes the next entry for the consumer: first an idle pending entry to reclaim, then a
// new one. With none, it returns how long until a pending entry becomes reclaimable (zero:
// nothing to wait for but a change of the stream). Called with s.mu held.
func (c *consumer) fetch(now time.Time) (d delivery, ok bool, wait time.Duration) {
	s, g := c.s, c.g
	for len(g.released) > 0 {
		r := g.released[0]
		p, ok := g.pending[r.seq]
		if !ok || p.token != r.token || p.held {
			g.released = g.released[1:] // acked or claimed since
			continue
		}
		if idle := now.Sub(p.releasedAt); idle < c.opts.ReclaimIdle {
			break
		}
		g.released = g.released[1:]
		if r.seq < s.first {
			delete(g.pending, r.seq) // trimmed, as XAUTOCLAIM does
			continue
		}
		p.deliveries++
		if p.deliveries > c.opts.MaxDeliveries {
			delete(g.pending, r.seq)
			c.drop(r.seq, p.deliveries-1)
			continue
		}
		g.tokens++
		p.consumer, p.token, p.held = c.name, g.tokens, true
		g.pending[r.seq] = p
		c.b.reclaimed.Add(1)
		return c.deliver(r.seq, p), true, 0
	}
	if len(g.released) == 0 {
		g.released = nil // let the queue's array go
	}

	seq := max(g.cursor, s.first-1) + 1
	if seq < s.next {
		g.cursor = seq
		g.tokens++
		p := pending{consumer: c.name, deliveries: 1, token: g.tokens, held: true}
		g.pending[seq] = p
		return c.deliver(seq, p), true, 0
	}

	if len(g.released) > 0 {
		p := g.pending[g.released[0].seq]
		return d, false, max(p.releasedAt.Add(c.opts.ReclaimIdle).Sub(now), time.Millisecond)
	}
	return d, false, 0
}

func (c *consumer) deliver(seq uint64, p pending) delivery {
	e := &c.s.entries[seq-c.s.first]
	return delivery{seq: seq, token: p.token, e: bus.Entry{
		ID: e.id, Stream: c.s.name, Data: e.data, Deliveries: p.deliveries,
	}}
}

// handle runs the handler, turning a panic into an error so that one bad entry cannot stop
// the consumer (it is retried, then dropped after MaxDeliveries).
func (c *consumer) handle(ctx context.Context, e bus.Entry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.b.log.Error("membus: handler panic", "stream", e.Stream, "group", c.group,
				"id", e.ID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("membus: handler panic: %v", r)
		}
	}()
	return c.h(ctx, e)
}

// finish acks the entry on success, else leaves it pending and idle (or drops it when it has
// had its MaxDeliveries).
func (c *consumer) finish(slot int, d delivery, err error) {
	s, g := c.s, c.g
	s.mu.Lock()
	defer s.mu.Unlock()
	c.active[slot] = delivery{}
	p, ok := g.pending[d.seq]
	if !ok {
		return
	}
	if err == nil {
		delete(g.pending, d.seq) // like XACK: whoever holds it now
		return
	}
	if p.token != d.token {
		return // reclaimed by another consumer meanwhile
	}
	if p.deliveries >= c.opts.MaxDeliveries {
		delete(g.pending, d.seq)
		c.drop(d.seq, p.deliveries)
		return
	}
	if p.held {
		c.release(d.seq, p)
	}
}

// release makes a held entry idle from now. Called with s.mu held.
func (c *consumer) release(seq uint64, p pending) {
	p.held = false
	p.releasedAt = time.Now()
	c.g.pending[seq] = p
	c.g.released = append(c.g.released, releasedRef{seq: seq, token: p.token})
	c.s.notify() // waiting consumers set their reclaim timers
}

// stop runs once the consumer's ctx is done: the entries it is still handling become idle.
func (c *consumer) stop() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.stopped = true
	for _, d := range c.active {
		if d.token == 0 {
			continue
		}
		if p, ok := c.g.pending[d.seq]; ok && p.token == d.token && p.held {
			c.release(d.seq, p)
		}
	}
}

// drop logs and counts an entry given up after MaxDeliveries. Called with s.mu held.
func (c *consumer) drop(seq uint64, deliveries int64) {
	c.b.droppedEntries.Add(1)
	id := ""
	if seq >= c.s.first {
		id = c.s.entries[seq-c.s.first].id
	}
	c.b.log.Warn("membus: entry dropped after max deliveries", "stream", c.s.name,
		"group", c.group, "id", id, "deliveries", deliveries)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
