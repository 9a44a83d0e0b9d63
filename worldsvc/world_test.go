package worldsvc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

func newWorld(t testing.TB) *World {
	t.Helper()
	return NewWorld(WorldConfig{GatewayTimeout: 15 * time.Second, ReconcileGrace: 5 * time.Second})
}

// apply marshals args and applies op at now; it fails the test on error.
func apply(t testing.TB, w *World, op string, args any, now time.Time) Output {
	t.Helper()
	b, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.Apply(op, b, now)
	if err != nil {
		t.Fatalf("Apply(%s, %s): %v", op, b, err)
	}
	return out
}

func connect(t testing.TB, w *World, gw, sock, pid string, now time.Time, rooms ...string) Output {
	t.Helper()
	return apply(t, w, mesh.WorldConnect, mesh.WorldConnectArgs{
		ParticipantID: pid, SocketID: sock, GatewayID: gw, Rooms: rooms,
	}, now)
}

func disconnect(t testing.TB, w *World, gw, sock, pid string, now time.Time) Output {
	t.Helper()
	return apply(t, w, mesh.WorldDisconnect, mesh.WorldDisconnectArgs{
		ParticipantID: pid, SocketID: sock, GatewayID: gw,
	}, now)
}

func move(t testing.TB, w *World, room, pid string, x, y float64, now time.Time) Output {
	t.Helper()
	return apply(t, w, mesh.WorldMove, mesh.WorldMoveArgs{RoomID: room, ParticipantID: pid, X: x, Y: y}, now)
}

// brief renders publications as "subject|type|room|except|rooms|frame" lines for comparison.
func brief(pubs []Publication) []string {
	var s []string
	for _, p := range pubs {
		s = append(s, fmt.Sprintf("%s|%s|%s|%s|%s|%s", p.Subject, p.Event.Type, p.Event.RoomID,
			p.Event.Except, strings.Join(p.Event.Rooms, ","), p.Event.Frame))
	}
	return s
}

func presenceLine(pid, status string, rooms ...string) string {
	return fmt.Sprintf("%s|presence|||%s|{\"type\":\"presence\",\"participantId\":%q,\"status\":%q}",
		mesh.SubjectPresence, strings.Join(rooms, ","), pid, status)
}

func positionsLine(room string, tick uint64, positions string) string {
	return fmt.Sprintf("%s|positions|%s|||{\"type\":\"positions\",\"roomId\":%q,\"tick\":%d,\"positions\":[%s]}",
		mesh.RoomSubject(room), room, room, tick, positions)
}

func pos(pid string, x, y float64) string {
	return fmt.Sprintf(`{"participantId":%q,"x":%s,"y":%s}`, pid, string(appendFloat(nil, x)), string(appendFloat(nil, y)))
}

func checkEvents(t *testing.T, got []Publication, want ...string) {
	t.Helper()
	g := brief(got)
	if len(g) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("events:\n got  %q\n want %q", g, want)
	}
}

func TestPresence(t *testing.T) {
	type step struct {
		op   string // "c" connect, "d" disconnect
		gw   string
		sock string
		pid  string
		want []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one socket", []step{
			{"c", "g1", "s1", "ada", []string{presenceLine("ada", "online", "r1", "r2")}},
			{"d", "g1", "s1", "ada", []string{presenceLine("ada", "offline", "r1", "r2")}},
		}},
		{"several sockets of one participant", []step{
			{"c", "g1", "s1", "ada", []string{presenceLine("ada", "online", "r1", "r2")}},
			{"c", "g2", "s2", "ada", nil},
			{"c", "g1", "s3", "ada", nil},
			{"d", "g1", "s1", "ada", nil},
			{"d", "g2", "s2", "ada", nil},
			{"d", "g1", "s3", "ada", []string{presenceLine("ada", "offline", "r1", "r2")}},
		}},
		{"repeated connect and disconnect", []step{
			{"c", "g1", "s1", "ada", []string{presenceLine("ada", "online", "r1", "r2")}},
			{"c", "g1", "s1", "ada", nil},
			{"d", "g1", "s1", "ada", []string{presenceLine("ada", "offline", "r1", "r2")}},
			{"d", "g1", "s1", "ada", nil},
		}},
		{"disconnect of an unknown socket", []step{
			{"c", "g1", "s1", "ada", []string{presenceLine("ada", "online", "r1", "r2")}},
			{"d", "g1", "s9", "ada", nil},
			{"d", "g2", "s1", "ada", nil},
		}},
		{"two participants", []step{
			{"c", "g1", "s1", "ada", []string{presenceLine("ada", "online", "r1", "r2")}},
			{"c", "g1", "s2", "bob", []string{presenceLine("bob", "online", "r1", "r2")}},
			{"d", "g1", "s1", "ada", []string{presenceLine("ada", "offline", "r1", "r2")}},
			{"d", "g1", "s2", "bob", []string{presenceLine("bob", "offline", "r1", "r2")}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			for i, s := range tt.steps {
				now := at(time.Duration(i) * time.Millisecond)
				var out Output
				if s.op == "c" {
					out = connect(t, w, s.gw, s.sock, s.pid, now, "r2", "r1")
				} else {
					out = disconnect(t, w, s.gw, s.sock, s.pid, now)
				}
				checkEvents(t, out.Events, s.want...)
			}
		})
	}
}

func TestConnectResult(t *testing.T) {
	w := newWorld(t)
	connect(t, w, "g1", "s1", "bob", t0, "r1")
	connect(t, w, "g1", "s2", "cat", t0, "r2")
	connect(t, w, "g2", "s3", "dan", t0, "r3")
	move(t, w, "r1", "bob", 1, 2, t0)
	move(t, w, "r2", "cat", 3.5, -4, t0)
	w.Step(1, t0)
	move(t, w, "r1", "bob", 9, 9, t0) // pending, not yet a position

	out := connect(t, w, "g2", "s4", "ada", t0, "r1", "r2", "r4", "r1")
	want := &mesh.WorldConnectResult{
		Online: []string{"ada", "bob", "cat"},
		Positions: map[string][]mesh.Position{
			"r1": {{ParticipantID: "bob", X: 1, Y: 2}},
			"r2": {{ParticipantID: "cat", X: 3.5, Y: -4}},
			"r4": {},
		},
	}
	if !reflect.DeepEqual(out.Connect, want) {
		t.Fatalf("result %+v, want %+v", out.Connect, want)
	}
	b, _ := json.Marshal(connect(t, w, "g9", "s9", "eve", t0).Connect)
	if string(b) != `{"online":["eve"],"positions":{}}` {
		t.Fatalf("result without rooms: %s", b)
	}
	if d := disconnect(t, w, "g2", "s4", "ada", t0); d.Connect != nil {
		t.Fatal("disconnect has a connect result")
	}
}

func TestStepFoldsMoves(t *testing.T) {
	type mv struct {
		room, pid string
		x, y      float64
	}
	tests := []struct {
		name  string
		ticks [][]mv     // moves before each tick
		want  [][]string // events of each tick
	}{
		{
			name:  "nothing moved",
			ticks: [][]mv{nil, nil},
			want:  [][]string{nil, nil},
		},
		{
			name:  "latest move per mover wins",
			ticks: [][]mv{{{"r1", "ada", 1, 1}, {"r1", "ada", 2, 2}, {"r1", "ada", 3, -3.25}}},
			want:  [][]string{{positionsLine("r1", 1, pos("ada", 3, -3.25))}},
		},
		{
			name: "one event per room, movers sorted, rooms sorted",
			ticks: [][]mv{{
				{"r2", "bob", 5, 5}, {"r1", "cat", 1, 0}, {"r1", "ada", 0, 1}, {"r2", "bob", 6, 6}, {"r1", "cat", 2, 0},
			}},
			want: [][]string{{
				positionsLine("r1", 1, pos("ada", 0, 1)+","+pos("cat", 2, 0)),
				positionsLine("r2", 1, pos("bob", 6, 6)),
			}},
		},
		{
			name:  "only movers of this tick",
			ticks: [][]mv{{{"r1", "ada", 1, 1}, {"r1", "cat", 2, 2}}, {{"r1", "cat", 3, 3}}, nil},
			want: [][]string{
				{positionsLine("r1", 1, pos("ada", 1, 1)+","+pos("cat", 2, 2))},
				{positionsLine("r1", 2, pos("cat", 3, 3))},
				nil,
			},
		},
		{
			name:  "a move to the held position is not news",
			ticks: [][]mv{{{"r1", "ada", 1, 1}}, {{"r1", "ada", 1, 1}}, {{"r1", "ada", 1, 1}, {"r1", "cat", 0, 0}}},
			want: [][]string{
				{positionsLine("r1", 1, pos("ada", 1, 1))},
				nil,
				{positionsLine("r1", 3, pos("cat", 0, 0))},
			},
		},
		{
			name:  "bounds are inclusive",
			ticks: [][]mv{{{"r1", "ada", mesh.MaxCoordinate, -mesh.MaxCoordinate}, {"r1", "cat", 1e-7, 0.1}}},
			want:  [][]string{{positionsLine("r1", 1, pos("ada", 1e6, -1e6)+","+pos("cat", 1e-7, 0.1))}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			connect(t, w, "g1", "s1", "ada", t0, "r1")
			connect(t, w, "g1", "s2", "bob", t0, "r2")
			connect(t, w, "g1", "s3", "cat", t0, "r1")
			for i, moves := range tt.ticks {
				now := at(time.Duration(i) * 50 * time.Millisecond)
				for _, m := range moves {
					if out := move(t, w, m.room, m.pid, m.x, m.y, now); out.Ignored || len(out.Events) > 0 {
						t.Fatalf("move %+v: %+v", m, out)
					}
				}
				checkEvents(t, w.Step(uint64(i+1), now), tt.want[i]...)
			}
		})
	}
}

func TestMoveIgnored(t *testing.T) {
	tests := []struct {
		name string
		args mesh.WorldMoveArgs
	}{
		{"room not joined", mesh.WorldMoveArgs{RoomID: "r2", ParticipantID: "ada", X: 1, Y: 1}},
		{"offline participant", mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "zed", X: 1, Y: 1}},
		{"x too large", mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: mesh.MaxCoordinate + 1, Y: 1}},
		{"y too small", mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 0, Y: -mesh.MaxCoordinate - 0.5}},
		{"NaN", mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: math.NaN(), Y: 0}},
		{"+Inf", mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: 0, Y: math.Inf(1)}},
		{"-Inf", mesh.WorldMoveArgs{RoomID: "r1", ParticipantID: "ada", X: math.Inf(-1), Y: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			connect(t, w, "g1", "s1", "ada", t0, "r1")
			a := tt.args
			// NaN and Inf cannot travel in JSON: apply the decoded arguments, as Apply does.
			out := w.apply(&a, t0.UnixNano())
			if !out.Ignored || len(out.Events) != 0 {
				t.Fatalf("out = %+v, want ignored", out)
			}
			if got := w.Stats().Ignored; got != 1 {
				t.Fatalf("ignored = %d, want 1", got)
			}
			checkEvents(t, w.Step(1, t0))
		})
	}
}

func TestTyping(t *testing.T) {
	tests := []struct {
		name string
		args mesh.WorldTypingArgs
		want []string
	}{
		{"member", mesh.WorldTypingArgs{RoomID: "r1", ParticipantID: "ada", IsTyping: true}, []string{
			`mesh:room:r1|typing|r1|ada||{"type":"typing","roomId":"r1","participantId":"ada","isTyping":true}`,
		}},
		{"member stops", mesh.WorldTypingArgs{RoomID: "r1", ParticipantID: "ada"}, []string{
			`mesh:room:r1|typing|r1|ada||{"type":"typing","roomId":"r1","participantId":"ada","isTyping":false}`,
		}},
		{"not a member", mesh.WorldTypingArgs{RoomID: "r2", ParticipantID: "ada", IsTyping: true}, nil},
		{"offline", mesh.WorldTypingArgs{RoomID: "r1", ParticipantID: "bob", IsTyping: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			connect(t, w, "g1", "s1", "ada", t0, "r1")
			out := apply(t, w, mesh.WorldTyping, tt.args, t0)
			checkEvents(t, out.Events, tt.want...)
			if out.Ignored != (tt.want == nil) {
				t.Fatalf("ignored = %v", out.Ignored)
			}
		})
	}
}

func TestMembership(t *testing.T) {
	w := newWorld(t)
	connect(t, w, "g1", "s1", "ada", t0, "r1")
	connect(t, w, "g1", "s2", "bob", t0, "r1")
	member := func(pid, room string, joined bool) {
		t.Helper()
		out := apply(t, w, mesh.WorldMembership, mesh.WorldMembershipArgs{RoomID: room, ParticipantID: pid, Joined: joined}, t0)
		checkEvents(t, out.Events)
	}

	if !move(t, w, "r2", "ada", 1, 1, t0).Ignored {
		t.Fatal("move in a room not joined was taken")
	}
	member("ada", "r2", true)
	member("ada", "r2", true) // repeated: no effect
	move(t, w, "r2", "ada", 1, 1, t0)
	move(t, w, "r1", "ada", 2, 2, t0)
	move(t, w, "r1", "bob", 3, 3, t0)
	checkEvents(t, w.Step(1, t0),
		positionsLine("r1", 1, pos("ada", 2, 2)+","+pos("bob", 3, 3)),
		positionsLine("r2", 1, pos("ada", 1, 1)))

	// Leaving removes the position and the pending move.
	move(t, w, "r1", "ada", 5, 5, t0)
	member("ada", "r1", false)
	checkEvents(t, w.Step(2, t0))
	got := connect(t, w, "g1", "s3", "cat", t0, "r1", "r2").Connect
	want := map[string][]mesh.Position{
		"r1": {{ParticipantID: "bob", X: 3, Y: 3}},
		"r2": {{ParticipantID: "ada", X: 1, Y: 1}},
	}
	if !reflect.DeepEqual(got.Positions, want) {
		t.Fatalf("positions %+v, want %+v", got.Positions, want)
	}
	if out := apply(t, w, mesh.WorldTyping, mesh.WorldTypingArgs{RoomID: "r1", ParticipantID: "ada"}, t0); !out.Ignored {
		t.Fatal("typing in a room left was relayed")
	}
	// The presence of a participant goes to its rooms as they are now.
	checkEvents(t, disconnect(t, w, "g1", "s1", "ada", t0).Events, presenceLine("ada", "offline", "r2"))

	// Membership of an offline participant is no one's business here.
	member("zed", "r1", true)
	if w.Stats().Online != 2 {
		t.Fatalf("stats %+v", w.Stats())
	}
	// A later socket adds its rooms to the participant's.
	connect(t, w, "g2", "s4", "bob", t0, "r9")
	if !w.inRoom("bob", "r1") || !w.inRoom("bob", "r9") {
		t.Fatal("bob's rooms not merged")
	}
}

func TestGatewayExpiry(t *testing.T) {
	w := newWorld(t)
	connect(t, w, "g1", "s1", "ada", t0, "r1")
	connect(t, w, "g1", "s2", "bob", t0, "r1", "r2")
	connect(t, w, "g2", "s3", "bob", t0, "r2")
	connect(t, w, "g2", "s4", "cat", t0, "r1")
	move(t, w, "r1", "ada", 1, 1, t0)
	move(t, w, "r1", "cat", 2, 2, t0)
	checkEvents(t, w.Step(1, t0), positionsLine("r1", 1, pos("ada", 1, 1)+","+pos("cat", 2, 2)))

	// g2 keeps beating; g1 falls silent.
	beat := func(now time.Time) {
		apply(t, w, mesh.WorldGateway, mesh.WorldGatewayArgs{GatewayID: "g2", Sockets: []mesh.WorldConnectArgs{
			{ParticipantID: "bob", SocketID: "s3", Rooms: []string{"r2"}},
			{ParticipantID: "cat", SocketID: "s4", Rooms: []string{"r1"}},
		}}, now)
	}
	beat(at(10 * time.Second))
	move(t, w, "r1", "ada", 3, 3, at(10*time.Second))
	checkEvents(t, w.Step(2, at(15*time.Second)), positionsLine("r1", 2, pos("ada", 3, 3))) // exactly the timeout: alive
	move(t, w, "r1", "ada", 4, 4, at(15*time.Second))
	checkEvents(t, w.Step(3, at(15*time.Second+time.Millisecond)), presenceLine("ada", "offline", "r1"))
	if st := w.Stats(); st.Online != 2 || st.Sockets != 2 || st.Gateways != 1 {
		t.Fatalf("stats %+v", st)
	}
	res := connect(t, w, "g2", "s5", "dan", at(16*time.Second), "r1", "r2").Connect
	if want := []string{"bob", "cat", "dan"}; !reflect.DeepEqual(res.Online, want) {
		t.Fatalf("online %v, want %v", res.Online, want)
	}
	if want := []mesh.Position{{ParticipantID: "cat", X: 2, Y: 2}}; !reflect.DeepEqual(res.Positions["r1"], want) {
		t.Fatalf("positions %v, want %v", res.Positions["r1"], want)
	}
	// The expired gateway comes back: its heartbeat makes its sockets known again.
	out := apply(t, w, mesh.WorldGateway, mesh.WorldGatewayArgs{GatewayID: "g1", Sockets: []mesh.WorldConnectArgs{
		{ParticipantID: "ada", SocketID: "s1", Rooms: []string{"r1"}},
		{ParticipantID: "bob", SocketID: "s2", Rooms: []string{"r1", "r2"}},
	}}, at(17*time.Second))
	checkEvents(t, out.Events, presenceLine("ada", "online", "r1"))
}

func TestResume(t *testing.T) {
	w := newWorld(t)
	connect(t, w, "g1", "s1", "ada", t0, "r1")
	w.Resume(at(time.Minute))
	checkEvents(t, w.Step(1, at(time.Minute+15*time.Second)))
	checkEvents(t, w.Step(2, at(time.Minute+16*time.Second)), presenceLine("ada", "offline", "r1"))
}

func TestHeartbeatReconcile(t *testing.T) {
	hb := func(sockets ...mesh.WorldConnectArgs) mesh.WorldGatewayArgs {
		return mesh.WorldGatewayArgs{GatewayID: "g1", Sockets: sockets}
	}
	sock := func(id, pid string, rooms ...string) mesh.WorldConnectArgs {
		return mesh.WorldConnectArgs{ParticipantID: pid, SocketID: id, GatewayID: "ignored", Rooms: rooms}
	}

	t.Run("a restarted world relearns sockets", func(t *testing.T) {
		w := newWorld(t)
		out := apply(t, w, mesh.WorldGateway, hb(sock("s1", "ada", "r1"), sock("s2", "ada", "r2"), sock("s3", "bob", "r1")), t0)
		checkEvents(t, out.Events, presenceLine("ada", "online", "r1"), presenceLine("bob", "online", "r1"))
		if st := w.Stats(); st.Online != 2 || st.Sockets != 3 || st.Gateways != 1 {
			t.Fatalf("stats %+v", st)
		}
		if !w.inRoom("ada", "r2") || w.sockets[sockKey{"g1", "s1"}] == nil {
			t.Fatal("heartbeat not applied to its own gateway")
		}
		// The same heartbeat again changes nothing.
		before, _ := w.Snapshot()
		checkEvents(t, apply(t, w, mesh.WorldGateway, hb(sock("s1", "ada", "r1"), sock("s2", "ada", "r2"), sock("s3", "bob", "r1")), t0).Events)
		after, _ := w.Snapshot()
		if !bytes.Equal(before, after) {
			t.Fatalf("repeated heartbeat changed the world:\n%s\n%s", before, after)
		}
	})

	t.Run("sockets missing from the heartbeat close", func(t *testing.T) {
		w := newWorld(t)
		connect(t, w, "g1", "s1", "ada", t0, "r1")
		connect(t, w, "g1", "s2", "bob", t0, "r1")
		connect(t, w, "g1", "s3", "bob", t0, "r1")
		connect(t, w, "g2", "s4", "cat", t0, "r1")
		out := apply(t, w, mesh.WorldGateway, hb(sock("s3", "bob", "r1")), at(10*time.Second))
		checkEvents(t, out.Events, presenceLine("ada", "offline", "r1"))
		if st := w.Stats(); st.Online != 2 || st.Sockets != 2 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("a heartbeat older than recent connects and disconnects", func(t *testing.T) {
		w := newWorld(t)
		connect(t, w, "g1", "s1", "ada", t0, "r1")
		connect(t, w, "g1", "s2", "bob", t0, "r1")
		// At 10 s: bob's socket closes and cat's opens, then a heartbeat built before both.
		disconnect(t, w, "g1", "s2", "bob", at(10*time.Second))
		connect(t, w, "g1", "s3", "cat", at(10*time.Second), "r1")
		out := apply(t, w, mesh.WorldGateway, hb(sock("s1", "ada", "r1"), sock("s2", "bob", "r1")), at(12*time.Second))
		checkEvents(t, out.Events)
		if w.participants["bob"] != nil || w.participants["cat"] == nil {
			t.Fatal("stale heartbeat undid recent changes")
		}
		// Past the grace the gateway's word holds.
		out = apply(t, w, mesh.WorldGateway, hb(sock("s1", "ada", "r1"), sock("s2", "bob", "r1")), at(16*time.Second))
		checkEvents(t, out.Events, presenceLine("bob", "online", "r1"), presenceLine("cat", "offline", "r1"))
	})

	t.Run("a socket id reused by another participant", func(t *testing.T) {
		w := newWorld(t)
		connect(t, w, "g1", "s1", "ada", t0, "r1")
		out := apply(t, w, mesh.WorldGateway, hb(sock("s1", "bob", "r1")), at(time.Second))
		checkEvents(t, out.Events, presenceLine("ada", "offline", "r1"), presenceLine("bob", "online", "r1"))
	})
}

func TestStaleConnect(t *testing.T) {
	w := newWorld(t)
	// The disconnect is applied before its connect (the connect was redelivered).
	checkEvents(t, disconnect(t, w, "g1", "s1", "ada", t0).Events)
	out := connect(t, w, "g1", "s1", "ada", at(time.Second), "r1")
	checkEvents(t, out.Events)
	if w.Stats().Online != 0 || out.Connect == nil {
		t.Fatalf("stale connect opened the socket: %+v", w.Stats())
	}
	// Tombstones are forgotten after the grace.
	w.Step(1, at(5*time.Second))
	if len(w.tombs) != 0 || len(w.tombQ) != 0 {
		t.Fatalf("tombstones not pruned: %v", w.tombs)
	}
	checkEvents(t, connect(t, w, "g1", "s1", "ada", at(6*time.Second), "r1").Events, presenceLine("ada", "online", "r1"))
}

func TestApplyBadArgs(t *testing.T) {
	tests := []struct {
		name string
		op   string
		body string
	}{
		{"unknown op", "world.dance", `{}`},
		{"empty body", mesh.WorldMove, ``},
		{"not JSON", mesh.WorldMove, `{"roomId":`},
		{"wrong type", mesh.WorldMove, `{"roomId":"r1","participantId":"ada","x":"1"}`},
		{"number out of range", mesh.WorldMove, `{"roomId":"r1","participantId":"ada","x":1e400,"y":0}`},
		{"move without room", mesh.WorldMove, `{"participantId":"ada","x":1,"y":1}`},
		{"connect without socket", mesh.WorldConnect, `{"participantId":"ada","gatewayId":"g1"}`},
		{"connect with empty room", mesh.WorldConnect, `{"participantId":"ada","gatewayId":"g1","socketId":"s","rooms":[""]}`},
		{"disconnect without gateway", mesh.WorldDisconnect, `{"participantId":"ada","socketId":"s1"}`},
		{"typing without participant", mesh.WorldTyping, `{"roomId":"r1","isTyping":true}`},
		{"membership without room", mesh.WorldMembership, `{"participantId":"ada","joined":true}`},
		{"heartbeat without gateway", mesh.WorldGateway, `{"sockets":[]}`},
		{"heartbeat socket without id", mesh.WorldGateway, `{"gatewayId":"g1","sockets":[{"participantId":"ada"}]}`},
		{"array body", mesh.WorldConnect, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			connect(t, w, "g1", "s1", "ada", t0, "r1")
			before, _ := w.Snapshot()
			_, err := w.Apply(tt.op, json.RawMessage(tt.body), t0)
			if !mesh.IsCode(err, mesh.CodeBadRequest) {
				t.Fatalf("err = %v, want bad_request", err)
			}
			after, _ := w.Snapshot()
			if !bytes.Equal(before, after) {
				t.Fatal("a refused input changed the world")
			}
		})
	}
}

// script is a random but reproducible sequence of inputs and steps.
type scriptItem struct {
	op   string // "" for a Step
	body json.RawMessage
	now  time.Time
	tick uint64
}

func randomScript(seed uint64, n int) []scriptItem {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := func(prefix string, k int) string { return fmt.Sprintf("%s%d", prefix, r.IntN(k)) }
	var items []scriptItem
	now := t0
	var tick uint64
	for range n {
		now = now.Add(time.Duration(r.IntN(400)) * time.Millisecond)
		var op string
		var args any
		switch k := r.IntN(100); {
		case k < 12:
			op, args = mesh.WorldConnect, mesh.WorldConnectArgs{
				ParticipantID: pick("p", 12), SocketID: pick("s", 20), GatewayID: pick("g", 3),
				Rooms: []string{pick("r", 5), pick("r", 5)},
			}
		case k < 20:
			op, args = mesh.WorldDisconnect, mesh.WorldDisconnectArgs{
				ParticipantID: pick("p", 12), SocketID: pick("s", 20), GatewayID: pick("g", 3),
			}
		case k < 60:
			op, args = mesh.WorldMove, mesh.WorldMoveArgs{
				RoomID: pick("r", 5), ParticipantID: pick("p", 12),
				X: float64(r.IntN(2000)-1000) / 8, Y: r.NormFloat64() * 100,
			}
		case k < 68:
			op, args = mesh.WorldTyping, mesh.WorldTypingArgs{RoomID: pick("r", 5), ParticipantID: pick("p", 12), IsTyping: r.IntN(2) == 0}
		case k < 76:
			op, args = mesh.WorldMembership, mesh.WorldMembershipArgs{RoomID: pick("r", 5), ParticipantID: pick("p", 12), Joined: r.IntN(2) == 0}
		case k < 80:
			var socks []mesh.WorldConnectArgs
			for range r.IntN(6) {
				socks = append(socks, mesh.WorldConnectArgs{ParticipantID: pick("p", 12), SocketID: pick("s", 20), Rooms: []string{pick("r", 5)}})
			}
			op, args = mesh.WorldGateway, mesh.WorldGatewayArgs{GatewayID: pick("g", 2), Sockets: socks}
		default:
			tick++
			items = append(items, scriptItem{now: now, tick: tick})
			continue
		}
		b, _ := json.Marshal(args)
		items = append(items, scriptItem{op: op, body: b, now: now})
	}
	return items
}

// run applies items to w and returns a transcript of everything that came out.
func run(t testing.TB, w *World, items []scriptItem) []string {
	t.Helper()
	var out []string
	for _, it := range items {
		if it.op == "" {
			out = append(out, brief(w.Step(it.tick, it.now))...)
			continue
		}
		o, err := w.Apply(it.op, it.body, it.now)
		if err != nil {
			t.Fatal(err)
		}
		res, _ := json.Marshal(o.Connect)
		out = append(out, fmt.Sprintf("%s ignored=%v result=%s", it.op, o.Ignored, res))
		out = append(out, brief(o.Events)...)
	}
	return out
}

func TestDeterminism(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			items := randomScript(seed, 3000)
			a, b := newWorld(t), newWorld(t)
			ta, tb := run(t, a, items), run(t, b, items)
			if !slices.Equal(ta, tb) {
				t.Fatal("two worlds given the same inputs differ")
			}
			sa, _ := a.Snapshot()
			sb, _ := b.Snapshot()
			if !bytes.Equal(sa, sb) {
				t.Fatal("two worlds given the same inputs have different snapshots")
			}
			if !slices.ContainsFunc(ta, func(s string) bool { return strings.Contains(s, "|positions|") }) ||
				!slices.ContainsFunc(ta, func(s string) bool { return strings.Contains(s, `"status":"offline"`) }) {
				t.Fatal("the script exercises too little")
			}
		})
	}
}

func TestSnapshotRestore(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			items := randomScript(100+seed, 2000)
			for _, cut := range []int{0, 1, 777, len(items)} {
				orig := newWorld(t)
				run(t, orig, items[:cut])
				snap, err := orig.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				restored := newWorld(t)
				connect(t, restored, "gx", "sx", "px", t0, "rx") // overwritten by Restore
				if err := restored.Restore(snap); err != nil {
					t.Fatal(err)
				}
				again, _ := restored.Snapshot()
				if !bytes.Equal(snap, again) {
					t.Fatalf("cut %d: snapshot of the restored world differs:\n%s\n%s", cut, snap, again)
				}
				if orig.Stats() != restored.Stats() {
					t.Fatalf("cut %d: stats %+v, restored %+v", cut, orig.Stats(), restored.Stats())
				}
				if !slices.Equal(run(t, orig, items[cut:]), run(t, restored, items[cut:])) {
					t.Fatalf("cut %d: the restored world behaves differently", cut)
				}
				s1, _ := orig.Snapshot()
				s2, _ := restored.Snapshot()
				if !bytes.Equal(s1, s2) {
					t.Fatalf("cut %d: the worlds end differently", cut)
				}
			}
		})
	}
}

func TestRestoreRejects(t *testing.T) {
	tests := []struct{ name, data string }{
		{"not JSON", `{`},
		{"wrong version", `{"version":2}`},
		{"socket of unknown participant", `{"version":1,"gateways":[{"id":"g1"}],"sockets":[{"gatewayId":"g1","socketId":"s1","participantId":"ada"}]}`},
		{"socket of unknown gateway", `{"version":1,"participants":[{"id":"ada"}],"sockets":[{"gatewayId":"g1","socketId":"s1","participantId":"ada"}]}`},
		{"participant without socket", `{"version":1,"participants":[{"id":"ada"}]}`},
		{"position of a non-member", `{"version":1,"gateways":[{"id":"g1"}],"participants":[{"id":"ada","rooms":["r1"]}],` +
			`"sockets":[{"gatewayId":"g1","socketId":"s1","participantId":"ada"}],"positions":[{"roomId":"r2","positions":[{"participantId":"ada","x":1,"y":1}]}]}`},
		{"position out of bounds", `{"version":1,"gateways":[{"id":"g1"}],"participants":[{"id":"ada","rooms":["r1"]}],` +
			`"sockets":[{"gatewayId":"g1","socketId":"s1","participantId":"ada"}],"pending":[{"roomId":"r1","positions":[{"participantId":"ada","x":1e7,"y":1}]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			connect(t, w, "g1", "s1", "bob", t0, "r1")
			before, _ := w.Snapshot()
			if err := w.Restore([]byte(tt.data)); err == nil {
				t.Fatal("restored")
			}
			after, _ := w.Snapshot()
			if !bytes.Equal(before, after) {
				t.Fatal("a failed restore changed the world")
			}
		})
	}
}

func TestFrameEncodingMatchesEncodingJSON(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1.5e-7, -3e-9, 1e-6, 123456.789, 1e6, -1e6, 1e20, 1e21, 5e-324, math.MaxFloat64}
	for _, f := range floats {
		want, _ := json.Marshal(f)
		if got := appendFloat(nil, f); string(got) != string(want) {
			t.Errorf("appendFloat(%v) = %s, want %s", f, got, want)
		}
	}
	strs := []string{"", "ada", "01J0ABCDEF", `q"uote`, `back\slash`, "tab\t", "<html>&", "é", "\u2028", "bad\xffutf8", "\x00"}
	for _, s := range strs {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
	// Whole frames are what encoding/json gives for the same object.
	w := newWorld(t)
	connect(t, w, "g1", "s1", `p"1`, t0, "<r>")
	move(t, w, "<r>", `p"1`, -0.5, 2e-7, t0)
	pubs := w.Step(7, t0)
	want, _ := json.Marshal(map[string]any{
		"type": "positions", "roomId": "<r>", "tick": 7,
		"positions": []mesh.Position{{ParticipantID: `p"1`, X: -0.5, Y: 2e-7}},
	})
	if len(pubs) != 1 || !jsonEqualOrdered(pubs[0].Event.Frame, []string{"type", "roomId", "tick", "positions"}, want) {
		t.Fatalf("frame %s, want the fields of %s", pubs[0].Event.Frame, want)
	}
}

// jsonEqualOrdered reports whether frame has keys in order and the same value as want.
func jsonEqualOrdered(frame []byte, keys []string, want []byte) bool {
	if !json.Valid(frame) {
		return false
	}
	last := -1
	for _, k := range keys {
		i := bytes.Index(frame, []byte(`"`+k+`":`))
		if i <= last {
			return false
		}
		last = i
	}
	var a, b any
	_ = json.Unmarshal(frame, &a)
	_ = json.Unmarshal(want, &b)
	return reflect.DeepEqual(a, b)
}

// BenchmarkStep folds one tick of 1,000 rooms with 10 movers each.
func BenchmarkStep(b *testing.B) {
	const rooms, perRoom = 1000, 10
	w := NewWorld(WorldConfig{})
	var moves []mesh.WorldMoveArgs
	for r := range rooms {
		room := fmt.Sprintf("01JROOM%05d", r)
		for p := range perRoom {
			pid := fmt.Sprintf("01JPART%05d%02d", r, p)
			connect(b, w, "g1", pid, pid, t0, room)
			moves = append(moves, mesh.WorldMoveArgs{RoomID: room, ParticipantID: pid})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var events int
	for i := range b.N {
		b.StopTimer()
		now := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		w.Resume(now) // the gateway is alive
		for j := range moves {
			m := moves[j]
			m.X, m.Y = float64(i%1000)+0.25, float64(j%1000)-0.5
			w.apply(&m, now.UnixNano())
		}
		b.StartTimer()
		events += len(w.Step(uint64(i+1), now))
	}
	if events != b.N*rooms {
		b.Fatalf("%d events, want %d", events, b.N*rooms)
	}
}

// BenchmarkApplyMove applies one move from its JSON body, as the service does.
func BenchmarkApplyMove(b *testing.B) {
	w := NewWorld(WorldConfig{})
	const n = 1000
	bodies := make([][]byte, n)
	for i := range n {
		pid := fmt.Sprintf("01JPART%05d", i)
		room := fmt.Sprintf("01JROOM%05d", i%100)
		connect(b, w, "g1", pid, pid, t0, room)
		bodies[i], _ = json.Marshal(mesh.WorldMoveArgs{RoomID: room, ParticipantID: pid, X: float64(i), Y: -float64(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		out, err := w.Apply(mesh.WorldMove, bodies[i%n], t0)
		if err != nil || out.Ignored {
			b.Fatal(err, out.Ignored)
		}
		if i%n == n-1 {
			w.Step(uint64(i), t0)
		}
	}
}
