package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

const fileCols = `id, room_id, uploader_id, name, content_type, size, sha256, created_at, message_id`

func scanFile(sc scanner) (mesh.File, error) {
	var (
		f       mesh.File
		created int64
		msg     sql.NullString
	)
	if err := sc.Scan(&f.ID, &f.RoomID, &f.UploaderID, &f.Name, &f.ContentType, &f.Size, &f.SHA256,
		&created, &msg); err != nil {
		return mesh.File{}, err
	}
	f.CreatedAt = mesh.TimeFromMilli(created)
	f.MessageID = stringPtr(msg)
	return f, nil
}

// CreateFile stores f, unattached (f.MessageID is ignored); a known ID returns the stored
// record with created false. The room is not checked.
func (s *Store) CreateFile(ctx context.Context, f mesh.File) (mesh.File, bool, error) {
	var (
		got     mesh.File
		created bool
	)
	err := s.write(ctx, "create file", func(tx *wtx) error {
		var err error
		got, err = scanFile(tx.QueryRowContext(ctx, `INSERT INTO files
				(id, room_id, uploader_id, name, content_type, size, sha256, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO NOTHING
			RETURNING `+fileCols,
			f.ID, f.RoomID, f.UploaderID, f.Name, f.ContentType, f.Size, f.SHA256, f.CreatedAt.UnixMilli()))
		if errors.Is(err, sql.ErrNoRows) { // the ID is known: the stored record
			got, err = scanFile(tx.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files WHERE id = ?`, f.ID))
			return err
		}
		created = err == nil
		return err
	})
	if err != nil {
		return mesh.File{}, false, err
	}
	return got, created, nil
}

// File returns a file's record, or CodeNotFound.
func (s *Store) File(ctx context.Context, id string) (mesh.File, error) {
	f, err := scanFile(s.r.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return mesh.File{}, notFound("file", id)
	}
	return f, wrap("file", err)
}

// FilesByIDs returns the records that exist among ids, in no particular order.
func (s *Store) FilesByIDs(ctx context.Context, ids []string) ([]mesh.File, error) {
	if len(ids) == 0 {
		return []mesh.File{}, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, wrap("files by ids", err)
	}
	return s.readFiles(ctx, "files by ids", `SELECT `+fileCols+` FROM files
		WHERE id IN (SELECT value FROM json_each(?))`, string(list))
}

// AttachFiles records that the files went with m, in one transaction: each file's row is
// updated only if it is unattached or attached to m already, so of concurrent attachments of
// one file to two messages exactly one succeeds. The files that are unknown or attached to
// another message are CodeConflict; the others are attached all the same.
func (s *Store) AttachFiles(ctx context.Context, m mesh.Message, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var refused []string
	err := s.write(ctx, "attach files", func(tx *wtx) error {
		for _, id := range ids {
			res, err := tx.ExecContext(ctx, `UPDATE files SET message_id = ?, to_id = ?
				WHERE id = ? AND (message_id IS NULL OR message_id = ?)`, m.ID, nullString(m.To), id, m.ID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				refused = append(refused, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return attachConflict(refused)
}

// attachConflict is AttachFiles' CodeConflict for the refused files (nil for none).
func attachConflict(refused []string) error {
	if len(refused) == 0 {
		return nil
	}
	return mesh.Errorf(mesh.CodeConflict, "files %s are unknown or attached to another message",
		strings.Join(refused, ", "))
}

// DeleteFiles removes the records; unknown IDs are skipped.
func (s *Store) DeleteFiles(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return wrap("delete files", err)
	}
	return s.write(ctx, "delete files", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM files WHERE id IN (SELECT value FROM json_each(?))`, string(list))
		return err
	})
}

// ListFiles lists a room's files newest first; see store.FileQuery. A viewer sees its own
// files (attached or not: a whisper's files are its author's, who uploaded them) and the
// attached files of the messages that are not whispers or are whispers to it. An unknown room
// has none, whatever records name it. The query text depends only on which fields are set.
func (s *Store) ListFiles(ctx context.Context, q store.FileQuery) ([]mesh.File, error) {
	query := `SELECT ` + fileCols + ` FROM files
		WHERE room_id = ? AND EXISTS (SELECT 1 FROM rooms WHERE id = ?)`
	args := []any{q.RoomID, q.RoomID}
	if q.Before != "" {
		query += ` AND id < ?`
		args = append(args, q.Before)
	}
	if q.Viewer != "" {
		query += ` AND (uploader_id = ? OR (message_id IS NOT NULL AND (to_id IS NULL OR to_id = ?)))`
		args = append(args, q.Viewer, q.Viewer)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, lookAheadLimit(q.Limit))
	return s.readFiles(ctx, "list files", query, args...)
}

// lookAheadLimit is the Limit of FileQuery and ThreadQuery with its default and its maximum,
// which is one more than mesh.MaxListLimit (a page and a look ahead).
func lookAheadLimit(n int) int {
	switch {
	case n <= 0:
		return mesh.DefaultListLimit
	case n > mesh.MaxListLimit+1:
		return mesh.MaxListLimit + 1
	default:
		return n
	}
}

// readFiles runs a read query of file rows (fileCols).
func (s *Store) readFiles(ctx context.Context, op, query string, args ...any) ([]mesh.File, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := []mesh.File{}
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, f)
	}
	return out, wrap(op, rows.Err())
}

// attachment is a message's file as stored in messages.attachments (a JSON array of them):
// the store's own format, apart from the API's, with the time in unix milliseconds.
type attachment struct {
	ID          string  `json:"id"`
	RoomID      string  `json:"roomId"`
	UploaderID  string  `json:"uploaderId"`
	Name        string  `json:"name"`
	ContentType string  `json:"contentType"`
	Size        int64   `json:"size"`
	SHA256      string  `json:"sha256"`
	CreatedAt   int64   `json:"createdAt"`
	MessageID   *string `json:"messageId,omitempty"`
}

// encodeAttachments is the messages.attachments value of fs: NULL for none.
func encodeAttachments(fs []mesh.File) (sql.NullString, error) {
	if len(fs) == 0 {
		return sql.NullString{}, nil
	}
	as := make([]attachment, len(fs))
	for i, f := range fs {
		as[i] = attachment{
			ID: f.ID, RoomID: f.RoomID, UploaderID: f.UploaderID, Name: f.Name, ContentType: f.ContentType,
			Size: f.Size, SHA256: f.SHA256, CreatedAt: f.CreatedAt.UnixMilli(), MessageID: f.MessageID,
		}
	}
	b, err := json.Marshal(as)
	if err != nil {
		return sql.NullString{}, err
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeAttachments is the inverse of encodeAttachments: nil for none.
func decodeAttachments(v sql.NullString) ([]mesh.File, error) {
	if !v.Valid || v.String == "" {
		return nil, nil
	}
	var as []attachment
	if err := json.Unmarshal([]byte(v.String), &as); err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, nil
	}
	fs := make([]mesh.File, len(as))
	for i, a := range as {
		fs[i] = mesh.File{
			ID: a.ID, RoomID: a.RoomID, UploaderID: a.UploaderID, Name: a.Name, ContentType: a.ContentType,
			Size: a.Size, SHA256: a.SHA256, CreatedAt: mesh.TimeFromMilli(a.CreatedAt), MessageID: a.MessageID,
		}
	}
	return fs, nil
}

// storedAttachments is fs as the store gives it back: times at millisecond precision, in UTC,
// and nil for none.
func storedAttachments(fs []mesh.File) []mesh.File {
	if len(fs) == 0 {
		return nil
	}
	out := make([]mesh.File, len(fs))
	for i, f := range fs {
		f.CreatedAt = mesh.TimeFromMilli(f.CreatedAt.UnixMilli())
		out[i] = f
	}
	return out
}
