package testredis_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/themesh/mesh/internal/testredis"
)

func TestMain(m *testing.M) { testredis.Main(m) }

func TestSharedServer(t *testing.T) {
	addr := testredis.Start(t)
	if again := testredis.Start(t); again != addr {
		t.Fatalf("second Start gave %s, first %s: want one shared server", again, addr)
	}
	c := testredis.Client(t, addr)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping %s: %v", addr, err)
	}
}

func TestPrefixUnique(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		p := testredis.Prefix(t)
		if seen[p] || !strings.HasPrefix(p, "t:TestPrefixUnique:") || !strings.HasSuffix(p, ":") {
			t.Fatalf("prefix %q repeated or malformed", p)
		}
		seen[p] = true
	}
	t.Run("odd name/with spaces", func(t *testing.T) {
		if p := testredis.Prefix(t); strings.ContainsAny(p, " /") {
			t.Fatalf("prefix %q keeps unsafe characters", p)
		}
	})
}

func TestStopStartSamePort(t *testing.T) {
	srv := testredis.New(t)
	addr := srv.Addr()
	c := testredis.Client(t, addr)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded on a stopped server")
	}
	if err := srv.Stop(); err != nil { // stopping twice is harmless
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Fatalf("restarted on %s, was %s", srv.Addr(), addr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ping after restart: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	// No persistence: the data is gone.
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Fatalf("after restart: exists=%d err=%v, want the key gone", n, err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
}

// fakeTB records Fatal and ends its goroutine, as testing.T does.
type fakeTB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestMissingRedisServerFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server there
	for name, start := range map[string]func(testing.TB){
		"New":    func(tb testing.TB) { testredis.New(tb) },
		"Shared": func(tb testing.TB) { testredis.Shared(tb) },
	} {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			start(f)
		}()
		<-done
		if f.fatal != testredis.NotFound {
			t.Fatalf("%s without redis-server: Fatal(%q), want Fatal(%q)", name, f.fatal, testredis.NotFound)
		}
	}
}
