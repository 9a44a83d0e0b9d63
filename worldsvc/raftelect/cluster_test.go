package raftelect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/bus/membus"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/worldsvc"
)

// wait bounds every wait of these tests: they poll with this deadline, never sleep to wait.
const wait = 10 * time.Second

// testLogger is silent unless MESH_TEST_VERBOSE is set.
func testLogger() *slog.Logger {
	if os.Getenv("MESH_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// freeAddrs returns n loopback addresses with free ports.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var ls []net.Listener
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return addrs
}

// cluster is n replicas in this process, each a raftelect Node and a worldsvc.Service, all
// over one in-process bus (the bus is not under test here).
type cluster struct {
	t      testing.TB
	bus    *membus.Bus
	peers  map[string]string
	ids    []string
	dir    string
	tune   func(*Config)
	svc    bool // run a service on each replica
	mu     sync.Mutex
	member map[string]*member
}

type member struct {
	id     string
	node   *Node
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func newCluster(t testing.TB, n int, svc bool, tune func(*Config)) *cluster {
	t.Helper()
	c := &cluster{
		t: t, bus: membus.New(membus.Options{}), peers: map[string]string{}, dir: t.TempDir(),
		tune: tune, svc: svc, member: map[string]*member{},
	}
	t.Cleanup(func() { _ = c.bus.Close() })
	for i, addr := range freeAddrs(t, n) {
		id := "w" + strconv.Itoa(i+1)
		c.peers[id] = addr
		c.ids = append(c.ids, id)
	}
	for _, id := range c.ids {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			c.kill(id)
		}
	})
	return c
}

func (c *cluster) config(id string) Config {
	cfg := Config{
		ID: id, Peers: c.peers, DataDir: filepath.Join(c.dir, id),
		SegmentSize: 1 << 20, Logger: testLogger(),
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	return cfg
}

// start opens replica id (again, after kill: same folder, same address) and runs its service.
func (c *cluster) start(id string) *member {
	c.t.Helper()
	node, err := Open(c.config(id))
	if err != nil {
		c.t.Fatalf("open %s: %v", id, err)
	}
	m := &member{id: id, node: node, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	if c.svc {
		svc, err := worldsvc.New(worldsvc.Config{ConsumerName: id, ReclaimIdle: 200 * time.Millisecond},
			worldsvc.Deps{Bus: c.bus, Log: node, Metrics: m.reg, Logger: testLogger()})
		if err != nil {
			c.t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		m.cancel = cancel
		go func() { m.done <- svc.Run(ctx) }()
	}
	c.mu.Lock()
	c.member[id] = m
	c.mu.Unlock()
	return m
}

// kill stops replica id as a crash would, as far as the others can tell: Raft and its
// transport go at once, without handing the lead over; then its service stops.
func (c *cluster) kill(id string) { c.stop(id, false) }

// stop stops replica id, handing the lead over first if handover (Node.Close).
func (c *cluster) stop(id string, handover bool) {
	c.t.Helper()
	c.mu.Lock()
	m := c.member[id]
	delete(c.member, id)
	c.mu.Unlock()
	if m == nil {
		return
	}
	if err := m.node.shutdown(handover); err != nil {
		c.t.Errorf("close %s: %v", id, err)
	}
	if m.cancel != nil {
		m.cancel()
		select {
		case err := <-m.done:
			if err != nil {
				c.t.Errorf("Run %s: %v", id, err)
			}
		case <-time.After(wait):
			c.t.Errorf("service %s did not stop", id)
		}
	}
}

func (c *cluster) get(id string) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.member[id]
}

func (c *cluster) running() []*member {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ms []*member
	for _, id := range c.ids {
		if m := c.member[id]; m != nil {
			ms = append(ms, m)
		}
	}
	return ms
}

// leader waits until exactly one running replica leads, and returns it.
func (c *cluster) leader() *member {
	c.t.Helper()
	var l *member
	poll(c.t, "a leader", func() bool {
		l = nil
		for _, m := range c.running() {
			if m.node.IsLeader() {
				if l != nil {
					return false
				}
				l = m
			}
		}
		return l != nil
	})
	return l
}

// converged waits until every running replica has applied the same last entry, and checks
// that they then hold the same world, byte for byte. It returns that world's snapshot.
func (c *cluster) converged() []byte {
	c.t.Helper()
	var snap []byte
	var diff string
	poll(c.t, "the replicas to converge", func() bool {
		var idx uint64
		snap, diff = nil, ""
		for i, m := range c.running() {
			j, s, err := m.node.fsm.state()
			if err != nil {
				c.t.Fatal(err)
			}
			if i > 0 && j != idx {
				return false
			}
			if i > 0 && !bytes.Equal(s, snap) {
				diff = fmt.Sprintf("%s at %d:\n%s\nvs\n%s", m.id, j, s, snap)
				return true
			}
			idx, snap = j, s
		}
		return true
	})
	if diff != "" {
		c.t.Fatalf("replicas differ at the same index: %s", diff)
	}
	return snap
}

// poll checks cond every millisecond until it holds, within the deadline.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// client speaks to the world the way gateways do: commands appended to the world stream,
// replies on its gateway's subject. Any replica may be the leader; the client neither knows
// nor cares.
type client struct {
	t       testing.TB
	b       bus.Bus
	gw      string
	replies bus.Subscription
	n       atomic.Int64
}

func newClient(t testing.TB, b bus.Bus, gw string) *client {
	t.Helper()
	c := &client{t: t, b: b, gw: gw}
	c.replies = subscribe(t, b, mesh.GatewaySubject(gw))
	return c
}

func subscribe(t testing.TB, b bus.Bus, subjects ...string) bus.Subscription {
	t.Helper()
	sub, err := b.Subscribe(context.Background(), subjects...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func (c *client) send(op string, args any, reply bool) string {
	body, err := json.Marshal(args)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := mesh.Command{ID: c.gw + "-" + strconv.FormatInt(c.n.Add(1), 10), Op: op, Args: mesh.Request{Body: body}}
	if reply {
		cmd.ReplyTo = mesh.GatewaySubject(c.gw)
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.b.Append(context.Background(), mesh.StreamWorld, data); err != nil {
		c.t.Fatal(err)
	}
	return cmd.ID
}

// call sends a command and waits for its reply.
func (c *client) call(op string, args any) mesh.Reply {
	c.t.Helper()
	r := c.await(c.send(op, args, true))
	if r.Error != nil {
		c.t.Fatalf("%s: %v", op, r.Error)
	}
	return r
}

// await waits for the reply to command id, skipping others.
func (c *client) await(id string) mesh.Reply {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-c.replies.Messages():
			var r mesh.Reply
			if err := json.Unmarshal(m.Data, &r); err != nil {
				c.t.Fatal(err)
			}
			if r.ID == id {
				return r
			}
		case <-deadline:
			c.t.Fatalf("no reply to %s", id)
		}
	}
}

// recorder keeps every event of a subscription with the time it arrived.
type recorder struct {
	mu     sync.Mutex
	events []recorded
	signal chan struct{}
}

type recorded struct {
	at   time.Time
	ev   mesh.Event
	tick uint64 // positions only
}

func record(t testing.TB, b bus.Bus, subjects ...string) *recorder {
	t.Helper()
	sub := subscribe(t, b, subjects...)
	r := &recorder{signal: make(chan struct{}, 1)}
	go func() {
		for m := range sub.Messages() {
			var ev mesh.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				panic(err)
			}
			rec := recorded{at: time.Now(), ev: ev}
			if ev.Type == "positions" {
				var f struct{ Tick uint64 }
				if err := json.Unmarshal(ev.Frame, &f); err != nil {
					panic(err)
				}
				rec.tick = f.Tick
			}
			r.mu.Lock()
			r.events = append(r.events, rec)
			r.mu.Unlock()
			select {
			case r.signal <- struct{}{}:
			default:
			}
		}
	}()
	return r
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// first waits for the first event, from index from on, that match accepts.
func (r *recorder) first(t testing.TB, what string, from int, match func(recorded) bool) (recorded, int) {
	t.Helper()
	deadline := time.After(wait)
	for {
		evs := r.all()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return evs[i], i
			}
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// checkOnePerTick fails if a room got two positions events for one tick (two leaders, or a
// replica publishing what it only replicates), or ticks going backwards.
func checkOnePerTick(t testing.TB, evs []recorded) {
	t.Helper()
	last := map[string]uint64{}
	for _, r := range evs {
		if r.ev.Type != "positions" {
			continue
		}
		if r.tick <= last[r.ev.RoomID] {
			t.Errorf("room %s: positions of tick %d after tick %d", r.ev.RoomID, r.tick, last[r.ev.RoomID])
		}
		last[r.ev.RoomID] = r.tick
	}
}

// mover moves a participant every few milliseconds until stopped, so that every tick of the
// leader has news for the room.
func mover(t testing.TB, c *client, room, pid string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for x := 1; ; x++ {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			c.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: room, ParticipantID: pid, X: float64(x % 1000), Y: float64(x / 1000)}, false)
		}
	}()
	return func() { cancel(); <-done }
}

// worldView is the part of a snapshot that must survive a failover unchanged when no one
// moves: who is online, with which sockets, in which rooms, and where.
type worldView struct {
	Sockets      json.RawMessage `json:"sockets"`
	Participants json.RawMessage `json:"participants"`
	Positions    []struct {
		RoomID    string          `json:"roomId"`
		Positions json.RawMessage `json:"positions"`
	} `json:"positions"`
}

func view(t testing.TB, snap []byte, rooms ...string) worldView {
	t.Helper()
	var v worldView
	if err := json.Unmarshal(snap, &v); err != nil {
		t.Fatal(err)
	}
	v.Positions = slices.DeleteFunc(v.Positions, func(p struct {
		RoomID    string          `json:"roomId"`
		Positions json.RawMessage `json:"positions"`
	}) bool {
		return !slices.Contains(rooms, p.RoomID)
	})
	return v
}

func (m *member) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, l := range mt.GetLabel() {
					ok = ok || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !ok {
					continue next
				}
			}
			switch {
			case mt.GetCounter() != nil:
				total += mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				total += mt.GetGauge().GetValue()
			}
		}
	}
	return total
}

// TestCluster runs three replicas: one leads, only it consumes and publishes (one positions
// event per room per tick); killed, another takes over the same world and ticks on; restarted
// after the leader has compacted its log, the killed one catches up from a snapshot.
func TestCluster(t *testing.T) {
	start := time.Now()
	c := newCluster(t, 3, true, func(cfg *Config) {
		// Snapshot often and keep a short log, so that a replica down for a second needs
		// the leader's snapshot to catch up. raft-wal drops compacted entries only with
		// their segment: small segments make it do so.
		cfg.SnapshotInterval = 50 * time.Millisecond
		cfg.SnapshotThreshold = 20
		cfg.TrailingLogs = 10
		cfg.SegmentSize = 8 << 10
	})
	l := c.leader()
	t.Logf("first leader %s elected in %v", l.id, time.Since(start).Round(time.Millisecond))

	gw := newClient(t, c.bus, "g1")
	presence := record(t, c.bus, mesh.SubjectPresence)
	rooms := record(t, c.bus, mesh.RoomSubject("r1"), mesh.RoomSubject("r2"))

	// Gateways only append to the stream: the leader, whichever it is, answers.
	r := gw.call(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}})
	var res mesh.WorldConnectResult
	if err := json.Unmarshal(r.Result, &res); err != nil || !reflect.DeepEqual(res.Online, []string{"ada"}) {
		t.Fatalf("connect result %s", r.Result)
	}
	gw.call(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "bob", SocketID: "s2", GatewayID: "g1", Rooms: []string{"r1"}})
	gw.call(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "cy", SocketID: "s3", GatewayID: "g1", Rooms: []string{"r2"}})
	gw.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 1, Y: 1}, false)
	gw.send(mesh.WorldMove, mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "bob", X: 2, Y: -2}, false)
	// bob's move comes after ada's: once it is published, both are in the world (in one tick
	// or two).
	rooms.first(t, "bob's position", 0, func(r recorded) bool {
		return r.ev.RoomID == "r1" && bytes.Contains(r.ev.Frame, []byte(`{"participantId":"bob","x":2,"y":-2}`))
	})
	_, snap, err := l.node.fsm.state()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(view(t, snap, "r1").Positions[0].Positions),
		`[{"participantId":"ada","x":1,"y":1},{"participantId":"bob","x":2,"y":-2}]`; got != want {
		t.Fatalf("positions in r1: %s, want %s", got, want)
	}
	_, _ = presence.first(t, "3 presences", 0, func(r recorded) bool { return bytes.Contains(r.ev.Frame, []byte(`"cy"`)) })

	// cy keeps moving in r2: every tick of the leader publishes one positions event there.
	stopMover := mover(t, gw, "r2", "cy")
	defer stopMover()
	_, from := rooms.first(t, "positions in r2", 0, func(r recorded) bool { return r.ev.RoomID == "r2" })
	rooms.first(t, "ten more ticks of r2", from, func(r recorded) bool { return r.ev.RoomID == "r2" && r.tick >= rooms.all()[from].tick+10 })

	// Only the leader consumed.
	for _, m := range c.running() {
		got := m.metric(t, "mesh_world_inputs_total")
		if (m == l) != (got > 0) {
			t.Errorf("%s (leader %v) consumed %v inputs", m.id, m == l, got)
		}
	}

	// Every replica holds the same world at the same index.
	before := view(t, c.converged(), "r1")

	// Kill the leader: a new one takes over the same world and ticks on.
	killedTick := uint64(0)
	t0 := time.Now()
	c.kill(l.id)
	killedIndex, snap, _ := l.node.fsm.state()
	killedTick = l.node.Machine().Stats().Tick
	if got := view(t, snap, "r1"); !reflect.DeepEqual(got, before) {
		t.Fatalf("the killed leader's world moved on without inputs:\n%+v\n%+v", got, before)
	}
	nl := c.leader()
	elected := time.Since(t0)
	ev, _ := rooms.first(t, "a positions event from the new leader", 0, func(r recorded) bool {
		return r.ev.RoomID == "r2" && r.tick > killedTick
	})
	resumed := ev.at.Sub(t0)
	t.Logf("leader %s killed at tick %d; %s elected after %v, first tick published (%d) after %v",
		l.id, killedTick, nl.id, elected.Round(time.Millisecond), ev.tick, resumed.Round(time.Millisecond))

	// The new leader holds who was online, in which rooms, and where.
	_, snap, err = nl.node.fsm.state()
	if err != nil {
		t.Fatal(err)
	}
	if got := view(t, snap, "r1"); !reflect.DeepEqual(got, before) {
		t.Fatalf("new leader's world:\n%+v\nwant\n%+v", got, before)
	}
	if st := nl.node.Machine().Stats(); st.Online != 3 || st.Sockets != 3 {
		t.Fatalf("new leader's world %+v", st)
	}

	// Wait for the leader to compact past what the killed replica has, then restart it: it
	// must take the leader's snapshot.
	poll(t, "the leader to compact its log", func() bool {
		n, _ := strconv.ParseUint(nl.node.raft.Stats()["last_snapshot_index"], 10, 64)
		return n > killedIndex+20
	})
	own, err := raft.NewFileSnapshotStore(c.config(l.id).DataDir, 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := own.List()
	if err != nil {
		t.Fatal(err)
	}
	back := c.start(l.id) // restores its own snapshot, if it has one, then the leader's
	c.converged()
	if got, want := back.node.fsm.restores.Load(), int64(min(len(snaps), 1)+1); got < want {
		t.Errorf("the restarted replica restored %d snapshots, want %d (its own, if any, and the leader's)", got, want)
	}
	if back.node.IsLeader() {
		t.Log("the restarted replica took the lead")
	}
	stopMover()

	// Still one leader, and it answers.
	gw.call(mesh.WorldMembership, mesh.WorldMembershipArgs{RoomID: "r2", ParticipantID: "ada", Joined: true})
	c.converged()
	checkOnePerTick(t, rooms.all())
	if n := len(presence.all()); n != 3 {
		t.Errorf("%d presence events, want 3 (one per connect)", n)
	}
}

// TestFailover kills the leader several times, measuring how long until a new leader is
// elected and publishes its first tick, and restarts each killed replica, which catches up
// from the log; then closes the leader as a planned restart does (Node.Close hands the lead
// over). A connect sent as the leader goes is not lost: whoever took it, it is applied and
// answered. MESH_FAILOVER_RUNS sets the number of kills (default 3).
func TestFailover(t *testing.T) {
	runs := 3
	if s := os.Getenv("MESH_FAILOVER_RUNS"); s != "" {
		var err error
		if runs, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			c := newCluster(t, n, true, nil)
			c.leader()
			gw := newClient(t, c.bus, "g1")
			rooms := record(t, c.bus, mesh.RoomSubject("r1"))
			gw.call(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: "ada", SocketID: "s1", GatewayID: "g1", Rooms: []string{"r1"}})
			stop := mover(t, gw, "r1", "ada")
			defer stop()
			var elect, resume []time.Duration
			lastTick := uint64(0)
			for run := range runs + 1 {
				planned := run == runs // the last run: a planned restart, the lead handed over
				l := c.leader()
				rooms.first(t, "the leader ticking", 0, func(r recorded) bool { return r.tick > lastTick })
				pid := "p" + strconv.Itoa(run)
				id := gw.send(mesh.WorldConnect, mesh.WorldConnectArgs{ParticipantID: pid, SocketID: pid, GatewayID: "g1", Rooms: []string{"r1"}}, true)
				t0 := time.Now()
				c.stop(l.id, planned)
				killedTick := l.node.Machine().Stats().Tick
				nl := c.leader()
				elected := time.Since(t0)
				ev, _ := rooms.first(t, "the new leader's first tick", 0, func(r recorded) bool { return r.tick > killedTick })
				resumed := ev.at.Sub(t0)
				lastTick = ev.tick
				gw.await(id)
				poll(t, pid+" online on the new leader", func() bool { return nl.node.Machine().Stats().Online == run+2 })
				how := "killed"
				if planned {
					how = "closed (lead handed over)"
				} else {
					elect, resume = append(elect, elected), append(resume, resumed)
				}
				redelivered := ""
				if l.metric(t, "mesh_world_inputs_retried_total") > 0 {
					redelivered = "; the connect it had taken was redelivered"
				}
				t.Logf("run %d: %s %s, %s leads after %v, ticking after %v%s", run+1, l.id, how, nl.id,
					elected.Round(time.Millisecond), resumed.Round(time.Millisecond), redelivered)
				c.start(l.id)
				c.converged()
			}
			stop()
			checkOnePerTick(t, rooms.all())
			slices.Sort(elect)
			slices.Sort(resume)
			t.Logf("%d replicas, %d kills: a new leader after %v..%v (median %v); first tick after %v..%v (median %v)",
				n, runs, elect[0].Round(time.Millisecond), elect[len(elect)-1].Round(time.Millisecond), elect[len(elect)/2].Round(time.Millisecond),
				resume[0].Round(time.Millisecond), resume[len(resume)-1].Round(time.Millisecond), resume[len(resume)/2].Round(time.Millisecond))
		})
	}
}
