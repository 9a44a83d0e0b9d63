package worldsvc

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/bus/membus"
	"github.com/themesh/mesh/pkg/mesh"
)

// wait bounds every wait of these tests: they poll channels with this deadline, never sleep.
const wait = 5 * time.Second

// fakeClock is a Clock driven by the test: its ticker fires only when tick is called.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
	c   chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0, c: make(chan time.Time)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(time.Duration) Ticker { return fakeTicker{c.c} }

// tick advances the clock by d and fires the ticker; it returns once the service has taken
// the tick (the tick is then handled before any later input).
func (c *fakeClock) tick(t *testing.T, d time.Duration) {
	t.Helper()
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	select {
	case c.c <- now:
	case <-time.After(wait):
		t.Fatal("the service did not take the tick")
	}
}

type fakeTicker struct{ c chan time.Time }

func (t fakeTicker) C() <-chan time.Time { return t.c }
func (t fakeTicker) Stop()               {}

// switchElector is an Elector the test switches.
type switchElector struct {
	leader atomic.Bool
	ch     chan struct{}
}

func (e *switchElector) IsLeader() bool           { return e.leader.Load() }
func (e *switchElector) Changes() <-chan struct{} { return e.ch }

// set changes leadership and returns once the service has taken the signal.
func (e *switchElector) set(t *testing.T, v bool) {
	t.Helper()
	e.leader.Store(v)
	select {
	case e.ch <- struct{}{}:
	case <-time.After(wait):
		t.Fatal("the service did not take the leadership change")
	}
}

type harness struct {
	t   *testing.T
	bus *membus.Bus
	clk *fakeClock
	svc *Service
	reg *prometheus.Registry
	ids atomic.Int64
}

// start runs a service over a fresh in-process bus until the test ends.
func start(t *testing.T, cfg Config, el Elector) *harness {
	t.Helper()
	h := &harness{t: t, bus: membus.New(membus.Options{}), clk: newFakeClock(), reg: prometheus.NewRegistry()}
	t.Cleanup(func() { _ = h.bus.Close() }) // runs last
	var err error
	h.svc, err = New(cfg, Deps{
		Bus: h.bus, Elector: el, Metrics: h.reg, Clock: h.clk,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Error("Run did not return after its context was cancelled")
		}
	})
	return h
}

func (h *harness) subscribe(subjects ...string) bus.Subscription {
	h.t.Helper()
	sub, err := h.bus.Subscribe(context.Background(), subjects...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// send appends a world command and returns its id.
func (h *harness) send(op string, args any, replyTo string) string {
	h.t.Helper()
	body, err := json.Marshal(args)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.sendRaw(op, body, replyTo)
}

func (h *harness) sendRaw(op string, body []byte, replyTo string) string {
	h.t.Helper()
	id := "cmd-" + strconv.FormatInt(h.ids.Add(1), 10)
	data, err := json.Marshal(mesh.Command{ID: id, Op: op, ReplyTo: replyTo, Args: mesh.Request{Body: body}})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.bus.Append(context.Background(), mesh.StreamWorld, data); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// next is the next message of sub, within the deadline.
func next(t *testing.T, sub bus.Subscription) bus.Msg {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(wait):
		t.Fatal("no message within the deadline")
	}
	return bus.Msg{}
}

func nextReply(t *testing.T, sub bus.Subscription, id string) mesh.Reply {
	t.Helper()
	var r mesh.Reply
	if err := json.Unmarshal(next(t, sub).Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != id {
		t.Fatalf("reply to %q, want %q", r.ID, id)
	}
	return r
}

func nextEvent(t *testing.T, sub bus.Subscription) mesh.Event {
	t.Helper()
	var ev mesh.Event
	if err := json.Unmarshal(next(t, sub).Data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// sync sends a command with a reply and waits for it: every command sent before it has then
// been applied (the stream is consumed in order and the owner goroutine applies in order).
func (h *harness) sync(replies bus.Subscription) {
	h.t.Helper()
	id := h.send(mesh.WorldMembership, mesh.WorldMembershipArgs{RoomID: "sync", ParticipantID: "nobody"}, mesh.GatewaySubject("g1"))
	if r := nextReply(h.t, replies, id); r.Error != nil {
		h.t.Fatal(r.Error)
	}
}

// metric is the value of a counter or gauge with the given labels (0 if absent).
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	return gathered(h.t, h.reg, name, labels...)
}

func gathered(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func TestServiceConnectMoveTick(t *testing.T) {
	h := start(t, Config{}, nil)
	replies := h.subscribe(mesh.GatewaySubject("g1"))
	presence := h.subscribe(mesh.SubjectPresence)
	room := h.subscribe(mesh.RoomSubject("r1"))

	// ada connects: the reply lists who is online, and ada's presence goes out.
	id := h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}}, mesh.GatewaySubject("g1"))
	r := nextReply(t, replies, id)
	var res mesh.WorldConnectResult
	if r.Error != nil || json.Unmarshal(r.Result, &res) != nil {
		t.Fatalf("reply %+v", r)
	}
	want := mesh.WorldConnectResult{Online: []string{"ada"}, Positions: map[string][]mesh.Position{"r1": {}}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	ev := nextEvent(t, presence)
	if ev.Type != "presence" || !reflect.DeepEqual(ev.Rooms, []string{"r1"}) ||
		string(ev.Frame) != `{"type":"presence","participantId":"ada","status":"online"}` {
		t.Fatalf("presence %+v (%s)", ev, ev.Frame)
	}

	// bob connects without a reply.
	h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "bob", SocketID: "s2", GatewayID: "g1", Rooms: []string{"r1", "r2"}}, "")
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"bob","status":"online"}` {
		t.Fatalf("presence %s", ev.Frame)
	}

	// Moves, then a tick: one positions event with each mover's latest position.
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 1, Y: 1}, "")
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "bob", X: 3, Y: -3.5}, "")
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 2, Y: 2.25}, "")
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "zed", X: 9, Y: 9}, "") // not in the room
	h.sync(replies)
	h.clk.tick(t, 50*time.Millisecond)
	ev = nextEvent(t, room)
	wantFrame := `{"type":"positions","roomId":"r1","tick":1,"positions":[{"participantId":"ada","x":2,"y":2.25},{"participantId":"bob","x":3,"y":-3.5}]}`
	if ev.Type != "positions" || ev.RoomID != "r1" || string(ev.Frame) != wantFrame {
		t.Fatalf("positions %+v\n got  %s\n want %s", ev, ev.Frame, wantFrame)
	}

	// A tick without moves publishes nothing: the next event of the room is tick 3's.
	h.clk.tick(t, 50*time.Millisecond)
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "bob", X: 4, Y: 4}, "")
	h.send(mesh.WorldTyping, mesh.WorldTypingArgs{RoomID: "r1", ParticipantID: "ada", IsTyping: true}, "")
	h.sync(replies)
	ev = nextEvent(t, room)
	if ev.Type != "typing" || ev.Except != "ada" ||
		string(ev.Frame) != `{"type":"typing","roomId":"r1","participantId":"ada","isTyping":true}` {
		t.Fatalf("typing %+v (%s)", ev, ev.Frame)
	}
	h.clk.tick(t, 50*time.Millisecond)
	if ev := nextEvent(t, room); string(ev.Frame) != `{"type":"positions","roomId":"r1","tick":3,"positions":[{"participantId":"bob","x":4,"y":4}]}` {
		t.Fatalf("positions %s", ev.Frame)
	}

	// A bad body is answered with bad_request.
	id = h.sendRaw(mesh.WorldMove, []byte(`{"roomId":"r1"}`), mesh.GatewaySubject("g1"))
	if r := nextReply(t, replies, id); r.Error == nil || r.Error.Code != mesh.CodeBadRequest || r.Result != nil {
		t.Fatalf("reply %+v", r)
	}
	id = h.sendRaw("world.fly", []byte(`{}`), mesh.GatewaySubject("g1"))
	if r := nextReply(t, replies, id); r.Error == nil || r.Error.Code != mesh.CodeBadRequest {
		t.Fatalf("reply %+v", r)
	}
	// Other operations are answered with an empty object.
	id = h.send(mesh.WorldDisconnect, mesh.WorldDisconnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1"}, mesh.GatewaySubject("g1"))
	if r := nextReply(t, replies, id); r.Error != nil || string(r.Result) != "{}" {
		t.Fatalf("reply %+v (%s)", r, r.Result)
	}
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"ada","status":"offline"}` {
		t.Fatalf("presence %s", ev.Frame)
	}

	// g1 falls silent: past the timeout, a tick takes bob offline.
	h.clk.tick(t, 16*time.Second)
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"bob","status":"offline"}` ||
		!reflect.DeepEqual(ev.Rooms, []string{"r1", "r2"}) {
		t.Fatalf("presence %+v (%s)", ev, ev.Frame)
	}
	h.sync(replies) // the tick is fully handled

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mesh_world_inputs_total", []string{"op", mesh.WorldMove}, 6},
		{"mesh_world_inputs_total", []string{"op", mesh.WorldConnect}, 2},
		{"mesh_world_inputs_total", []string{"op", "unknown"}, 1},
		{"mesh_world_inputs_invalid_total", []string{"op", mesh.WorldMove}, 1},
		{"mesh_world_inputs_ignored_total", []string{"op", mesh.WorldMove}, 1},
		{"mesh_world_positions_events_total", nil, 2},
		{"mesh_world_online_participants", nil, 0},
		{"mesh_world_leader", nil, 1},
		{"mesh_world_tick_seconds", nil, 4},
		{"mesh_world_inputs_dropped_total", []string{"op", mesh.WorldMove, "reason", dropQueueFull}, 0},
	} {
		if got := h.metric(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestServiceHeartbeatRelearns(t *testing.T) {
	h := start(t, Config{}, nil)
	replies := h.subscribe(mesh.GatewaySubject("g1"))
	presence := h.subscribe(mesh.SubjectPresence)
	id := h.send(mesh.WorldGateway, mesh.WorldGatewayArgs{GatewayID: "g1", Sockets: []mesh.WorldConnectArgs{
		{ParticipantID: "ada", SocketID: "s1", Rooms: []string{"r1"}},
	}}, mesh.GatewaySubject("g1"))
	if r := nextReply(t, replies, id); r.Error != nil {
		t.Fatal(r.Error)
	}
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"ada","status":"online"}` {
		t.Fatalf("presence %s", ev.Frame)
	}
	if got := h.metric("mesh_world_online_participants"); got != 1 {
		t.Fatalf("online = %v", got)
	}
}

func TestServiceLeadership(t *testing.T) {
	el := &switchElector{ch: make(chan struct{})}
	h := start(t, Config{}, el)
	replies := h.subscribe(mesh.GatewaySubject("g1"))
	presence := h.subscribe(mesh.SubjectPresence)

	// A follower consumes nothing and does not tick.
	id := h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}}, mesh.GatewaySubject("g1"))
	h.clk.tick(t, 50*time.Millisecond)
	if got := h.metric("mesh_world_leader"); got != 0 {
		t.Fatalf("leader = %v", got)
	}

	// Leading, it takes the commands that waited on the stream.
	el.set(t, true)
	if r := nextReply(t, replies, id); r.Error != nil {
		t.Fatal(r.Error)
	}
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"ada","status":"online"}` {
		t.Fatalf("presence %s", ev.Frame)
	}

	// Losing leadership stops consuming; commands wait for the next leader.
	el.set(t, false)
	h.clk.tick(t, 50*time.Millisecond) // taken only once the consumer has stopped
	id = h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "bob", SocketID: "s2", GatewayID: "g1", Rooms: []string{"r1"}}, mesh.GatewaySubject("g1"))
	h.clk.tick(t, 50*time.Millisecond)
	el.set(t, true)
	r := nextReply(t, replies, id) // had a follower taken it, it would have been dropped
	var res mesh.WorldConnectResult
	if r.Error != nil || json.Unmarshal(r.Result, &res) != nil || !reflect.DeepEqual(res.Online, []string{"ada", "bob"}) {
		t.Fatalf("reply %+v (%s)", r, r.Result)
	}
	if got := h.metric("mesh_world_inputs_dropped_total", "op", mesh.WorldConnect, "reason", dropNotLeader); got != 0 {
		t.Fatalf("dropped = %v", got)
	}
}

// TestServiceQueue checks the input queue's backpressure without running the owner
// goroutine, so that nothing drains it.
func TestServiceQueue(t *testing.T) {
	b := membus.New(membus.Options{})
	t.Cleanup(func() { _ = b.Close() })
	reg := prometheus.NewRegistry()
	svc, err := New(Config{MaxPendingInputs: 4}, Deps{Bus: b, Metrics: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	replies, err := b.Subscribe(context.Background(), mesh.GatewaySubject("g1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replies.Close() })
	entry := func(op string, args any, replyTo string) bus.Entry {
		body, _ := json.Marshal(args)
		data, _ := json.Marshal(mesh.Command{ID: "c-" + op, Op: op, ReplyTo: replyTo, Args: mesh.Request{Body: body}})
		return bus.Entry{ID: "1-0", Stream: mesh.StreamWorld, Data: data, Deliveries: 1}
	}
	ctx := context.Background()
	mv := entry(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada"}, "")
	conn := entry(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1"}, "")

	// Moves fill three quarters of the queue, then are dropped; the last quarter is kept
	// for the inputs that must not be lost, which are refused (for redelivery) once it is full.
	for range 5 {
		if err := svc.handle(ctx, mv); err != nil {
			t.Fatalf("move: %v", err)
		}
	}
	if err := svc.handle(ctx, conn); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := svc.handle(ctx, conn); err == nil {
		t.Fatal("connect on a full queue was acked")
	}
	if err := svc.handle(ctx, bus.Entry{ID: "2-0", Data: []byte("{")}); err != nil {
		t.Fatalf("undecodable entry not acked: %v", err)
	}
	if err := svc.handle(ctx, entry(mesh.WorldTyping, map[string]any{"roomId": 1}, mesh.GatewaySubject("g1"))); err != nil {
		t.Fatalf("bad body not acked: %v", err)
	}
	var r mesh.Reply
	if err := json.Unmarshal(next(t, replies).Data, &r); err != nil || r.Error == nil || r.Error.Code != mesh.CodeBadRequest {
		t.Fatalf("reply %+v, %v", r, err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mesh_world_input_queue_length", nil, 4},
		{"mesh_world_inputs_dropped_total", []string{"op", mesh.WorldMove, "reason", dropQueueFull}, 2},
		{"mesh_world_inputs_retried_total", []string{"op", mesh.WorldConnect}, 1},
		{"mesh_world_inputs_invalid_total", []string{"op", mesh.WorldTyping}, 1},
		{"mesh_world_inputs_invalid_total", []string{"op", "unknown"}, 1},
		{"mesh_world_inputs_total", []string{"op", mesh.WorldMove}, 5},
	} {
		if got := gathered(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestServiceStopsWhenBusCloses(t *testing.T) {
	b := membus.New(membus.Options{})
	svc, err := New(Config{}, Deps{Bus: b, Clock: newFakeClock(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(context.Background()) }()
	_ = b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, bus.ErrClosed) {
			t.Fatalf("Run = %v, want bus.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return when the bus closed")
	}
	if err := svc.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestNew(t *testing.T) {
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Fatal("New without a bus")
	}
	b := membus.New(membus.Options{})
	t.Cleanup(func() { _ = b.Close() })
	if _, err := New(Config{TickRate: 1e6}, Deps{Bus: b}); err == nil {
		t.Fatal("New with a tick rate of 1 MHz")
	}
	reg := prometheus.NewRegistry()
	svc, err := New(Config{}, Deps{Bus: b, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if svc.cfg.TickRate != mesh.TickRate || svc.cfg.GatewayTimeout != 15*time.Second || svc.cfg.ConsumerName == "" {
		t.Fatalf("defaults %+v", svc.cfg)
	}
	if _, err := New(Config{}, Deps{Bus: b, Metrics: reg}); err == nil {
		t.Fatal("metrics registered twice")
	}
	// A failed registration leaves nothing behind.
	reg2 := prometheus.NewRegistry()
	_ = reg2.Register(prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesh_world_leader", Help: "taken"}))
	if _, err := New(Config{}, Deps{Bus: b, Metrics: reg2}); err == nil {
		t.Fatal("conflicting metric accepted")
	}
	if fams2, _ := reg2.Gather(); len(fams2) != 1 {
		t.Fatalf("%d families left after a failed registration", len(fams2))
	}
}
