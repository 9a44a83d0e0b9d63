package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
)

// SetReadMark records that the participant has read the room up to seq, and returns the mark
// as stored. It is one upsert that keeps the higher of the stored and the given seq, returning
// the result: SQLite runs it in the write transaction, so concurrent calls are ordered and a
// mark never moves back. A mark is stored only while the room exists (the statement inserts
// nothing otherwise): a mark set for a room that does not exist (or no longer does, a call
// racing with DeleteRoom) is not stored, is not an error, and seq is returned; a room created
// later under that id starts with no marks.
func (s *Store) SetReadMark(ctx context.Context, roomID, participantID string, seq int64) (int64, error) {
	stored := seq
	err := s.write(ctx, "set read mark", func(tx *wtx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO read_marks (room_id, participant_id, seq)
			SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM rooms WHERE id = ?)
			ON CONFLICT (room_id, participant_id) DO UPDATE SET seq = max(seq, excluded.seq)
			RETURNING seq`, roomID, participantID, seq, roomID).Scan(&stored)
		if errors.Is(err, sql.ErrNoRows) { // no such room: nothing stored
			return nil
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return stored, nil
}

// ReadMarks returns the participant's marks in the given rooms, by room id; a room with no
// mark is absent. One query, whatever the number of rooms: the ids go in as one JSON array
// (json_each), so SQLite's limit on bound variables never applies and the statement is
// prepared once.
func (s *Store) ReadMarks(ctx context.Context, participantID string, roomIDs []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(roomIDs) == 0 {
		return out, nil
	}
	list, err := json.Marshal(roomIDs)
	if err != nil {
		return nil, wrap("read marks", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT room_id, seq FROM read_marks
		WHERE participant_id = ? AND room_id IN (SELECT value FROM json_each(?))`, participantID, string(list))
	if err != nil {
		return nil, wrap("read marks", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			room string
			seq  int64
		)
		if err := rows.Scan(&room, &seq); err != nil {
			return nil, wrap("read marks", err)
		}
		out[room] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read marks", err)
	}
	return out, nil
}
