package sqlite

import (
	"context"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// ListThreads lists a room's threads, most recently replied to first; see store.ThreadQuery.
//
// One statement (so one snapshot). The room's replies the viewer may see that are not deleted
// are grouped by thread, from messages_room_thread alone (it covers the query, and holds the
// room's replies thread after thread, so grouping needs no sort): each group gives its count,
// its highest seq and, as a bare column beside SQLite's single max() aggregate, the created_at
// of that same row; the Before cursor is a HAVING on the highest seq. The groups are sorted
// latest first, then joined in that order to their roots by id, keeping the roots in the room
// that the viewer may see, until Limit threads are found. CROSS JOIN makes the groups the
// outer loop whatever the statistics say (a plan walking the room's messages as candidate
// roots was seen while writing this); the outer ORDER BY repeats the order, which the plan
// then does not sort again (see TestThreadsPlan). The roots come with their reactions, as
// every read returns messages (queryMessagesAnd). The cost grows with the room's replies, not
// with its other messages.
func (s *Store) ListThreads(ctx context.Context, q store.ThreadQuery) ([]store.ThreadSummary, error) {
	query, args := threadsQuery(q)
	var (
		out   = []store.ThreadSummary{}
		n     int
		seq   int64
		at    int64
		extra = []any{&n, &seq, &at}
	)
	ms, err := queryMessagesAnd(ctx, s.r, extra, func() {
		out = append(out, store.ThreadSummary{Replies: n, LastReplySeq: seq, LastReplyAt: mesh.TimeFromMilli(at).Time})
	}, query, args...)
	if err != nil {
		return nil, wrap("list threads", err)
	}
	for i := range out {
		out[i].Root = ms[i]
	}
	return out, nil
}

// threadsQuery is ListThreads' statement and its arguments: rows of withReactionsAnd, with the
// extra columns replies, last_reply_seq and last_reply_at.
func threadsQuery(q store.ThreadQuery) (string, []any) {
	replies := `room_id = ? AND thread_id IS NOT NULL AND deleted = 0 AND to_id IS NULL`
	root := `root.room_id = ? AND root.to_id IS NULL`
	args := []any{q.RoomID}
	if q.Viewer != "" {
		replies = `room_id = ? AND thread_id IS NOT NULL AND deleted = 0
			AND (to_id IS NULL OR to_id = ? OR author_id = ?)`
		root = `root.room_id = ? AND (root.to_id IS NULL OR root.to_id = ? OR root.author_id = ?)`
		args = append(args, q.Viewer, q.Viewer)
	}
	having := ``
	if q.Before > 0 {
		having = ` HAVING MAX(seq) < ?`
		args = append(args, q.Before)
	}
	args = append(args, q.RoomID)
	if q.Viewer != "" {
		args = append(args, q.Viewer, q.Viewer)
	}
	args = append(args, lookAheadLimit(q.Limit))
	inner := `SELECT root.*, t.replies, t.last_reply_seq, t.last_reply_at
		FROM (SELECT thread_id, COUNT(*) AS replies, MAX(seq) AS last_reply_seq, created_at AS last_reply_at
			FROM messages WHERE ` + replies + ` GROUP BY thread_id` + having + ` ORDER BY last_reply_seq DESC) t
		CROSS JOIN messages root ON root.id = t.thread_id
		WHERE ` + root + `
		ORDER BY t.last_reply_seq DESC LIMIT ?`
	return withReactionsAnd(inner, `, m.replies, m.last_reply_seq, m.last_reply_at`, `m.last_reply_seq DESC`), args
}
