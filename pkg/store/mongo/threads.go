package mongo

import (
	"cmp"
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// replyDoc is what ListThreads reads of a reply.
type replyDoc struct {
	Thread    string        `bson:"thread"`
	Seq       int64         `bson:"seq"`
	CreatedAt bson.DateTime `bson:"createdAt"`
}

// ListThreads lists a room's threads, most recently replied to first; see store.ThreadQuery.
//
// FerretDB v1's aggregation is too limited to group and join there (no $lookup), so it is
// plain finds: one reads the room's replies the viewer may see that are not deleted (through
// the room_1_thread_1 index on MongoDB), only their thread, seq and creation time; they are
// grouped here by thread, the threads past the Before cursor dropped, and the rest sorted by
// their last reply; then one $in query reads the roots of the first Limit threads, keeping
// those in the room that the viewer may see, and one their reactions. Should some roots not
// be kept, the next threads' roots are read the same way until Limit is reached.
//
// Its cost grows with the room's replies (all of them are read, whatever Limit is), and, on
// FerretDB v1, with all the messages of every room: its explain shows both finds as scans of
// the collection (no filter pushdown, not even of the $in on _id). BenchmarkListThreads, on
// FerretDB: about 230 ms for a 2,000-message room, where ListMessages takes about 120 ms.
//
// A reply is deleted when its document says so: during a DeleteMessage racing with an edit
// (see EditMessage), it may be counted for a moment, as ListMessages shows it undeleted then.
func (s *Store) ListThreads(ctx context.Context, q store.ThreadQuery) ([]store.ThreadSummary, error) {
	out, err := s.listThreads(ctx, q)
	return out, wrap("list threads", err)
}

func (s *Store) listThreads(ctx context.Context, q store.ThreadQuery) ([]store.ThreadSummary, error) {
	room, found, err := s.roomByID(ctx, q.RoomID)
	if err != nil {
		return nil, err
	}
	if !found {
		return []store.ThreadSummary{}, nil
	}
	filter := bson.D{
		{Key: "room", Value: room.Key},
		{Key: "thread", Value: bson.D{{Key: "$ne", Value: nil}}},
		{Key: "deleted", Value: false},
		visibleTo(q.Viewer),
	}
	replies, err := findAll[replyDoc](ctx, s.messages, filter, options.Find().SetProjection(bson.D{
		{Key: "_id", Value: 0}, {Key: "thread", Value: 1}, {Key: "seq", Value: 1}, {Key: "createdAt", Value: 1},
	}))
	if err != nil {
		return nil, err
	}
	byThread := map[string]*store.ThreadSummary{}
	for _, r := range replies {
		th := byThread[r.Thread]
		if th == nil {
			th = &store.ThreadSummary{}
			byThread[r.Thread] = th
		}
		th.Replies++
		if r.Seq > th.LastReplySeq {
			th.LastReplySeq, th.LastReplyAt = r.Seq, meshTime(r.CreatedAt).Time
		}
	}
	next := make([]string, 0, len(byThread)) // the threads to list, latest first
	for id, th := range byThread {
		if q.Before <= 0 || th.LastReplySeq < q.Before {
			next = append(next, id)
		}
	}
	slices.SortFunc(next, func(a, b string) int {
		return cmp.Compare(byThread[b].LastReplySeq, byThread[a].LastReplySeq)
	})

	limit := lookAheadLimit(q.Limit)
	out := make([]store.ThreadSummary, 0, min(limit, len(next)))
	for len(next) > 0 && len(out) < limit {
		batch := next[:min(limit-len(out), len(next))]
		next = next[len(batch):]
		docs, err := findAll[messageDoc](ctx, s.messages, bson.D{
			{Key: "_id", Value: bson.D{{Key: "$in", Value: batch}}},
			{Key: "room", Value: room.Key},
			visibleTo(q.Viewer),
		})
		if err != nil {
			return nil, err
		}
		roots, err := s.withAllReactions(ctx, docs)
		if err != nil {
			return nil, err
		}
		byID := make(map[string]mesh.Message, len(roots))
		for _, m := range roots {
			byID[m.ID] = m
		}
		for _, id := range batch {
			if root, ok := byID[id]; ok {
				th := *byThread[id]
				th.Root = root
				out = append(out, th)
			}
		}
	}
	return out, nil
}

// visibleTo is the filter of the messages viewer may see: those that are not whispers, and the
// whispers viewer wrote or is the addressee of (none for an empty viewer).
func visibleTo(viewer string) bson.E {
	if viewer == "" {
		return bson.E{Key: "to", Value: nil}
	}
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "to", Value: nil}},
		bson.D{{Key: "to", Value: viewer}},
		bson.D{{Key: "author", Value: viewer}},
	}}
}
