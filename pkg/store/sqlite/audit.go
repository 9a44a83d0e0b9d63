package sqlite

import (
	"context"
	"strings"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

const auditCols = `id, at, actor_id, on_behalf_of, action, target, result, addr`

// AppendAudit inserts the entries in one transaction: all of them or none. No entries is a
// no-op.
func (s *Store) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return s.write(ctx, "append audit", func(tx *wtx) error {
		for _, e := range entries {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit (`+auditCols+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				e.ID, millis(e.At), e.ActorID, e.OnBehalfOf, e.Action, e.Target, e.Result, e.Addr); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListAudit lists the entries matching q, newest first; see store.AuditQuery. The query text
// depends only on which fields are set, so the statement cache holds at most a few of them.
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	var (
		conds []string
		args  []any
	)
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, col+` = ?`)
			args = append(args, v)
		}
	}
	eq("actor_id", q.ActorID)
	eq("action", q.Action)
	eq("target", q.Target)
	eq("result", q.Result)
	if !q.Since.IsZero() {
		conds = append(conds, `at >= ?`)
		args = append(args, q.Since.UnixMilli())
	}
	if !q.Until.IsZero() {
		conds = append(conds, `at < ?`)
		args = append(args, q.Until.UnixMilli())
	}
	if q.Before != "" {
		conds = append(conds, `id < ?`)
		args = append(args, q.Before)
	}
	query := `SELECT ` + auditCols + ` FROM audit`
	if len(conds) > 0 {
		query += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, listLimit(q.Limit))

	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap("list audit", err)
	}
	defer rows.Close()
	out := []store.AuditEntry{}
	for rows.Next() {
		var (
			e  store.AuditEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.ActorID, &e.OnBehalfOf, &e.Action, &e.Target, &e.Result, &e.Addr); err != nil {
			return nil, wrap("list audit", err)
		}
		e.At = mesh.TimeFromMilli(at).Time
		out = append(out, e)
	}
	return out, wrap("list audit", rows.Err())
}
