package membus_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/bus/bustest"
	"github.com/themesh/mesh/pkg/bus/membus"
)

// The conformance suite must be able to fail: each mutant below breaks one promise of the
// contract, and the subtest that guards it must catch it. Mutants run in a child process
// (this test binary, with mutantEnv set), since a failing subtest cannot be expected in-process.

const mutantEnv = "BUSTEST_MUTANT"

var mutants = []struct {
	name    string
	subtest string // the subtest that must fail
	wrap    func(*membus.Bus) bus.Bus
}{
	{"publish-drops", "PubSub/ReachesHoldersOnly", func(b *membus.Bus) bus.Bus { return publishDrops{b} }},
	{"remove-noop", "PubSub/AddRemoveOnReturn", func(b *membus.Bus) bus.Bus { return removeNoop{b} }},
	{"ack-on-error", "Streams/ErrorRedelivers", func(b *membus.Bus) bus.Bus { return ackOnError{b} }},
	{"double-delivery", "Streams/GroupsShareConsumersSplit", func(b *membus.Bus) bus.Bus { return doubleDelivery{b} }},
	{"no-max-deliveries", "Streams/MaxDeliveriesDropsPoison", func(b *membus.Bus) bus.Bus { return noMaxDeliveries{b} }},
	{"never-ack", "Streams/Concurrency", func(b *membus.Bus) bus.Bus { return neverAck{b} }},
	{"ack-when-stopped", "Streams/StoppedConsumerReclaimed", func(b *membus.Bus) bus.Bus { return ackWhenStopped{b} }},
}

func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		return // in the child
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestConformanceMutant$/^"+strings.ReplaceAll(m.subtest, "/", "$/^")+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m.name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("suite passed on mutant %s:\n%s", m.name, out)
			}
			if want := "--- FAIL: TestConformanceMutant/" + m.subtest; !strings.Contains(string(out), want) {
				t.Fatalf("mutant %s: output lacks %q:\n%s", m.name, want, out)
			}
		})
	}
}

// TestConformanceMutant runs the suite on the mutant named by mutantEnv; without it (a normal
// run), it does nothing.
func TestConformanceMutant(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		return
	}
	bustest.Eventually = 2 * time.Second // failing fast: this run is expected to fail
	for _, m := range mutants {
		if m.name == name {
			bustest.Run(t, func(t *testing.T) bus.Bus { return m.wrap(newBus(t, membus.Options{SubscriptionBuffer: 256})) })
			return
		}
	}
	t.Fatalf("no mutant %q", name)
}

type publishDrops struct{ *membus.Bus }

func (publishDrops) Publish(context.Context, string, []byte) error { return nil }

type removeNoop struct{ *membus.Bus }

func (b removeNoop) Subscribe(ctx context.Context, subjects ...string) (bus.Subscription, error) {
	s, err := b.Bus.Subscribe(ctx, subjects...)
	return noopRemoveSub{s}, err
}

type noopRemoveSub struct{ bus.Subscription }

func (noopRemoveSub) Remove(context.Context, ...string) error { return nil }

type ackOnError struct{ *membus.Bus }

func (b ackOnError) Consume(ctx context.Context, s, g, c string, o bus.ConsumeOptions, h bus.Handler) error {
	return b.Bus.Consume(ctx, s, g, c, o, func(ctx context.Context, e bus.Entry) error {
		_ = h(ctx, e)
		return nil
	})
}

type doubleDelivery struct{ *membus.Bus }

func (b doubleDelivery) Consume(ctx context.Context, s, g, c string, o bus.ConsumeOptions, h bus.Handler) error {
	return b.Bus.Consume(ctx, s, g, c, o, func(ctx context.Context, e bus.Entry) error {
		_ = h(ctx, e)
		return h(ctx, e)
	})
}

type noMaxDeliveries struct{ *membus.Bus }

func (b noMaxDeliveries) Consume(ctx context.Context, s, g, c string, o bus.ConsumeOptions, h bus.Handler) error {
	o.MaxDeliveries = 1000
	return b.Bus.Consume(ctx, s, g, c, o, h)
}

type ackWhenStopped struct{ *membus.Bus }

func (b ackWhenStopped) Consume(ctx context.Context, s, g, c string, o bus.ConsumeOptions, h bus.Handler) error {
	return b.Bus.Consume(ctx, s, g, c, o, func(hctx context.Context, e bus.Entry) error {
		err := h(hctx, e)
		if ctx.Err() != nil {
			return nil // a stopping consumer that acks what it did not handle
		}
		return err
	})
}

type neverAck struct{ *membus.Bus }

func (b neverAck) Consume(ctx context.Context, s, g, c string, o bus.ConsumeOptions, h bus.Handler) error {
	return b.Bus.Consume(ctx, s, g, c, o, func(ctx context.Context, e bus.Entry) error {
		if err := h(ctx, e); err != nil {
			return err
		}
		return errors.New("handled, but not acked")
	})
}
