// Package stub answers a service's stream while the service is not built yet: every command
// gets unavailable at once, so callers never wait for their deadline.
package stub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
)

// Consumer answers one stream.
type Consumer struct {
	bus                     bus.Bus
	stream, group, consumer string
	what                    string
	log                     *slog.Logger
}

// New makes a consumer of stream in group that says what is not available.
func New(b bus.Bus, stream, group, consumer, what string, log *slog.Logger) *Consumer {
	if log == nil {
		log = slog.Default()
	}
	if consumer == "" {
		consumer = group + "-1"
	}
	return &Consumer{bus: b, stream: stream, group: group, consumer: consumer, what: what, log: log}
}

// Run consumes until ctx is done.
func (c *Consumer) Run(ctx context.Context) error {
	err := c.bus.Consume(ctx, c.stream, c.group, c.consumer, bus.ConsumeOptions{}, func(ctx context.Context, e bus.Entry) error {
		var cmd mesh.Command
		if json.Unmarshal(e.Data, &cmd) != nil || cmd.ReplyTo == "" {
			return nil
		}
		b, _ := json.Marshal(mesh.Reply{ID: cmd.ID, Error: mesh.Errorf(mesh.CodeUnavailable, "the %s service is not available on this mesh yet", c.what)})
		return c.bus.Publish(ctx, cmd.ReplyTo, b)
	})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}
