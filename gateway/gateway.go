// Package gateway is the mesh's edge: the only package that imports Fiber. It terminates REST
// (/api/*) and WebSocket (/ws), verifies tokens (statelessly: any gateway takes any client),
// enforces frame, size and rate limits, holds the sockets, turns requests and client events
// into commands on the bus, and bus events into frames for the sockets that may see them. It
// subscribes only to the rooms its sockets are in, and keeps no state another gateway needs.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/themesh/mesh/pkg/auth"
	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
)

// Config tunes a gateway. Zero values take the defaults named.
type Config struct {
	// Addr to listen on (":4000"). Ignored when Run is given a listener.
	Addr string
	// JWTSecret verifies tokens (required).
	JWTSecret []byte
	// ID names this gateway on the bus (random).
	ID string
	// RequestTimeout bounds every request to a service (5 s): past it, unavailable.
	RequestTimeout time.Duration
	// AuthTimeout is how long a socket may stay unauthenticated (10 s).
	AuthTimeout time.Duration
	// MaxFrameBytes bounds a client frame (64 KiB): more closes the socket with 1009.
	MaxFrameBytes int
	// MaxBodyBytes bounds a request body (1 MiB).
	MaxBodyBytes int
	// MaxFileBytes bounds an uploaded file (mesh.DefaultMaxFileBytes); the mesh's settings
	// may lower it.
	MaxFileBytes int64
	// ReadTimeout bounds reading a request, headers and body (30 s), and writing its answer;
	// FileTimeout replaces it for file uploads and downloads (10 min: 25 MiB at 42 KB/s).
	ReadTimeout time.Duration
	FileTimeout time.Duration
	// MaxUploads bounds the uploads in progress on this gateway (64): more are answered
	// unavailable at once.
	MaxUploads int
	// RESTPerSecond and RESTBurst rate-limit REST requests per participant (per address
	// without a token) on this gateway (50, 100).
	RESTPerSecond float64
	RESTBurst     int
	// CORSOrigins are the web origins (such as "https://app.example.com", or "*") whose
	// pages may call the REST API from a browser; none: only pages of this origin. Tokens
	// travel in the Authorization header, never in cookies, so no credentials are allowed.
	CORSOrigins []string
	// FramesPerSecond and FrameBurst rate-limit each socket (200, 400).
	FramesPerSecond float64
	FrameBurst      int
	// SendQueue bounds the frames waiting for one socket (4096): a socket further behind is
	// closed as a slow consumer.
	SendQueue int
	// ReorderWait is how long a room's out-of-order message is held for the missing seqs
	// (250 ms).
	ReorderWait time.Duration
	// PingInterval is how often sockets are pinged (25 s); a socket silent for twice that is
	// closed.
	PingInterval time.Duration
	// HeartbeatInterval is how often the gateway tells the world it is alive (5 s).
	HeartbeatInterval time.Duration
	// Writers is how many goroutines write to the sockets (4 × GOMAXPROCS).
	Writers int
	// WriteInterval: a socket is written to at most once per interval; frames that arrive
	// meanwhile go out together. An idle socket's first frame goes at once. Zero means
	// 50 ms; a negative value turns batching off.
	WriteInterval time.Duration
	// ShutdownTimeout bounds the drain on shutdown (10 s).
	ShutdownTimeout time.Duration
	// Web is the web app's files, served at / (nil for none).
	Web fs.FS
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Addr == "" {
		c.Addr = ":4000"
	}
	if c.ID == "" {
		h, _ := os.Hostname()
		c.ID = h + "-" + ulid.Make().String()
	}
	def(&c.RequestTimeout, 5*time.Second)
	def(&c.AuthTimeout, 10*time.Second)
	def(&c.ReorderWait, 250*time.Millisecond)
	def(&c.PingInterval, 25*time.Second)
	def(&c.HeartbeatInterval, 5*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = mesh.DefaultMaxFrameBytes
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = mesh.DefaultMaxBodyBytes
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = mesh.DefaultMaxFileBytes
	}
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.FileTimeout, 10*time.Minute)
	if c.MaxUploads == 0 {
		c.MaxUploads = 64
	}
	if c.RESTPerSecond == 0 {
		c.RESTPerSecond = 50
	}
	if c.RESTBurst == 0 {
		c.RESTBurst = 100
	}
	if c.FramesPerSecond == 0 {
		c.FramesPerSecond = 200
	}
	if c.FrameBurst == 0 {
		c.FrameBurst = 400
	}
	if c.SendQueue == 0 {
		c.SendQueue = 4096
	}
	if c.WriteInterval == 0 {
		c.WriteInterval = 50 * time.Millisecond
	}
	if c.Writers == 0 {
		c.Writers = 4 * runtime.GOMAXPROCS(0)
	}
}

// Check is a readiness check of a dependency.
type Check func(ctx context.Context) error

// Deps are what a gateway runs on.
type Deps struct {
	Bus bus.Bus
	// Metrics registers the gateway's metrics; Gatherer serves /metrics (both may be nil).
	Metrics  prometheus.Registerer
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Ready are extra readiness checks (the bus is always checked).
	Ready []Check
	// Blobs hold files' bytes: uploads are streamed into it and downloads out of it, so that
	// they never cross the bus (nil: the file routes answer unavailable).
	Blobs blob.Store
}

// Gateway serves REST and WebSocket clients.
type Gateway struct {
	cfg     Config
	bus     bus.Bus
	log     *slog.Logger
	tokens  *auth.Tokens
	app     *fiber.App
	req     *requester
	hub     *hub
	sub     bus.Subscription
	metrics *metrics
	ready   []Check
	blobs   blob.Store
	// uploads holds a token per upload in progress (MaxUploads).
	uploads chan struct{}
	// restLimits rate-limits REST requests.
	restLimits *restLimiter
	gather     prometheus.Gatherer

	writers  *writers
	draining atomic.Bool
	addr     atomic.Value // string: the address actually listened on
	sockets  sync.WaitGroup
}

// New makes a gateway; Run serves it.
func New(cfg Config, deps Deps) (*Gateway, error) {
	cfg.setDefaults()
	if deps.Bus == nil {
		return nil, errors.New("gateway: a bus is required")
	}
	tokens, err := auth.NewTokens(cfg.JWTSecret, time.Hour)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{
		cfg: cfg, bus: deps.Bus, log: log.With("service", "gateway", "gateway", cfg.ID),
		tokens: tokens, metrics: newMetrics(deps.Metrics), ready: deps.Ready, gather: deps.Gatherer, blobs: deps.Blobs,
		uploads: make(chan struct{}, cfg.MaxUploads), restLimits: newRESTLimiter(cfg.RESTPerSecond, cfg.RESTBurst),
	}
	g.req = newRequester(deps.Bus, cfg.ID, cfg.RequestTimeout)
	g.writers = newWriters(cfg.WriteInterval)
	g.app = g.newApp()
	return g, nil
}

// Addr is the address the gateway listens on, once Run has started.
func (g *Gateway) Addr() string {
	a, _ := g.addr.Load().(string)
	return a
}

// Run serves on ln (or on cfg.Addr when ln is nil) until ctx is done, then drains: new
// requests are refused, requests in flight finish, sockets close with 1001.
func (g *Gateway) Run(ctx context.Context, ln net.Listener) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.cfg.Addr); err != nil {
			return fmt.Errorf("gateway: listen %s: %w", g.cfg.Addr, err)
		}
	}
	g.addr.Store(ln.Addr().String())
	sub, err := g.bus.Subscribe(ctx, mesh.GatewaySubject(g.cfg.ID), mesh.SubjectPresence)
	if err != nil {
		ln.Close()
		return fmt.Errorf("gateway: subscribe: %w", err)
	}
	g.sub = sub
	g.hub = newHub(sub, g.cfg.ReorderWait, g.metrics, g.log)

	var wg sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(context.Background())
	g.writers.start(g.cfg.Writers)
	wg.Add(4)
	go func() { defer wg.Done(); g.writers.tick(loopCtx.Done()) }()
	go func() { defer wg.Done(); g.dispatchLoop(loopCtx) }()
	go func() { defer wg.Done(); g.pingLoop(loopCtx) }()
	go func() { defer wg.Done(); g.heartbeatLoop(loopCtx) }()

	serveErr := make(chan error, 1)
	go func() { serveErr <- g.app.Listener(bufListener{ln}) }()
	g.log.Info("gateway listening", "addr", ln.Addr().String())

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		err = g.drain()
	}
	stopLoops()
	_ = sub.Close()
	wg.Wait()
	g.writers.close()
	return err
}

// pingLoop pings every socket every PingInterval; a socket that answers nothing for two
// intervals is closed by its reader.
func (g *Gateway) pingLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, s := range g.hub.sockets() {
				s.ping()
			}
		}
	}
}

// drain stops the gateway gracefully.
func (g *Gateway) drain() error {
	g.draining.Store(true)
	g.log.Info("draining")
	for _, s := range g.hub.sockets() {
		s.closeWith(1001, "server shutting down")
	}
	done := make(chan struct{})
	go func() { g.sockets.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(g.cfg.ShutdownTimeout):
		g.log.Warn("sockets still open after the shutdown timeout")
	}
	return g.app.ShutdownWithTimeout(g.cfg.ShutdownTimeout)
}

func (g *Gateway) dispatchLoop(ctx context.Context) {
	replies := mesh.GatewaySubject(g.cfg.ID)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-g.sub.Messages():
			if !ok {
				return
			}
			if m.Subject == replies {
				g.req.deliver(m.Data)
				continue
			}
			g.hub.dispatch(m)
		}
	}
}

// heartbeatLoop tells the world this gateway is alive, with the sockets it holds, so a world
// that restarted relearns them and one that stops hearing from it can take its sockets as
// closed.
func (g *Gateway) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		args := mesh.WorldGatewayArgs{GatewayID: g.cfg.ID, Sockets: []mesh.WorldConnectArgs{}}
		for _, s := range g.hub.sockets() {
			g.hub.mu.RLock()
			active := s.active
			g.hub.mu.RUnlock()
			if active {
				args.Sockets = append(args.Sockets, mesh.WorldConnectArgs{
					ParticipantID: s.participantID, SocketID: s.id, GatewayID: g.cfg.ID, Rooms: g.hub.roomsOf(s),
				})
			}
		}
		if err := g.tellWorld(ctx, mesh.WorldGateway, args); err != nil {
			g.log.Warn("heartbeat to world", "err", err)
		}
	}
}

func (g *Gateway) readyz(c *fiber.Ctx) error {
	if g.draining.Load() {
		return writeError(c, mesh.Errorf(mesh.CodeUnavailable, "draining"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	checks := append([]Check{g.bus.Ping}, g.ready...)
	for _, check := range checks {
		if err := check(ctx); err != nil {
			return writeError(c, mesh.Errorf(mesh.CodeUnavailable, "not ready: %v", err))
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// writeError answers with the contract's error shape.
func writeError(c *fiber.Ctx, e *mesh.Error) error {
	if e.Code == mesh.CodeRateLimited {
		if s, ok := e.Details["retryAfter"]; ok {
			c.Set("Retry-After", fmt.Sprint(s))
		} else {
			c.Set("Retry-After", "1")
		}
	}
	return c.Status(e.Code.HTTPStatus()).JSON(fiber.Map{"error": e})
}
