package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

const participantCols = `id, email, display_name, role, is_agent, owner_id, did, status,
	password_hash, banned, deactivated, created_at, token_gen`

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanAccount(sc scanner) (store.Account, error) {
	var (
		a                 store.Account
		email, owner, did sql.NullString
		created           int64
	)
	err := sc.Scan(&a.ID, &email, &a.DisplayName, &a.Role, &a.IsAgent, &owner, &did, &a.Status,
		&a.PasswordHash, &a.Banned, &a.Deactivated, &created, &a.TokenGen)
	if err != nil {
		return store.Account{}, err
	}
	a.Email = email.String
	a.OwnerID = stringPtr(owner)
	a.DID = stringPtr(did)
	a.CreatedAt = mesh.TimeFromMilli(created)
	return a, nil
}

// CreateParticipant stores a; see store.Participants. The email is lower-cased here too, and
// an empty one is stored as none (several bots may have no email).
func (s *Store) CreateParticipant(ctx context.Context, a store.Account, mode store.FirstMode) (store.Account, error) {
	a.Email = strings.ToLower(a.Email)
	a.CreatedAt = mesh.TimeFromMilli(a.CreatedAt.UnixMilli())
	email := sql.NullString{String: a.Email, Valid: a.Email != ""}
	err := s.write(ctx, "create participant", func(tx *wtx) error {
		switch mode {
		case store.AnyOrder:
		case store.FirstBecomesOwner, store.OnlyFirst:
			// The write lock is held since BEGIN: no one else can register in between.
			var exists bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM participants)`).Scan(&exists); err != nil {
				return err
			}
			switch {
			case !exists:
				a.Role = mesh.RoleOwner
			case mode == store.OnlyFirst:
				return mesh.Errorf(mesh.CodeConflict, "the mesh already has participants")
			}
		default:
			return fmt.Errorf("unknown first mode %d", mode)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO participants (`+participantCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, email, a.DisplayName, a.Role, a.IsAgent, nullString(a.OwnerID), nullString(a.DID),
			a.Status, a.PasswordHash, a.Banned, a.Deactivated, a.CreatedAt.UnixMilli(), a.TokenGen)
		if isConstraint(err, codeUnique, "participants.email") {
			return mesh.Errorf(mesh.CodeConflict, "the email is already registered")
		}
		return err
	})
	if err != nil {
		return store.Account{}, err
	}
	return a, nil
}

// ParticipantByID returns the account, or CodeNotFound.
func (s *Store) ParticipantByID(ctx context.Context, id string) (store.Account, error) {
	a, err := scanAccount(s.r.QueryRowContext(ctx,
		`SELECT `+participantCols+` FROM participants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Account{}, notFound("participant", id)
	}
	return a, wrap("participant by id", err)
}

// ParticipantByEmail returns the account whose email matches case-insensitively, or
// CodeNotFound.
func (s *Store) ParticipantByEmail(ctx context.Context, email string) (store.Account, error) {
	email = strings.ToLower(email)
	if email == "" {
		return store.Account{}, mesh.Errorf(mesh.CodeNotFound, "participant not found")
	}
	a, err := scanAccount(s.r.QueryRowContext(ctx,
		`SELECT `+participantCols+` FROM participants WHERE email = ?`, email))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Account{}, mesh.Errorf(mesh.CodeNotFound, "participant not found")
	}
	return a, wrap("participant by email", err)
}

// ParticipantsByIDs returns the accounts that exist among ids, in no particular order.
func (s *Store) ParticipantsByIDs(ctx context.Context, ids []string) ([]store.Account, error) {
	if len(ids) == 0 {
		return []store.Account{}, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, wrap("participants by ids", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+participantCols+` FROM participants
		WHERE id IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, wrap("participants by ids", err)
	}
	defer rows.Close()
	out := make([]store.Account, 0, len(ids))
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, wrap("participants by ids", err)
		}
		out = append(out, a)
	}
	return out, wrap("participants by ids", rows.Err())
}

// CountParticipants counts every account, banned and deactivated ones included.
func (s *Store) CountParticipants(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM participants`).Scan(&n)
	return n, wrap("count participants", err)
}

// UpdateParticipant changes the fields of u that are set, in one statement, and returns the
// account as stored. The password hash and the email are set by a flag rather than COALESCE:
// a nil hash is bound as NULL, and when it is set it clears the hash; an empty email is
// stored as NULL (none, as CreateParticipant stores it), which the unique index never
// compares, so the address is free again. The email is lower-cased here too. A taken email
// fails the statement on the unique index, so nothing of u is applied: CodeConflict.
func (s *Store) UpdateParticipant(ctx context.Context, id string, u store.ParticipantUpdate) (store.Account, error) {
	var hash []byte
	if u.PasswordHash != nil {
		hash = *u.PasswordHash
	}
	var email sql.NullString
	if u.Email != nil {
		e := strings.ToLower(*u.Email)
		email = sql.NullString{String: e, Valid: e != ""}
	}
	var a store.Account
	err := s.write(ctx, "update participant", func(tx *wtx) error {
		var err error
		a, err = scanAccount(tx.QueryRowContext(ctx, `UPDATE participants SET
				display_name  = COALESCE(?, display_name),
				role          = COALESCE(?, role),
				banned        = COALESCE(?, banned),
				deactivated   = COALESCE(?, deactivated),
				password_hash = CASE WHEN ? THEN ? ELSE password_hash END,
				token_gen     = COALESCE(?, token_gen),
				email         = CASE WHEN ? THEN ? ELSE email END
			WHERE id = ?
			RETURNING `+participantCols,
			u.DisplayName, u.Role, u.Banned, u.Deactivated, u.PasswordHash != nil, hash, u.TokenGen,
			u.Email != nil, email, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("participant", id)
		}
		if isConstraint(err, codeUnique, "participants.email") {
			return mesh.Errorf(mesh.CodeConflict, "the email is already registered")
		}
		return err
	})
	if err != nil {
		return store.Account{}, err
	}
	return a, nil
}

// ListParticipants lists accounts by id after the cursor.
func (s *Store) ListParticipants(ctx context.Context, after string, limit int) ([]store.Account, error) {
	if limit <= 0 {
		limit = mesh.DefaultListLimit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+participantCols+` FROM participants
		WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, wrap("list participants", err)
	}
	defer rows.Close()
	out := []store.Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, wrap("list participants", err)
		}
		out = append(out, a)
	}
	return out, wrap("list participants", rows.Err())
}

// FindParticipants lists the accounts whose display name contains text, by id after the
// cursor, as ListParticipants pages. The text is matched as SearchMessages matches content:
// literally and with Unicode simple case folding (containsFold). Every row after the cursor
// is looked at: display names have no index that could serve a "contains".
func (s *Store) FindParticipants(ctx context.Context, text, after string, limit int) ([]store.Account, error) {
	if text == "" {
		return []store.Account{}, nil
	}
	if limit <= 0 {
		limit = mesh.DefaultListLimit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+participantCols+` FROM participants
		WHERE id > ? AND `+containsFoldFunc+`(display_name, ?) ORDER BY id LIMIT ?`, after, text, limit)
	if err != nil {
		return nil, wrap("find participants", err)
	}
	defer rows.Close()
	out := []store.Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, wrap("find participants", err)
		}
		out = append(out, a)
	}
	return out, wrap("find participants", rows.Err())
}
