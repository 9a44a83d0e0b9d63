package worldsvc

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
)

// Defaults of WorldConfig.
const (
	DefaultGatewayTimeout = 15 * time.Second
	DefaultReconcileGrace = 5 * time.Second
)

// WorldConfig tunes the world's rules. Two worlds replaying the same log must share it.
type WorldConfig struct {
	// GatewayTimeout: a gateway not heard from (heartbeat, connect or disconnect) for longer
	// than this is taken as dead by Step, and its sockets as closed. Zero means 15 s.
	GatewayTimeout time.Duration
	// ReconcileGrace: a heartbeat is the gateway's view at the moment it was built, and may
	// predate connects and disconnects the world already applied. Reconciling a heartbeat
	// therefore keeps a socket opened less than ReconcileGrace ago even if the heartbeat does
	// not list it, and does not reopen a socket closed less than ReconcileGrace ago. The same
	// grace turns away a connect that arrives after its own disconnect (a redelivery). Zero
	// means 5 s.
	ReconcileGrace time.Duration
}

func (c WorldConfig) withDefaults() WorldConfig {
	if c.GatewayTimeout <= 0 {
		c.GatewayTimeout = DefaultGatewayTimeout
	}
	if c.ReconcileGrace <= 0 {
		c.ReconcileGrace = DefaultReconcileGrace
	}
	return c
}

// Publication is one event the world asks to publish: Event on Subject.
type Publication struct {
	Subject string
	Event   mesh.Event
}

// Output is what applying one input produced.
type Output struct {
	// Connect answers WorldConnect; it is nil for the other operations.
	Connect *mesh.WorldConnectResult
	// Events are to be published in order, after the input is applied.
	Events []Publication
	// Ignored reports an input the world's state turned away: a move or typing of a
	// participant that is not online in that room, or a move out of bounds.
	Ignored bool
}

// Stats is a summary of the world's state.
type Stats struct {
	// Online is how many participants have at least one open socket.
	Online int
	// Sockets is how many sockets are open.
	Sockets int
	// Gateways is how many gateways are known (heard from within the timeout).
	Gateways int
	// Rooms is how many rooms have at least one online member.
	Rooms int
	// Ignored counts the inputs turned away since the world began (Output.Ignored).
	Ignored uint64
	// Tick is the number of the last Step.
	Tick uint64
}

// World is the authoritative state of who is online, in which rooms, and where. It is a
// plain state machine: no I/O, no goroutines, no clock. Every change is a function of the
// inputs (operation, arguments, time) and of the steps (tick, time) applied to it, so a log of
// them replayed on a snapshot yields the same world and the same events. Events come out in a
// deterministic order (sorted where a map is walked).
//
// A World is not safe for concurrent use: one goroutine owns it.
type World struct {
	timeout int64 // ns
	grace   int64 // ns

	gateways     map[string]*gatewayState
	sockets      map[sockKey]*socketState
	participants map[string]*participantState
	rooms        map[string]*roomState
	// dirty lists rooms whose pending moves became non-empty during this tick (each room at
	// most once while its pending moves are non-empty).
	dirty []string

	// tombs remembers recently closed sockets (closing time, ns), so that a stale heartbeat
	// or a redelivered connect does not reopen them; tombQ holds them in closing order for
	// pruning.
	tombs map[sockKey]int64
	tombQ []tomb

	tick    uint64
	ignored uint64
}

type sockKey struct{ gateway, socket string }

type tomb struct {
	key sockKey
	at  int64
}

type gatewayState struct {
	lastSeen int64
	sockets  map[string]struct{}
}

type socketState struct {
	participant string
	opened      int64
}

type participantState struct {
	sockets int
	rooms   map[string]struct{}
}

type roomState struct {
	members   map[string]struct{} // online participants in the room
	positions map[string]point
	pending   map[string]point // moves of the current tick, latest per participant
}

type point struct{ x, y float64 }

// NewWorld returns an empty world.
func NewWorld(cfg WorldConfig) *World {
	cfg = cfg.withDefaults()
	w := &World{timeout: int64(cfg.GatewayTimeout), grace: int64(cfg.ReconcileGrace)}
	w.reset()
	return w
}

func (w *World) reset() {
	w.gateways = make(map[string]*gatewayState)
	w.sockets = make(map[sockKey]*socketState)
	w.participants = make(map[string]*participantState)
	w.rooms = make(map[string]*roomState)
	w.dirty = nil
	w.tombs = make(map[sockKey]int64)
	w.tombQ = nil
	w.tick = 0
	w.ignored = 0
}

// Stats summarises the world.
func (w *World) Stats() Stats {
	return Stats{
		Online:   len(w.participants),
		Sockets:  len(w.sockets),
		Gateways: len(w.gateways),
		Rooms:    len(w.rooms),
		Ignored:  w.ignored,
		Tick:     w.tick,
	}
}

// Tick is the number of the last Step (0 before the first).
func (w *World) Tick() uint64 { return w.tick }

// Apply applies one world operation (mesh.WorldConnect, ...) whose JSON arguments are args
// (the command's Args.Body), at time now. An error is a *mesh.Error with code
// mesh.CodeBadRequest (unknown operation, undecodable or incomplete arguments); the world is
// then unchanged. Applying the same connect, disconnect, membership or heartbeat twice has no
// second effect, so a redelivered command is harmless.
func (w *World) Apply(op string, args json.RawMessage, now time.Time) (Output, error) {
	in, err := decodeArgs(op, args)
	if err != nil {
		return Output{}, err
	}
	return w.apply(in, now.UnixNano()), nil
}

// decodeArgs decodes and checks the arguments of op. The result is one of the *mesh.World...Args.
func decodeArgs(op string, body json.RawMessage) (any, error) {
	if len(body) == 0 {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "%s: missing body", op)
	}
	var (
		v       any
		missing string
	)
	switch op {
	case mesh.WorldConnect:
		a := new(mesh.WorldConnectArgs)
		v = a
		if err := json.Unmarshal(body, a); err != nil {
			return nil, badBody(op, err)
		}
		missing = firstEmpty("participantId", a.ParticipantID, "socketId", a.SocketID, "gatewayId", a.GatewayID)
		if missing == "" && slices.Contains(a.Rooms, "") {
			missing = "rooms[]"
		}
	case mesh.WorldDisconnect:
		a := new(mesh.WorldDisconnectArgs)
		v = a
		if err := json.Unmarshal(body, a); err != nil {
			return nil, badBody(op, err)
		}
		missing = firstEmpty("participantId", a.ParticipantID, "socketId", a.SocketID, "gatewayId", a.GatewayID)
	case mesh.WorldTyping:
		a := new(mesh.WorldTypingArgs)
		v = a
		if err := json.Unmarshal(body, a); err != nil {
			return nil, badBody(op, err)
		}
		missing = firstEmpty("roomId", a.RoomID, "participantId", a.ParticipantID)
	case mesh.WorldMove:
		a := new(mesh.WorldMoveArgs)
		v = a
		if err := json.Unmarshal(body, a); err != nil {
			return nil, badBody(op, err)
		}
		missing = firstEmpty("roomId", a.RoomID, "participantId", a.ParticipantID)
	case mesh.WorldMembership:
		a := new(mesh.WorldMembershipArgs)
		v = a
		if err := json.Unmarshal(body, a); err != nil {
			return nil, badBody(op, err)
		}
		missing = firstEmpty("roomId", a.RoomID, "participantId", a.ParticipantID)
	case mesh.WorldGateway:
		a := new(mesh.WorldGatewayArgs)
		v = a
		if err := json.Unmarshal(body, a); err != nil {
			return nil, badBody(op, err)
		}
		missing = firstEmpty("gatewayId", a.GatewayID)
		for i := range a.Sockets {
			s := &a.Sockets[i]
			if missing == "" {
				missing = firstEmpty("sockets[].participantId", s.ParticipantID, "sockets[].socketId", s.SocketID)
			}
			if missing == "" && slices.Contains(s.Rooms, "") {
				missing = "sockets[].rooms[]"
			}
			s.GatewayID = a.GatewayID // a heartbeat speaks for its own gateway only
		}
	default:
		return nil, mesh.Errorf(mesh.CodeBadRequest, "unknown world operation %q", op)
	}
	if missing != "" {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "%s: missing %s", op, missing)
	}
	return v, nil
}

func badBody(op string, err error) error {
	return mesh.Errorf(mesh.CodeBadRequest, "%s: bad body: %v", op, err)
}

// firstEmpty takes name, value pairs and returns the first name whose value is empty.
func firstEmpty(pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return pairs[i]
		}
	}
	return ""
}

// apply applies decoded arguments (from decodeArgs) at now (unix ns).
func (w *World) apply(in any, now int64) Output {
	switch a := in.(type) {
	case *mesh.WorldConnectArgs:
		return w.connect(a, now)
	case *mesh.WorldDisconnectArgs:
		return w.disconnect(a, now)
	case *mesh.WorldTypingArgs:
		return w.typing(a)
	case *mesh.WorldMoveArgs:
		return w.move(a)
	case *mesh.WorldMembershipArgs:
		w.membership(a)
		return Output{}
	case *mesh.WorldGatewayArgs:
		return w.heartbeat(a, now)
	}
	return Output{}
}

func (w *World) connect(a *mesh.WorldConnectArgs, now int64) Output {
	var out Output
	w.touchGateway(a.GatewayID, now)
	key := sockKey{a.GatewayID, a.SocketID}
	switch s := w.sockets[key]; {
	case s != nil && s.participant == a.ParticipantID:
		// Already open: a redelivered connect.
	case w.closedRecently(key, now):
		// Its disconnect was applied first: this connect is stale.
	default:
		if s != nil { // the id now names another participant's socket
			out.Events = w.closeSocket(key, out.Events)
		}
		out.Events = w.openSocket(key, a.ParticipantID, a.Rooms, now, out.Events)
	}
	out.Connect = w.connectResult(a.ParticipantID, a.Rooms)
	return out
}

// disconnect closes the socket named by gateway and socket id (the participant id is not
// checked: the key names the socket).
func (w *World) disconnect(a *mesh.WorldDisconnectArgs, now int64) Output {
	var out Output
	w.touchGateway(a.GatewayID, now)
	key := sockKey{a.GatewayID, a.SocketID}
	// Remember the close even for a socket the world does not know: its connect may come
	// later (redelivered) and must not open it.
	w.tombstone(key, now)
	if w.sockets[key] != nil {
		out.Events = w.closeSocket(key, out.Events)
	}
	return out
}

func (w *World) typing(a *mesh.WorldTypingArgs) Output {
	if !w.inRoom(a.ParticipantID, a.RoomID) {
		w.ignored++
		return Output{Ignored: true}
	}
	b := make([]byte, 0, 64+len(a.RoomID)+len(a.ParticipantID))
	b = append(b, `{"type":"typing","roomId":`...)
	b = appendString(b, a.RoomID)
	b = append(b, `,"participantId":`...)
	b = appendString(b, a.ParticipantID)
	b = append(b, `,"isTyping":`...)
	b = appendBool(b, a.IsTyping)
	b = append(b, '}')
	return Output{Events: []Publication{{
		Subject: mesh.RoomSubject(a.RoomID),
		Event:   mesh.Event{Type: "typing", RoomID: a.RoomID, Except: a.ParticipantID, Frame: b},
	}}}
}

// ValidCoordinate reports whether v may be a coordinate: finite and within ±mesh.MaxCoordinate.
func ValidCoordinate(v float64) bool {
	return !math.IsNaN(v) && math.Abs(v) <= mesh.MaxCoordinate // Abs(±Inf) is +Inf
}

func (w *World) move(a *mesh.WorldMoveArgs) Output {
	if !ValidCoordinate(a.X) || !ValidCoordinate(a.Y) || !w.inRoom(a.ParticipantID, a.RoomID) {
		w.ignored++
		return Output{Ignored: true}
	}
	r := w.rooms[a.RoomID] // exists: the participant is an online member
	if len(r.pending) == 0 {
		w.dirty = append(w.dirty, a.RoomID)
	}
	r.pending[a.ParticipantID] = point{a.X, a.Y}
	return Output{}
}

func (w *World) membership(a *mesh.WorldMembershipArgs) {
	p := w.participants[a.ParticipantID]
	if p == nil {
		return // offline: its rooms are learnt when its first socket opens
	}
	if a.Joined {
		w.joinRoom(a.ParticipantID, p, a.RoomID)
	} else {
		w.leaveRoom(a.ParticipantID, p, a.RoomID)
	}
}

// heartbeat refreshes a gateway and reconciles the sockets the world holds for it with the
// ones the gateway lists.
func (w *World) heartbeat(a *mesh.WorldGatewayArgs, now int64) Output {
	var out Output
	gw := w.touchGateway(a.GatewayID, now)
	listed := make(map[string]struct{}, len(a.Sockets))
	for i := range a.Sockets {
		s := &a.Sockets[i]
		listed[s.SocketID] = struct{}{}
		key := sockKey{a.GatewayID, s.SocketID}
		cur := w.sockets[key]
		switch {
		case cur != nil && cur.participant == s.ParticipantID:
		case w.closedRecently(key, now):
			// Closed after the gateway built this heartbeat.
		default:
			if cur != nil {
				out.Events = w.closeSocket(key, out.Events)
			}
			out.Events = w.openSocket(key, s.ParticipantID, s.Rooms, now, out.Events)
		}
	}
	var gone []string
	for id := range gw.sockets {
		if _, ok := listed[id]; ok {
			continue
		}
		if s := w.sockets[sockKey{a.GatewayID, id}]; s != nil && now-s.opened < w.grace {
			continue // opened after the gateway built this heartbeat
		}
		gone = append(gone, id)
	}
	slices.Sort(gone)
	for _, id := range gone {
		key := sockKey{a.GatewayID, id}
		w.tombstone(key, now)
		out.Events = w.closeSocket(key, out.Events)
	}
	return out
}

// Resume gives every known gateway a full timeout from now to be heard from again. A node
// that takes over the world (a new leader) calls it before its first Step, so that gateways
// whose heartbeats queued up while no one was ticking are not all taken as dead at once.
func (w *World) Resume(now time.Time) {
	ns := now.UnixNano()
	for _, gw := range w.gateways {
		gw.lastSeen = max(gw.lastSeen, ns)
	}
}

// Step ends tick number tick at time now. It takes gateways not heard from within the
// timeout as dead (their sockets close; a participant whose last socket closes goes offline),
// then folds the moves of the tick: each room with movers gets one positions event listing
// its movers of this tick, each at its latest position (sorted by participant id). A move
// to the position the participant already holds is not news and is left out. Events come
// out as the offline presences (by gateway, then socket id), then the positions (by room id).
func (w *World) Step(tick uint64, now time.Time) []Publication {
	ns := now.UnixNano()
	w.tick = tick
	var out []Publication

	var dead []string
	for id, gw := range w.gateways {
		if ns-gw.lastSeen > w.timeout {
			dead = append(dead, id)
		}
	}
	slices.Sort(dead)
	for _, id := range dead {
		gw := w.gateways[id]
		socks := make([]string, 0, len(gw.sockets))
		for s := range gw.sockets {
			socks = append(socks, s)
		}
		slices.Sort(socks)
		for _, s := range socks {
			out = w.closeSocket(sockKey{id, s}, out)
		}
		delete(w.gateways, id)
	}

	w.pruneTombs(ns)

	if len(w.dirty) == 0 {
		return out
	}
	slices.Sort(w.dirty)
	var movers []string
	for _, roomID := range w.dirty {
		r := w.rooms[roomID]
		if r == nil || len(r.pending) == 0 {
			continue // emptied since (left, went offline) or listed twice
		}
		movers = movers[:0]
		for id := range r.pending {
			movers = append(movers, id)
		}
		slices.Sort(movers)
		var b []byte
		for _, id := range movers {
			p := r.pending[id]
			if cur, ok := r.positions[id]; ok && cur == p {
				continue
			}
			r.positions[id] = p
			if b == nil {
				b = make([]byte, 0, 64+len(roomID)+len(movers)*64)
				b = append(b, `{"type":"positions","roomId":`...)
				b = appendString(b, roomID)
				b = append(b, `,"tick":`...)
				b = appendUint(b, tick)
				b = append(b, `,"positions":[`...)
			} else {
				b = append(b, ',')
			}
			b = appendPosition(b, id, p)
		}
		clear(r.pending)
		if b == nil {
			continue
		}
		b = append(b, "]}"...)
		out = append(out, Publication{
			Subject: mesh.RoomSubject(roomID),
			Event:   mesh.Event{Type: "positions", RoomID: roomID, Frame: b},
		})
	}
	w.dirty = w.dirty[:0]
	return out
}

func (w *World) touchGateway(id string, now int64) *gatewayState {
	gw := w.gateways[id]
	if gw == nil {
		gw = &gatewayState{sockets: make(map[string]struct{})}
		w.gateways[id] = gw
	}
	gw.lastSeen = max(gw.lastSeen, now)
	return gw
}

func (w *World) tombstone(key sockKey, now int64) {
	w.tombs[key] = now
	w.tombQ = append(w.tombQ, tomb{key, now})
}

func (w *World) closedRecently(key sockKey, now int64) bool {
	at, ok := w.tombs[key]
	return ok && now-at < w.grace
}

// pruneTombs forgets sockets closed ReconcileGrace or more before now.
func (w *World) pruneTombs(now int64) {
	n := 0
	for n < len(w.tombQ) && now-w.tombQ[n].at >= w.grace {
		t := w.tombQ[n]
		if at, ok := w.tombs[t.key]; ok && at == t.at {
			delete(w.tombs, t.key)
		}
		n++
	}
	if n == 0 {
		return
	}
	if n == len(w.tombQ) {
		w.tombQ = w.tombQ[:0]
		return
	}
	w.tombQ = append(w.tombQ[:0], w.tombQ[n:]...)
}

// openSocket opens key for participant pid. A participant's first socket brings it online
// in rooms (presence event); a later socket's rooms are added to the participant's, since
// while it is online the membership commands are the authority and a socket's list may
// predate some of them.
func (w *World) openSocket(key sockKey, pid string, rooms []string, now int64, out []Publication) []Publication {
	gw := w.touchGateway(key.gateway, now)
	gw.sockets[key.socket] = struct{}{}
	w.sockets[key] = &socketState{participant: pid, opened: now}
	p := w.participants[pid]
	first := p == nil
	if first {
		p = &participantState{rooms: make(map[string]struct{}, len(rooms))}
		w.participants[pid] = p
	}
	p.sockets++
	for _, r := range rooms {
		w.joinRoom(pid, p, r)
	}
	if first {
		out = append(out, presence(pid, p.rooms, mesh.StatusOnline))
	}
	return out
}

// closeSocket closes an open socket. A participant's last socket takes it offline: it leaves
// its rooms (its positions go) and a presence event goes to them.
func (w *World) closeSocket(key sockKey, out []Publication) []Publication {
	s := w.sockets[key]
	if s == nil {
		return out
	}
	delete(w.sockets, key)
	if gw := w.gateways[key.gateway]; gw != nil {
		delete(gw.sockets, key.socket)
	}
	p := w.participants[s.participant]
	if p == nil {
		return out
	}
	p.sockets--
	if p.sockets > 0 {
		return out
	}
	ev := presence(s.participant, p.rooms, mesh.StatusOffline)
	for r := range p.rooms {
		w.leaveRoom(s.participant, p, r)
	}
	delete(w.participants, s.participant)
	return append(out, ev)
}

func (w *World) joinRoom(pid string, p *participantState, roomID string) {
	if _, ok := p.rooms[roomID]; ok {
		return
	}
	p.rooms[roomID] = struct{}{}
	r := w.rooms[roomID]
	if r == nil {
		r = &roomState{
			members:   make(map[string]struct{}),
			positions: make(map[string]point),
			pending:   make(map[string]point),
		}
		w.rooms[roomID] = r
	}
	r.members[pid] = struct{}{}
}

func (w *World) leaveRoom(pid string, p *participantState, roomID string) {
	if _, ok := p.rooms[roomID]; !ok {
		return
	}
	delete(p.rooms, roomID)
	r := w.rooms[roomID]
	if r == nil {
		return
	}
	delete(r.members, pid)
	delete(r.positions, pid)
	delete(r.pending, pid)
	if len(r.members) == 0 {
		delete(w.rooms, roomID)
	}
}

func (w *World) inRoom(pid, roomID string) bool {
	p := w.participants[pid]
	if p == nil {
		return false
	}
	_, ok := p.rooms[roomID]
	return ok
}

// connectResult lists who is online among the members of rooms (pid included) and the
// positions in those rooms, each sorted by participant id.
func (w *World) connectResult(pid string, rooms []string) *mesh.WorldConnectResult {
	res := &mesh.WorldConnectResult{
		Online:    []string{pid},
		Positions: make(map[string][]mesh.Position, len(rooms)),
	}
	for _, roomID := range rooms {
		if _, done := res.Positions[roomID]; done {
			continue
		}
		ps := []mesh.Position{}
		if r := w.rooms[roomID]; r != nil {
			for id := range r.members {
				res.Online = append(res.Online, id)
			}
			for id, p := range r.positions {
				ps = append(ps, mesh.Position{ParticipantID: id, X: p.x, Y: p.y})
			}
			slices.SortFunc(ps, func(a, b mesh.Position) int { return strings.Compare(a.ParticipantID, b.ParticipantID) })
		}
		res.Positions[roomID] = ps
	}
	slices.Sort(res.Online)
	res.Online = slices.Compact(res.Online)
	return res
}

func presence(pid string, rooms map[string]struct{}, status string) Publication {
	b := make([]byte, 0, 64+len(pid))
	b = append(b, `{"type":"presence","participantId":`...)
	b = appendString(b, pid)
	b = append(b, `,"status":`...)
	b = appendString(b, status)
	b = append(b, '}')
	return Publication{
		Subject: mesh.SubjectPresence,
		Event:   mesh.Event{Type: "presence", Rooms: sortedKeys(rooms), Frame: b},
	}
}

func sortedKeys(m map[string]struct{}) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
