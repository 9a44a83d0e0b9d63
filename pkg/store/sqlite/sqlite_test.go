package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
	"github.com/themesh/mesh/pkg/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "mesh.db"), Options{})
	})
}

// openTest opens path and closes the store when the test ends.
func openTest(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := s.CreateParticipant(ctx, store.Account{Participant: mesh.Participant{
		ID: "p1", Email: "ada@example.com", DisplayName: "Ada", Role: mesh.RoleMember, CreatedAt: mesh.Now(),
	}, PasswordHash: []byte("hash")}, store.FirstBecomesOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "General", CreatedBy: "p1", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	var last mesh.Message
	for i := range 3 {
		if last, _, err = s.CreateMessage(ctx, mesh.Message{
			ID: fmt.Sprint("m", i), RoomID: "r1", AuthorID: "p1", Content: fmt.Sprint(i), CreatedAt: mesh.Now(),
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.AddReaction(ctx, last.ID, "👍", "p1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "mesh.name", "Home"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "t1", "p1", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, Options{})
	got, err := s.ParticipantByEmail(ctx, "ADA@example.com")
	if err != nil || got.ID != owner.ID || got.Role != mesh.RoleOwner || string(got.PasswordHash) != "hash" {
		t.Errorf("participant after reopen = %+v, %v", got, err)
	}
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 3 {
		t.Errorf("LastSeq after reopen = %d, %v; want 3", seq, err)
	}
	m, err := s.Message(ctx, last.ID)
	if err != nil || m.Seq != 3 || len(m.Reactions["👍"]) != 1 {
		t.Errorf("message after reopen = %+v, %v", m, err)
	}
	next, _, err := s.CreateMessage(ctx, mesh.Message{ID: "m-next", RoomID: "r1", AuthorID: "p1", CreatedAt: mesh.Now()})
	if err != nil || next.Seq != 4 {
		t.Errorf("next message after reopen: seq %d, %v; want 4", next.Seq, err)
	}
	if v, ok, err := s.Setting(ctx, "mesh.name"); err != nil || !ok || v != "Home" {
		t.Errorf("setting after reopen = %q, %v, %v", v, ok, err)
	}
	if ok, err := s.IsRevoked(ctx, "t1"); err != nil || !ok {
		t.Errorf("IsRevoked after reopen = %v, %v", ok, err)
	}
	if ms, err := s.Members(ctx, "r1"); err != nil || !slices.Equal(ms, []string{"p1"}) {
		t.Errorf("members after reopen = %v, %v", ms, err)
	}
}

// versions is 1, 2, ..., n.
func versions(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// appliedVersions reads schema_migrations.
func appliedVersions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	for range 3 { // idempotent: reopening applies nothing twice
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := appliedVersions(t, s), versions(len(migrations)); !slices.Equal(got, want) {
			t.Errorf("applied versions = %v, want %v", got, want)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// A later build adds a migration: it is applied once, and the data stays.
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	next := append(slices.Clone(migrations), migration{
		version: len(migrations) + 1, name: "test column",
		sql: `ALTER TABLE settings ADD COLUMN note TEXT NOT NULL DEFAULT 'migrated';
			CREATE INDEX settings_note ON settings (note);`,
	})
	for range 2 {
		s, err := open(ctx, path, Options{}, next)
		if err != nil {
			t.Fatalf("open with migration 2: %v", err)
		}
		if got, want := appliedVersions(t, s), versions(len(next)); !slices.Equal(got, want) {
			t.Errorf("applied versions = %v, want %v", got, want)
		}
		var note, value string
		if err := s.r.QueryRowContext(ctx, `SELECT value, note FROM settings WHERE key = 'k'`).Scan(&value, &note); err != nil ||
			value != "v" || note != "migrated" {
			t.Errorf("migrated row = %q, %q, %v", value, note, err)
		}
		s.Close()
	}

	// An older build refuses the newer schema rather than running on it.
	if s, err := Open(ctx, path, Options{}); err == nil {
		s.Close()
		t.Error("Open of a database with a newer schema succeeded, want an error")
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	bad := append(slices.Clone(migrations), migration{
		version: len(migrations) + 1, name: "half broken",
		sql: `CREATE TABLE extra (id INTEGER PRIMARY KEY); SELECT * FROM no_such_table;`,
	})
	if s, err := open(ctx, path, Options{}, bad); err == nil {
		s.Close()
		t.Fatal("open with a failing migration succeeded")
	}
	s := openTest(t, path, Options{})
	if got, want := appliedVersions(t, s), versions(len(migrations)); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'extra'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table of the failed migration: %d, %v; want rolled back", n, err)
	}
}

func TestMigrationListChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mesh.db")
	gap := []migration{{version: 1, sql: schemaV1}, {version: 3, sql: `SELECT 1`}}
	if s, err := open(t.Context(), path, Options{}, gap); err == nil {
		s.Close()
		t.Fatal("open with a gap in the migration versions succeeded")
	}
}

// TestConcurrentOpen opens one new file from several Stores at once (as several processes
// would), then has them all write messages to one room at the same time: SQLite's file lock
// and busy_timeout must keep seqs gap-free across Stores too.
func TestConcurrentOpen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	const n, each = 4, 25
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := Open(ctx, path, Options{ReadConns: 2})
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if got, want := appliedVersions(t, stores[0]), versions(len(migrations)); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}
	if _, err := stores[0].CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r", CreatedBy: "a", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seqs []int64
	)
	for i, s := range stores {
		wg.Go(func() {
			for j := range each {
				m, _, err := s.CreateMessage(ctx, mesh.Message{
					ID: fmt.Sprintf("m-%d-%d", i, j), RoomID: "r1", AuthorID: "a", CreatedAt: mesh.Now(),
				})
				if err != nil {
					t.Errorf("store %d: CreateMessage: %v", i, err)
					return
				}
				mu.Lock()
				seqs = append(seqs, m.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	want := make([]int64, n*each)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if !slices.Equal(seqs, want) {
		t.Errorf("seqs across stores = %v, want 1..%d", seqs, n*each)
	}
	for i, s := range stores {
		if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != n*each {
			t.Errorf("store %d: LastSeq = %d, %v; want %d", i, seq, err, n*each)
		}
	}
}

func TestPurgeExpiredTokens(t *testing.T) {
	ctx := t.Context()
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "mesh.db")
	s, err := Open(ctx, path, Options{Now: clock.Now, PurgeInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(id string, exp time.Time) {
		t.Helper()
		if err := s.RevokeToken(ctx, id, "p1", exp); err != nil {
			t.Fatal(err)
		}
	}
	revoked := func(id string, want bool) {
		t.Helper()
		if ok, err := s.IsRevoked(ctx, id); err != nil || ok != want {
			t.Errorf("IsRevoked(%s) = %v, %v; want %v", id, ok, err, want)
		}
	}
	revoke("short", clock.Now().Add(30*time.Second))
	revoke("long", clock.Now().Add(time.Hour))
	revoke("forever", time.Time{})
	revoked("short", true)

	clock.Advance(40 * time.Second) // "short" expired, but a purge ran less than a minute ago
	revoke("other", clock.Now().Add(time.Hour))
	revoked("short", true)

	clock.Advance(40 * time.Second) // now past the purge interval
	revoke("other2", clock.Now().Add(time.Hour))
	revoked("short", false)
	revoked("long", true)
	revoked("forever", true)
	revoked("other", true)

	// Revoking again keeps the later expiry.
	revoke("long", clock.Now().Add(time.Minute))
	clock.Advance(2 * time.Hour)
	revoke("trigger", clock.Now().Add(time.Hour))
	revoked("long", false)
	revoked("forever", true)
	revoked("trigger", true)

	// Open purges too.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	s = openTest(t, path, Options{Now: clock.Now})
	revoked("trigger", false)
	revoked("forever", true)
}

func TestMuteEnds(t *testing.T) {
	ctx := t.Context()
	clock := newFakeClock()
	s := openTest(t, filepath.Join(t.TempDir(), "mesh.db"), Options{Now: clock.Now})
	if _, err := s.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r", CreatedBy: "a", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	until := clock.Now().Add(time.Minute)
	if err := s.SetMute(ctx, "r1", "b", until); err != nil {
		t.Fatal(err)
	}
	if got, err := s.MutedUntil(ctx, "r1", "b"); err != nil || !got.Equal(until) {
		t.Errorf("MutedUntil = %v, %v; want %v", got, err, until)
	}
	clock.Advance(time.Minute)
	if got, err := s.MutedUntil(ctx, "r1", "b"); err != nil || !got.IsZero() {
		t.Errorf("MutedUntil once ended = %v, %v; want zero", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")} {
		if s, err := Open(t.Context(), path, Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestOddPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	s := openTest(t, path, Options{})
	if err := s.SetSetting(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if got, err := filepath.Glob(filepath.Join(filepath.Dir(path), "a*")); err != nil || !slices.Contains(got, path) {
		t.Errorf("files = %v, %v; want %s", got, err, path)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "mesh.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("Ping of a closed store succeeded")
	}
	_, err = s.Room(context.Background(), "r1")
	if err == nil || mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("Room on a closed store: %v; want an internal error", err)
	}
}

// TestMigrationPinsLocks opens a database at schema 3 holding a message, then migrates it: the
// message reads back unpinned and unlocked, and can be pinned and locked.
func TestMigrationPinsLocks(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	old, err := open(ctx, path, Options{}, migrations[:3])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r1", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	// As this build's code reads the new columns, the message is inserted as a schema 3 build did.
	if _, err := old.w.db.ExecContext(ctx, `UPDATE rooms SET last_seq = 1 WHERE id = 'r1';
		INSERT INTO messages (id, room_id, seq, author_id, content, created_at)
		VALUES ('m1', 'r1', 1, 'a', 'x', 0)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	m := mesh.Message{ID: "m1"}

	s := openTest(t, path, Options{})
	got, err := s.Message(ctx, m.ID)
	if err != nil || got.Pinned || got.Locked || got.Content != "x" || got.Seq != 1 {
		t.Fatalf("migrated message = %+v, %v; want unpinned, unlocked, content x, seq 1", got, err)
	}
	if got, err = s.SetPinned(ctx, m.ID, true); err != nil || !got.Pinned {
		t.Fatalf("SetPinned after migrating = %+v, %v", got, err)
	}
	if got, err = s.SetLocked(ctx, m.ID, true); err != nil || !got.Locked || !got.Pinned {
		t.Fatalf("SetLocked after migrating = %+v, %v", got, err)
	}
}

// TestMigrationFiles opens a database at schema 5 holding a message, then migrates it: the
// message reads back without attachments, a message with attachments can be sent, and files
// can be recorded, attached and listed.
func TestMigrationFiles(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	old, err := open(ctx, path, Options{}, migrations[:5])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r1", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	// As this build's code writes the new column, the message is inserted as a schema 5 build did.
	if _, err := old.w.db.ExecContext(ctx, `UPDATE rooms SET last_seq = 1 WHERE id = 'r1';
		INSERT INTO messages (id, room_id, seq, author_id, content, created_at)
		VALUES ('m1', 'r1', 1, 'a', 'x', 0)`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openTest(t, path, Options{})
	if got, want := appliedVersions(t, s), versions(len(migrations)); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}
	got, err := s.Message(ctx, "m1")
	if err != nil || got.Attachments != nil || got.Content != "x" || got.Seq != 1 {
		t.Fatalf("migrated message = %+v, %v; want no attachments, content x, seq 1", got, err)
	}
	f, created, err := s.CreateFile(ctx, mesh.File{ID: "f1", RoomID: "r1", UploaderID: "a", Name: "a.txt",
		ContentType: "text/plain", Size: 3, SHA256: "abc", CreatedAt: mesh.Now()})
	if err != nil || !created {
		t.Fatalf("CreateFile after migrating = %v, %v", created, err)
	}
	m, _, err := s.CreateMessage(ctx, mesh.Message{ID: "m2", RoomID: "r1", AuthorID: "a", Content: "file",
		CreatedAt: mesh.Now(), Attachments: []mesh.File{f}})
	if err != nil || m.Seq != 2 || len(m.Attachments) != 1 {
		t.Fatalf("CreateMessage with an attachment after migrating = %+v, %v", m, err)
	}
	if err := s.AttachFiles(ctx, m, []string{"f1"}); err != nil {
		t.Fatal(err)
	}
	fs, err := s.ListFiles(ctx, store.FileQuery{RoomID: "r1", Viewer: "b"})
	if err != nil || len(fs) != 1 || fs[0].MessageID == nil || *fs[0].MessageID != "m2" {
		t.Fatalf("ListFiles after migrating = %+v, %v; want f1, attached to m2", fs, err)
	}
}

// TestMigrationFeedEvents opens a database at schema 6 holding a message, then migrates it: the
// message reads back without an event, and a message with an event can be sent and read back,
// its Data byte for byte.
func TestMigrationFeedEvents(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	old, err := open(ctx, path, Options{}, migrations[:6])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r1", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	// As this build's code writes the new column, the message is inserted as a schema 6 build did.
	if _, err := old.w.db.ExecContext(ctx, `UPDATE rooms SET last_seq = 1 WHERE id = 'r1';
		INSERT INTO messages (id, room_id, seq, author_id, content, created_at, attachments)
		VALUES ('m1', 'r1', 1, 'a', 'x', 0, NULL)`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openTest(t, path, Options{})
	if got, want := appliedVersions(t, s), versions(len(migrations)); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}
	got, err := s.Message(ctx, "m1")
	if err != nil || got.Event != nil || got.Content != "x" || got.Seq != 1 {
		t.Fatalf("migrated message = %+v, %v; want no event, content x, seq 1", got, err)
	}
	const data = `{"b":1, "a":[2]}`
	m, _, err := s.CreateMessage(ctx, mesh.Message{ID: "m2", RoomID: "r1", AuthorID: "a", Content: "event",
		CreatedAt: mesh.Now(), Event: &mesh.FeedEvent{Kind: "ci.build", Title: "t", Data: json.RawMessage(data)}})
	if err != nil || m.Seq != 2 || m.Event == nil {
		t.Fatalf("CreateMessage with an event after migrating = %+v, %v", m, err)
	}
	if got, err = s.Message(ctx, "m2"); err != nil || got.Event == nil || got.Event.Kind != "ci.build" ||
		string(got.Event.Data) != data {
		t.Fatalf("Message with an event after migrating = %+v, %v; want kind ci.build, data %s", got, err, data)
	}
}

// TestMigrationTokenGen opens a database at schema 7 holding a participant, then migrates it:
// the participant reads back with token generation 0 (and all else as it was), and the
// generation can be set and read back.
func TestMigrationTokenGen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	old, err := open(ctx, path, Options{}, migrations[:7])
	if err != nil {
		t.Fatal(err)
	}
	// As this build's code writes the new column, the participant is inserted as a schema 7
	// build did.
	if _, err := old.w.db.ExecContext(ctx, `INSERT INTO participants
		(id, email, display_name, role, is_agent, status, password_hash, banned, deactivated, created_at)
		VALUES ('p1', 'ada@example.com', 'Ada', 'member', 0, 'offline', X'68617368', 0, 0, 1000)`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openTest(t, path, Options{})
	if got, want := appliedVersions(t, s), versions(len(migrations)); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}
	got, err := s.ParticipantByID(ctx, "p1")
	if err != nil || got.TokenGen != 0 || got.Email != "ada@example.com" || got.DisplayName != "Ada" ||
		string(got.PasswordHash) != "hash" || got.CreatedAt.UnixMilli() != 1000 {
		t.Fatalf("migrated participant = %+v, %v; want token gen 0, ada@example.com, Ada, hash, created at 1000", got, err)
	}
	if got, err = s.UpdateParticipant(ctx, "p1", store.ParticipantUpdate{TokenGen: ptr(3)}); err != nil ||
		got.TokenGen != 3 || string(got.PasswordHash) != "hash" {
		t.Fatalf("UpdateParticipant(token gen 3) after migrating = %+v, %v", got, err)
	}
	if got, err = s.ParticipantByEmail(ctx, "ada@example.com"); err != nil || got.TokenGen != 3 {
		t.Fatalf("ParticipantByEmail after the update = %+v, %v; want token gen 3", got, err)
	}
}

// TestMigrationReadMarks opens a database at schema 8 holding a room with a message, then
// migrates it: the room has no read marks; marks can be set (only forward) and read back, and
// deleting the room deletes them.
func TestMigrationReadMarks(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	old, err := open(ctx, path, Options{}, migrations[:8])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r1", CreatedBy: "a", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := old.CreateMessage(ctx, mesh.Message{ID: "m1", RoomID: "r1", AuthorID: "a", Content: "x",
		CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s := openTest(t, path, Options{})
	if got, want := appliedVersions(t, s), versions(len(migrations)); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}
	if marks, err := s.ReadMarks(ctx, "a", []string{"r1"}); err != nil || len(marks) != 0 {
		t.Fatalf("ReadMarks after migrating = %v, %v; want none", marks, err)
	}
	for _, c := range []struct{ seq, want int64 }{{1, 1}, {3, 3}, {2, 3}} {
		if got, err := s.SetReadMark(ctx, "r1", "a", c.seq); err != nil || got != c.want {
			t.Fatalf("SetReadMark(%d) after migrating = %d, %v; want %d", c.seq, got, err, c.want)
		}
	}
	if marks, err := s.ReadMarks(ctx, "a", []string{"r1"}); err != nil || marks["r1"] != 3 {
		t.Fatalf("ReadMarks after setting = %v, %v; want r1 at 3", marks, err)
	}
	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM read_marks`).Scan(&n); err != nil || n != 0 {
		t.Errorf("read_marks rows after DeleteRoom: %d, %v; want none", n, err)
	}
}

// TestMigrationThreads opens a database at schema 9 holding a room with a thread, then
// migrates it: the index of the room's replies is made, holds the replies already stored, and
// ListThreads reads through it.
func TestMigrationThreads(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mesh.db")
	old, err := open(ctx, path, Options{}, migrations[:9])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r1", CreatedBy: "a", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []mesh.Message{
		{ID: "m1", RoomID: "r1", AuthorID: "a", Content: "root", CreatedAt: mesh.Now()},
		{ID: "m2", RoomID: "r1", AuthorID: "b", Content: "reply", ThreadID: ptr("m1"), CreatedAt: mesh.Now()},
		{ID: "m3", RoomID: "r1", AuthorID: "a", Content: "unthreaded", CreatedAt: mesh.Now()},
		{ID: "m4", RoomID: "r1", AuthorID: "b", Content: "reply", ThreadID: ptr("m1"), CreatedAt: mesh.Now()},
	} {
		if _, _, err := old.CreateMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	s := openTest(t, path, Options{})
	if got, want := appliedVersions(t, s), versions(len(migrations)); !slices.Equal(got, want) {
		t.Errorf("applied versions = %v, want %v", got, want)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages INDEXED BY messages_room_thread
		WHERE room_id = 'r1' AND thread_id IS NOT NULL`).Scan(&n); err != nil || n != 2 {
		t.Errorf("replies in messages_room_thread after migrating: %d, %v; want 2", n, err)
	}
	threads, err := s.ListThreads(ctx, store.ThreadQuery{RoomID: "r1", Viewer: "a"})
	if err != nil || len(threads) != 1 || threads[0].Root.ID != "m1" || threads[0].Replies != 2 ||
		threads[0].LastReplySeq != 4 {
		t.Fatalf("ListThreads after migrating = %+v, %v; want m1 with 2 replies, the last at seq 4", threads, err)
	}
	wantThreadsPlan(t, s, store.ThreadQuery{RoomID: "r1", Viewer: "a"})
}
