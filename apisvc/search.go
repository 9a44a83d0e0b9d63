package apisvc

import (
	"context"
	"unicode/utf8"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// maxSearchRooms bounds the rooms one search looks in.
const maxSearchRooms = 1000

// search finds messages containing q in the rooms the actor may see (public rooms and its
// private ones; whispers only its own), or in one of them (roomId), newest first.
func (s *Service) search(ctx context.Context, c *call) (any, error) {
	q := c.req.Query["q"]
	if q == "" || utf8.RuneCountInString(q) > 200 {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "q must be 1 to 200 characters")
	}
	limit, err := listLimit(c)
	if err != nil {
		return nil, err
	}
	var rooms []string
	if id := c.req.Query["roomId"]; id != "" {
		if _, _, err := s.visibleRoom(ctx, c, id); err != nil {
			return nil, err
		}
		rooms = []string{id}
	} else {
		visible, err := s.store.ListRooms(ctx, store.RoomQuery{Viewer: c.actor.ID, Limit: maxSearchRooms})
		if err != nil {
			return nil, err
		}
		for _, r := range visible {
			rooms = append(rooms, r.ID)
		}
	}
	msgs, err := s.store.SearchMessages(ctx, store.SearchQuery{
		Text: q, Rooms: rooms, Viewer: c.actor.ID, Before: c.req.Query["cursor"], Limit: limit,
	})
	if err != nil {
		return nil, err
	}
	out := list[mesh.Message]{Items: msgs}
	if out.Items == nil {
		out.Items = []mesh.Message{}
	}
	if len(msgs) == limit {
		out.NextCursor = strp(msgs[len(msgs)-1].ID)
	}
	return out, nil
}
