package redislimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/themesh/mesh/internal/testredis"
	"github.com/themesh/mesh/pkg/limit"
	"github.com/themesh/mesh/pkg/limit/limittest"
	"github.com/themesh/mesh/pkg/limit/redislimit"
)

func TestMain(m *testing.M) { testredis.Main(m) }

func newCounter(t *testing.T, addr, prefix string) *redislimit.Counter {
	t.Helper()
	c, err := redislimit.New(testredis.Client(t, addr), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	addr := testredis.Shared(t).Addr()
	limittest.Run(t, func(t *testing.T) limit.Counter { return newCounter(t, addr, testredis.Prefix(t)) })
}

// Two API workers on one Redis share their counts.
func TestShared(t *testing.T) {
	addr := testredis.Shared(t).Addr()
	limittest.RunShared(t, func(t *testing.T) (limit.Counter, limit.Counter) {
		p := testredis.Prefix(t)
		return newCounter(t, addr, p), newCounter(t, addr, p)
	})
}

// A window's count lives in Redis until a second after the window ends, then goes.
func TestExpires(t *testing.T) {
	addr := testredis.Shared(t).Addr()
	prefix := testredis.Prefix(t)
	c := newCounter(t, addr, prefix)
	ctx := context.Background()
	now := time.Now()
	_, end, err := c.Add(ctx, "k", 1, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	client := testredis.Client(t, addr)
	keys, _ := client.Keys(ctx, prefix+"limit:k:*").Result()
	if len(keys) != 1 {
		t.Fatalf("keys = %v", keys)
	}
	exp, _ := client.PExpireTime(ctx, keys[0]).Result()
	if want := end.Add(time.Second).UnixMilli(); exp.Milliseconds() != want {
		t.Fatalf("expires at %d, want %d", exp.Milliseconds(), want)
	}
}

func TestNilClient(t *testing.T) {
	if _, err := redislimit.New(nil, ""); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}
