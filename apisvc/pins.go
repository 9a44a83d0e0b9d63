package apisvc

import (
	"context"

	"github.com/themesh/mesh/pkg/mesh"
)

// memberMessage loads a message the actor sees, in a room it is a member of.
func (s *Service) memberMessage(ctx context.Context, c *call) (mesh.Message, error) {
	id, err := param(c, "messageId")
	if err != nil {
		return mesh.Message{}, err
	}
	m, err := s.store.Message(ctx, id)
	if err != nil {
		return mesh.Message{}, err
	}
	if !m.VisibleTo(c.actor.ID) {
		return mesh.Message{}, mesh.Errorf(mesh.CodeNotFound, "no such message")
	}
	acc, err := s.store.Access(ctx, m.RoomID, c.actor.ID)
	if err != nil && !mesh.IsCode(err, mesh.CodeNotFound) {
		return mesh.Message{}, err
	}
	if err != nil || (acc.Room.Private && !acc.Member) {
		return mesh.Message{}, mesh.Errorf(mesh.CodeNotFound, "no such message")
	}
	if !acc.Member {
		return mesh.Message{}, mesh.Errorf(mesh.CodeForbidden, "join the room first")
	}
	if m.Deleted {
		return mesh.Message{}, mesh.Errorf(mesh.CodeConflict, "the message was deleted")
	}
	return m, nil
}

type pinFrame struct {
	Type      string `json:"type"`
	RoomID    string `json:"roomId"`
	MessageID string `json:"messageId"`
	Pinned    bool   `json:"pinned"`
	By        string `json:"by"`
}

type lockFrame struct {
	Type      string `json:"type"`
	RoomID    string `json:"roomId"`
	MessageID string `json:"messageId"`
	Locked    bool   `json:"locked"`
	By        string `json:"by"`
}

// pinning pins (or unpins) a message; the room hears message_pinned (or message_unpinned).
func (s *Service) pinning(pin bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		m, err := s.memberMessage(ctx, c)
		if err != nil {
			return nil, err
		}
		if m.Pinned == pin {
			return m, nil
		}
		if m, err = s.store.SetPinned(ctx, m.ID, pin); err != nil {
			return nil, err
		}
		typ := "message_pinned"
		if !pin {
			typ = "message_unpinned"
		}
		s.messageEvent(ctx, typ, &m, pinFrame{Type: typ, RoomID: m.RoomID, MessageID: m.ID, Pinned: pin, By: c.actor.ID})
		return m, nil
	}
}

func (s *Service) pinsList(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.visibleRoom(ctx, c, room); err != nil {
		return nil, err
	}
	msgs, err := s.store.ListPinned(ctx, room, c.actor.ID)
	if err != nil {
		return nil, err
	}
	if msgs == nil {
		msgs = []mesh.Message{}
	}
	return list[mesh.Message]{Items: msgs}, nil
}

// locking locks (or unlocks) a thread: only its root can be locked; the room hears
// thread_locked (or thread_unlocked).
func (s *Service) locking(lock bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		m, err := s.memberMessage(ctx, c)
		if err != nil {
			return nil, err
		}
		if m.ThreadID != nil {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "only a thread's root message can be locked")
		}
		if m.Locked == lock {
			return m, nil
		}
		if m, err = s.store.SetLocked(ctx, m.ID, lock); err != nil {
			return nil, err
		}
		typ := "thread_locked"
		if !lock {
			typ = "thread_unlocked"
		}
		s.messageEvent(ctx, typ, &m, lockFrame{Type: typ, RoomID: m.RoomID, MessageID: m.ID, Locked: lock, By: c.actor.ID})
		return m, nil
	}
}
