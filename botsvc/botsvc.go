// Package botsvc is the bot service: it will hold the BotController (Kubernetes Pods or local
// subprocesses), bridge-mode webhooks and poll queues. Until then it consumes its stream and
// answers every command with unavailable, so that no caller waits for a reply that never
// comes.
package botsvc

import (
	"context"
	"errors"
	"log/slog"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/stub"
)

// Config tunes the service.
type Config struct {
	// ConsumerName names this instance in the consumer group.
	ConsumerName string
}

// Deps are what the service runs on.
type Deps struct {
	Bus    bus.Bus
	Logger *slog.Logger
}

// Service is the bot service.
type Service struct {
	stub *stub.Consumer
}

// New makes the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Bus == nil {
		return nil, errors.New("botsvc: a bus is required")
	}
	return &Service{stub: stub.New(deps.Bus, mesh.StreamBots, mesh.GroupBots, cfg.ConsumerName, "bots", deps.Logger)}, nil
}

// Run consumes the bots stream until ctx is done.
func (s *Service) Run(ctx context.Context) error { return s.stub.Run(ctx) }
