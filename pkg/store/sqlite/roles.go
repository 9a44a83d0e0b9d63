package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

const roleCols = `name, priority, permissions, created_by, created_at`

func scanRole(sc scanner) (store.Role, error) {
	var (
		r       store.Role
		perms   string
		created int64
	)
	if err := sc.Scan(&r.Name, &r.Priority, &perms, &r.CreatedBy, &created); err != nil {
		return store.Role{}, err
	}
	if err := json.Unmarshal([]byte(perms), &r.Permissions); err != nil {
		return store.Role{}, fmt.Errorf("role %q: permissions: %w", r.Name, err)
	}
	if r.Permissions == nil {
		r.Permissions = []string{}
	}
	r.CreatedAt = mesh.TimeFromMilli(created).Time
	return r, nil
}

// permissionsJSON is perms as a JSON array; nil is the empty array.
func permissionsJSON(perms []string) (string, error) {
	if perms == nil {
		perms = []string{}
	}
	b, err := json.Marshal(perms)
	return string(b), err
}

// CreateRole stores r; a taken name is CodeConflict. It returns the role as stored.
func (s *Store) CreateRole(ctx context.Context, r store.Role) (store.Role, error) {
	perms, err := permissionsJSON(r.Permissions)
	if err != nil {
		return store.Role{}, wrap("create role", err)
	}
	var got store.Role
	err = s.write(ctx, "create role", func(tx *wtx) error {
		var err error
		got, err = scanRole(tx.QueryRowContext(ctx, `INSERT INTO roles (`+roleCols+`)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO NOTHING
			RETURNING `+roleCols,
			r.Name, r.Priority, perms, r.CreatedBy, millis(r.CreatedAt)))
		if errors.Is(err, sql.ErrNoRows) {
			return mesh.Errorf(mesh.CodeConflict, "role %q already exists", r.Name)
		}
		return err
	})
	if err != nil {
		return store.Role{}, err
	}
	return got, nil
}

// RoleByName returns the role, or CodeNotFound.
func (s *Store) RoleByName(ctx context.Context, name string) (store.Role, error) {
	r, err := scanRole(s.r.QueryRowContext(ctx, `SELECT `+roleCols+` FROM roles WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Role{}, notFound("role", name)
	}
	return r, wrap("role by name", err)
}

// ListRoles lists the custom roles ordered by name.
func (s *Store) ListRoles(ctx context.Context) ([]store.Role, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+roleCols+` FROM roles ORDER BY name`)
	if err != nil {
		return nil, wrap("list roles", err)
	}
	defer rows.Close()
	out := []store.Role{}
	for rows.Next() {
		r, err := scanRole(rows)
		if err != nil {
			return nil, wrap("list roles", err)
		}
		out = append(out, r)
	}
	return out, wrap("list roles", rows.Err())
}

// UpdateRole changes the fields of u that are set, and returns the role as stored.
func (s *Store) UpdateRole(ctx context.Context, name string, u store.RoleUpdate) (store.Role, error) {
	var perms sql.NullString
	if u.Permissions != nil {
		p, err := permissionsJSON(*u.Permissions)
		if err != nil {
			return store.Role{}, wrap("update role", err)
		}
		perms = sql.NullString{String: p, Valid: true}
	}
	var r store.Role
	err := s.write(ctx, "update role", func(tx *wtx) error {
		var err error
		r, err = scanRole(tx.QueryRowContext(ctx, `UPDATE roles SET
				priority    = COALESCE(?, priority),
				permissions = COALESCE(?, permissions)
			WHERE name = ?
			RETURNING `+roleCols,
			u.Priority, perms, name))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("role", name)
		}
		return err
	})
	if err != nil {
		return store.Role{}, err
	}
	return r, nil
}

// DeleteRole removes the role, or answers CodeNotFound. Participants holding it keep it.
func (s *Store) DeleteRole(ctx context.Context, name string) error {
	return s.deleteRow(ctx, "role", `DELETE FROM roles WHERE name = ?`, name)
}

// deleteRow runs query, a DELETE of the what keyed key: CodeNotFound when no row went.
func (s *Store) deleteRow(ctx context.Context, what, query, key string) error {
	return s.write(ctx, "delete "+what, func(tx *wtx) error {
		res, err := tx.ExecContext(ctx, query, key)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound(what, key)
		}
		return nil
	})
}

// CountByRole counts the participants whose role is role, banned and deactivated ones
// included.
func (s *Store) CountByRole(ctx context.Context, role string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM participants WHERE role = ?`, role).Scan(&n)
	return n, wrap("count by role", err)
}
