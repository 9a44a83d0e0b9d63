// Package bus is how services meet: pub/sub for fan-out (at most once, cheap) and streams for
// commands that must not be lost (at least once, consumer groups, acks, reclaim). Two
// implementations keep the same semantics: membus (in-process, the embedded default) and
// redisbus (go-redis v9). bustest is the conformance suite both pass.
package bus

import (
	"context"
	"errors"
	"time"
)

// Msg is one message received on a subscription. Data may be shared with other
// subscriptions: receivers must not modify it.
type Msg struct {
	Subject string
	Data    []byte
}

// PubSub fans messages out to every subscription holding a subject, at most once.
type PubSub interface {
	// Publish sends data to the subscriptions holding subject at the time it is published.
	// It never blocks on a slow subscriber: like Redis, a subscriber that cannot keep up loses
	// messages (membus drops them for that subscriber and counts them). Messages of one
	// subject published by one caller reach each subscription in publish order.
	Publish(ctx context.Context, subject string, data []byte) error
	// Subscribe opens a subscription holding subjects (it may hold none at first). When it
	// returns, messages published afterwards on those subjects are delivered.
	Subscribe(ctx context.Context, subjects ...string) (Subscription, error)
}

// Subscription receives the messages of the subjects it holds.
type Subscription interface {
	// Messages is closed when the subscription is closed.
	Messages() <-chan Msg
	// Add starts receiving subjects; when it returns, their later messages are delivered.
	// Adding a subject already held is a no-op (no reference counting here).
	Add(ctx context.Context, subjects ...string) error
	// Remove stops receiving subjects.
	Remove(ctx context.Context, subjects ...string) error
	// Dropped counts messages lost because this subscriber was too slow.
	Dropped() uint64
	Close() error
}

// Entry is one entry of a stream as a consumer sees it. Data may be shared with other
// consumers: handlers must not modify it.
type Entry struct {
	ID     string
	Stream string
	Data   []byte
	// Deliveries is how many times this entry has been delivered, this delivery included.
	Deliveries int64
}

// Handler processes one entry. A nil error acks it. An error leaves it pending: it is
// delivered again (to this or another consumer of the group) once it has been idle for the
// group's ReclaimIdle. Delivery is at least once: handlers must be idempotent.
type Handler func(ctx context.Context, e Entry) error

// ConsumeOptions tune one consumer.
type ConsumeOptions struct {
	// Concurrency is how many entries are handled at once (1 keeps stream order).
	Concurrency int
	// ReclaimIdle is how long an entry may stay idle (pending, and not held by a live
	// consumer: its handler failed, or its consumer stopped or died) before any consumer of
	// the group claims it: a consumer that died has its entries handled by the others. A live
	// consumer keeps the entries it holds, however slow its handlers. Zero means 30 s.
	ReclaimIdle time.Duration
	// MaxDeliveries drops (acks and counts) an entry delivered this many times without
	// success, so one poison entry cannot block a group forever. Zero means 10.
	MaxDeliveries int64
	// Batch is how many entries are read at once. Zero means 64.
	Batch int
}

// Streams is an ordered, acknowledged log read by consumer groups.
type Streams interface {
	// Append adds data at the end of stream and returns its id. The stream keeps about the
	// bus's configured length of entries: older ones are trimmed, whether or not every group
	// has read them (as Redis's XADD MAXLEN does), so a group that falls that far behind loses
	// entries.
	Append(ctx context.Context, stream string, data []byte) (id string, err error)
	// Consume reads stream as consumer of group (created at the stream's start if it does not
	// exist) and calls h for each entry, until ctx is done; it then waits for handlers in
	// flight and returns ctx.Err() (bus.ErrClosed if the bus was closed first; the handlers'
	// ctx is cancelled either way). Errors of the bus's backend are retried, not returned. Each entry is delivered to one consumer of the group;
	// every group sees every entry.
	Consume(ctx context.Context, stream, group, consumer string, opts ConsumeOptions, h Handler) error
}

// Bus is both.
type Bus interface {
	PubSub
	Streams
	// Ping answers whether the bus works (for readiness).
	Ping(ctx context.Context) error
	Close() error
}

// ErrClosed is returned by calls on a closed bus or subscription.
var ErrClosed = errors.New("bus: closed")
