package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// roomCols selects a room aliased r, its member count last.
const roomCols = `r.id, r.name, r.topic, r.private, r.archived, r.created_by, r.created_at,
	(SELECT COUNT(*) FROM memberships m WHERE m.room_id = r.id)`

func scanRoom(sc scanner) (mesh.Room, error) {
	var (
		r       mesh.Room
		created int64
	)
	if err := sc.Scan(&r.ID, &r.Name, &r.Topic, &r.Private, &r.Archived, &r.CreatedBy, &created,
		&r.MemberCount); err != nil {
		return mesh.Room{}, err
	}
	r.CreatedAt = mesh.TimeFromMilli(created)
	return r, nil
}

// room reads a room with q (a pool or a transaction); CodeNotFound if there is none.
func room(ctx context.Context, q querier, id string) (mesh.Room, error) {
	r, err := scanRoom(q.QueryRowContext(ctx, `SELECT `+roomCols+` FROM rooms r WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return mesh.Room{}, notFound("room", id)
	}
	return r, err
}

// Access reads a room, whether the participant is a member and its mute, in one statement.
func (s *Store) Access(ctx context.Context, roomID, participantID string) (store.RoomAccess, error) {
	var (
		a       store.RoomAccess
		created int64
		until   sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, `SELECT r.id, r.name, r.topic, r.private, r.archived, r.created_by,
		r.created_at,
		EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.participant_id = ?),
		(SELECT until FROM mutes u WHERE u.room_id = r.id AND u.participant_id = ? AND u.until > ?)
		FROM rooms r WHERE r.id = ?`, participantID, participantID, s.now().UnixMilli(), roomID).
		Scan(&a.Room.ID, &a.Room.Name, &a.Room.Topic, &a.Room.Private, &a.Room.Archived, &a.Room.CreatedBy,
			&created, &a.Member, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return store.RoomAccess{}, notFound("room", roomID)
	}
	if err != nil {
		return store.RoomAccess{}, wrap("room access", err)
	}
	a.Room.CreatedAt = mesh.TimeFromMilli(created)
	if until.Valid {
		a.MutedUntil = time.UnixMilli(until.Int64).UTC()
	}
	return a, nil
}

// roomExists answers with q whether the room exists.
func roomExists(ctx context.Context, q querier, id string) (bool, error) {
	var ok bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM rooms WHERE id = ?)`, id).Scan(&ok)
	return ok, err
}

// CreateRoom stores r and, in the same transaction, makes r.CreatedBy its first member (no
// member if CreatedBy is empty).
func (s *Store) CreateRoom(ctx context.Context, r mesh.Room) (mesh.Room, error) {
	r.CreatedAt = mesh.TimeFromMilli(r.CreatedAt.UnixMilli())
	r.MemberCount = 0
	err := s.write(ctx, "create room", func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO rooms
				(id, name, topic, private, archived, created_by, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Name, r.Topic, r.Private, r.Archived, r.CreatedBy, r.CreatedAt.UnixMilli()); err != nil {
			return err
		}
		if r.CreatedBy == "" {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO memberships (room_id, participant_id, joined_at)
				VALUES (?, ?, ?)`, r.ID, r.CreatedBy, r.CreatedAt.UnixMilli()); err != nil {
			return err
		}
		r.MemberCount = 1
		return nil
	})
	if err != nil {
		return mesh.Room{}, err
	}
	return r, nil
}

// Room returns the room with its MemberCount, or CodeNotFound.
func (s *Store) Room(ctx context.Context, id string) (mesh.Room, error) {
	r, err := room(ctx, s.r, id)
	return r, wrap("room", err)
}

// ListRooms returns the rooms q.Viewer may see; see store.RoomQuery. Text is matched in name
// and topic as FindParticipants matches display names (containsFold).
func (s *Store) ListRooms(ctx context.Context, q store.RoomQuery) ([]mesh.Room, error) {
	const member = `EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.participant_id = ?)`
	visible := `(r.private = 0 OR ` + member + `)`
	if q.MemberOnly {
		visible = member
	}
	args := []any{q.After, q.Viewer}
	if q.Text != "" {
		visible += ` AND (` + containsFoldFunc + `(r.name, ?) OR ` + containsFoldFunc + `(r.topic, ?))`
		args = append(args, q.Text, q.Text)
	}
	args = append(args, roomLimit(q.Limit))
	rows, err := s.r.QueryContext(ctx, `SELECT `+roomCols+` FROM rooms r
		WHERE r.id > ? AND `+visible+`
		ORDER BY r.id LIMIT ?`, args...)
	if err != nil {
		return nil, wrap("list rooms", err)
	}
	defer rows.Close()
	out := []mesh.Room{}
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, wrap("list rooms", err)
		}
		out = append(out, r)
	}
	return out, wrap("list rooms", rows.Err())
}

// roomLimit is RoomQuery.Limit with its default applied (and no maximum).
func roomLimit(n int) int {
	if n <= 0 {
		return mesh.DefaultListLimit
	}
	return n
}

// UpdateRoom changes the fields of u that are set, and returns the room as stored.
func (s *Store) UpdateRoom(ctx context.Context, id string, u store.RoomUpdate) (mesh.Room, error) {
	var r mesh.Room
	err := s.write(ctx, "update room", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rooms SET
				name     = COALESCE(?, name),
				topic    = COALESCE(?, topic),
				archived = COALESCE(?, archived)
			WHERE id = ?`, u.Name, u.Topic, u.Archived, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("room", id)
		}
		r, err = room(ctx, tx, id)
		return err
	})
	if err != nil {
		return mesh.Room{}, err
	}
	return r, nil
}

// DeleteRoom removes the room with its memberships, mutes, read marks, messages and reactions
// (by ON DELETE CASCADE) and its file records, in one transaction; CodeNotFound if there is no
// such room.
func (s *Store) DeleteRoom(ctx context.Context, id string) error {
	return s.write(ctx, "delete room", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM rooms WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("room", id)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM files WHERE room_id = ?`, id)
		return err
	})
}

// AddMember reports whether the participant was not a member before; CodeNotFound if there
// is no such room.
func (s *Store) AddMember(ctx context.Context, roomID, participantID string) (bool, error) {
	var added bool
	err := s.write(ctx, "add member", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO memberships (room_id, participant_id, joined_at)
			VALUES (?, ?, ?) ON CONFLICT (room_id, participant_id) DO NOTHING`,
			roomID, participantID, s.now().UnixMilli())
		if isConstraint(err, codeForeignKey, "") {
			return notFound("room", roomID)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		added = n == 1
		return err
	})
	return added, err
}

// RemoveMember reports whether the participant was a member; CodeNotFound if there is no
// such room.
func (s *Store) RemoveMember(ctx context.Context, roomID, participantID string) (bool, error) {
	var removed bool
	err := s.write(ctx, "remove member", func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE room_id = ? AND participant_id = ?`,
			roomID, participantID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if removed = n == 1; removed {
			return nil
		}
		if ok, err := roomExists(ctx, tx, roomID); err != nil {
			return err
		} else if !ok {
			return notFound("room", roomID)
		}
		return nil
	})
	return removed, err
}

// IsMember reports whether the participant is a member of the room (false for an unknown
// room).
func (s *Store) IsMember(ctx context.Context, roomID, participantID string) (bool, error) {
	var ok bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM memberships
		WHERE room_id = ? AND participant_id = ?)`, roomID, participantID).Scan(&ok)
	return ok, wrap("is member", err)
}

// Members lists the room's member ids in the order they joined (none for an unknown room).
func (s *Store) Members(ctx context.Context, roomID string) ([]string, error) {
	return s.readStrings(ctx, "members",
		`SELECT participant_id FROM memberships WHERE room_id = ? ORDER BY id`, roomID)
}

// RoomsOf lists the ids of the rooms the participant is a member of, ordered by id.
func (s *Store) RoomsOf(ctx context.Context, participantID string) ([]string, error) {
	return s.readStrings(ctx, "rooms of",
		`SELECT room_id FROM memberships WHERE participant_id = ? ORDER BY room_id`, participantID)
}

// readStrings runs a read query of one text column.
func (s *Store) readStrings(ctx context.Context, op, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, v)
	}
	return out, wrap(op, rows.Err())
}

// SetMute mutes the participant in the room until the given time, at millisecond precision;
// a time not after the store's clock unmutes. CodeNotFound if there is no such room. A mute
// is kept when the participant leaves the room, so leaving and coming back does not end it.
func (s *Store) SetMute(ctx context.Context, roomID, participantID string, until time.Time) error {
	ms := millis(until)
	active := !until.IsZero() && ms > s.now().UnixMilli()
	return s.write(ctx, "set mute", func(tx *wtx) error {
		if ok, err := roomExists(ctx, tx, roomID); err != nil {
			return err
		} else if !ok {
			return notFound("room", roomID)
		}
		var err error
		if active {
			_, err = tx.ExecContext(ctx, `INSERT INTO mutes (room_id, participant_id, until) VALUES (?, ?, ?)
				ON CONFLICT (room_id, participant_id) DO UPDATE SET until = excluded.until`,
				roomID, participantID, ms)
		} else {
			_, err = tx.ExecContext(ctx, `DELETE FROM mutes WHERE room_id = ? AND participant_id = ?`,
				roomID, participantID)
		}
		return err
	})
}

// MutedUntil is the end of the participant's mute in the room: zero if there is none, if it
// has ended by the store's clock, or if there is no such room.
func (s *Store) MutedUntil(ctx context.Context, roomID, participantID string) (time.Time, error) {
	var ms int64
	err := s.r.QueryRowContext(ctx, `SELECT until FROM mutes
		WHERE room_id = ? AND participant_id = ? AND until > ?`,
		roomID, participantID, s.now().UnixMilli()).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, wrap("muted until", err)
	}
	return time.UnixMilli(ms).UTC(), nil
}
