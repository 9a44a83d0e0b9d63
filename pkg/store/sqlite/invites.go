package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// inviteCols are the columns of invites, then the code's uses counted.
const inviteCols = `code, created_by, created_at, expires_at, max_uses,
	(SELECT COUNT(*) FROM invite_uses u WHERE u.code = invites.code)`

func scanInvite(sc scanner) (store.Invite, error) {
	var (
		inv              store.Invite
		created, expires int64
	)
	if err := sc.Scan(&inv.Code, &inv.CreatedBy, &created, &expires, &inv.MaxUses, &inv.Uses); err != nil {
		return store.Invite{}, err
	}
	inv.CreatedAt = mesh.TimeFromMilli(created).Time
	inv.ExpiresAt = mesh.TimeFromMilli(expires).Time
	return inv, nil
}

// CreateInvite stores inv, unused; a taken code is CodeConflict. It returns the invite as
// stored.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) (store.Invite, error) {
	var got store.Invite
	err := s.write(ctx, "create invite", func(tx *wtx) error {
		var err error
		got, err = scanInvite(tx.QueryRowContext(ctx, `INSERT INTO invites
				(code, created_by, created_at, expires_at, max_uses)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (code) DO NOTHING
			RETURNING code, created_by, created_at, expires_at, max_uses, 0`,
			inv.Code, inv.CreatedBy, millis(inv.CreatedAt), millis(inv.ExpiresAt), inv.MaxUses))
		if errors.Is(err, sql.ErrNoRows) {
			return mesh.Errorf(mesh.CodeConflict, "invite %q already exists", inv.Code)
		}
		return err
	})
	if err != nil {
		return store.Invite{}, err
	}
	return got, nil
}

// ListInvites lists the codes newest first (then by code), with their uses.
func (s *Store) ListInvites(ctx context.Context) ([]store.Invite, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+inviteCols+` FROM invites ORDER BY created_at DESC, code`)
	if err != nil {
		return nil, wrap("list invites", err)
	}
	defer rows.Close()
	out := []store.Invite{}
	for rows.Next() {
		inv, err := scanInvite(rows)
		if err != nil {
			return nil, wrap("list invites", err)
		}
		out = append(out, inv)
	}
	return out, wrap("list invites", rows.Err())
}

// DeleteInvite removes the code and (by ON DELETE CASCADE) its uses, or answers CodeNotFound.
func (s *Store) DeleteInvite(ctx context.Context, code string) error {
	return s.deleteRow(ctx, "invite", `DELETE FROM invites WHERE code = ?`, code)
}

// UseInvite records use number uses+1 of the code at now, in one write transaction (so
// concurrent uses are ordered, and exactly the uses left succeed). An unknown, expired (now
// at or after its expiry) or used-up code is CodeNotFound.
func (s *Store) UseInvite(ctx context.Context, code string, now time.Time) (store.Invite, error) {
	var inv store.Invite
	err := s.write(ctx, "use invite", func(tx *wtx) error {
		var err error
		inv, err = scanInvite(tx.QueryRowContext(ctx, `SELECT `+inviteCols+` FROM invites WHERE code = ?`, code))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("invite", code)
		}
		if err != nil {
			return err
		}
		if inviteExpired(inv, now) || inv.Uses >= inv.MaxUses {
			return notFound("invite", code)
		}
		inv.Uses++
		_, err = tx.ExecContext(ctx, `INSERT INTO invite_uses (code, n, at) VALUES (?, ?, ?)`,
			code, inv.Uses, now.UnixMilli())
		return err
	})
	if err != nil {
		return store.Invite{}, err
	}
	return inv, nil
}

// inviteExpired reports whether inv has an expiry and now (at millisecond precision) is at or
// after it.
func inviteExpired(inv store.Invite, now time.Time) bool {
	return !inv.ExpiresAt.IsZero() && now.UnixMilli() >= inv.ExpiresAt.UnixMilli()
}
