package apisvc

import (
	"context"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/rbac"
	"github.com/themesh/mesh/pkg/store"
)

// visibleRoom returns the room if the actor may see it: public rooms to everyone with
// view_rooms, private rooms to their members only. A private room is not_found to others, so
// its name never reaches them.
func (s *Service) visibleRoom(ctx context.Context, c *call, id string) (mesh.Room, bool, error) {
	room, err := s.store.Room(ctx, id)
	if err != nil {
		return mesh.Room{}, false, err
	}
	member, err := s.store.IsMember(ctx, id, c.actor.ID)
	if err != nil {
		return mesh.Room{}, false, err
	}
	if room.Private && !member {
		return mesh.Room{}, false, mesh.Errorf(mesh.CodeNotFound, "no such room")
	}
	return room, member, nil
}

func roomParam(c *call) (string, error) { return param(c, "roomId") }

// roomPage reads what a list of a room's things starts with: the room (one the actor may
// see) and the page's limit.
func (s *Service) roomPage(ctx context.Context, c *call) (room string, limit int, err error) {
	if room, err = roomParam(c); err != nil {
		return "", 0, err
	}
	if _, _, err = s.visibleRoom(ctx, c, room); err != nil {
		return "", 0, err
	}
	if limit, err = listLimit(c); err != nil {
		return "", 0, err
	}
	return room, limit, nil
}

func (s *Service) roomsList(ctx context.Context, c *call) (any, error) {
	limit, err := listLimit(c)
	if err != nil {
		return nil, err
	}
	q := store.RoomQuery{Viewer: c.actor.ID, After: c.req.Query["cursor"], Limit: limit + 1, MemberOnly: c.req.Query["member"] == "true"}
	if v, ok := c.req.Query["q"]; ok {
		// q: rooms whose name or topic contains it (a room directory).
		if q.Text, err = text("q", v, true, mesh.MaxRoomNameRunes); err != nil {
			return nil, err
		}
	}
	rooms, err := s.store.ListRooms(ctx, q)
	if err != nil {
		return nil, err
	}
	out := list[mesh.Room]{Items: rooms}
	if len(rooms) > limit {
		out.Items = rooms[:limit]
		out.NextCursor = strp(rooms[limit-1].ID)
	}
	if out.Items == nil {
		out.Items = []mesh.Room{}
	}
	return out, nil
}

type roomInput struct {
	Name     *string `json:"name"`
	Topic    *string `json:"topic"`
	Private  *bool   `json:"private"`
	Archived *bool   `json:"archived"`
}

func (s *Service) roomsCreate(ctx context.Context, c *call) (any, error) {
	var in roomInput
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	var name, topic string
	var err error
	if in.Name != nil {
		name = *in.Name
	}
	if name, err = text("name", name, true, mesh.MaxRoomNameRunes); err != nil {
		return nil, err
	}
	if in.Topic != nil {
		if topic, err = text("topic", *in.Topic, false, mesh.MaxTopicRunes); err != nil {
			return nil, err
		}
	}
	private := in.Private != nil && *in.Private
	if private && !s.allowed(ctx, c.actor, rbac.CreatePrivate) {
		return nil, mesh.Errorf(mesh.CodeForbidden, "your role may not create_private_rooms")
	}
	id := c.entityID()
	if c.redelivered {
		// The first run may have created it before its worker died.
		if r, err := s.store.Room(ctx, id); err == nil && r.CreatedBy == c.actor.ID {
			return r, nil
		}
	}
	room, err := s.store.CreateRoom(ctx, mesh.Room{
		ID: id, Name: name, Topic: topic, Private: private,
		CreatedBy: c.actor.ID, CreatedAt: mesh.TimeOf(c.now),
	})
	if err != nil {
		return nil, err
	}
	s.joined(ctx, room.ID, s.view(*c.actor, false))
	return room, nil
}

func (s *Service) roomsGet(ctx context.Context, c *call) (any, error) {
	id, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	room, _, err := s.visibleRoom(ctx, c, id)
	return room, err
}

func (s *Service) roomsUpdate(ctx context.Context, c *call) (any, error) {
	id, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.visibleRoom(ctx, c, id); err != nil {
		return nil, err
	}
	var in roomInput
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	var u store.RoomUpdate
	if in.Name != nil {
		n, err := text("name", *in.Name, true, mesh.MaxRoomNameRunes)
		if err != nil {
			return nil, err
		}
		u.Name = &n
	}
	if in.Topic != nil {
		t, err := text("topic", *in.Topic, false, mesh.MaxTopicRunes)
		if err != nil {
			return nil, err
		}
		u.Topic = &t
	}
	if in.Private != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "a room's privacy cannot change")
	}
	if in.Archived != nil {
		if !s.allowed(ctx, c.actor, rbac.ArchiveRooms) {
			return nil, mesh.Errorf(mesh.CodeForbidden, "your role may not archive_rooms")
		}
		u.Archived = in.Archived
	}
	room, err := s.store.UpdateRoom(ctx, id, u)
	if err != nil {
		return nil, err
	}
	s.publish(ctx, mesh.RoomSubject(id), mesh.Event{Type: "room_updated", RoomID: id}, roomFrame{Type: "room_updated", Room: room})
	return room, nil
}

func (s *Service) roomsDelete(ctx context.Context, c *call) (any, error) {
	id, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.visibleRoom(ctx, c, id); err != nil {
		return nil, err
	}
	members, err := s.store.Members(ctx, id)
	if err != nil {
		return nil, err
	}
	files, err := s.roomFiles(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteRoom(ctx, id); err != nil {
		return nil, err
	}
	s.deleteBlobs(ctx, files)
	s.publish(ctx, mesh.RoomSubject(id), mesh.Event{Type: "room_deleted", RoomID: id, Left: "*"}, roomDeletedFrame{Type: "room_deleted", RoomID: id})
	for _, m := range members {
		s.tellWorld(ctx, mesh.WorldMembership, mesh.WorldMembershipArgs{RoomID: id, ParticipantID: m, Joined: false})
	}
	return nil, nil
}

func (s *Service) roomsJoin(ctx context.Context, c *call) (any, error) {
	id, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	room, member, err := s.visibleRoom(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if member {
		return room, nil
	}
	if room.Archived {
		return nil, mesh.Errorf(mesh.CodeForbidden, "the room is archived")
	}
	if err := s.addMember(ctx, &room, *c.actor); err != nil {
		return nil, err
	}
	return room, nil
}

// addMember makes p a member of room; if it was not one, the room's count goes up and the
// join is announced.
func (s *Service) addMember(ctx context.Context, room *mesh.Room, p store.Account) error {
	added, err := s.store.AddMember(ctx, room.ID, p.ID)
	if err != nil || !added {
		return err
	}
	room.MemberCount++
	s.joined(ctx, room.ID, s.view(p, false))
	return nil
}

func (s *Service) roomsLeave(ctx context.Context, c *call) (any, error) {
	id, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.visibleRoom(ctx, c, id); err != nil {
		return nil, err
	}
	removed, err := s.store.RemoveMember(ctx, id, c.actor.ID)
	if err != nil {
		return nil, err
	}
	if removed {
		s.left(ctx, id, c.actor.ID, false)
	}
	return nil, nil
}

func (s *Service) roomsMembers(ctx context.Context, c *call) (any, error) {
	id, limit, err := s.roomPage(ctx, c)
	if err != nil {
		return nil, err
	}
	ids, err := s.store.Members(ctx, id)
	if err != nil {
		return nil, err
	}
	// The cursor is the last member id of the previous page (members are in joining order).
	if cur := c.req.Query["cursor"]; cur != "" {
		for i, m := range ids {
			if m == cur {
				ids = ids[i+1:]
				break
			}
		}
	}
	out := list[mesh.Participant]{Items: []mesh.Participant{}}
	if len(ids) > limit {
		out.NextCursor = strp(ids[limit-1])
		ids = ids[:limit]
	}
	accs, err := s.store.ParticipantsByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]store.Account, len(accs))
	for _, a := range accs {
		byID[a.ID] = a
	}
	seeEmails := s.allowed(ctx, c.actor, rbac.ManageMembers)
	for _, m := range ids {
		if a, ok := byID[m]; ok {
			out.Items = append(out.Items, s.view(a, seeEmails || a.ID == c.actor.ID))
		}
	}
	return out, nil
}

// target loads the participant an actor acts on in a room: it must be a member, someone
// else, and of a strictly lower priority.
func (s *Service) target(ctx context.Context, c *call, room, id string) (store.Account, error) {
	if id == "" {
		return store.Account{}, mesh.Errorf(mesh.CodeBadRequest, "participantId is required")
	}
	if id == c.actor.ID {
		return store.Account{}, mesh.Errorf(mesh.CodeBadRequest, "you cannot do that to yourself")
	}
	t, err := s.store.ParticipantByID(ctx, id)
	if err != nil {
		return store.Account{}, err
	}
	if !rbac.Outranks(s.resolver(ctx), c.actor.Role, t.Role) {
		return store.Account{}, mesh.Errorf(mesh.CodeForbidden, "you need a higher role than %s's", t.DisplayName)
	}
	member, err := s.store.IsMember(ctx, room, id)
	if err != nil {
		return store.Account{}, err
	}
	if !member {
		return store.Account{}, mesh.Errorf(mesh.CodeNotFound, "that participant is not in this room")
	}
	return t, nil
}

func (s *Service) kick(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.visibleRoom(ctx, c, room); err != nil {
		return nil, err
	}
	var in struct {
		ParticipantID string `json:"participantId"`
		Reason        string `json:"reason"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	reason, err := text("reason", in.Reason, false, 500)
	if err != nil {
		return nil, err
	}
	t, err := s.target(ctx, c, room, in.ParticipantID)
	if err != nil {
		return nil, err
	}
	removed, err := s.store.RemoveMember(ctx, room, t.ID)
	if err != nil {
		return nil, err
	}
	if removed {
		s.publish(ctx, mesh.ParticipantSubject(t.ID), mesh.Event{Type: "kicked", RoomID: room},
			kickedFrame{Type: "kicked", RoomID: room, By: c.actor.ID, Reason: reason})
		s.left(ctx, room, t.ID, true)
	}
	return nil, nil
}

// MaxMuteSeconds bounds a mute (30 days).
const MaxMuteSeconds = 30 * 24 * 3600

func (s *Service) mute(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.visibleRoom(ctx, c, room); err != nil {
		return nil, err
	}
	var in struct {
		ParticipantID   string `json:"participantId"`
		DurationSeconds *int64 `json:"durationSeconds"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.DurationSeconds == nil || *in.DurationSeconds < 0 || *in.DurationSeconds > MaxMuteSeconds {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "durationSeconds must be between 0 (unmute) and %d", MaxMuteSeconds)
	}
	t, err := s.target(ctx, c, room, in.ParticipantID)
	if err != nil {
		return nil, err
	}
	until := c.now.Add(time.Duration(*in.DurationSeconds) * time.Second).Truncate(time.Millisecond)
	if err := s.store.SetMute(ctx, room, t.ID, until); err != nil {
		return nil, err
	}
	// The muted participant and the room's moderators (members who may mute) hear of it.
	only := []string{t.ID}
	members, err := s.store.Members(ctx, room)
	if err != nil {
		return nil, err
	}
	accs, err := s.store.ParticipantsByIDs(ctx, members)
	if err != nil {
		return nil, err
	}
	for _, a := range accs {
		if a.ID != t.ID && rbac.Allowed(s.resolver(ctx), a.Role, rbac.MuteMembers) {
			only = append(only, a.ID)
		}
	}
	s.publish(ctx, mesh.RoomSubject(room), mesh.Event{Type: "muted", RoomID: room, Only: only},
		mutedFrame{Type: "muted", RoomID: room, ParticipantID: t.ID, Until: mesh.TimeOf(until)})
	return nil, nil
}

// invite brings a participant into a room: the inviter must be a member (of a private room,
// the only way in), the room not archived. The invited participant joins at once and hears it
// like any join.
func (s *Service) invite(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	r, member, err := s.visibleRoom(ctx, c, room)
	if err != nil {
		return nil, err
	}
	if !member {
		return nil, mesh.Errorf(mesh.CodeForbidden, "join the room to invite others")
	}
	if r.Archived {
		return nil, mesh.Errorf(mesh.CodeForbidden, "the room is archived")
	}
	var in struct {
		ParticipantID string `json:"participantId"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.ParticipantID == "" {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "participantId is required")
	}
	t, err := s.store.ParticipantByID(ctx, in.ParticipantID)
	if err != nil {
		return nil, err
	}
	if t.Banned || t.Deactivated {
		return nil, mesh.Errorf(mesh.CodeConflict, "%s cannot join rooms", t.DisplayName)
	}
	if err := s.addMember(ctx, &r, t); err != nil {
		return nil, err
	}
	return r, nil
}
