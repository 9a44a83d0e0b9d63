package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one step of the schema. Versions start at 1 and follow each other without
// gaps; a released migration is never edited, only followed by a new one.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations is the schema's history, oldest first. To change the schema, append.
var migrations = []migration{
	{version: 1, name: "initial schema", sql: schemaV1},
	{version: 2, name: "custom roles", sql: schemaV2},
	{version: 3, name: "audit log", sql: schemaV3},
	{version: 4, name: "pinned messages, locked threads", sql: schemaV4},
	{version: 5, name: "invites", sql: schemaV5},
	{version: 6, name: "files, message attachments", sql: schemaV6},
	{version: 7, name: "message feed events", sql: schemaV7},
	{version: 8, name: "participant token generation", sql: schemaV8},
	{version: 9, name: "read marks", sql: schemaV9},
	{version: 10, name: "threads by room", sql: schemaV10},
}

// schemaV1 is the first schema. Every table is STRICT. Times are unix milliseconds.
//
//   - participants.email is lower-cased, NULL for none (bots), and unique.
//   - rooms.last_seq is the room's highest message seq: CreateMessage bumps it with
//     UPDATE ... RETURNING inside its transaction, and UNIQUE(room_id, seq) backs it up.
//   - memberships.id and reactions.id are rowids: they grow, so they order members by
//     joining and reactors by reacting.
//   - messages.client_msg_id is unique per (room, author); NULLs do not collide.
//   - Deleting a room deletes its memberships, mutes, messages and (through the messages)
//     reactions by ON DELETE CASCADE.
//   - revoked_tokens.expires_at is NULL for a token that never expires.
const schemaV1 = `
CREATE TABLE participants (
	id            TEXT PRIMARY KEY,
	email         TEXT UNIQUE,
	display_name  TEXT NOT NULL,
	role          TEXT NOT NULL,
	is_agent      INTEGER NOT NULL DEFAULT 0,
	owner_id      TEXT,
	did           TEXT,
	status        TEXT NOT NULL DEFAULT '',
	password_hash BLOB,
	banned        INTEGER NOT NULL DEFAULT 0,
	deactivated   INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE rooms (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	topic      TEXT NOT NULL DEFAULT '',
	private    INTEGER NOT NULL DEFAULT 0,
	archived   INTEGER NOT NULL DEFAULT 0,
	created_by TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	last_seq   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE memberships (
	id             INTEGER PRIMARY KEY,
	room_id        TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
	participant_id TEXT NOT NULL,
	joined_at      INTEGER NOT NULL,
	UNIQUE (room_id, participant_id)
) STRICT;
CREATE INDEX memberships_participant ON memberships (participant_id, room_id);

CREATE TABLE mutes (
	room_id        TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
	participant_id TEXT NOT NULL,
	until          INTEGER NOT NULL,
	PRIMARY KEY (room_id, participant_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE messages (
	id            TEXT PRIMARY KEY,
	room_id       TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
	seq           INTEGER NOT NULL,
	author_id     TEXT NOT NULL,
	content       TEXT NOT NULL,
	thread_id     TEXT,
	to_id         TEXT,
	client_msg_id TEXT,
	created_at    INTEGER NOT NULL,
	edited_at     INTEGER,
	deleted       INTEGER NOT NULL DEFAULT 0,
	UNIQUE (room_id, seq),
	UNIQUE (room_id, author_id, client_msg_id)
) STRICT;
CREATE INDEX messages_thread ON messages (thread_id, room_id, seq) WHERE thread_id IS NOT NULL;

CREATE TABLE reactions (
	id             INTEGER PRIMARY KEY,
	message_id     TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
	emoji          TEXT NOT NULL,
	participant_id TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	UNIQUE (message_id, emoji, participant_id)
) STRICT;

CREATE TABLE revoked_tokens (
	token_id       TEXT PRIMARY KEY,
	participant_id TEXT NOT NULL,
	expires_at     INTEGER,
	revoked_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE idempotency (
	scope      TEXT NOT NULL,
	key        TEXT NOT NULL,
	result     BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;
`

// schemaV2 adds the custom roles. roles.permissions is a JSON array of strings, in the order
// given ("[]" for none).
const schemaV2 = `
CREATE TABLE roles (
	name        TEXT PRIMARY KEY,
	priority    INTEGER NOT NULL,
	permissions TEXT NOT NULL DEFAULT '[]',
	created_by  TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
`

// schemaV3 adds the audit log: append-only, one row per entry, its id a ULID (so ids sort as
// times do, and ORDER BY id DESC is newest first). The indexes serve ListAudit's filters, each
// with the id order (and the Before cursor) behind it; the others walk the primary key.
const schemaV3 = `
CREATE TABLE audit (
	id           TEXT PRIMARY KEY,
	at           INTEGER NOT NULL,
	actor_id     TEXT NOT NULL DEFAULT '',
	on_behalf_of TEXT NOT NULL DEFAULT '',
	action       TEXT NOT NULL,
	target       TEXT NOT NULL DEFAULT '',
	result       TEXT NOT NULL,
	addr         TEXT NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;
CREATE INDEX audit_actor ON audit (actor_id, id);
CREATE INDEX audit_action ON audit (action, id);
CREATE INDEX audit_target ON audit (target, id);
`

// schemaV4 adds messages.pinned (the message is pinned in its room; a deleted message is
// never pinned) and messages.locked (on a thread's root: the thread is locked). The columns
// come last in messages, after deleted: queries read messages rows by name (withReactions),
// never by position. The index serves ListPinned, and holds only the (few) pinned rows.
const schemaV4 = `
ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_pinned ON messages (room_id, seq) WHERE pinned <> 0;
`

// schemaV5 adds the invite codes. invites.expires_at is 0 for a code that never expires.
// invite_uses holds one row per use, numbered 1, 2, ... per code: UseInvite counts a code's
// uses and inserts the next number in one write transaction, so a code is never used more
// than max_uses times, and the primary key backs that up. Deleting a code deletes its uses
// (ON DELETE CASCADE).
const schemaV5 = `
CREATE TABLE invites (
	code       TEXT PRIMARY KEY,
	created_by TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0,
	max_uses   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX invites_created ON invites (created_at DESC, code);

CREATE TABLE invite_uses (
	code TEXT NOT NULL REFERENCES invites(code) ON DELETE CASCADE,
	n    INTEGER NOT NULL,
	at   INTEGER NOT NULL,
	PRIMARY KEY (code, n)
) STRICT, WITHOUT ROWID;
`

// schemaV6 adds the file records and the messages' attachments.
//
//   - files.message_id is the message the file went with (NULL until it is attached), and
//     files.to_id that message's addressee (NULL unless it is a whisper): ListFiles decides who
//     may see a file from the file's row alone. AttachFiles sets both with one conditional
//     UPDATE (message_id IS NULL OR the same message), so a file goes with one message only.
//   - files.room_id is not a reference to rooms: CreateFile does not check the room, and
//     DeleteRoom deletes the room's files itself. The index serves ListFiles: a room's files by
//     id (ULIDs, so newest last), and the Before cursor.
//   - messages.attachments is the message's files as a JSON array (see attachment), NULL for
//     none; DeleteMessage sets it back to NULL. Like pinned and locked, it comes last.
const schemaV6 = `
CREATE TABLE files (
	id           TEXT PRIMARY KEY,
	room_id      TEXT NOT NULL,
	uploader_id  TEXT NOT NULL,
	name         TEXT NOT NULL,
	content_type TEXT NOT NULL,
	size         INTEGER NOT NULL,
	sha256       TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	message_id   TEXT,
	to_id        TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX files_room ON files (room_id, id);
ALTER TABLE messages ADD COLUMN attachments TEXT;
`

// schemaV7 adds messages.event: the message's feed event as a JSON object (see eventJSON),
// its data a JSON string that holds the event's Data byte for byte; NULL on other messages.
// DeleteMessage sets it back to NULL. Like attachments, it comes last.
const schemaV7 = `
ALTER TABLE messages ADD COLUMN event TEXT;
`

// schemaV8 adds participants.token_gen: the generation of the participant's tokens, 0 for
// every participant until it is raised (existing ones included). Like the columns added to
// messages, it comes last: queries name participants' columns (participantCols), never rely
// on their position.
const schemaV8 = `
ALTER TABLE participants ADD COLUMN token_gen INTEGER NOT NULL DEFAULT 0;
`

// schemaV9 adds the read marks: how far each participant has read each room, by seq, one row
// per (room, participant). SetReadMark writes it with one upsert that keeps the higher seq
// (max(seq, excluded.seq)), so a mark only moves forward; it stores a mark only while the room
// exists, so a mark can reference rooms, and deleting a room deletes its marks (ON DELETE
// CASCADE). The primary key serves ReadMarks: a point lookup per room of the list.
const schemaV9 = `
CREATE TABLE read_marks (
	room_id        TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
	participant_id TEXT NOT NULL,
	seq            INTEGER NOT NULL,
	PRIMARY KEY (room_id, participant_id)
) STRICT, WITHOUT ROWID;
`

// schemaV10 adds an index of a room's replies, grouped by thread, for ListThreads: the query
// seeks the room and walks its replies thread after thread, so it groups them without a sort
// and reads no message that is not a reply. It covers the query (the columns after seq are
// those the query filters on and reads), so no reply's row is read: on a room of 10,000
// messages, 3,000 of them replies to 1,000 threads (BenchmarkListThreads), a call took about
// 1.4 ms, against 2.6 ms with an index of (room_id, thread_id, seq) alone and 3.4 ms with none
// (which reads every message of the room). Like messages_thread, it holds only replies (its
// WHERE is the query's own thread_id IS NOT NULL), so other messages cost nothing to write.
// messages_thread, which leads with thread_id, stays for one thread's messages (ListMessages
// with ThreadID).
const schemaV10 = `
CREATE INDEX messages_room_thread ON messages (room_id, thread_id, seq, deleted, to_id, author_id, created_at)
	WHERE thread_id IS NOT NULL;
`

// migrate applies the migrations the database lacks, each in its own immediate transaction,
// and records them in schema_migrations. Concurrent migrators of one file are safe: the
// write lock taken at BEGIN orders them, and each re-reads the applied versions inside its
// transaction. A database whose schema is newer than migs is refused.
func migrate(ctx context.Context, db *sql.DB, migs []migration, now time.Time) error {
	for i, m := range migs {
		if m.version != i+1 {
			return fmt.Errorf("migrate: migration %q has version %d, want %d", m.name, m.version, i+1)
		}
	}
	if err := createMigrationsTable(ctx, db); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if current > len(migs) {
		return fmt.Errorf("migrate: the database is at schema version %d, newer than this build's %d",
			current, len(migs))
	}
	for _, m := range migs[current:] {
		if err := apply(ctx, db, m, now); err != nil {
			return err
		}
	}
	return nil
}

// createMigrationsTable makes schema_migrations if it is missing. It runs in an immediate
// transaction: as an autocommit statement it would start reading and then upgrade to writing,
// and SQLite answers SQLITE_BUSY at once, without waiting, when another connection (a
// concurrent Open of the same new file) wrote in between.
func createMigrationsTable(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return err
	}
	return tx.Commit()
}

// apply runs one migration unless it has been applied meanwhile.
func apply(ctx context.Context, db *sql.DB, m migration, now time.Time) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: version %d: %w", m.version, err)
	}
	defer func() { _ = tx.Rollback() }()
	var done bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.version).Scan(&done); err != nil {
		return fmt.Errorf("migrate: version %d: %w", m.version, err)
	}
	if done {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migrate: version %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, now.UnixMilli()); err != nil {
		return fmt.Errorf("migrate: version %d: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: version %d: %w", m.version, err)
	}
	return nil
}

// schemaVersion is the highest applied migration (0 for a new database).
func schemaVersion(ctx context.Context, q *sql.DB) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("migrate: read schema version: %w", err)
	}
	return v, nil
}
