package apisvc

import (
	"context"
	"encoding/json"

	"github.com/themesh/mesh/pkg/mesh"
)

// Frames the API service sends to sockets (PROTOCOL.md, "WebSocket").
type (
	messageFrame struct {
		Type    string        `json:"type"`
		Message *mesh.Message `json:"message"`
	}
	messageDeletedFrame struct {
		Type      string `json:"type"`
		RoomID    string `json:"roomId"`
		MessageID string `json:"messageId"`
	}
	reactionFrame struct {
		Type          string `json:"type"`
		RoomID        string `json:"roomId"`
		MessageID     string `json:"messageId"`
		Emoji         string `json:"emoji"`
		ParticipantID string `json:"participantId"`
	}
	joinedFrame struct {
		Type        string           `json:"type"`
		RoomID      string           `json:"roomId"`
		Participant mesh.Participant `json:"participant"`
	}
	leftFrame struct {
		Type          string `json:"type"`
		RoomID        string `json:"roomId"`
		ParticipantID string `json:"participantId"`
		Kicked        bool   `json:"kicked,omitempty"`
	}
	kickedFrame struct {
		Type   string `json:"type"`
		RoomID string `json:"roomId"`
		By     string `json:"by"`
		Reason string `json:"reason"`
	}
	mutedFrame struct {
		Type          string    `json:"type"`
		RoomID        string    `json:"roomId"`
		ParticipantID string    `json:"participantId"`
		Until         mesh.Time `json:"until"`
	}
	roomFrame struct {
		Type string    `json:"type"`
		Room mesh.Room `json:"room"`
	}
	roomDeletedFrame struct {
		Type   string `json:"type"`
		RoomID string `json:"roomId"`
	}
)

// publish sends ev (with frame encoded into it) on subject. Pub/sub is at most once: a lost
// event is recovered by clients from the store (seq), so failures are logged, not returned.
func (s *Service) publish(ctx context.Context, subject string, ev mesh.Event, frame any) {
	f, err := json.Marshal(frame)
	if err != nil {
		s.log.Error("encode frame", "type", ev.Type, "err", err)
		return
	}
	ev.Frame = f
	b, err := json.Marshal(ev)
	if err != nil {
		s.log.Error("encode event", "type", ev.Type, "err", err)
		return
	}
	if err := s.bus.Publish(ctx, subject, b); err != nil {
		s.log.Warn("publish event", "subject", subject, "type", ev.Type, "err", err)
	}
}

// messageEvent publishes a message event of m's room to those who may see it.
func (s *Service) messageEvent(ctx context.Context, typ string, m *mesh.Message, frame any) {
	ev := mesh.Event{Type: typ, RoomID: m.RoomID}
	if typ == "message" {
		ev.Seq = m.Seq
	}
	if m.To != nil {
		ev.Only = []string{m.AuthorID, *m.To}
	}
	s.publish(ctx, mesh.RoomSubject(m.RoomID), ev, frame)
}

// tellWorld sends a command to the world service, fire and forget (it is on a stream, so it
// is not lost).
func (s *Service) tellWorld(ctx context.Context, opName string, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		return
	}
	cmd, err := json.Marshal(mesh.Command{ID: newID(), Op: opName, Args: mesh.Request{Body: b}})
	if err != nil {
		return
	}
	if _, err := s.bus.Append(ctx, mesh.StreamWorld, cmd); err != nil {
		s.log.Warn("tell world", "op", opName, "err", err)
	}
}

// joined announces that p joined room: to p's own sockets (which enter the room) and to the
// room's other members.
func (s *Service) joined(ctx context.Context, room string, p mesh.Participant) {
	f := joinedFrame{Type: "participant_joined", RoomID: room, Participant: p.Public()}
	s.publish(ctx, mesh.ParticipantSubject(p.ID), mesh.Event{Type: f.Type, RoomID: room, Joined: true}, f)
	s.publish(ctx, mesh.RoomSubject(room), mesh.Event{Type: f.Type, RoomID: room, Except: p.ID}, f)
	s.tellWorld(ctx, mesh.WorldMembership, mesh.WorldMembershipArgs{RoomID: room, ParticipantID: p.ID, Joined: true})
}

// left announces that participant id left room (kicked or not); its sockets leave the room
// after they get the frame.
func (s *Service) left(ctx context.Context, room, id string, kicked bool) {
	f := leftFrame{Type: "participant_left", RoomID: room, ParticipantID: id, Kicked: kicked}
	s.publish(ctx, mesh.RoomSubject(room), mesh.Event{Type: f.Type, RoomID: room, Left: id}, f)
	s.tellWorld(ctx, mesh.WorldMembership, mesh.WorldMembershipArgs{RoomID: room, ParticipantID: id, Joined: false})
}
