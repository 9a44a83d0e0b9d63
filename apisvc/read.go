package apisvc

import (
	"context"

	"github.com/themesh/mesh/pkg/mesh"
)

// readMark records how far the actor has read a room it is in. Marks only move forward (a
// second device that read less does not pull the first back); a seq past the room's last is
// taken as its last. The actor's sockets (its other devices) hear the mark as it stands.
func (s *Service) readMark(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	var in struct {
		Seq int64 `json:"seq"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.Seq < 1 {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "seq must be at least 1")
	}
	acc, err := s.store.Access(ctx, room, c.actor.ID)
	if err != nil {
		return nil, err
	}
	switch {
	case acc.Room.Private && !acc.Member:
		return nil, mesh.Errorf(mesh.CodeNotFound, "no such room")
	case !acc.Member:
		return nil, mesh.Errorf(mesh.CodeForbidden, "join the room to keep a read mark there")
	}
	last, err := s.store.LastSeq(ctx, room)
	if err != nil {
		return nil, err
	}
	if last == 0 {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "the room has no messages to read")
	}
	seq, err := s.store.SetReadMark(ctx, room, c.actor.ID, min(in.Seq, last))
	if err != nil {
		return nil, err
	}
	out := readMarkFrame{Type: "read", RoomID: room, Seq: seq}
	s.publish(ctx, mesh.ParticipantSubject(c.actor.ID), mesh.Event{Type: "read"}, out)
	return mesh.ReadMark{RoomID: room, Seq: seq}, nil
}

type readMarkFrame struct {
	Type   string `json:"type"`
	RoomID string `json:"roomId"`
	Seq    int64  `json:"seq"`
}
