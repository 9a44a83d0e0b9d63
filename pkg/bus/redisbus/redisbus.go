// Package redisbus is the bus.Bus on Redis (go-redis v9): pub/sub on PUBLISH/SUBSCRIBE,
// streams on XADD and consumer groups (XREADGROUP, XACK, XAUTOCLAIM).
//
// Semantics, the same as membus's:
//
//   - Pub/sub is at most once. Each Subscription has its own Redis connection and a bounded
//     buffer; its reader never blocks, a message that does not fit is dropped and counted.
//     Messages published while the connection is down (Redis restarting, network loss) are
//     lost; go-redis reconnects and subscribes again by itself.
//   - Streams are at least once. An entry is acked (XACK) when the handler returns nil;
//     otherwise it stays pending and, once idle for ReclaimIdle, any consumer of the group
//     claims it (XAUTOCLAIM). While a consumer is alive it keeps the entries it holds fresh
//     (XCLAIM ... JUSTID every ReclaimIdle/4), so a slow handler keeps its entry and only the
//     entries of a failed handler or of a stopped or dead consumer are reclaimed. An entry
//     delivered MaxDeliveries times without success is acked, dropped, logged and counted.
//   - Streams are capped at about StreamMaxLen entries (XADD MAXLEN ~): older ones are
//     trimmed whether or not every group has read them.
//   - Consume survives Redis restarts and network loss: it logs, backs off and retries, and
//     recreates its group if Redis lost it (a Redis without persistence loses its streams).
//
// Every key and channel is prefixed with Options.Prefix, so that meshes and tests can share
// one Redis.
package redisbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/themesh/mesh/pkg/bus"
)

// Defaults of Options.
const (
	DefaultSubscriptionBuffer = 1024
	DefaultStreamMaxLen       = 100_000
	DefaultReadBlock          = 200 * time.Millisecond
)

// Defaults of bus.ConsumeOptions, as documented there.
const (
	defaultReclaimIdle   = 30 * time.Second
	defaultMaxDeliveries = 10
	defaultBatch         = 64
)

const (
	dataField = "d" // the field holding an entry's data

	// resubscribeAfter is how long Add waits for Redis to confirm a subscription before it
	// sends SUBSCRIBE again (it normally takes well under a millisecond).
	resubscribeAfter = 3 * time.Second
	// unsubscribeWait bounds how long Remove waits for Redis's confirmation; without it the
	// subject is already filtered out locally.
	unsubscribeWait = 2 * time.Second
	// finalTimeout bounds the acks sent after Consume's ctx is done.
	finalTimeout = 2 * time.Second
	minBackoff   = 50 * time.Millisecond
	maxBackoff   = time.Second
)

// Options configure a Bus. The zero value is ready to use.
type Options struct {
	// Prefix is prepended to every stream key and pub/sub channel, such as "mesh1:".
	Prefix string
	// StreamMaxLen caps each stream at about this many entries (XADD MAXLEN ~). Zero means
	// DefaultStreamMaxLen; a negative value does not cap streams.
	StreamMaxLen int64
	// SubscriptionBuffer is how many messages a subscription holds for its reader before new
	// ones are dropped. Zero means DefaultSubscriptionBuffer.
	SubscriptionBuffer int
	// ReadBlock is the longest a consumer blocks in XREADGROUP: it bounds how long Consume takes
	// to notice that its ctx is done. Zero means DefaultReadBlock.
	ReadBlock time.Duration
	// Logger receives reports of Redis errors being retried, dropped entries and handler
	// panics. Nil means slog.Default().
	Logger *slog.Logger
}

// Stats are counters of a Bus since it was made.
type Stats struct {
	// DroppedEntries counts stream entries dropped after MaxDeliveries failed deliveries.
	DroppedEntries uint64
	// Reclaimed counts stream entries this bus's consumers claimed from a failed or stopped
	// consumer.
	Reclaimed uint64
}

// Bus is a bus.Bus on Redis. Its methods are safe for concurrent use.
type Bus struct {
	rdb       redis.UniversalClient
	prefix    string
	maxLen    int64
	subBuffer int
	readBlock time.Duration
	log       *slog.Logger

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
	done   chan struct{} // closed by Close

	droppedEntries atomic.Uint64
	reclaimed      atomic.Uint64
}

var _ bus.Bus = (*Bus)(nil)

// New returns a Bus on client. It does not contact Redis (see Ping). The caller keeps
// ownership of client: Close does not close it.
func New(client redis.UniversalClient, opts Options) (*Bus, error) {
	if client == nil {
		return nil, errors.New("redisbus: nil client")
	}
	b := &Bus{
		rdb:       client,
		prefix:    opts.Prefix,
		maxLen:    opts.StreamMaxLen,
		subBuffer: opts.SubscriptionBuffer,
		readBlock: opts.ReadBlock,
		log:       opts.Logger,
		subs:      make(map[*subscription]struct{}),
		done:      make(chan struct{}),
	}
	switch {
	case b.maxLen == 0:
		b.maxLen = DefaultStreamMaxLen
	case b.maxLen < 0:
		b.maxLen = 0 // XADD without MAXLEN
	}
	if b.subBuffer <= 0 {
		b.subBuffer = DefaultSubscriptionBuffer
	}
	if b.readBlock <= 0 {
		b.readBlock = DefaultReadBlock
	}
	b.readBlock = max(b.readBlock, time.Millisecond) // BLOCK 0 would block forever
	if b.log == nil {
		b.log = slog.Default()
	}
	return b, nil
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	return Stats{DroppedEntries: b.droppedEntries.Load(), Reclaimed: b.reclaimed.Load()}
}

func (b *Bus) isClosed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// Ping sends PING to Redis.
func (b *Bus) Ping(ctx context.Context) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbus: ping: %w", err)
	}
	return nil
}

// Close closes every subscription (their Messages channels are closed when Close returns)
// and stops every Consume (they return bus.ErrClosed once their handlers in flight have
// returned; those handlers' contexts are cancelled). It does not wait for Consume, and does
// not close the Redis client. Later calls return bus.ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return bus.ErrClosed
	}
	b.closed = true
	close(b.done)
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		_ = s.Close()
	}
	return nil
}

// ---- pub/sub ----

// Publish sends data on subject (PUBLISH). It returns once Redis has the message, which every
// subscription then holding subject receives unless it is too slow or disconnected.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte) error {
	if b.isClosed() {
		return bus.ErrClosed
	}
	if err := b.rdb.Publish(ctx, b.prefix+subject, data).Err(); err != nil {
		return fmt.Errorf("redisbus: publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe opens a subscription on a Redis connection of its own and holds subjects. It
// returns once Redis has confirmed them (see Add).
func (b *Bus) Subscribe(ctx context.Context, subjects ...string) (bus.Subscription, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, bus.ErrClosed
	}
	s := &subscription{
		b:       b,
		ps:      b.rdb.Subscribe(ctx), // no channel yet: no I/O
		out:     make(chan bus.Msg, b.subBuffer),
		done:    make(chan struct{}),
		held:    make(map[string]struct{}),
		waiters: make(map[confirmation][]chan struct{}),
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()

	go s.run(s.ps.ChannelWithSubscriptions(redis.WithChannelSize(256)))
	if err := s.Add(ctx, subjects...); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

type confirmation struct {
	kind    string // "subscribe" or "unsubscribe"
	channel string
}

type subscription struct {
	b       *Bus
	ps      *redis.PubSub
	out     chan bus.Msg
	done    chan struct{} // closed once out is closed
	dropped atomic.Uint64

	mu      sync.RWMutex
	held    map[string]struct{} // channels (prefixed) whose messages are delivered
	waiters map[confirmation][]chan struct{}
	closed  bool
}

func (s *subscription) Messages() <-chan bus.Msg { return s.out }
func (s *subscription) Dropped() uint64          { return s.dropped.Load() }

// run moves messages from go-redis to out without ever blocking, and wakes the callers
// waiting for Redis's confirmations. It ends when the PubSub is closed.
func (s *subscription) run(in <-chan any) {
	defer close(s.done)
	defer close(s.out)
	prefix := s.b.prefix
	for m := range in {
		switch m := m.(type) {
		case *redis.Message:
			s.mu.RLock()
			_, ok := s.held[m.Channel]
			s.mu.RUnlock()
			if !ok {
				continue // removed: Remove's promise holds even before Redis confirms it
			}
			msg := bus.Msg{Subject: strings.TrimPrefix(m.Channel, prefix), Data: []byte(m.Payload)}
			select {
			case s.out <- msg:
			default:
				s.dropped.Add(1)
			}
		case *redis.Subscription:
			s.confirmed(confirmation{kind: m.Kind, channel: m.Channel})
		}
	}
}

func (s *subscription) confirmed(c confirmation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.waiters[c] {
		close(w)
	}
	delete(s.waiters, c)
}

// expect registers waiters for one confirmation of kind per channel. Called with s.mu held.
func (s *subscription) expect(kind string, channels []string) map[confirmation]chan struct{} {
	ws := make(map[confirmation]chan struct{}, len(channels))
	for _, ch := range channels {
		c := confirmation{kind: kind, channel: ch}
		w := make(chan struct{})
		s.waiters[c] = append(s.waiters[c], w)
		ws[c] = w
	}
	return ws
}

// forget removes the waiters that were not woken.
func (s *subscription) forget(ws map[confirmation]chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, w := range ws {
		list := s.waiters[c]
		for i, x := range list {
			if x == w {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(s.waiters, c)
		} else {
			s.waiters[c] = list
		}
	}
}

func (s *subscription) channels(subjects []string) []string {
	chans := make([]string, 0, len(subjects))
	seen := make(map[string]bool, len(subjects))
	for _, subj := range subjects {
		ch := s.b.prefix + subj
		if !seen[ch] {
			seen[ch] = true
			chans = append(chans, ch)
		}
	}
	return chans
}

// Add holds subjects and returns once Redis has confirmed the subscription of each, so that
// any message published afterwards is delivered. If the connection is down, Add keeps trying
// until it is back or ctx is done (then it returns an error, and the subjects stay held: they
// are subscribed again when the connection comes back).
func (s *subscription) Add(ctx context.Context, subjects ...string) error {
	chans := s.channels(subjects)
	if len(chans) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return bus.ErrClosed
	}
	for _, ch := range chans {
		s.held[ch] = struct{}{}
	}
	ws := s.expect("subscribe", chans)
	s.mu.Unlock()
	defer s.forget(ws)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := newBackoff()
	for {
		// SUBSCRIBE is idempotent: sending it again after a lost connection is harmless.
		err := s.ps.Subscribe(ctx, chans...)
		if err != nil {
			timer.Reset(backoff.next())
		} else {
			timer.Reset(resubscribeAfter)
		}
		switch werr := s.await(ctx, ws, timer.C); {
		case werr == nil:
			return nil
		case errors.Is(werr, errAwaitTimeout):
			continue
		case errors.Is(werr, bus.ErrClosed):
			return werr
		default:
			return fmt.Errorf("redisbus: subscribe %s: %w", strings.Join(subjects, " "), errors.Join(werr, err))
		}
	}
}

var errAwaitTimeout = errors.New("redisbus: no confirmation yet")

// await waits for the confirmations of ws (removing those received) until timeout fires, ctx
// is done or the subscription is closed.
func (s *subscription) await(ctx context.Context, ws map[confirmation]chan struct{}, timeout <-chan time.Time) error {
	for c, w := range ws {
		select {
		case <-w:
			delete(ws, c)
		case <-timeout:
			return errAwaitTimeout
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return bus.ErrClosed
		}
	}
	return nil
}

// Remove stops holding subjects: messages published after it returns are not delivered. It
// waits (a little) for Redis to confirm the UNSUBSCRIBE, so that a later Add of the same
// subject cannot let an older message through.
func (s *subscription) Remove(ctx context.Context, subjects ...string) error {
	chans := s.channels(subjects)
	if len(chans) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return bus.ErrClosed
	}
	for _, ch := range chans {
		delete(s.held, ch)
	}
	ws := s.expect("unsubscribe", chans)
	s.mu.Unlock()
	defer s.forget(ws)

	if err := s.ps.Unsubscribe(ctx, chans...); err != nil {
		// The connection is lost; go-redis will not subscribe these again when it comes back.
		s.b.log.Debug("redisbus: unsubscribe", "channels", chans, "err", err)
		return nil
	}
	timer := time.NewTimer(unsubscribeWait)
	defer timer.Stop()
	// Without the confirmation (timeout, ctx, closed) the subject is still filtered out here.
	_ = s.await(ctx, ws, timer.C)
	return nil
}

// Close closes the subscription's connection; Messages is closed when Close returns.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return bus.ErrClosed
	}
	s.closed = true
	s.mu.Unlock()

	err := s.ps.Close()
	<-s.done
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("redisbus: close subscription: %w", err)
	}
	return nil
}

// ---- streams ----

// Append adds data to stream (XADD with MAXLEN ~) and returns the id Redis gave it.
func (b *Bus) Append(ctx context.Context, stream string, data []byte) (string, error) {
	if b.isClosed() {
		return "", bus.ErrClosed
	}
	id, err := b.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: b.prefix + stream,
		MaxLen: b.maxLen,
		Approx: true,
		Values: []any{dataField, data},
	}).Result()
	if err != nil {
		return "", fmt.Errorf("redisbus: xadd %s: %w", stream, err)
	}
	return id, nil
}

// Consume implements bus.Streams. It creates the group (at the stream's start) if needed,
// then reads Batch new entries at a time (XREADGROUP, blocking at most ReadBlock) and, every
// ReclaimIdle/4 (at most every 5 s), claims entries idle for ReclaimIdle (XAUTOCLAIM). Entries
// are handed to Concurrency workers; acks are batched. Redis errors are logged and retried
// with backoff: Consume only returns when ctx is done (ctx.Err()) or the bus is closed
// (bus.ErrClosed), after every handler in flight has returned and its ack was sent.
func (b *Bus) Consume(ctx context.Context, stream, group, name string, opts bus.ConsumeOptions, h bus.Handler) error {
	if h == nil {
		return errors.New("redisbus: consume: nil handler")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.isClosed() {
		return bus.ErrClosed
	}
	opts = withDefaults(opts)

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	c := &consumer{
		b: b, key: b.prefix + stream, stream: stream, group: group, name: name, opts: opts, h: h,
		log:  b.log.With("stream", stream, "group", group, "consumer", name),
		held: make(map[string]time.Time),
	}
	c.run(ctx)
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
		o.Batch = defaultBatch
	}
	return o
}

// consumer is one Consume call.
type consumer struct {
	b                  *Bus
	key, stream, group string
	name               string
	opts               bus.ConsumeOptions
	h                  bus.Handler
	log                *slog.Logger

	cursor         string // XAUTOCLAIM's; "" or "0-0" starts from the beginning of the group's PEL
	refreshFailing atomic.Bool

	mu   sync.Mutex
	held map[string]time.Time // entries fetched and not yet acked or failed: last refreshed
}

func (c *consumer) run(ctx context.Context) {
	work := make(chan bus.Entry)
	acks := make(chan string, 4*c.opts.Batch)

	var workers sync.WaitGroup
	for range c.opts.Concurrency {
		workers.Go(func() {
			for e := range work {
				c.process(ctx, e, acks)
			}
		})
	}
	ackerDone := make(chan struct{})
	go c.acker(ctx, acks, ackerDone)
	var heartbeat sync.WaitGroup
	heartbeat.Go(func() { c.heartbeat(ctx) })

	c.fetch(ctx, work, acks)

	close(work)
	workers.Wait()
	close(acks)
	<-ackerDone
	heartbeat.Wait()
}

// fetch reads and reclaims entries and hands them to the workers until ctx is done.
func (c *consumer) fetch(ctx context.Context, work chan<- bus.Entry, acks chan<- string) {
	reclaimEvery := min(max(c.opts.ReclaimIdle/4, 10*time.Millisecond), 5*time.Second)
	block := min(c.b.readBlock, reclaimEvery)
	nextReclaim := time.Now()
	backoff := newBackoff()
	groupReady := false
	for ctx.Err() == nil {
		var (
			entries []bus.Entry
			err     error
		)
		if !groupReady {
			err = c.createGroup(ctx)
			groupReady = err == nil
		}
		if err == nil && !time.Now().Before(nextReclaim) {
			var more bool
			entries, more, err = c.reclaim(ctx)
			switch {
			case err != nil:
			case more:
				nextReclaim = time.Now()
			default:
				nextReclaim = time.Now().Add(reclaimEvery)
			}
		}
		if err == nil && len(entries) == 0 {
			entries, err = c.read(ctx, min(block, max(time.Until(nextReclaim), time.Millisecond)))
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if isNoGroup(err) {
				groupReady = false // Redis lost it (restart without persistence)
				c.cursor = ""
			}
			d := backoff.next()
			c.log.Warn("redisbus: consume: retrying", "err", err, "in", d)
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		backoff.reset()
		for _, e := range entries {
			if e.Deliveries > c.opts.MaxDeliveries {
				c.drop(e)
				acks <- e.ID
				continue
			}
			select {
			case work <- e:
			case <-ctx.Done():
				// The rest stay pending; the heartbeat stops with ctx, so they are reclaimed
				// by the other consumers after ReclaimIdle.
				return
			}
		}
	}
}

func (c *consumer) createGroup(ctx context.Context) error {
	err := c.b.rdb.XGroupCreateMkStream(ctx, c.key, c.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redisbus: xgroup create %s %s: %w", c.stream, c.group, err)
	}
	return nil
}

// read returns up to Batch new entries, waiting at most block for the first.
func (c *consumer) read(ctx context.Context, block time.Duration) ([]bus.Entry, error) {
	res, err := c.b.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group:    c.group,
		Consumer: c.name,
		Streams:  []string{c.key, ">"},
		Count:    int64(c.opts.Batch),
		Block:    block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisbus: xreadgroup %s %s: %w", c.stream, c.group, err)
	}
	var entries []bus.Entry
	for _, s := range res {
		for _, m := range s.Messages {
			entries = append(entries, c.entry(m, 1))
		}
	}
	c.hold(entries)
	return entries, nil
}

// reclaim claims up to Batch entries idle for ReclaimIdle and reads how often each has been
// delivered. more reports that the group's pending list has more to look at right away.
func (c *consumer) reclaim(ctx context.Context) (entries []bus.Entry, more bool, err error) {
	start := c.cursor
	if start == "" {
		start = "0-0"
	}
	msgs, cursor, err := c.b.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream:   c.key,
		Group:    c.group,
		Consumer: c.name,
		MinIdle:  c.opts.ReclaimIdle,
		Start:    start,
		Count:    int64(c.opts.Batch),
	}).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redisbus: xautoclaim %s %s: %w", c.stream, c.group, err)
	}
	c.cursor = cursor
	more = cursor != "0-0" && cursor != ""
	if len(msgs) == 0 {
		return nil, more, nil
	}
	more = more || len(msgs) == c.opts.Batch

	// XAUTOCLAIM does not say how often an entry was delivered; XPENDING does.
	cmds := make([]*redis.XPendingExtCmd, len(msgs))
	_, err = c.b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range msgs {
			cmds[i] = p.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: c.key, Group: c.group, Start: m.ID, End: m.ID, Count: 1,
			})
		}
		return nil
	})
	if err != nil {
		// They are ours now and stay pending: the next reclaim pass takes them again.
		return nil, false, fmt.Errorf("redisbus: xpending %s %s: %w", c.stream, c.group, err)
	}
	c.mu.Lock()
	for i, m := range msgs {
		if _, ok := c.held[m.ID]; ok {
			continue // ours already, in a handler or waiting for its ack: a late refresh
		}
		p := cmds[i].Val()
		if len(p) != 1 || p[0].Consumer != c.name {
			continue // acked or claimed by another meanwhile
		}
		entries = append(entries, c.entry(m, p[0].RetryCount))
	}
	c.mu.Unlock()
	c.b.reclaimed.Add(uint64(len(entries)))
	c.hold(entries)
	return entries, more, nil
}

func (c *consumer) entry(m redis.XMessage, deliveries int64) bus.Entry {
	e := bus.Entry{ID: m.ID, Stream: c.stream, Deliveries: deliveries}
	if s, ok := m.Values[dataField].(string); ok {
		e.Data = []byte(s)
	}
	return e
}

// process runs the handler on e and acks it, leaves it pending, or drops it.
func (c *consumer) process(ctx context.Context, e bus.Entry, acks chan<- string) {
	err := c.handle(ctx, e)
	switch {
	case err == nil:
		acks <- e.ID
	case e.Deliveries >= c.opts.MaxDeliveries:
		c.drop(e)
		acks <- e.ID
	default:
		// Pending and idle from now: reclaimed after ReclaimIdle.
		c.unhold(e.ID)
		if ctx.Err() == nil {
			c.refresh(ctx, []string{e.ID})
		}
	}
}

// handle runs the handler, turning a panic into an error so that one bad entry cannot stop
// the consumer (it is retried, then dropped after MaxDeliveries).
func (c *consumer) handle(ctx context.Context, e bus.Entry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("redisbus: handler panic", "id", e.ID, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("redisbus: handler panic: %v", r)
		}
	}()
	return c.h(ctx, e)
}

func (c *consumer) drop(e bus.Entry) {
	c.b.droppedEntries.Add(1)
	c.log.Warn("redisbus: entry dropped after max deliveries", "id", e.ID, "deliveries", e.Deliveries)
}

// acker sends the acks in batches (XACK with many ids): one round trip acks every entry
// finished meanwhile. An ack that fails is retried while ctx lasts, then once more; an entry
// whose ack is lost is redelivered (at least once).
func (c *consumer) acker(ctx context.Context, acks <-chan string, done chan<- struct{}) {
	defer close(done)
	ids := make([]string, 0, 64)
	backoff := newBackoff()
	for id := range acks {
		ids = append(ids[:0], id)
	drain:
		for len(ids) < 1024 {
			select {
			case id, ok := <-acks:
				if !ok {
					break drain
				}
				ids = append(ids, id)
			default:
				break drain
			}
		}
		for {
			actx, cancel := ctx, context.CancelFunc(func() {})
			if ctx.Err() != nil {
				actx, cancel = context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
			}
			err := c.b.rdb.XAck(actx, c.key, c.group, ids...).Err()
			cancel()
			if err == nil {
				backoff.reset()
				break
			}
			if ctx.Err() != nil {
				c.log.Warn("redisbus: xack failed; entries will be redelivered", "err", err, "entries", len(ids))
				break
			}
			d := backoff.next()
			c.log.Warn("redisbus: xack: retrying", "err", err, "in", d)
			sleep(ctx, d)
		}
		c.unhold(ids...)
	}
}

// heartbeat keeps the entries the consumer holds fresh (XCLAIM to itself, JUSTID: the
// delivery count does not change), so that no other consumer reclaims them while this one is
// alive. It stops with ctx: from then on they age, and are reclaimed after ReclaimIdle.
func (c *consumer) heartbeat(ctx context.Context) {
	every := max(c.opts.ReclaimIdle/4, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var ids []string
			c.mu.Lock()
			for id, at := range c.held {
				if now.Sub(at) >= every {
					ids = append(ids, id)
				}
			}
			c.mu.Unlock()
			if len(ids) > 0 {
				c.refresh(ctx, ids)
			}
		}
	}
}

// refresh resets the idle time of the entries (which the consumer holds).
func (c *consumer) refresh(ctx context.Context, ids []string) {
	const chunk = 256
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		err := c.b.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
			Stream: c.key, Group: c.group, Consumer: c.name, Messages: ids[:n],
		}).Err()
		if err != nil {
			// Logged once per run of failures: the heartbeat retries every ReclaimIdle/4.
			if ctx.Err() == nil && !c.refreshFailing.Swap(true) {
				c.log.Warn("redisbus: xclaim (refresh) failing", "err", err)
			}
			return
		}
		if c.refreshFailing.Swap(false) {
			c.log.Info("redisbus: xclaim (refresh) working again")
		}
		now := time.Now()
		c.mu.Lock()
		for _, id := range ids[:n] {
			if _, ok := c.held[id]; ok {
				c.held[id] = now
			}
		}
		c.mu.Unlock()
		ids = ids[n:]
	}
}

func (c *consumer) hold(entries []bus.Entry) {
	if len(entries) == 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range entries {
		c.held[e.ID] = now
	}
}

func (c *consumer) unhold(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		delete(c.held, id)
	}
}

func isNoGroup(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOGROUP")
}

// backoff doubles from minBackoff to maxBackoff, with jitter.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = minBackoff
	} else {
		b.d = min(2*b.d, maxBackoff)
	}
	return b.d/2 + rand.N(b.d/2+1)
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
