package worldsvc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/themesh/mesh/pkg/bus/membus"
	"github.com/themesh/mesh/pkg/mesh"
)

// fakeLog is a Log in memory: it applies each entry to its Machine when proposed, or holds the
// entries until the test releases them.
type fakeLog struct {
	m *Machine

	mu      sync.Mutex
	entries [][]byte // every entry proposed, in order
	hold    bool
	held    []*fakeProposal
}

type fakeProposal struct {
	entry []byte
	done  chan struct{}
	res   *Applied
	err   error
}

func (p *fakeProposal) Wait(ctx context.Context) (*Applied, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return p.res, p.err
	}
}

func newFakeLog() *fakeLog { return &fakeLog{m: NewMachine(WorldConfig{})} }

func (l *fakeLog) Propose(entry []byte) Proposal {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &fakeProposal{entry: entry, done: make(chan struct{})}
	l.entries = append(l.entries, entry)
	if l.hold {
		l.held = append(l.held, p)
		return p
	}
	p.res, p.err = l.m.Apply(entry)
	close(p.done)
	return p
}

// release resolves the held entries and stops holding: apply says whether they are applied
// to the machine (committed, perhaps under another leader), fail whether Wait fails.
func (l *fakeLog) release(apply bool, fail error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.held {
		if apply {
			p.res, p.err = l.m.Apply(p.entry)
		}
		if fail != nil {
			p.res, p.err = nil, fail
		}
		close(p.done)
	}
	l.held, l.hold = nil, false
}

func (l *fakeLog) setHold(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hold = v
}

func (l *fakeLog) heldCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held)
}

func (l *fakeLog) decoded(t *testing.T) []Entry {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	es := make([]Entry, len(l.entries))
	for i, b := range l.entries {
		if err := json.Unmarshal(b, &es[i]); err != nil {
			t.Fatal(err)
		}
	}
	return es
}

// startReplicated runs a service over a fresh bus with log as its Log.
func startReplicated(t *testing.T, cfg Config, log Log, el Elector) *harness {
	t.Helper()
	h := &harness{t: t, bus: membus.New(membus.Options{}), clk: newFakeClock(), reg: prometheus.NewRegistry()}
	t.Cleanup(func() { _ = h.bus.Close() })
	var err error
	h.svc, err = New(cfg, Deps{
		Bus: h.bus, Elector: el, Log: log, Metrics: h.reg, Clock: h.clk,
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

// waitFor polls cond until it holds, within the deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The replicated service publishes what the one-node service does, byte for byte, from
// entries batched per tick, and a replica replaying the entries holds the same world.
func TestReplicatedConnectMoveTick(t *testing.T) {
	log := newFakeLog()
	h := startReplicated(t, Config{}, log, nil)
	replies := h.subscribe(mesh.GatewaySubject("g1"))
	presence := h.subscribe(mesh.SubjectPresence)
	room := h.subscribe(mesh.RoomSubject("r1"))

	id := h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}}, mesh.GatewaySubject("g1"))
	r := nextReply(t, replies, id)
	var res mesh.WorldConnectResult
	if r.Error != nil || json.Unmarshal(r.Result, &res) != nil {
		t.Fatalf("reply %+v", r)
	}
	if want := (mesh.WorldConnectResult{Online: []string{"ada"}, Positions: map[string][]mesh.Position{"r1": {}}}); !reflect.DeepEqual(res, want) {
		t.Fatalf("result %+v, want %+v", res, want)
	}
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"ada","status":"online"}` {
		t.Fatalf("presence %s", ev.Frame)
	}
	h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "bob", SocketID: "s2", GatewayID: "g1", Rooms: []string{"r1", "r2"}}, "")
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"bob","status":"online"}` {
		t.Fatalf("presence %s", ev.Frame)
	}
	before := len(log.decoded(t))

	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 1, Y: 1}, "")
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "bob", X: 3, Y: -3.5}, "")
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 2, Y: 2.25}, "")
	h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "zed", X: 9, Y: 9}, "")
	h.send(mesh.WorldTyping, mesh.WorldTypingArgs{RoomID: "r1", ParticipantID: "ada", IsTyping: true}, "")
	h.sync(replies) // a membership: proposed at once, with the inputs before it
	if ev := nextEvent(t, room); ev.Type != "typing" || string(ev.Frame) != `{"type":"typing","roomId":"r1","participantId":"ada","isTyping":true}` {
		t.Fatalf("typing %+v (%s)", ev, ev.Frame)
	}
	h.clk.tick(t, 50*time.Millisecond)
	ev := nextEvent(t, room)
	wantFrame := `{"type":"positions","roomId":"r1","tick":1,"positions":[{"participantId":"ada","x":2,"y":2.25},{"participantId":"bob","x":3,"y":-3.5}]}`
	if ev.Type != "positions" || string(ev.Frame) != wantFrame {
		t.Fatalf("positions %+v\n got  %s\n want %s", ev, ev.Frame, wantFrame)
	}
	// The moves, the typing and the membership went as one entry, the step as another.
	es := log.decoded(t)
	if n := len(es) - before; n != 2 || len(es[before].Inputs) != 6 || es[before].Step || !es[before+1].Step {
		t.Fatalf("%d entries for a tick of 6 inputs: %+v", n, es[before:])
	}
	if !es[0].Resume || es[1].Resume {
		t.Fatalf("resume flags %v %v: want the first entry only", es[0].Resume, es[1].Resume)
	}

	// Bad arguments are answered at once, without the log.
	id = h.sendRaw(mesh.WorldMove, []byte(`{"roomId":"r1"}`), mesh.GatewaySubject("g1"))
	if r := nextReply(t, replies, id); r.Error == nil || r.Error.Code != mesh.CodeBadRequest {
		t.Fatalf("reply %+v", r)
	}
	id = h.send(mesh.WorldDisconnect, mesh.WorldDisconnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1"}, mesh.GatewaySubject("g1"))
	if r := nextReply(t, replies, id); r.Error != nil || string(r.Result) != "{}" {
		t.Fatalf("reply %+v (%s)", r, r.Result)
	}
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"ada","status":"offline"}` {
		t.Fatalf("presence %s", ev.Frame)
	}
	h.clk.tick(t, 16*time.Second) // g1 expires: bob goes offline
	if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"bob","status":"offline"}` {
		t.Fatalf("presence %s", ev.Frame)
	}
	h.sync(replies)

	// A replica replaying the log holds the same world, byte for byte.
	replica := NewMachine(WorldConfig{})
	log.mu.Lock()
	for _, e := range log.entries {
		if _, err := replica.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	log.mu.Unlock()
	a, _ := log.m.Snapshot()
	b, _ := replica.Snapshot()
	if !bytes.Equal(a, b) {
		t.Fatalf("replica differs:\n%s\n%s", a, b)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mesh_world_inputs_ignored_total", []string{"op", mesh.WorldMove}, 1},
		{"mesh_world_positions_events_total", nil, 1},
		{"mesh_world_online_participants", nil, 0},
		{"mesh_world_log_entries_total", []string{"result", entryFailed}, 0},
		{"mesh_world_inputs_retried_total", []string{"op", mesh.WorldConnect}, 0},
	} {
		if got := h.metric(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if h.metric("mesh_world_log_entries_total", "result", entryCommitted) != float64(len(log.decoded(t))) {
		t.Errorf("committed entries metric %v, log %d", h.metric("mesh_world_log_entries_total", "result", entryCommitted), len(log.decoded(t)))
	}
}

// A connect taken by a leader that loses the lead before its entry commits is not lost: it
// was not acked, and the next leader (here, the same node leading again) applies it.
func TestReplicatedLeadershipLossKeepsCommands(t *testing.T) {
	for _, c := range []struct {
		name string
		// committed: the held entry is committed anyway (by the next leader), though its
		// proposer's Wait fails.
		committed bool
	}{{"entry lost", false}, {"entry committed by the next leader", true}} {
		t.Run(c.name, func(t *testing.T) {
			log := newFakeLog()
			el := &switchElector{ch: make(chan struct{})}
			el.leader.Store(true)
			h := startReplicated(t, Config{ReclaimIdle: 20 * time.Millisecond}, log, el)
			replies := h.subscribe(mesh.GatewaySubject("g1"))
			presence := h.subscribe(mesh.SubjectPresence)

			log.setHold(true)
			id := h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}}, mesh.GatewaySubject("g1"))
			waitFor(t, "the connect to be proposed", func() bool { return log.heldCount() == 1 })
			el.set(t, false)
			h.clk.tick(t, 50*time.Millisecond) // taken once the consumer has stopped
			log.release(c.committed, errors.New("leadership lost while committing log"))
			el.set(t, true)

			r := nextReply(t, replies, id) // redelivered, once idle for ReclaimIdle
			var res mesh.WorldConnectResult
			if r.Error != nil || json.Unmarshal(r.Result, &res) != nil || !reflect.DeepEqual(res.Online, []string{"ada"}) {
				t.Fatalf("reply %+v (%s)", r, r.Result)
			}
			if st := log.m.Stats(); st.Online != 1 || st.Sockets != 1 {
				t.Fatalf("world %+v", st)
			}
			if got := h.metric("mesh_world_inputs_retried_total", "op", mesh.WorldConnect); got != 1 {
				t.Fatalf("retried = %v", got)
			}
			if !c.committed {
				// The redelivered connect opens the socket: its presence goes out.
				if ev := nextEvent(t, presence); string(ev.Frame) != `{"type":"presence","participantId":"ada","status":"online"}` {
					t.Fatalf("presence %s", ev.Frame)
				}
			}
			// Committed under the next leader, the first connect's presence went unpublished,
			// and the redelivered one changes nothing: no presence (events are at most once).
			h.sync(replies)
			select {
			case m := <-presence.Messages():
				if c.committed {
					t.Fatalf("unexpected presence %s", m.Data)
				}
			default:
			}
		})
	}
}

// When the log falls behind, the service neither blocks nor grows without bound: ticks are
// deferred (their moves fold into a later tick), and it catches up when the log does.
func TestReplicatedLogBehind(t *testing.T) {
	log := newFakeLog()
	h := startReplicated(t, Config{}, log, nil)
	replies := h.subscribe(mesh.GatewaySubject("g1"))
	room := h.subscribe(mesh.RoomSubject("r1"))
	h.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}}, "")
	h.sync(replies)

	log.setHold(true)
	ticks := propsQueue + inflightQueue + 10
	for i := range ticks {
		h.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: float64(i), Y: 1}, "")
		h.clk.tick(t, 50*time.Millisecond)
	}
	waitFor(t, "a deferred entry", func() bool { return h.metric("mesh_world_log_deferred_total") > 0 })
	log.release(true, nil)
	// Once the proposer has caught up, an entry is proposed at once again (before, it would
	// wait for the next tick, which this clock gives only when told).
	waitFor(t, "the proposer to catch up", func() bool { return len(h.svc.props) == 0 && len(h.svc.inflight) == 0 })
	h.sync(replies) // every move is in an entry
	h.clk.tick(t, 50*time.Millisecond)

	// The steps applied published their positions in tick order, up to the last move; fewer
	// steps were applied than ticks fired.
	last := []byte(`{"participantId":"ada","x":` + strconv.Itoa(ticks-1) + `,"y":1}]}`)
	var prev uint64
	for {
		ev := nextEvent(t, room)
		var f struct{ Tick uint64 }
		if err := json.Unmarshal(ev.Frame, &f); err != nil {
			t.Fatal(err)
		}
		if f.Tick <= prev {
			t.Fatalf("tick %d after %d", f.Tick, prev)
		}
		prev = f.Tick
		if bytes.HasSuffix(ev.Frame, last) {
			break
		}
	}
	if st := log.m.Stats(); st.Tick >= uint64(ticks)+1 {
		t.Fatalf("world tick %d after %d ticks: want fewer steps than ticks", st.Tick, ticks+1)
	}
}

func TestMachine(t *testing.T) {
	m := NewMachine(WorldConfig{})
	enc := func(e Entry) []byte {
		e.V = EntryVersion
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	args := func(v any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	a, err := m.Apply(enc(Entry{Now: t0.UnixNano(), Resume: true, Step: true, Inputs: []EntryInput{
		{Op: mesh.WorldConnect, Args: args(mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}})},
		{Op: mesh.WorldMove, Args: json.RawMessage(`{"roomId":"r1"}`)},
		{Op: mesh.WorldMove, Args: args(mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 1, Y: 2})},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Outputs) != 3 || a.Outputs[0].Connect == nil || len(a.Outputs[0].Events) != 1 ||
		!reflect.DeepEqual(a.Invalid, []bool{false, true, false}) || len(a.Step) != 1 ||
		a.Stats.Online != 1 || a.Stats.Tick != 1 {
		t.Fatalf("applied %+v", a)
	}
	if string(a.Step[0].Event.Frame) != `{"type":"positions","roomId":"r1","tick":1,"positions":[{"participantId":"ada","x":1,"y":2}]}` {
		t.Fatalf("step %s", a.Step[0].Event.Frame)
	}
	before, _ := m.Snapshot()
	for _, bad := range [][]byte{[]byte("{"), []byte(`{"v":99,"step":true}`)} {
		if _, err := m.Apply(bad); err == nil {
			t.Fatalf("Apply(%s) accepted", bad)
		}
	}
	after, _ := m.Snapshot()
	if !bytes.Equal(before, after) {
		t.Fatal("a refused entry changed the world")
	}
	r := NewMachine(WorldConfig{})
	if err := r.Restore(after); err != nil {
		t.Fatal(err)
	}
	if r.Stats() != m.Stats() {
		t.Fatalf("restored %+v, want %+v", r.Stats(), m.Stats())
	}
}
