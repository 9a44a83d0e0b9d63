package apisvc

import (
	"context"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/rbac"
	"github.com/themesh/mesh/pkg/store"
)

// CloseRemoved is the WebSocket close code for the sockets of a participant who was banned or
// whose account was deactivated.
const CloseRemoved = 4003

func (s *Service) participantsList(ctx context.Context, c *call) (any, error) {
	limit, err := listLimit(c)
	if err != nil {
		return nil, err
	}
	var accs []store.Account
	if q, ok := c.req.Query["q"]; ok {
		// q: display names containing it, for finding someone (mentions, the directory).
		name, err := text("q", q, true, mesh.MaxDisplayNameRunes)
		if err != nil {
			return nil, err
		}
		accs, err = s.store.FindParticipants(ctx, name, c.req.Query["cursor"], limit+1)
		if err != nil {
			return nil, err
		}
	} else if accs, err = s.store.ListParticipants(ctx, c.req.Query["cursor"], limit+1); err != nil {
		return nil, err
	}
	out := list[mesh.Participant]{Items: []mesh.Participant{}}
	if len(accs) > limit {
		accs = accs[:limit]
		out.NextCursor = strp(accs[limit-1].ID)
	}
	emails := s.allowed(ctx, c.actor, rbac.ManageMembers)
	for _, a := range accs {
		out.Items = append(out.Items, s.view(a, emails || a.ID == c.actor.ID))
	}
	return out, nil
}

// outranked loads a participant the actor may act on: someone else, of a strictly lower
// priority.
func (s *Service) outranked(ctx context.Context, c *call) (store.Account, error) {
	id, err := param(c, "participantId")
	if err != nil {
		return store.Account{}, err
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
	return t, nil
}

// banning bans (or lifts the ban on) a participant. A banned participant cannot log in or
// connect, every command of theirs is refused, and their open sockets close.
func (s *Service) banning(ban bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		t, err := s.outranked(ctx, c)
		if err != nil {
			return nil, err
		}
		acc, err := s.store.UpdateParticipant(ctx, t.ID, store.ParticipantUpdate{Banned: &ban})
		if err != nil {
			return nil, err
		}
		if ban {
			s.closeSockets(ctx, t.ID, "banned from this mesh")
		}
		return s.view(acc, s.allowed(ctx, c.actor, rbac.ManageMembers)), nil
	}
}

// activation deactivates (or reactivates) an account: a deactivated one cannot log in or
// connect, and its open sockets close.
func (s *Service) activation(active bool) handler {
	return func(ctx context.Context, c *call) (any, error) {
		t, err := s.outranked(ctx, c)
		if err != nil {
			return nil, err
		}
		off := !active
		acc, err := s.store.UpdateParticipant(ctx, t.ID, store.ParticipantUpdate{Deactivated: &off})
		if err != nil {
			return nil, err
		}
		if off {
			s.closeSockets(ctx, t.ID, "account deactivated")
		}
		return s.view(acc, true), nil
	}
}

// closeSockets closes every socket of a participant, on every gateway.
func (s *Service) closeSockets(ctx context.Context, id, reason string) {
	s.publish(ctx, mesh.ParticipantSubject(id), mesh.Event{
		Type:  "removed",
		Close: &mesh.CloseSpec{Code: CloseRemoved, Reason: reason},
	}, map[string]string{"type": "removed"})
}
