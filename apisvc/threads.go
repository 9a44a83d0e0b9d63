package apisvc

import (
	"context"
	"strconv"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

type threadView struct {
	Root         mesh.Message `json:"root"`
	Replies      int          `json:"replies"`
	LastReplySeq int64        `json:"lastReplySeq"`
	LastReplyAt  mesh.Time    `json:"lastReplyAt"`
}

// threadsList lists a room's threads the actor may see, most recently replied to first; the
// cursor is the last reply's seq of the page's last thread.
func (s *Service) threadsList(ctx context.Context, c *call) (any, error) {
	room, limit, err := s.roomPage(ctx, c)
	if err != nil {
		return nil, err
	}
	before, err := queryInt(c, "cursor")
	if err != nil {
		return nil, err
	}
	threads, err := s.store.ListThreads(ctx, store.ThreadQuery{RoomID: room, Viewer: c.actor.ID, Before: before, Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	out := list[threadView]{Items: make([]threadView, 0, len(threads))}
	for i, t := range threads {
		if i == limit {
			out.NextCursor = strp(strconv.FormatInt(threads[limit-1].LastReplySeq, 10))
			break
		}
		out.Items = append(out.Items, threadView{Root: t.Root, Replies: t.Replies, LastReplySeq: t.LastReplySeq, LastReplyAt: mesh.TimeOf(t.LastReplyAt)})
	}
	return out, nil
}
