package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/themesh/mesh/pkg/bus"
	"github.com/themesh/mesh/pkg/mesh"
)

// hub knows which of this gateway's sockets are in which room and which participant they
// belong to, holds the gateway's one bus subscription (reference counted per room and per
// participant subject), and turns bus events into frames for the sockets that may see them.
type hub struct {
	log        *slog.Logger
	sub        bus.Subscription
	reorderFor time.Duration
	metrics    *metrics

	// subMu serialises subscription changes, so that a Remove can never overtake the Add that
	// a later reference needs.
	subMu sync.Mutex

	mu      sync.RWMutex
	rooms   map[string]*roomState
	parts   map[string]map[*socket]struct{}
	subRefs map[string]int
}

// roomState is a room as this gateway sees it: its sockets and the reordering of its
// message events by seq.
type roomState struct {
	id      string
	sockets map[*socket]struct{}
	next    int64 // the next seq expected; 0 before the first
	held    map[int64]*mesh.Event
	timer   *time.Timer
}

func newHub(sub bus.Subscription, reorderFor time.Duration, m *metrics, log *slog.Logger) *hub {
	return &hub{
		log: log, sub: sub, reorderFor: reorderFor, metrics: m,
		rooms: map[string]*roomState{}, parts: map[string]map[*socket]struct{}{}, subRefs: map[string]int{},
	}
}

// ref adds references to subjects and subscribes to those that had none.
func (h *hub) ref(ctx context.Context, subjects ...string) error {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	var add []string
	h.mu.Lock()
	for _, s := range subjects {
		if h.subRefs[s] == 0 {
			add = append(add, s)
		}
		h.subRefs[s]++
	}
	h.mu.Unlock()
	if len(add) == 0 {
		return nil
	}
	if err := h.sub.Add(ctx, add...); err != nil {
		h.mu.Lock()
		for _, s := range subjects {
			h.decRef(s)
		}
		h.mu.Unlock()
		return err
	}
	return nil
}

// unref drops references and unsubscribes from subjects nobody needs.
func (h *hub) unref(subjects ...string) {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	var drop []string
	h.mu.Lock()
	for _, s := range subjects {
		if h.decRef(s) {
			drop = append(drop, s)
		}
	}
	h.mu.Unlock()
	if len(drop) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.sub.Remove(ctx, drop...); err != nil {
			h.log.Warn("unsubscribe", "subjects", len(drop), "err", err)
		}
	}
}

func (h *hub) decRef(s string) (last bool) {
	n := h.subRefs[s] - 1
	if n <= 0 {
		delete(h.subRefs, s)
		return n == 0
	}
	h.subRefs[s] = n
	return false
}

// register subscribes for s (its participant and its rooms) and adds it to the hub,
// not yet active: events for it are held until activate.
// lastSeq, per room, is the highest seq the store had when the socket's session opened: a
// room this gateway was not following yet expects the next one.
func (h *hub) register(ctx context.Context, s *socket, rooms []string, lastSeq map[string]int64) error {
	subjects := []string{mesh.ParticipantSubject(s.participantID)}
	for _, r := range rooms {
		subjects = append(subjects, mesh.RoomSubject(r))
	}
	if err := h.ref(ctx, subjects...); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ps := h.parts[s.participantID]
	if ps == nil {
		ps = map[*socket]struct{}{}
		h.parts[s.participantID] = ps
	}
	ps[s] = struct{}{}
	for _, r := range rooms {
		if h.rooms[r] == nil {
			h.enterLocked(s, r)
			h.rooms[r].next = lastSeq[r] + 1
		} else {
			h.enterLocked(s, r)
		}
	}
	s.registered = true
	return nil
}

// activate sends first (auth_ok, snapshot), then what was held for s, and from then on
// delivers directly.
func (h *hub) activate(s *socket, first ...[]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range first {
		s.send(f)
	}
	for _, f := range s.held {
		s.sendEncoded(f)
	}
	s.held = nil
	s.active = true
}

// unregister removes s from every room and drops its references.
func (h *hub) unregister(s *socket) {
	h.mu.Lock()
	if !s.registered {
		h.mu.Unlock()
		return
	}
	s.registered = false
	subjects := []string{mesh.ParticipantSubject(s.participantID)}
	for r := range s.rooms {
		subjects = append(subjects, mesh.RoomSubject(r))
		h.leaveLocked(s, r)
	}
	if ps := h.parts[s.participantID]; ps != nil {
		delete(ps, s)
		if len(ps) == 0 {
			delete(h.parts, s.participantID)
		}
	}
	h.mu.Unlock()
	h.unref(subjects...)
}

// enterLocked puts s in room (the subscription is the caller's business).
func (h *hub) enterLocked(s *socket, room string) {
	rs := h.rooms[room]
	if rs == nil {
		rs = &roomState{id: room, sockets: map[*socket]struct{}{}}
		h.rooms[room] = rs
	}
	rs.sockets[s] = struct{}{}
	s.rooms[room] = struct{}{}
}

func (h *hub) leaveLocked(s *socket, room string) {
	delete(s.rooms, room)
	if rs := h.rooms[room]; rs != nil {
		delete(rs.sockets, s)
		if len(rs.sockets) == 0 {
			if rs.timer != nil {
				rs.timer.Stop()
			}
			delete(h.rooms, room)
		}
	}
}

// inRoom reports whether s is in room.
func (h *hub) inRoom(s *socket, room string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	_, ok := s.rooms[room]
	return ok
}

// roomsOf lists the rooms s is in.
func (h *hub) roomsOf(s *socket) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]string, 0, len(s.rooms))
	for r := range s.rooms {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// sockets lists every registered socket (for draining and heartbeats).
func (h *hub) sockets() []*socket {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*socket
	for _, ps := range h.parts {
		for s := range ps {
			out = append(out, s)
		}
	}
	return out
}

// dispatch turns one bus message into frames.
func (h *hub) dispatch(m bus.Msg) {
	var ev mesh.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		h.log.Warn("undecodable event", "subject", m.Subject, "err", err)
		return
	}
	h.metrics.eventsIn.Inc()
	switch {
	case strings.HasPrefix(m.Subject, "mesh:room:"):
		h.roomEvent(strings.TrimPrefix(m.Subject, "mesh:room:"), &ev)
	case strings.HasPrefix(m.Subject, "mesh:participant:"):
		h.participantEvent(strings.TrimPrefix(m.Subject, "mesh:participant:"), &ev)
	case m.Subject == mesh.SubjectPresence:
		h.presenceEvent(&ev)
	}
}

func (h *hub) roomEvent(room string, ev *mesh.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := h.rooms[room]
	if rs == nil {
		return
	}
	if ev.Seq == 0 {
		h.deliverLocked(rs, ev)
		return
	}
	switch {
	case rs.next == 0 || ev.Seq == rs.next:
		h.deliverLocked(rs, ev)
		rs.next = ev.Seq + 1
		h.drainLocked(rs)
	case ev.Seq < rs.next:
		h.deliverLocked(rs, ev) // late: after a gap was given up on
	default:
		// Out of order: hold it until the missing seqs arrive, or give up on them.
		if rs.held == nil {
			rs.held = map[int64]*mesh.Event{}
		}
		rs.held[ev.Seq] = ev
		h.metrics.reordered.Inc()
		if len(rs.held) > 1024 {
			h.flushLocked(rs)
		} else if rs.timer == nil {
			rs.timer = time.AfterFunc(h.reorderFor, func() { h.giveUp(room, rs) })
		}
	}
}

// drainLocked delivers held events that are now in order.
func (h *hub) drainLocked(rs *roomState) {
	for len(rs.held) > 0 {
		ev, ok := rs.held[rs.next]
		if !ok {
			return
		}
		delete(rs.held, rs.next)
		h.deliverLocked(rs, ev)
		rs.next++
	}
	if rs.timer != nil {
		rs.timer.Stop()
		rs.timer = nil
	}
}

// giveUp delivers what is held in seq order: the missing seqs are lost to this gateway, and
// clients fetch them from the store.
func (h *hub) giveUp(room string, rs *roomState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms[room] != rs {
		return
	}
	rs.timer = nil
	h.flushLocked(rs)
}

func (h *hub) flushLocked(rs *roomState) {
	seqs := make([]int64, 0, len(rs.held))
	for s := range rs.held {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, s := range seqs {
		h.deliverLocked(rs, rs.held[s])
		rs.next = s + 1
	}
	rs.held = nil
	if rs.timer != nil {
		rs.timer.Stop()
		rs.timer = nil
	}
}

// deliverLocked sends a room event to the room's sockets that may see it, then applies its
// membership change.
func (h *hub) deliverLocked(rs *roomState, ev *mesh.Event) {
	var only map[string]bool
	if len(ev.Only) > 0 {
		only = make(map[string]bool, len(ev.Only))
		for _, id := range ev.Only {
			only[id] = true
		}
	}
	frame := encodeText(ev.Frame) // once for every socket
	for s := range rs.sockets {
		if (only != nil && !only[s.participantID]) || (ev.Except != "" && s.participantID == ev.Except) {
			continue
		}
		h.sendLocked(s, frame)
	}
	if ev.Left != "" {
		var leaving []*socket
		for s := range rs.sockets {
			if ev.Left == "*" || s.participantID == ev.Left {
				leaving = append(leaving, s)
			}
		}
		for _, s := range leaving {
			h.leaveLocked(s, rs.id)
		}
		if len(leaving) > 0 {
			subj := mesh.RoomSubject(rs.id)
			subs := make([]string, len(leaving))
			for i := range subs {
				subs[i] = subj
			}
			go h.unref(subs...)
		}
	}
}

// sendLocked queues an encoded frame for s, or holds it until s is active.
func (h *hub) sendLocked(s *socket, frame []byte) {
	if !s.active {
		if len(s.held) < 256 {
			s.held = append(s.held, frame)
		}
		return
	}
	s.sendEncoded(frame)
}

func (h *hub) participantEvent(pid string, ev *mesh.Event) {
	h.mu.Lock()
	ps := h.parts[pid]
	var targets []*socket
	for s := range ps {
		if ev.Close != nil && ev.Close.TokenID != "" && s.tokenID != ev.Close.TokenID {
			continue
		}
		targets = append(targets, s)
	}
	if ev.Role != "" {
		for _, s := range targets {
			s.role = ev.Role
		}
	}
	var entering []*socket
	if ev.Joined && ev.RoomID != "" {
		for _, s := range targets {
			if _, in := s.rooms[ev.RoomID]; !in {
				entering = append(entering, s)
			}
		}
	}
	h.mu.Unlock()

	if len(entering) > 0 {
		subj := mesh.RoomSubject(ev.RoomID)
		subs := make([]string, len(entering))
		for i := range subs {
			subs[i] = subj
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := h.ref(ctx, subs...)
		cancel()
		if err != nil {
			h.log.Warn("subscribe joined room", "room", ev.RoomID, "err", err)
			return
		}
		h.mu.Lock()
		for _, s := range entering {
			if s.registered {
				h.enterLocked(s, ev.RoomID)
			} else {
				go h.unref(subj)
			}
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range targets {
		if len(ev.Frame) > 0 && ev.Close == nil {
			h.sendLocked(s, encodeText(ev.Frame))
		}
		if ev.Close != nil {
			s.closeWith(ev.Close.Code, ev.Close.Reason)
		}
	}
}

// presenceEvent reaches every socket that shares one of ev.Rooms, once.
func (h *hub) presenceEvent(ev *mesh.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[*socket]bool{}
	frame := encodeText(ev.Frame)
	for _, r := range ev.Rooms {
		rs := h.rooms[r]
		if rs == nil {
			continue
		}
		for s := range rs.sockets {
			if !seen[s] {
				seen[s] = true
				h.sendLocked(s, frame)
			}
		}
	}
}
