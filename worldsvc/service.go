// Package worldsvc is the world service: the authoritative in-memory world of who is online,
// in which rooms, and where, with its 20 Hz tick.
//
// The rules live in World, a plain state machine (no I/O, no goroutines, no clock) that a
// Raft FSM can wrap. Service runs it: it consumes the world stream (mesh.StreamWorld, group
// mesh.GroupWorld) while its Elector says it leads, hands each command to one owner goroutine
// through a bounded queue, ticks the world in that goroutine, and publishes what comes out.
//
// Two ways to hold the world. Alone (the one-node world, no Deps.Log), the owner goroutine
// applies each input to its World as it comes and steps it on each tick. Replicated (with a
// Deps.Log, such as worldsvc/raftelect), every node holds a Machine that the log applies
// committed entries to; the leader's owner goroutine only batches: the inputs of a tick and
// its step become one Entry, proposed to the log, and what the entry produced is published
// by the leader once it is committed.
package worldsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
)

// Defaults of Config.
const (
	DefaultMaxPendingInputs = 8192
	DefaultReclaimIdle      = 5 * time.Second
	DefaultPublishWorkers   = 4
	DefaultMaxBatchInputs   = 1024
	DefaultCommitWait       = 5 * time.Second
	// publishQueue is how many messages each publisher holds before new ones are dropped.
	publishQueue = 4096
	// MaxTickRate bounds Config.TickRate.
	MaxTickRate = 1000
)

// Config tunes the service. The zero value is ready to use.
type Config struct {
	// TickRate is the world's tick frequency in Hz, at most MaxTickRate. Zero means
	// mesh.TickRate (20).
	TickRate int
	// GatewayTimeout: a gateway not heard from for longer is taken as dead and its sockets as
	// closed. Gateways must send a heartbeat (mesh.WorldGateway) well within it. Zero means 15 s.
	GatewayTimeout time.Duration
	// ReconcileGrace: see WorldConfig.ReconcileGrace. Zero means 5 s.
	ReconcileGrace time.Duration
	// MaxPendingInputs bounds the queue between the stream consumer and the owner goroutine.
	// Moves and typing are lossy: they are dropped (and counted) once the queue is three
	// quarters full, so the last quarter stays free for the inputs that must not be lost
	// (connect, disconnect, membership, heartbeat); those, on a full queue, are left on the
	// stream to be redelivered. Nothing ever blocks. Zero means 8192.
	MaxPendingInputs int
	// ConsumerName names this node in the world's consumer group. Empty means
	// "world-<hostname>-<pid>".
	ConsumerName string
	// ReclaimIdle is how long an input refused on a full queue waits on the stream before it
	// is delivered again. Zero means 5 s.
	ReclaimIdle time.Duration
	// PublishWorkers is how many goroutines publish events and replies. A subject always goes
	// through the same one, so each subject's events keep their order. Zero means 4.
	PublishWorkers int
	// MaxBatchInputs bounds the inputs of one log entry (with Deps.Log): a tick that takes
	// more is written as several entries. Zero means 1024.
	MaxBatchInputs int
	// CommitWait bounds how long (with Deps.Log) an input that must not be lost waits for its
	// entry to be committed before it is left on the stream for redelivery. Zero means 5 s.
	CommitWait time.Duration
}

func (c Config) withDefaults() Config {
	if c.TickRate <= 0 {
		c.TickRate = mesh.TickRate
	}
	if c.GatewayTimeout <= 0 {
		c.GatewayTimeout = DefaultGatewayTimeout
	}
	if c.ReconcileGrace <= 0 {
		c.ReconcileGrace = DefaultReconcileGrace
	}
	if c.MaxPendingInputs <= 0 {
		c.MaxPendingInputs = DefaultMaxPendingInputs
	}
	if c.ConsumerName == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		c.ConsumerName = "world-" + host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.ReclaimIdle <= 0 {
		c.ReclaimIdle = DefaultReclaimIdle
	}
	if c.PublishWorkers <= 0 {
		c.PublishWorkers = DefaultPublishWorkers
	}
	if c.MaxBatchInputs <= 0 {
		c.MaxBatchInputs = DefaultMaxBatchInputs
	}
	if c.CommitWait <= 0 {
		c.CommitWait = DefaultCommitWait
	}
	return c
}

// Deps are the service's dependencies.
type Deps struct {
	// Bus is required.
	Bus bus.Bus
	// Elector decides whether this node leads. Nil means the Log if it is an Elector (as
	// raftelect's is), else Always (the one-node world).
	Elector Elector
	// Log, if set, replicates the world (see Log): the service proposes its inputs and ticks
	// to it instead of applying them, and the world lives in the Machine the log applies to.
	// Config.GatewayTimeout and ReconcileGrace then do not apply: the Machine's WorldConfig
	// does. Nil means the one-node world, applied here.
	Log Log
	// Metrics, if set, receives the service's collectors (mesh_world_*).
	Metrics prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Clock; nil means SystemClock(). Tests drive the tick with their own.
	Clock Clock
}

// Service runs the world. Make it with New; Run it once.
type Service struct {
	cfg     Config
	bus     bus.Bus
	elector Elector
	log     *slog.Logger
	clock   Clock
	m       *metrics

	// world is owned by the goroutine running Run's loop: nothing else touches it. It is nil
	// with a replicated log (repl), whose Machine holds the world instead.
	world *World
	repl  Log
	// inbox carries decoded inputs from the stream consumer to the owner goroutine.
	inbox chan input
	// lossyLimit is the queue length from which lossy inputs are dropped.
	lossyLimit int
	// out holds one queue per publisher.
	out []chan outMsg

	// With repl, owned by the loop goroutine: the inputs of the entry being gathered, and
	// whether it is the first entry since this node began to lead.
	batch  []input
	resume bool
	// props carries entries from the loop goroutine to the proposer; inflight carries
	// proposed entries, in order, from the proposer to the committer.
	props    chan *proposal
	inflight chan inflight

	running atomic.Bool
}

// input is one decoded world command on its way to the owner goroutine.
type input struct {
	op      string
	args    any // from decodeArgs
	id      string
	replyTo string
	// With a replicated log: body is the command's Args.Body, for the log entry; done, set
	// for the inputs that must not be lost, receives once whether the entry holding the input
	// was committed (nil) or not, so that the consumer acks it only once it is.
	body json.RawMessage
	done chan error
}

// proposal is one entry for the log: inputs applied at now, after World.Resume if resume,
// then a step if step.
type proposal struct {
	now    time.Time
	resume bool
	step   bool
	inputs []input
}

// inflight is a proposal handed to the log.
type inflight struct {
	p     *proposal
	f     Proposal
	start time.Time
}

// Capacities of the queues between the loop goroutine, the proposer and the committer.
const (
	propsQueue    = 16
	inflightQueue = 64
)

// outMsg is one message for a publisher: data as it is, or else event marshalled.
type outMsg struct {
	subject string
	data    []byte
	event   mesh.Event
}

// New makes a service. It fails on a missing bus or when its metrics cannot be registered.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Bus == nil {
		return nil, errors.New("worldsvc: Deps.Bus is required")
	}
	cfg = cfg.withDefaults()
	if cfg.TickRate > MaxTickRate {
		return nil, fmt.Errorf("worldsvc: TickRate %d above %d", cfg.TickRate, MaxTickRate)
	}
	s := &Service{
		cfg:     cfg,
		bus:     deps.Bus,
		elector: deps.Elector,
		log:     deps.Logger,
		clock:   deps.Clock,
		repl:    deps.Log,
		inbox:   make(chan input, cfg.MaxPendingInputs),
	}
	if s.repl == nil {
		s.world = NewWorld(WorldConfig{GatewayTimeout: cfg.GatewayTimeout, ReconcileGrace: cfg.ReconcileGrace})
	} else {
		s.props = make(chan *proposal, propsQueue)
		s.inflight = make(chan inflight, inflightQueue)
	}
	if s.elector == nil {
		if e, ok := deps.Log.(Elector); ok {
			s.elector = e
		} else {
			s.elector = Always{}
		}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("service", "world")
	if s.clock == nil {
		s.clock = SystemClock()
	}
	s.lossyLimit = max(1, cfg.MaxPendingInputs-cfg.MaxPendingInputs/4)
	s.out = make([]chan outMsg, cfg.PublishWorkers)
	for i := range s.out {
		s.out[i] = make(chan outMsg, publishQueue)
	}
	s.m = newMetrics(func() float64 { return float64(len(s.inbox)) })
	if err := s.m.register(deps.Metrics); err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs the service until ctx is done, then stops every goroutine it started and returns
// nil. It returns an error early only if the bus is closed under it. Run may be called once.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("worldsvc: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, q := range s.out {
		wg.Go(func() { s.publishLoop(ctx, q) })
	}
	if s.repl != nil {
		wg.Go(func() { s.proposeLoop(ctx) })
		wg.Go(func() { s.commitLoop(ctx) })
	}
	return s.loop(ctx, &wg)
}

// loop is the owner goroutine: the only one that touches the world. It applies inputs as they
// come, steps the world on each tick, and starts or stops consuming as leadership changes.
func (s *Service) loop(ctx context.Context, wg *sync.WaitGroup) error {
	ticker := s.clock.NewTicker(time.Second / time.Duration(s.cfg.TickRate))
	defer ticker.Stop()

	var (
		leader      bool
		stopConsume context.CancelFunc = func() {}
		consumeDone chan struct{}      // closed when the current consumer has returned
		fatal       = make(chan error, 1)
	)
	defer func() { stopConsume() }()

	setLeader := func(now bool) {
		if now == leader {
			return
		}
		leader = now
		if !leader {
			s.log.Info("world: leadership lost; no longer consuming")
			s.m.leader.Set(0)
			stopConsume()
			// Wait for the consumer, so that nothing is taken from the stream once this
			// returns. It returns promptly: its handler never blocks.
			select {
			case <-consumeDone:
			case <-ctx.Done():
			}
			s.dropBatch()
			return
		}
		s.log.Info("world: leading; consuming", "stream", mesh.StreamWorld, "consumer", s.cfg.ConsumerName)
		s.m.leader.Set(1)
		if s.repl != nil {
			s.resume = true // the first entry resumes the world, on every replica
		} else {
			s.world.Resume(s.clock.Now())
		}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		stopConsume, consumeDone = cancel, done
		wg.Go(func() {
			defer close(done)
			if err := s.consume(cctx); err != nil {
				select {
				case fatal <- err:
				default:
				}
			}
		})
	}

	setLeader(s.elector.IsLeader())
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-fatal:
			return err
		case <-s.elector.Changes():
			setLeader(s.elector.IsLeader())
		case in := <-s.inbox:
			if !leader {
				s.refuse(in, dropNotLeader, errNotLeader)
				continue
			}
			if s.repl != nil {
				s.queue(in)
				continue
			}
			s.apply(in)
		case <-ticker.C():
			setLeader(s.elector.IsLeader())
			switch {
			case !leader:
			case s.repl != nil:
				s.flush(true)
			default:
				s.step()
			}
		}
	}
}

// apply applies one input to the world, then queues its events and its reply.
func (s *Service) apply(in input) {
	out := s.world.apply(in.args, s.clock.Now().UnixNano())
	if out.Ignored {
		s.m.ignored.WithLabelValues(in.op).Inc()
	}
	s.m.online.Set(float64(len(s.world.participants)))
	s.emit(out.Events)
	s.answer(in, out)
}

// answer replies to in, if it asked for a reply, with what applying it produced.
func (s *Service) answer(in input, out Output) {
	if in.replyTo == "" {
		return
	}
	var result []byte
	if out.Connect != nil {
		b, err := json.Marshal(out.Connect)
		if err != nil {
			s.reply(in.replyTo, mesh.Reply{ID: in.id, Error: mesh.Errorf(mesh.CodeInternal, "internal error")})
			s.log.Error("world: encode connect result", "err", err)
			return
		}
		result = b
	} else {
		result = []byte("{}")
	}
	s.reply(in.replyTo, mesh.Reply{ID: in.id, Result: result})
}

// step ends a tick: the world folds its moves and expires silent gateways.
func (s *Service) step() {
	start := time.Now()
	pubs := s.world.Step(s.world.Tick()+1, s.clock.Now())
	s.m.tick.Observe(time.Since(start).Seconds())
	for i := range pubs {
		if pubs[i].Event.Type == "positions" {
			s.m.positions.Inc()
		}
	}
	s.m.online.Set(float64(len(s.world.participants)))
	s.emit(pubs)
}

// consume reads the world stream until ctx is done. It returns nil then, and an error only
// when the bus is closed; other failures are logged and retried with back-off.
func (s *Service) consume(ctx context.Context) error {
	opts := bus.ConsumeOptions{Concurrency: 1, ReclaimIdle: s.cfg.ReclaimIdle} // in stream order
	backoff := 100 * time.Millisecond
	for {
		err := s.bus.Consume(ctx, mesh.StreamWorld, mesh.GroupWorld, s.cfg.ConsumerName, opts, s.handle)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, bus.ErrClosed) {
			return fmt.Errorf("worldsvc: consume %s: %w", mesh.StreamWorld, err)
		}
		s.log.Warn("world: consume failed; retrying", "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// handle takes one entry of the world stream: it decodes the command and queues it for the
// owner goroutine. It acks (returns nil) once the input is queued, dropped as lossy, or
// refused as a bad request (answered at once); it returns an error, leaving the entry for
// redelivery, only when an input that must not be lost meets a full queue. With a
// replicated log, such an input is acked only once the entry holding it is committed: the
// handler waits for that (the loop proposes it at once, not at the next tick), and leaves the
// entry for redelivery if the entry fails, this node stops leading, or CommitWait passes.
func (s *Service) handle(ctx context.Context, e bus.Entry) error {
	var cmd mesh.Command
	if err := json.Unmarshal(e.Data, &cmd); err != nil {
		s.m.invalid.WithLabelValues("unknown").Inc()
		s.log.Warn("world: dropping undecodable command", "entry", e.ID, "err", err)
		return nil
	}
	op := opLabel(cmd.Op)
	s.m.inputs.WithLabelValues(op).Inc()
	args, err := decodeArgs(cmd.Op, cmd.Args.Body)
	if err != nil {
		s.m.invalid.WithLabelValues(op).Inc()
		if cmd.ReplyTo != "" {
			s.publishReply(ctx, cmd.ReplyTo, mesh.Reply{ID: cmd.ID, Error: mesh.AsError(err)})
		}
		return nil
	}
	in := input{op: op, args: args, id: cmd.ID, replyTo: cmd.ReplyTo}
	if s.repl != nil {
		in.body = cmd.Args.Body
	}
	if op == mesh.WorldMove || op == mesh.WorldTyping {
		if len(s.inbox) >= s.lossyLimit {
			s.m.dropped.WithLabelValues(op, dropQueueFull).Inc()
			return nil
		}
		select {
		case s.inbox <- in:
		default:
			s.m.dropped.WithLabelValues(op, dropQueueFull).Inc()
		}
		return nil
	}
	if s.repl != nil {
		in.done = make(chan error, 1)
	}
	select {
	case s.inbox <- in:
	default:
		s.m.retried.WithLabelValues(op).Inc()
		return fmt.Errorf("worldsvc: input queue full (%d): %s %s left for redelivery", cap(s.inbox), op, cmd.ID)
	}
	if in.done == nil {
		return nil
	}
	t := time.NewTimer(s.cfg.CommitWait)
	defer t.Stop()
	select {
	case err := <-in.done:
		if err == nil {
			return nil
		}
		s.m.retried.WithLabelValues(op).Inc()
		return fmt.Errorf("worldsvc: %s %s not committed, left for redelivery: %w", op, cmd.ID, err)
	case <-t.C:
		s.m.retried.WithLabelValues(op).Inc()
		return fmt.Errorf("worldsvc: %s %s not committed within %s, left for redelivery", op, cmd.ID, s.cfg.CommitWait)
	case <-ctx.Done():
		s.m.retried.WithLabelValues(op).Inc()
		return ctx.Err()
	}
}

// emit queues events for their publishers.
func (s *Service) emit(pubs []Publication) {
	for _, p := range pubs {
		s.enqueue(outMsg{subject: p.Subject, event: p.Event})
	}
}

// reply queues a reply for its publisher.
func (s *Service) reply(subject string, r mesh.Reply) {
	b, err := json.Marshal(r)
	if err != nil {
		s.log.Error("world: encode reply", "err", err)
		return
	}
	s.enqueue(outMsg{subject: subject, data: b})
}

// enqueue hands m to the publisher of its subject, or drops it if that one is behind: the
// owner goroutine never waits for the bus.
func (s *Service) enqueue(m outMsg) {
	select {
	case s.out[shard(m.subject, len(s.out))] <- m:
	default:
		s.m.eventsDropped.Inc()
	}
}

// shard picks the publisher of subject (FNV-1a).
func shard(subject string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(subject); i++ {
		h ^= uint32(subject[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// publishReply publishes a reply directly (from the consumer, for refused commands).
func (s *Service) publishReply(ctx context.Context, subject string, r mesh.Reply) {
	b, err := json.Marshal(r)
	if err != nil {
		s.log.Error("world: encode reply", "err", err)
		return
	}
	if err := s.bus.Publish(ctx, subject, b); err != nil && ctx.Err() == nil {
		s.m.publishErrors.Inc()
		s.log.Warn("world: publish reply", "subject", subject, "err", err)
	}
}

// publishLoop publishes one publisher's queue, in order, until ctx is done.
func (s *Service) publishLoop(ctx context.Context, q <-chan outMsg) {
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-q:
			data := m.data
			if data == nil {
				b, err := json.Marshal(&m.event)
				if err != nil {
					s.m.publishErrors.Inc()
					s.log.Error("world: encode event", "type", m.event.Type, "err", err)
					continue
				}
				data = b
			}
			err := s.bus.Publish(ctx, m.subject, data)
			switch {
			case err != nil && ctx.Err() == nil:
				s.m.publishErrors.Inc()
				if !failing {
					s.log.Warn("world: publish failed", "subject", m.subject, "err", err)
				}
				failing = true
			case err == nil && failing:
				s.log.Info("world: publishing again")
				failing = false
			}
		}
	}
}
