package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// RevokeToken records the token as revoked. A zero expires keeps the record for ever;
// otherwise it may be purged once expired (the token is refused by its expiry then anyway).
// Revoking a token again keeps the later expiry. At most once per PurgeInterval, the same
// transaction also deletes the records that have expired.
func (s *Store) RevokeToken(ctx context.Context, tokenID, participantID string, expires time.Time) error {
	now := s.now()
	exp := sql.NullInt64{Int64: millis(expires), Valid: !expires.IsZero()}
	last := s.lastPurge.Load()
	purge := now.UnixMilli()-last >= s.purgeInterval.Milliseconds() &&
		s.lastPurge.CompareAndSwap(last, now.UnixMilli())
	return s.write(ctx, "revoke token", func(tx *wtx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens
				(token_id, participant_id, expires_at, revoked_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (token_id) DO UPDATE SET expires_at = CASE
				WHEN expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL
				ELSE MAX(expires_at, excluded.expires_at) END`,
			tokenID, participantID, exp, now.UnixMilli()); err != nil {
			return err
		}
		if purge {
			return s.purgeTokens(ctx, tx)
		}
		return nil
	})
}

// purgeTokens deletes the revoked tokens that have expired by the store's clock.
func (s *Store) purgeTokens(ctx context.Context, tx *wtx) error {
	now := s.now().UnixMilli()
	s.lastPurge.Store(now)
	_, err := tx.ExecContext(ctx, `DELETE FROM revoked_tokens WHERE expires_at IS NOT NULL AND expires_at <= ?`, now)
	return err
}

// IsRevoked reports whether the token is recorded as revoked.
func (s *Store) IsRevoked(ctx context.Context, tokenID string) (bool, error) {
	var ok bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = ?)`,
		tokenID).Scan(&ok)
	return ok, wrap("is revoked", err)
}

// Setting reports the value and whether it is set.
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, wrap("setting", err)
	}
	return v, true, nil
}

// SetSetting stores value under key, replacing any value.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	return s.write(ctx, "set setting", func(tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
}

// SetSettingIfAbsent stores value unless key is set, and returns what is stored.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	var stored string
	err := s.write(ctx, "set setting if absent", func(tx *wtx) error {
		// The no-op update makes RETURNING answer with the row already there.
		return tx.QueryRowContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = settings.value
			RETURNING value`, key, value).Scan(&stored)
	})
	return stored, err
}

// SaveResult stores result under (scope, key) unless something is stored there, and
// returns what is stored. A nil result is stored as an empty one.
func (s *Store) SaveResult(ctx context.Context, scope, key string, result []byte) ([]byte, error) {
	if result == nil {
		result = []byte{}
	}
	var stored []byte
	err := s.write(ctx, "save result", func(tx *wtx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO idempotency (scope, key, result, created_at)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (scope, key) DO UPDATE SET result = idempotency.result
			RETURNING result`, scope, key, result, s.now().UnixMilli()).Scan(&stored)
	})
	if err != nil {
		return nil, err
	}
	if stored == nil {
		stored = []byte{}
	}
	return stored, nil
}

// Result returns the result stored under (scope, key), and whether there is one.
func (s *Store) Result(ctx context.Context, scope, key string) ([]byte, bool, error) {
	var b []byte
	err := s.r.QueryRowContext(ctx, `SELECT result FROM idempotency WHERE scope = ? AND key = ?`,
		scope, key).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap("result", err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, true, nil
}
