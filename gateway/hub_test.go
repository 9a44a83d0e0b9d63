package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/bus/membus"
	"github.com/themesh/mesh/pkg/mesh"
)

func testHub(t *testing.T, wait time.Duration) *hub {
	t.Helper()
	b := membus.New(membus.Options{})
	t.Cleanup(func() { b.Close() })
	sub, err := b.Subscribe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return newHub(sub, wait, newMetrics(nil), slog.Default())
}

func testSocket(pid string) *socket {
	s := newSocket("s-"+pid, nil, nil, nil, 1000, nil, "", newMetrics(nil))
	s.participantID = pid
	return s
}

func msgEvent(room string, seq int64, only ...string) []byte {
	frame, _ := json.Marshal(map[string]any{"type": "message", "seq": seq})
	b, _ := json.Marshal(mesh.Event{Type: "message", RoomID: room, Seq: seq, Only: only, Frame: frame})
	return b
}

// seqs is what socket s was sent, as seqs.
func seqs(s *socket) []int64 {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	var out []int64
	for _, f := range s.queue {
		var m struct{ Seq int64 }
		_ = json.Unmarshal(framePayload(f), &m)
		out = append(out, m.Seq)
	}
	return out
}

func TestHubOrdersARoomsMessages(t *testing.T) {
	h := testHub(t, time.Hour)
	s := testSocket("a")
	if err := h.register(context.Background(), s, []string{"r"}, map[string]int64{"r": 1}); err != nil {
		t.Fatal(err)
	}
	h.activate(s)
	for _, seq := range []int64{3, 2, 5, 4, 6} {
		h.dispatch(busMsg("r", msgEvent("r", seq)))
	}
	if got := fmt.Sprint(seqs(s)); got != "[2 3 4 5 6]" {
		t.Fatalf("delivered %s", got)
	}
}

func TestHubGivesUpOnAGap(t *testing.T) {
	h := testHub(t, 20*time.Millisecond)
	s := testSocket("a")
	_ = h.register(context.Background(), s, []string{"r"}, map[string]int64{"r": 0})
	h.activate(s)
	h.dispatch(busMsg("r", msgEvent("r", 1)))
	h.dispatch(busMsg("r", msgEvent("r", 3))) // 2 is lost
	h.dispatch(busMsg("r", msgEvent("r", 4)))
	deadline := time.Now().Add(5 * time.Second)
	for len(seqs(s)) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling with a deadline for the timer's flush
	}
	if got := fmt.Sprint(seqs(s)); got != "[1 3 4]" {
		t.Fatalf("delivered %s", got)
	}
	h.dispatch(busMsg("r", msgEvent("r", 5)))
	if got := fmt.Sprint(seqs(s)); got != "[1 3 4 5]" {
		t.Fatalf("after the gap %s", got)
	}
}

func TestHubWhispersAndPresence(t *testing.T) {
	h := testHub(t, time.Hour)
	a, b, c := testSocket("a"), testSocket("b"), testSocket("c")
	for _, s := range []*socket{a, b, c} {
		_ = h.register(context.Background(), s, []string{"r"}, nil)
		h.activate(s)
	}
	h.dispatch(busMsg("r", msgEvent("r", 1, "a", "b")))
	if len(seqs(a)) != 1 || len(seqs(b)) != 1 || len(seqs(c)) != 0 {
		t.Fatalf("whisper reached a=%v b=%v c=%v", seqs(a), seqs(b), seqs(c))
	}
	// Presence for two shared rooms reaches each socket once.
	_ = h.register(context.Background(), testSocket("z"), []string{"r2"}, nil)
	h.mu.Lock()
	h.enterLocked(a, "r2")
	h.mu.Unlock()
	ev, _ := json.Marshal(mesh.Event{Type: "presence", Rooms: []string{"r", "r2"}, Frame: []byte(`{"type":"presence"}`)})
	h.dispatch(busMsgOn(mesh.SubjectPresence, ev))
	if n := len(seqs(a)); n != 2 {
		t.Fatalf("socket a got %d frames, want 2 (whisper, one presence)", n)
	}
	// A leave removes the participant's sockets from the room after they get the frame.
	left, _ := json.Marshal(mesh.Event{Type: "participant_left", RoomID: "r", Left: "c", Frame: []byte(`{}`)})
	h.dispatch(busMsg("r", left))
	if h.inRoom(c, "r") || !h.inRoom(a, "r") {
		t.Fatal("leave applied to the wrong sockets")
	}
}

func busMsg(room string, data []byte) busMessage { return busMsgOn(mesh.RoomSubject(room), data) }

type busMessage = bus.Msg

func busMsgOn(subject string, data []byte) bus.Msg { return bus.Msg{Subject: subject, Data: data} }
