// Package redislimit is the limit.Counter of a cluster: counts live in Redis, so every API
// worker adds to the same ones.
package redislimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/themesh/mesh/pkg/limit"
)

var _ limit.Counter = (*Counter)(nil)

// Counter keeps each key's count of a window in one Redis string, prefix + "limit:" + key +
// ":" + window end, which expires a second after the window ends.
type Counter struct {
	client redis.UniversalClient
	prefix string
}

// New makes a Counter on client; prefix is prepended to every key (the bus's prefix, so that
// meshes sharing a Redis keep apart).
func New(client redis.UniversalClient, prefix string) (*Counter, error) {
	if client == nil {
		return nil, errors.New("redislimit: a client is required")
	}
	return &Counter{client: client, prefix: prefix}, nil
}

// Add implements limit.Counter: INCRBY and PEXPIREAT in one transaction (one round trip).
func (c *Counter) Add(ctx context.Context, key string, n int, w time.Duration, now time.Time) (int, time.Time, error) {
	_, end := limit.Window(now, w)
	k := c.prefix + "limit:" + key + ":" + strconv.FormatInt(end.UnixMilli(), 10)
	var incr *redis.IntCmd
	_, err := c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.IncrBy(ctx, k, int64(n))
		p.PExpireAt(ctx, k, end.Add(time.Second))
		return nil
	})
	if err != nil {
		return 0, end, fmt.Errorf("redislimit: %s: %w", key, err)
	}
	return int(incr.Val()), end, nil
}
