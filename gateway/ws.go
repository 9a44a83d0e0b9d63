package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"time"

	"github.com/fasthttp/websocket"
	fws "github.com/gofiber/contrib/websocket"
	"github.com/oklog/ulid/v2"
	"golang.org/x/time/rate"

	"github.com/themesh/mesh/pkg/mesh"
)

var wsEvents = func() map[string]mesh.WSEvent {
	m := map[string]mesh.WSEvent{}
	for _, e := range mesh.WSEvents {
		m[e.Type] = e
	}
	return m
}()

// serveSocket runs one WebSocket connection: it reads and handles frames in order until the
// connection ends.
func (g *Gateway) serveSocket(c *fws.Conn) {
	g.sockets.Add(1)
	defer g.sockets.Done()
	g.metrics.connections.Inc()
	defer g.metrics.connections.Dec()

	bc, _ := c.Locals("bufconn").(*bufConn)
	s := newSocket(ulid.Make().String(), c.Conn, bc, g.writers, g.cfg.SendQueue,
		rate.NewLimiter(rate.Limit(g.cfg.FramesPerSecond), g.cfg.FrameBurst), c.IP(), g.metrics)
	c.SetReadLimit(int64(g.cfg.MaxFrameBytes))
	pongWait := 2 * g.cfg.PingInterval
	c.SetPongHandler(func(string) error { return c.SetReadDeadline(time.Now().Add(pongWait)) })
	if g.draining.Load() {
		s.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	_ = c.SetReadDeadline(time.Now().Add(g.cfg.AuthTimeout))

	for {
		mt, data, err := c.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && s.participantID == "" {
				s.closeWith(CloseAuthTimeout, "authenticate within the first seconds")
			} else if !errors.Is(err, websocket.ErrReadLimit) {
				s.closeWith(websocket.CloseNormalClosure, "")
			}
			break
		}
		g.metrics.framesIn.Inc()
		if s.participantID != "" {
			_ = c.SetReadDeadline(time.Now().Add(pongWait))
		}
		if mt != websocket.TextMessage {
			s.send(errorFrame("", mesh.Errorf(mesh.CodeBadRequest, "frames must be text (JSON)")))
			continue
		}
		g.handleFrame(s, data)
	}
	// The reader is done: let the writer finish (it has been told to close), then forget the
	// socket everywhere.
	s.closeWith(websocket.CloseNormalClosure, "")
	<-s.done
	g.hub.unregister(s)
	if s.participantID != "" {
		_ = g.tellWorld(context.Background(), mesh.WorldDisconnect, mesh.WorldDisconnectArgs{
			ParticipantID: s.participantID, SocketID: s.id, GatewayID: g.cfg.ID,
		})
	}
}

// frame fields every client frame may have.
type envelope struct {
	Type string          `json:"type"`
	Ref  json.RawMessage `json:"ref"`
}

// handleFrame handles one client frame and answers it (ack or error when it has a ref; an
// error always when it is bad).
func (g *Gateway) handleFrame(s *socket, data []byte) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		s.send(errorFrame("", mesh.Errorf(mesh.CodeBadRequest, "a frame must be one JSON object")))
		return
	}
	var ref string
	if raw, ok := fields["ref"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &ref); err != nil {
			s.send(errorFrame("", mesh.Errorf(mesh.CodeBadRequest, "ref must be a string")))
			return
		}
	}
	var typ string
	if raw, ok := fields["type"]; !ok || json.Unmarshal(raw, &typ) != nil || typ == "" {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "type is required")))
		return
	}
	if !s.limiter.Allow() {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeRateLimited, "too many frames; slow down")))
		return
	}
	start := time.Now()
	defer func() { g.metrics.commands.WithLabelValues(typ).Observe(time.Since(start).Seconds()) }()
	if typ == "ping" {
		s.send(mustJSON(map[string]any{"type": "pong", "ref": nullable(ref)}))
		return
	}
	ev, ok := wsEvents[typ]
	if !ok {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "unknown type %q", typ)))
		return
	}
	if typ == "authenticate" {
		g.authenticate(s, ref, fields)
		return
	}
	if s.participantID == "" {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeUnauthorized, "authenticate first")))
		return
	}
	for _, f := range ev.Required {
		if v, ok := fields[f]; !ok || string(v) == "null" {
			s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "%s is required", f)))
			return
		}
	}
	params := make(map[string]string, len(ev.Params))
	for _, p := range ev.Params {
		var v string
		if err := json.Unmarshal(fields[p], &v); err != nil || v == "" {
			s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "%s must be a non-empty string", p)))
			return
		}
		params[p] = v
	}
	if ev.Service == mesh.ServiceWorld {
		g.worldEvent(s, ref, typ, params["roomId"], fields)
		return
	}
	g.apiEvent(s, ref, ev, params, data)
}

func (g *Gateway) actor(s *socket) *mesh.Actor {
	return &mesh.Actor{ID: s.participantID, TokenID: s.tokenID, TokenExp: s.tokenExp, TokenGen: s.tokenGen, Addr: s.addr}
}

// apiEvent sends a client event to the API service and answers with its result.
func (g *Gateway) apiEvent(s *socket, ref string, ev mesh.WSEvent, params map[string]string, data []byte) {
	if ev.Type == "join_room" {
		// Hold the room's subscription while joining, so no event between the join and the
		// socket entering the room is missed.
		subj := mesh.RoomSubject(params["roomId"])
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RequestTimeout)
		err := g.hub.ref(ctx, subj)
		cancel()
		if err != nil {
			s.send(errorFrame(ref, unavailable("the mesh could not take the request")))
			return
		}
		defer g.hub.unref(subj)
	}
	cmd := mesh.Command{Op: ev.Op, Actor: g.actor(s), Args: mesh.Request{Params: params, Body: data, Addr: s.addr}}
	rep := g.req.do(context.Background(), mesh.StreamAPI, &cmd)
	if rep.Error != nil {
		s.send(errorFrame(ref, rep.Error))
		if rep.Error.Code == mesh.CodeUnauthorized || rep.Error.Code == mesh.CodeBanned {
			s.closeWith(CloseTokenRevoked, rep.Error.Message)
		}
		return
	}
	if ref == "" {
		return
	}
	ack := map[string]any{"type": "ack", "ref": ref}
	switch ev.Type {
	case "send_message", "edit_message", "add_reaction", "remove_reaction":
		var m struct {
			ID  string `json:"id"`
			Seq int64  `json:"seq"`
		}
		_ = json.Unmarshal(rep.Result, &m)
		ack["messageId"] = m.ID
		if ev.Type == "send_message" {
			ack["seq"] = m.Seq
		}
	case "delete_message":
		ack["messageId"] = params["messageId"]
	case "join_room":
		ack["room"] = json.RawMessage(rep.Result)
	}
	s.send(mustJSON(ack))
}

// worldEvent validates typing and move and hands them to the world service.
func (g *Gateway) worldEvent(s *socket, ref, typ, room string, fields map[string]json.RawMessage) {
	var op string
	var body any
	switch typ {
	case "typing":
		var typing bool
		if err := json.Unmarshal(fields["isTyping"], &typing); err != nil {
			s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "isTyping must be a boolean")))
			return
		}
		op, body = mesh.WorldTyping, mesh.WorldTypingArgs{RoomID: room, ParticipantID: s.participantID, IsTyping: typing}
	case "move":
		var x, y float64
		if json.Unmarshal(fields["x"], &x) != nil || json.Unmarshal(fields["y"], &y) != nil ||
			!finite(x) || !finite(y) {
			s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "x and y must be numbers")))
			return
		}
		if math.Abs(x) > mesh.MaxCoordinate || math.Abs(y) > mesh.MaxCoordinate {
			s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "x and y must be within ±%g", mesh.MaxCoordinate)))
			return
		}
		op, body = mesh.WorldMove, mesh.WorldMoveArgs{RoomID: room, ParticipantID: s.participantID, X: x, Y: y}
	}
	if !g.hub.inRoom(s, room) {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeForbidden, "join the room first")))
		return
	}
	if err := g.tellWorld(context.Background(), op, body); err != nil {
		s.send(errorFrame(ref, unavailable("the world could not take the event")))
		return
	}
	if ref != "" {
		s.send(mustJSON(map[string]any{"type": "ack", "ref": ref}))
	}
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// tellWorld sends a world command without waiting.
func (g *Gateway) tellWorld(ctx context.Context, op string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return g.req.tell(ctx, mesh.StreamWorld, &mesh.Command{Op: op, Args: mesh.Request{Body: b}})
}

// authenticate verifies the token, opens the session with the API service, registers the
// socket in the hub, tells the world, and sends auth_ok and the snapshot.
func (g *Gateway) authenticate(s *socket, ref string, fields map[string]json.RawMessage) {
	if s.participantID != "" {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "already authenticated")))
		return
	}
	var token string
	if err := json.Unmarshal(fields["token"], &token); err != nil || token == "" {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeBadRequest, "token is required")))
		return
	}
	claims, err := g.tokens.Verify(token)
	if err != nil {
		s.send(errorFrame(ref, mesh.AsError(err)))
		return
	}
	actor := &mesh.Actor{ID: claims.ParticipantID, TokenID: claims.TokenID, TokenExp: claims.ExpiresAt.Unix(), TokenGen: claims.Generation, Addr: s.addr}
	rep := g.req.do(context.Background(), mesh.StreamAPI, &mesh.Command{Op: mesh.OpSessionOpen, Actor: actor})
	if rep.Error != nil {
		s.send(errorFrame(ref, rep.Error))
		return
	}
	var sess mesh.SessionOpenResult
	if err := json.Unmarshal(rep.Result, &sess); err != nil {
		s.send(errorFrame(ref, mesh.Errorf(mesh.CodeInternal, "bad session")))
		return
	}
	s.participantID, s.tokenID, s.tokenExp, s.tokenGen, s.role = claims.ParticipantID, claims.TokenID, claims.ExpiresAt.Unix(), claims.Generation, sess.Participant.Role
	rooms := make([]string, len(sess.Rooms))
	lastSeq := make(map[string]int64, len(sess.Rooms))
	for i, r := range sess.Rooms {
		rooms[i] = r.ID
		lastSeq[r.ID] = r.LastSeq
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.RequestTimeout)
	defer cancel()
	if err := g.hub.register(ctx, s, rooms, lastSeq); err != nil {
		s.participantID = ""
		s.send(errorFrame(ref, unavailable("the mesh could not take the connection")))
		return
	}
	// Presence and positions come from the world; without it the snapshot still holds.
	world := mesh.WorldConnectResult{Positions: map[string][]mesh.Position{}}
	body, _ := json.Marshal(mesh.WorldConnectArgs{ParticipantID: s.participantID, SocketID: s.id, GatewayID: g.cfg.ID, Rooms: rooms})
	wrep := g.req.do(ctx, mesh.StreamWorld, &mesh.Command{Op: mesh.WorldConnect, Args: mesh.Request{Body: body}})
	if wrep.Error == nil {
		_ = json.Unmarshal(wrep.Result, &world)
	} else {
		g.log.Warn("world did not answer connect", "err", wrep.Error)
	}
	online := map[string]bool{s.participantID: true}
	for _, id := range world.Online {
		online[id] = true
	}
	for i := range sess.Participants {
		if online[sess.Participants[i].ID] {
			sess.Participants[i].Status = mesh.StatusOnline
		} else {
			sess.Participants[i].Status = mesh.StatusOffline
		}
	}
	positions := map[string][]mesh.Position{}
	for _, r := range rooms {
		ps := world.Positions[r]
		if ps == nil {
			ps = []mesh.Position{}
		}
		positions[r] = ps
	}
	frames := [][]byte{
		mustJSON(map[string]any{"type": "auth_ok", "ref": nullable(ref), "participantId": s.participantID, "role": s.role}),
		mustJSON(map[string]any{"type": "snapshot", "rooms": sess.Rooms, "participants": sess.Participants, "positions": positions}),
	}
	if ref != "" {
		frames = append(frames, mustJSON(map[string]any{"type": "ack", "ref": ref, "participantId": s.participantID}))
	}
	g.hub.activate(s, frames...)
	// From now on the socket lives as long as it answers pings.
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * g.cfg.PingInterval))
}

func errorFrame(ref string, e *mesh.Error) []byte {
	f := map[string]any{"type": "error", "code": e.Code, "message": e.Message}
	if ref != "" {
		f["ref"] = ref
	}
	if len(e.Details) > 0 {
		f["details"] = e.Details
	}
	return mustJSON(f)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"type":"error","code":"internal","message":"encode"}`)
	}
	return b
}
