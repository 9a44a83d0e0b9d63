package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	msqlite "modernc.org/sqlite"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// withReactions wraps a query of messages rows (inner selects whole messages rows) so that
// each message comes with its reactions, in one statement (so one consistent snapshot):
// one row per (message, reaction), or one row with NULLs for a message without reactions,
// ordered by seq and then by the order of reacting.
func withReactions(inner string) string {
	return withReactionsOrdered(inner, `m.seq`)
}

// withReactionsOrdered is withReactions with the messages in order (an ORDER BY list over m,
// which must keep each message's rows together: end it with m.id if it may tie).
func withReactionsOrdered(inner, order string) string {
	return withReactionsAnd(inner, "", order)
}

// withReactionsAnd is withReactionsOrdered for an inner query whose rows carry more columns
// than a messages row: extra (empty, or a list of them, each m.name, starting with a comma) is
// selected between the message's columns and the reaction's (see queryMessagesAnd).
func withReactionsAnd(inner, extra, order string) string {
	return `SELECT m.id, m.room_id, m.seq, m.author_id, m.content, m.thread_id, m.to_id,
		m.client_msg_id, m.created_at, m.edited_at, m.deleted, m.pinned, m.locked, m.attachments,
		m.event` + extra + `, r.emoji, r.participant_id
	FROM (` + inner + `) m LEFT JOIN reactions r ON r.message_id = m.id
	ORDER BY ` + order + `, r.id`
}

// queryMessages runs a withReactions query and folds its rows into messages.
func queryMessages(ctx context.Context, q querier, query string, args ...any) ([]mesh.Message, error) {
	return queryMessagesAnd(ctx, q, nil, nil, query, args...)
}

// queryMessagesAnd is queryMessages for a withReactionsAnd query: each row's extra columns are
// scanned into extra, and first is called (if not nil) at the first row of each message, while
// extra holds that row's values.
func queryMessagesAnd(ctx context.Context, q querier, extra []any, first func(),
	query string, args ...any) ([]mesh.Message, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []mesh.Message{}
	// One set of destinations for every row (Scan sets each of them, NULL included), so that
	// scanning a row allocates nothing of its own.
	var (
		m                       mesh.Message
		thread, to, clientMsgID sql.NullString
		created                 int64
		edited                  sql.NullInt64
		attachments, event      sql.NullString
		emoji, reactor          sql.NullString
	)
	dest := make([]any, 0, 17+len(extra))
	dest = append(dest, &m.ID, &m.RoomID, &m.Seq, &m.AuthorID, &m.Content, &thread, &to,
		&clientMsgID, &created, &edited, &m.Deleted, &m.Pinned, &m.Locked, &attachments, &event)
	dest = append(append(dest, extra...), &emoji, &reactor)
	for rows.Next() {
		m = mesh.Message{}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != m.ID {
			var err error
			if m.Attachments, err = decodeAttachments(attachments); err != nil {
				return nil, fmt.Errorf("message %s: attachments: %w", m.ID, err)
			}
			if m.Event, err = decodeEvent(event); err != nil {
				return nil, fmt.Errorf("message %s: event: %w", m.ID, err)
			}
			m.ThreadID = stringPtr(thread)
			m.To = stringPtr(to)
			m.ClientMsgID = stringPtr(clientMsgID)
			m.CreatedAt = mesh.TimeFromMilli(created)
			if edited.Valid {
				t := mesh.TimeFromMilli(edited.Int64)
				m.EditedAt = &t
			}
			m.Reactions = map[string][]string{}
			out = append(out, m)
			if first != nil {
				first()
			}
		}
		if emoji.Valid {
			last := &out[len(out)-1]
			last.Reactions[emoji.String] = append(last.Reactions[emoji.String], reactor.String)
		}
	}
	return out, rows.Err()
}

// message reads one message with its reactions; CodeNotFound if there is none.
func message(ctx context.Context, q querier, id string) (mesh.Message, error) {
	ms, err := queryMessages(ctx, q, withReactions(`SELECT * FROM messages WHERE id = ?`), id)
	if err != nil {
		return mesh.Message{}, err
	}
	if len(ms) == 0 {
		return mesh.Message{}, notFound("message", id)
	}
	return ms[0], nil
}

// CreateMessage gives m the room's next seq and stores it, in one immediate transaction; see
// store.Messages. CodeNotFound if there is no such room.
//
// Concurrent calls are committed together (group commit): one transaction, one WAL sync, for
// all the messages waiting, so the single writer keeps up with many senders. A message that
// cannot be stored does not fail the others: the batch is then retried one by one.
func (s *Store) CreateMessage(ctx context.Context, m mesh.Message) (mesh.Message, bool, error) {
	m.CreatedAt = mesh.TimeFromMilli(m.CreatedAt.UnixMilli())
	m.EditedAt = nil
	m.Deleted, m.Pinned, m.Locked = false, false, false
	m.Reactions = map[string][]string{}
	m.Attachments = storedAttachments(m.Attachments)
	m.Event = storedEvent(m.Event)
	req := &createReq{m: m, done: make(chan struct{})}
	s.cmu.RLock()
	if s.closed {
		s.cmu.RUnlock()
		return mesh.Message{}, false, errors.New("sqlite: create message: store closed")
	}
	select {
	case s.creates <- req:
		s.cmu.RUnlock()
	case <-ctx.Done():
		s.cmu.RUnlock()
		return mesh.Message{}, false, wrap("create message", ctx.Err())
	}
	// Once queued, the message is stored or refused whatever happens to ctx: the answer is
	// waited for, so that nothing stored goes unacknowledged by mistake.
	<-req.done
	return req.m, req.created, req.err
}

// createReq is one CreateMessage waiting for the committer.
type createReq struct {
	m       mesh.Message
	created bool
	err     error
	done    chan struct{}
}

// maxGroup bounds the messages committed in one transaction.
const maxGroup = 128

// committer stores queued messages, in groups, until the store closes.
func (s *Store) committer() {
	defer close(s.committerDone)
	for {
		var first *createReq
		select {
		case first = <-s.creates:
		case <-s.closing:
			// Nothing can be queued any more: store what was, then stop.
			for {
				select {
				case r := <-s.creates:
					s.commitGroup([]*createReq{r})
					close(r.done)
				default:
					return
				}
			}
		}
		group := []*createReq{first}
	more:
		for len(group) < maxGroup {
			select {
			case r := <-s.creates:
				group = append(group, r)
			default:
				break more
			}
		}
		s.commitGroup(group)
		for _, r := range group {
			close(r.done)
		}
	}
}

func (s *Store) commitGroup(group []*createReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		m       mesh.Message
		created bool
		err     error
	}
	results := make([]result, len(group))
	err := s.write(ctx, "create messages", func(tx *wtx) error {
		for i, r := range group {
			m := r.m
			created, err := createIn(ctx, tx, &m)
			if err != nil && !isUserError(err) {
				return err // the transaction is rolled back; each is tried alone below
			}
			results[i] = result{m, created, err}
		}
		return nil
	})
	if err == nil {
		for i, r := range group {
			r.m, r.created, r.err = results[i].m, results[i].created, wrap("create message", results[i].err)
		}
		return
	}
	if len(group) == 1 {
		group[0].err = err
		return
	}
	for _, r := range group {
		m := r.m
		var created bool
		r.err = s.write(ctx, "create message", func(tx *wtx) error {
			var err error
			created, err = createIn(ctx, tx, &m)
			return err
		})
		r.m, r.created = m, created
	}
}

func isUserError(err error) bool {
	var me *mesh.Error
	return errors.As(err, &me)
}

// createIn stores m in tx, giving it the room's next seq; an existing message of the same
// author and clientMsgId comes back instead, with created false.
func createIn(ctx context.Context, tx *wtx, m *mesh.Message) (created bool, err error) {
	{
		// The same id again (a command redelivered after its first run stored it): the stored
		// message, created false.
		ms, err := queryMessages(ctx, tx, withReactions(`SELECT * FROM messages WHERE id = ?`), m.ID)
		if err != nil {
			return false, err
		}
		if len(ms) > 0 {
			*m = ms[0]
			return false, nil
		}
		if m.ClientMsgID != nil {
			ms, err := queryMessages(ctx, tx, withReactions(`SELECT * FROM messages
				WHERE room_id = ? AND author_id = ? AND client_msg_id = ?`),
				m.RoomID, m.AuthorID, *m.ClientMsgID)
			if err != nil {
				return false, err
			}
			if len(ms) > 0 {
				*m = ms[0]
				return false, nil
			}
		}
		err = tx.QueryRowContext(ctx, `UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?
			RETURNING last_seq`, m.RoomID).Scan(&m.Seq)
		if errors.Is(err, sql.ErrNoRows) {
			return false, notFound("room", m.RoomID)
		}
		if err != nil {
			return false, err
		}
		attachments, err := encodeAttachments(m.Attachments)
		if err != nil {
			return false, err
		}
		event, err := encodeEvent(m.Event)
		if err != nil {
			return false, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO messages
				(id, room_id, seq, author_id, content, thread_id, to_id, client_msg_id, created_at, attachments, event)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.RoomID, m.Seq, m.AuthorID, m.Content, nullString(m.ThreadID), nullString(m.To),
			nullString(m.ClientMsgID), m.CreatedAt.UnixMilli(), attachments, event)
		return err == nil, err
	}
}

// Message returns the message with its reactions, or CodeNotFound.
func (s *Store) Message(ctx context.Context, id string) (mesh.Message, error) {
	m, err := message(ctx, s.r, id)
	return m, wrap("message", err)
}

// ListMessages returns a room's messages in ascending seq order; see store.MessageQuery.
func (s *Store) ListMessages(ctx context.Context, q store.MessageQuery) ([]mesh.Message, error) {
	var (
		filter strings.Builder
		args   []any
	)
	filter.WriteString(`room_id = ?`)
	args = append(args, q.RoomID)
	if q.After > 0 {
		filter.WriteString(` AND seq > ?`)
		args = append(args, q.After)
	}
	if q.Before > 0 {
		filter.WriteString(` AND seq < ?`)
		args = append(args, q.Before)
	}
	if q.Viewer == "" {
		filter.WriteString(` AND to_id IS NULL`)
	} else {
		filter.WriteString(` AND (to_id IS NULL OR to_id = ? OR author_id = ?)`)
		args = append(args, q.Viewer, q.Viewer)
	}
	inner := `SELECT * FROM messages WHERE ` + filter.String()
	if q.ThreadID != "" {
		// The root by its id, the replies by the thread index: not a walk of the whole room.
		inner = `SELECT * FROM messages WHERE id = ? AND ` + filter.String() +
			` UNION ALL SELECT * FROM messages WHERE thread_id = ? AND id <> ? AND ` + filter.String()
		args = slices.Concat([]any{q.ThreadID}, args, []any{q.ThreadID, q.ThreadID}, args)
	}
	// The first Limit after After, or else the last Limit (before Before).
	order := ` ORDER BY seq DESC LIMIT ?`
	if q.After > 0 || q.Forward {
		order = ` ORDER BY seq ASC LIMIT ?`
	}
	args = append(args, listLimit(q.Limit))
	ms, err := queryMessages(ctx, s.r, withReactions(inner+order), args...)
	return ms, wrap("list messages", err)
}

// SearchMessages finds the messages of the given rooms whose content contains q.Text, newest
// first; see store.Messages. The text is matched literally and case-insensitively, with
// Unicode simple case folding (containsFold: SQLite's own lower() and LIKE fold only ASCII).
// Before is a position in that order, (created_at, id) of the message Before: a cursor that
// names no message (a room deleted since, say) has nothing before it. One statement, so one
// snapshot.
func (s *Store) SearchMessages(ctx context.Context, q store.SearchQuery) ([]mesh.Message, error) {
	if len(q.Rooms) == 0 {
		return []mesh.Message{}, nil
	}
	rooms, err := json.Marshal(q.Rooms)
	if err != nil {
		return nil, wrap("search messages", err)
	}
	var filter strings.Builder
	filter.WriteString(`room_id IN (SELECT value FROM json_each(?)) AND deleted = 0
		AND ` + containsFoldFunc + `(content, ?)`)
	args := []any{string(rooms), q.Text}
	if q.Viewer == "" {
		filter.WriteString(` AND to_id IS NULL`)
	} else {
		filter.WriteString(` AND (to_id IS NULL OR to_id = ? OR author_id = ?)`)
		args = append(args, q.Viewer, q.Viewer)
	}
	if q.Before != "" {
		// No row for an unknown cursor: the comparison is NULL, and nothing is found.
		filter.WriteString(` AND (created_at, id) < (SELECT created_at, id FROM messages WHERE id = ?)`)
		args = append(args, q.Before)
	}
	args = append(args, listLimit(q.Limit))
	inner := `SELECT * FROM messages WHERE ` + filter.String() + ` ORDER BY created_at DESC, id DESC LIMIT ?`
	ms, err := queryMessages(ctx, s.r, withReactionsOrdered(inner, `m.created_at DESC, m.id DESC`), args...)
	return ms, wrap("search messages", err)
}

// containsFoldFunc is the SQL function containsFold(haystack, needle): 1 if haystack contains
// needle, case-insensitively (0 if either is NULL).
const containsFoldFunc = "mesh_contains_fold"

func init() {
	msqlite.MustRegisterDeterministicScalarFunction(containsFoldFunc, 2,
		func(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			s, ok1 := args[0].(string)
			sub, ok2 := args[1].(string)
			if !ok1 || !ok2 {
				return int64(0), nil
			}
			if containsFold(s, sub) {
				return int64(1), nil
			}
			return int64(0), nil
		})
}

// containsFold reports whether s contains sub under Unicode simple case folding (as
// strings.EqualFold, and as a case-insensitive regexp matches a literal).
func containsFold(s, sub string) bool {
	if sub == "" {
		return true
	}
	for i := range s {
		if hasPrefixFold(s[i:], sub) {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether s begins with prefix, rune by rune under simple case folding.
func hasPrefixFold(s, prefix string) bool {
	for _, pr := range prefix {
		if s == "" {
			return false
		}
		sr, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		if sr == pr {
			continue
		}
		// The fold orbit of pr: its other cases, until back at pr.
		found := false
		for f := unicode.SimpleFold(pr); f != pr; f = unicode.SimpleFold(f) {
			if f == sr {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// EditMessage replaces the content and sets EditedAt. A deleted message cannot be edited:
// it is CodeNotFound, like a missing one.
func (s *Store) EditMessage(ctx context.Context, id, content string, at time.Time) (mesh.Message, error) {
	var m mesh.Message
	err := s.write(ctx, "edit message", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET content = ?, edited_at = ?
			WHERE id = ? AND deleted = 0`, content, millis(at), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("message", id)
		}
		m, err = message(ctx, tx, id)
		return err
	})
	if err != nil {
		return mesh.Message{}, err
	}
	return m, nil
}

// DeleteMessage keeps the message's id and seq, marks it deleted, empties its content,
// attachments and event (the file records stay), unpins it and removes its reactions (a locked thread
// stays locked). Deleting a deleted message changes nothing and is not an error.
func (s *Store) DeleteMessage(ctx context.Context, id string) (mesh.Message, error) {
	var m mesh.Message
	err := s.write(ctx, "delete message", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET deleted = 1, content = '', pinned = 0, attachments = NULL,
			event = NULL WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("message", id)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM reactions WHERE message_id = ?`, id); err != nil {
			return err
		}
		m, err = message(ctx, tx, id)
		return err
	})
	if err != nil {
		return mesh.Message{}, err
	}
	return m, nil
}

// AddReaction reports whether the reaction is new, and returns the message as stored. A
// deleted message takes no reactions: CodeNotFound, like a missing one.
func (s *Store) AddReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	var (
		m     mesh.Message
		added bool
	)
	err := s.write(ctx, "add reaction", func(tx *wtx) error {
		var deleted bool
		err := tx.QueryRowContext(ctx, `SELECT deleted FROM messages WHERE id = ?`, messageID).Scan(&deleted)
		if errors.Is(err, sql.ErrNoRows) || deleted {
			return notFound("message", messageID)
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO reactions (message_id, emoji, participant_id, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (message_id, emoji, participant_id) DO NOTHING`,
			messageID, emoji, participantID, s.now().UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		added = n == 1
		m, err = message(ctx, tx, messageID)
		return err
	})
	if err != nil {
		return mesh.Message{}, false, err
	}
	return m, added, nil
}

// RemoveReaction reports whether the reaction was there, and returns the message as stored;
// CodeNotFound if there is no such message.
func (s *Store) RemoveReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	var (
		m       mesh.Message
		removed bool
	)
	err := s.write(ctx, "remove reaction", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM reactions
			WHERE message_id = ? AND emoji = ? AND participant_id = ?`, messageID, emoji, participantID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		removed = n == 1
		m, err = message(ctx, tx, messageID)
		return err
	})
	if err != nil {
		return mesh.Message{}, false, err
	}
	return m, removed, nil
}

// SetPinned pins or unpins a message and returns it. A deleted message cannot be pinned: it
// is CodeNotFound, like a missing one (and unpinning it, as it is never pinned, too).
func (s *Store) SetPinned(ctx context.Context, id string, pinned bool) (mesh.Message, error) {
	return s.setFlag(ctx, "set pinned", `UPDATE messages SET pinned = ? WHERE id = ? AND deleted = 0`, id, pinned)
}

// SetLocked locks or unlocks the thread whose root is the message id, and returns the root;
// CodeNotFound if there is no such message. A deleted root can be locked (its thread lives
// on).
func (s *Store) SetLocked(ctx context.Context, id string, locked bool) (mesh.Message, error) {
	return s.setFlag(ctx, "set locked", `UPDATE messages SET locked = ? WHERE id = ?`, id, locked)
}

// setFlag runs update (its arguments: the flag, then the id) and reads the message back;
// CodeNotFound if no row was updated.
func (s *Store) setFlag(ctx context.Context, op, update, id string, on bool) (mesh.Message, error) {
	var m mesh.Message
	err := s.write(ctx, op, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, update, on, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("message", id)
		}
		m, err = message(ctx, tx, id)
		return err
	})
	if err != nil {
		return mesh.Message{}, err
	}
	return m, nil
}

// ListPinned lists the room's pinned messages that viewer may see (whispers only to their
// author and addressee, none to an empty viewer), in seq order, at most mesh.MaxListLimit
// (the first ones). An unknown room has none.
func (s *Store) ListPinned(ctx context.Context, roomID, viewer string) ([]mesh.Message, error) {
	inner := `SELECT * FROM messages WHERE room_id = ? AND pinned <> 0 AND to_id IS NULL`
	args := []any{roomID}
	if viewer != "" {
		inner = `SELECT * FROM messages WHERE room_id = ? AND pinned <> 0
			AND (to_id IS NULL OR to_id = ? OR author_id = ?)`
		args = append(args, viewer, viewer)
	}
	args = append(args, mesh.MaxListLimit)
	ms, err := queryMessages(ctx, s.r, withReactions(inner+` ORDER BY seq ASC LIMIT ?`), args...)
	return ms, wrap("list pinned", err)
}

// LastSeq is the room's highest seq: 0 if it has no message or there is no such room.
func (s *Store) LastSeq(ctx context.Context, roomID string) (int64, error) {
	var seq int64
	err := s.r.QueryRowContext(ctx, `SELECT last_seq FROM rooms WHERE id = ?`, roomID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, wrap("last seq", err)
}

// eventJSON is a feed event as stored in messages.event (a JSON object): the store's own
// format, apart from the API's. Data is a string holding the event's Data byte for byte: as a
// json.RawMessage, encoding/json would compact it (and escape <, > and &), and the event
// must come back as it was sent. (Byte for byte provided it is UTF-8, as JSON is: like every
// string, an invalid byte would be encoded as U+FFFD.)
type eventJSON struct {
	Kind  string `json:"kind"`
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
	URL   string `json:"url,omitempty"`
	Data  string `json:"data,omitempty"`
}

// encodeEvent is the messages.event value of e: NULL for none.
func encodeEvent(e *mesh.FeedEvent) (sql.NullString, error) {
	if e == nil {
		return sql.NullString{}, nil
	}
	b, err := json.Marshal(eventJSON{Kind: e.Kind, Title: e.Title, Body: e.Body, URL: e.URL, Data: string(e.Data)})
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeEvent is the inverse of encodeEvent: nil for none, and Data nil when empty.
func decodeEvent(v sql.NullString) (*mesh.FeedEvent, error) {
	if !v.Valid {
		return nil, nil
	}
	var ej eventJSON
	if err := json.Unmarshal([]byte(v.String), &ej); err != nil {
		return nil, err
	}
	e := &mesh.FeedEvent{Kind: ej.Kind, Title: ej.Title, Body: ej.Body, URL: ej.URL}
	if ej.Data != "" {
		e.Data = json.RawMessage(ej.Data)
	}
	return e, nil
}

// storedEvent is e as the store gives it back: a copy (nothing shared with the caller's),
// with Data nil when empty; nil for none.
func storedEvent(e *mesh.FeedEvent) *mesh.FeedEvent {
	if e == nil {
		return nil
	}
	c := *e
	c.Data = nil
	if len(e.Data) > 0 {
		c.Data = slices.Clone(e.Data)
	}
	return &c
}
