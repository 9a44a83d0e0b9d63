package apisvc

import (
	"context"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/rbac"
	"github.com/themesh/mesh/pkg/store"
)

func (s *Service) messagesList(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.visibleRoom(ctx, c, room); err != nil {
		return nil, err
	}
	after, err := queryInt(c, "after")
	if err != nil {
		return nil, err
	}
	before, err := queryInt(c, "before")
	if err != nil {
		return nil, err
	}
	limit, err := listLimit(c)
	if err != nil {
		return nil, err
	}
	msgs, err := s.store.ListMessages(ctx, store.MessageQuery{
		RoomID: room, Viewer: c.actor.ID, After: after, Before: before, Forward: c.req.Query["after"] != "",
		ThreadID: c.req.Query["threadId"], Limit: limit,
	})
	if err != nil {
		return nil, err
	}
	out := list[mesh.Message]{Items: msgs}
	if out.Items == nil {
		out.Items = []mesh.Message{}
	}
	// nextCursor continues in the query's direction: forwards (after=) when after was given,
	// backwards (before=) otherwise.
	if len(msgs) == limit {
		if c.req.Query["after"] != "" {
			out.NextCursor = strp(strconv.FormatInt(msgs[len(msgs)-1].Seq, 10))
		} else {
			out.NextCursor = strp(strconv.FormatInt(msgs[0].Seq, 10))
		}
	}
	return out, nil
}

type messageInput struct {
	Content     *string  `json:"content"`
	ThreadID    *string  `json:"threadId"`
	To          *string  `json:"to"`
	ClientMsgID *string  `json:"clientMsgId"`
	Attachments []string `json:"attachments"`
}

// content checks a message's content: present and not blank (unless the message carries
// files), within the mesh's size limit.
func (s *Service) content(ctx context.Context, v *string, hasFiles bool) (string, error) {
	if v == nil || strings.TrimSpace(*v) == "" {
		if hasFiles {
			return "", nil
		}
		return "", mesh.Errorf(mesh.CodeBadRequest, "content is required")
	}
	lim, err := s.meshLimits(ctx)
	if err != nil {
		return "", err
	}
	if len(*v) > lim.MaxMessageBytes {
		return "", mesh.Errorf(mesh.CodePayloadTooLarge, "content is larger than %d bytes", lim.MaxMessageBytes).
			WithDetails(map[string]any{"maxBytes": lim.MaxMessageBytes})
	}
	if !utf8.ValidString(*v) {
		return "", mesh.Errorf(mesh.CodeBadRequest, "content must be UTF-8")
	}
	return *v, nil
}

func (s *Service) messagesSend(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	var in messageInput
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if len(in.Attachments) > mesh.MaxAttachments {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "a message carries at most %d files", mesh.MaxAttachments)
	}
	content, err := s.content(ctx, in.Content, len(in.Attachments) > 0)
	if err != nil {
		return nil, err
	}
	return s.post(ctx, c, room, content, in, nil)
}

// post stores a new message (or feed event) in room and announces it: the actor must be a
// member not muted, the room not archived; a thread must be a root of the room (and a locked
// one needs lock_threads); a whisper needs send_whispers and an addressee in the room;
// attachments must be the actor's files of the room.
func (s *Service) post(ctx context.Context, c *call, room, content string, in messageInput, event *mesh.FeedEvent) (any, error) {
	m := mesh.Message{
		ID: c.entityID(), RoomID: room, AuthorID: c.actor.ID, Content: content,
		CreatedAt: mesh.TimeOf(c.now), Reactions: map[string][]string{}, Event: event,
	}
	if in.ClientMsgID != nil && *in.ClientMsgID != "" {
		if len(*in.ClientMsgID) > mesh.MaxClientMsgIDBytes {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "clientMsgId is longer than %d bytes", mesh.MaxClientMsgIDBytes)
		}
		m.ClientMsgID = in.ClientMsgID
	}
	if err := s.postable(ctx, c, room); err != nil {
		return nil, err
	}
	if in.ThreadID != nil && *in.ThreadID != "" {
		root, err := s.store.Message(ctx, *in.ThreadID)
		if err != nil || root.RoomID != room || !root.VisibleTo(c.actor.ID) {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "threadId is not a message of this room")
		}
		if root.ThreadID != nil {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "threadId must be a thread's root message")
		}
		if root.Locked && !s.allowed(ctx, c.actor, rbac.LockThreads) {
			return nil, mesh.Errorf(mesh.CodeForbidden, "the thread is locked")
		}
		m.ThreadID = in.ThreadID
	}
	if in.To != nil && *in.To != "" {
		if !s.allowed(ctx, c.actor, rbac.SendWhispers) {
			return nil, mesh.Errorf(mesh.CodeForbidden, "your role may not send_whispers")
		}
		if *in.To == c.actor.ID {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "you cannot whisper to yourself")
		}
		ok, err := s.store.IsMember(ctx, room, *in.To)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "a whisper's addressee must be a member of the room")
		}
		m.To = in.To
	}
	var err error
	if m.Attachments, err = s.attachments(ctx, c, m.ID, room, in.Attachments); err != nil {
		return nil, err
	}
	msg, created, err := s.store.CreateMessage(ctx, m)
	if err != nil {
		return nil, err
	}
	if len(msg.Attachments) > 0 && (created || c.redelivered) {
		ids := make([]string, len(msg.Attachments))
		for i, f := range msg.Attachments {
			ids[i] = f.ID
		}
		// A conflict here means another message of the same sender took a file between the
		// check and now: both messages show it, and it stays with the first.
		if err := s.store.AttachFiles(ctx, msg, ids); err != nil && !mesh.IsCode(err, mesh.CodeConflict) {
			return nil, err
		}
	}
	if created || c.redelivered {
		s.messageEvent(ctx, "message", &msg, messageFrame{Type: "message", Message: &msg})
	}
	return msg, nil
}

// postable checks that the actor may post in the room (a message, a file, a feed event): a
// member, the room not archived, the actor not muted. A private room it is not in is not found.
func (s *Service) postable(ctx context.Context, c *call, room string) error {
	acc, err := s.store.Access(ctx, room, c.actor.ID)
	if err != nil {
		return err
	}
	switch {
	case acc.Room.Private && !acc.Member:
		return mesh.Errorf(mesh.CodeNotFound, "no such room")
	case !acc.Member:
		return mesh.Errorf(mesh.CodeForbidden, "join the room to post there")
	case acc.Room.Archived:
		return mesh.Errorf(mesh.CodeForbidden, "the room is archived")
	case acc.MutedUntil.After(c.now):
		return mesh.Errorf(mesh.CodeMuted, "you are muted in this room").
			WithDetails(map[string]any{"until": mesh.TimeOf(acc.MutedUntil)})
	}
	return nil
}

// ownMessage loads a message the actor may change: its own, or another's with
// manage_messages and a higher role than the author's.
func (s *Service) ownMessage(ctx context.Context, c *call) (mesh.Message, error) {
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
	if _, _, err := s.visibleRoom(ctx, c, m.RoomID); err != nil {
		return mesh.Message{}, mesh.Errorf(mesh.CodeNotFound, "no such message")
	}
	if m.AuthorID == c.actor.ID {
		return m, nil
	}
	if !s.allowed(ctx, c.actor, rbac.ManageMessages) {
		return mesh.Message{}, mesh.Errorf(mesh.CodeForbidden, "only the author may change this message")
	}
	author, err := s.store.ParticipantByID(ctx, m.AuthorID)
	if err == nil && !rbac.Outranks(s.resolver(ctx), c.actor.Role, author.Role) {
		return mesh.Message{}, mesh.Errorf(mesh.CodeForbidden, "you need a higher role than the author's")
	}
	return m, nil
}

func (s *Service) messagesEdit(ctx context.Context, c *call) (any, error) {
	var in messageInput
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.Attachments != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "a message's files cannot be changed: delete it and send another")
	}
	m, err := s.ownMessage(ctx, c)
	if err != nil {
		return nil, err
	}
	if m.Event != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "a feed event cannot be edited: post another")
	}
	content, err := s.content(ctx, in.Content, len(m.Attachments) > 0)
	if err != nil {
		return nil, err
	}
	if m.Deleted {
		return nil, mesh.Errorf(mesh.CodeConflict, "the message was deleted")
	}
	m, err = s.store.EditMessage(ctx, m.ID, content, c.now)
	if err != nil {
		return nil, err
	}
	s.messageEvent(ctx, "message_edited", &m, messageFrame{Type: "message_edited", Message: &m})
	return m, nil
}

func (s *Service) messagesDelete(ctx context.Context, c *call) (any, error) {
	m, err := s.ownMessage(ctx, c)
	if err != nil {
		return nil, err
	}
	if m.Deleted {
		return nil, nil
	}
	// The files first: a retry after a failure part-way finds the message still there.
	if err := s.deleteFiles(ctx, m.Attachments); err != nil {
		return nil, err
	}
	m, err = s.store.DeleteMessage(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	s.messageEvent(ctx, "message_deleted", &m, messageDeletedFrame{Type: "message_deleted", RoomID: m.RoomID, MessageID: m.ID})
	return nil, nil
}

// reactable loads a message the actor may react to with emoji: a valid emoji on a message
// it sees, in a room it is a member of, not deleted.
func (s *Service) reactable(ctx context.Context, c *call, emoji string) (mesh.Message, error) {
	if err := validEmoji(emoji); err != nil {
		return mesh.Message{}, err
	}
	return s.memberMessage(ctx, c)
}

// validEmoji accepts a short string without spaces or control characters (an emoji or a
// :shortcode:).
func validEmoji(e string) error {
	if e == "" || len(e) > mesh.MaxEmojiBytes || !utf8.ValidString(e) {
		return mesh.Errorf(mesh.CodeBadRequest, "emoji must be 1 to %d bytes of UTF-8", mesh.MaxEmojiBytes)
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return mesh.Errorf(mesh.CodeBadRequest, "emoji must not contain spaces or control characters")
		}
	}
	return nil
}

func (s *Service) reactionAdd(ctx context.Context, c *call) (any, error) {
	var in struct {
		Emoji string `json:"emoji"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	m, err := s.reactable(ctx, c, in.Emoji)
	if err != nil {
		return nil, err
	}
	m, added, err := s.store.AddReaction(ctx, m.ID, in.Emoji, c.actor.ID)
	if err != nil {
		return nil, err
	}
	if added {
		s.messageEvent(ctx, "reaction_added", &m, reactionFrame{Type: "reaction_added", RoomID: m.RoomID, MessageID: m.ID, Emoji: in.Emoji, ParticipantID: c.actor.ID})
	}
	return m, nil
}

func (s *Service) reactionRemove(ctx context.Context, c *call) (any, error) {
	emoji := c.req.Params["emoji"]
	m, err := s.reactable(ctx, c, emoji)
	if err != nil {
		return nil, err
	}
	m, removed, err := s.store.RemoveReaction(ctx, m.ID, emoji, c.actor.ID)
	if err != nil {
		return nil, err
	}
	if removed {
		s.messageEvent(ctx, "reaction_removed", &m, reactionFrame{Type: "reaction_removed", RoomID: m.RoomID, MessageID: m.ID, Emoji: emoji, ParticipantID: c.actor.ID})
	}
	return m, nil
}
