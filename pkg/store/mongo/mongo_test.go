package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodb "go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/themesh/mesh/internal/testmongo"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
	"github.com/themesh/mesh/pkg/store/storetest"
)

func TestMain(m *testing.M) { testmongo.Main(m) }

// TestStore runs the conformance suite against the shared server, each test on a database of
// its own.
func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, testmongo.Shared(t), Options{})
	})
}

// openTest opens a store on a new database of srv, closed when the test ends (before the
// database is dropped).
func openTest(t testing.TB, srv *testmongo.Server, opts Options) *Store {
	t.Helper()
	db := srv.DB(t)
	s, err := Open(t.Context(), srv.URI(), db, opts)
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

func createRoom(t testing.TB, s store.Store, id, creator string) {
	t.Helper()
	if _, err := s.CreateRoom(t.Context(), mesh.Room{ID: id, Name: "room " + id, CreatedBy: creator, CreatedAt: mesh.Now()}); err != nil {
		t.Fatalf("CreateRoom(%s): %v", id, err)
	}
}

var msgIDs atomic.Int64

func newMessage(room, author string) mesh.Message {
	return mesh.Message{ID: fmt.Sprintf("m%06d", msgIDs.Add(1)), RoomID: room, AuthorID: author,
		Content: "hello", CreatedAt: mesh.Now()}
}

func send(t testing.TB, s store.Store, m mesh.Message) mesh.Message {
	t.Helper()
	got, created, err := s.CreateMessage(t.Context(), m)
	if err != nil || !created {
		t.Fatalf("CreateMessage(%s) = created %v, %v", m.ID, created, err)
	}
	return got
}

func wantLastSeq(t testing.TB, s store.Store, room string, want int64) {
	t.Helper()
	if seq, err := s.LastSeq(t.Context(), room); err != nil || seq != want {
		t.Errorf("LastSeq(%s) = %d, %v; want %d", room, seq, err, want)
	}
}

// allSeqs reads every seq of the room, in order.
func allSeqs(t testing.TB, s store.Store, room string) []int64 {
	t.Helper()
	var out []int64
	for after := int64(0); ; {
		page, err := s.ListMessages(t.Context(), store.MessageQuery{RoomID: room, Viewer: "a", After: after,
			Forward: true, Limit: mesh.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		for _, m := range page {
			out = append(out, m.Seq)
		}
		after = page[len(page)-1].Seq
	}
}

// TestSendAgainSameID: a message sent again with the same id (its first answer lost) comes
// back as it is stored, created false, without taking a seq; an id used by a message of another
// room is an error, and changes nothing.
func TestSendAgainSameID(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t), Options{})
	createRoom(t, s, "r1", "a")
	createRoom(t, s, "r2", "a")
	m := newMessage("r1", "a")
	first := send(t, s, m)
	got, created, err := s.CreateMessage(ctx, m)
	if err != nil || created || got.ID != first.ID || got.Seq != 1 {
		t.Errorf("CreateMessage again = %+v, created %v, %v; want the first, not created", got, created, err)
	}
	other := m
	other.RoomID = "r2"
	if _, _, err := s.CreateMessage(ctx, other); err == nil || mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("CreateMessage with an id taken in another room: %v; want an internal error", err)
	}
	wantLastSeq(t, s, "r1", 1)
	wantLastSeq(t, s, "r2", 0)
	if m := send(t, s, newMessage("r2", "a")); m.Seq != 1 {
		t.Errorf("next message of r2: seq %d, want 1", m.Seq)
	}
}

// TestRefusedMessagesLeaveNoGap: a message the server refuses, or refused before it is sent
// (too large), stores nothing and takes no seq, and the messages around it, sent together in
// one batch, keep gap-free seqs. A batch whose outcome is unknown (the connection failed half
// way) leaves no gap either: what the server stored is a prefix of it.
func TestRefusedMessagesLeaveNoGap(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t), Options{})
	createRoom(t, s, "r1", "a")
	send(t, s, newMessage("r1", "a"))

	big := newMessage("r1", "a")
	big.Content = strings.Repeat("x", maxMessageBytes)
	if _, _, err := s.CreateMessage(ctx, big); err == nil {
		t.Error("CreateMessage of a message larger than a document may be succeeded")
	}
	wantLastSeq(t, s, "r1", 1)

	// The first insert waits for the other senders to queue up behind it. Then the server
	// refuses the third message of each insert (after storing the two before it), except that
	// the third such insert fails the connection after storing two.
	const senders = 40
	room, _, err := s.roomByID(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		batches int
		refused int
	)
	s.insert = func(ctx context.Context, docs []any) (int, *mongodb.WriteError, error) {
		mu.Lock()
		batches++
		b := batches
		if len(docs) > 2 {
			refused++
		}
		r := refused
		mu.Unlock()
		if b == 1 {
			queued := func() int {
				s.qmu.Lock()
				defer s.qmu.Unlock()
				return len(s.queues[room.Key].pending)
			}
			for deadline := time.Now().Add(10 * time.Second); queued()+len(docs) < senders && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
		}
		switch {
		case r == 3 && len(docs) > 2:
			if _, _, err := s.insertOrdered(ctx, docs[:2]); err != nil {
				return 0, nil, err
			}
			return 0, nil, errors.New("connection reset (injected)") // as the driver says it
		case len(docs) > 2:
			n, refused, err := s.insertOrdered(ctx, docs[:2])
			if refused != nil || err != nil {
				return n, refused, err
			}
			return 2, &mongodb.WriteError{Index: 2, Code: 2, Message: "refused (injected)"}, nil
		}
		return s.insertOrdered(ctx, docs)
	}
	var (
		wg                       sync.WaitGroup
		created, failed, unknown atomic.Int32
	)
	for range senders {
		wg.Go(func() {
			_, ok, err := s.CreateMessage(ctx, newMessage("r1", "a"))
			switch {
			case err != nil && strings.Contains(err.Error(), "refused (injected)"):
				failed.Add(1)
			case err != nil && strings.Contains(err.Error(), "connection reset (injected)"):
				unknown.Add(1)
			case err != nil || !ok:
				t.Errorf("CreateMessage = %v, %v", ok, err)
			default:
				created.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("%d created, %d refused, %d unknown, in %d batches", created.Load(), failed.Load(), unknown.Load(), batches)
	s.insert = s.insertOrdered
	n := int64(1 + created.Load())
	if unknown.Load() == 0 {
		t.Fatal("no batch failed half way: the test did not test that")
	}
	n += 2 // stored, though their senders were told of an error
	wantLastSeq(t, s, "r1", n)
	if got := allSeqs(t, s, "r1"); !slices.Equal(got, seqRange(1, n)) {
		t.Errorf("seqs = %v, want 1..%d", got, n)
	}
	if m := send(t, s, newMessage("r1", "a")); m.Seq != n+1 {
		t.Errorf("next message: seq %d, want %d", m.Seq, n+1)
	}
}

// TestRoomLeftovers: what a deletion leaves behind under the room's key (a purge cut short, a
// write racing with the deletion) is not returned by any read, and a room created again under
// the same id starts empty.
func TestRoomLeftovers(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t), Options{})
	createRoom(t, s, "r1", "a")
	if _, err := s.AddMember(ctx, "r1", "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMute(ctx, "r1", "b", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	m := send(t, s, newMessage("r1", "a"))
	if _, _, err := s.AddReaction(ctx, m.ID, "👍", "b"); err != nil {
		t.Fatal(err)
	}
	// Keep a copy of everything under the room's key, delete the room, and put it all back,
	// as if the purge had not run.
	old, _, err := s.roomByID(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	byKey := bson.D{{Key: "room", Value: old.Key}}
	saved := map[*mongodb.Collection][]bson.Raw{}
	for _, c := range []*mongodb.Collection{s.memberships, s.mutes, s.messages, s.reactions} {
		docs, err := findAll[bson.Raw](ctx, c, byKey)
		if err != nil || len(docs) == 0 {
			t.Fatalf("%s: %d documents, %v", c.Name(), len(docs), err)
		}
		saved[c] = docs
	}
	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	for c, docs := range saved {
		for _, d := range docs {
			if _, err := c.InsertOne(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}

	if _, err := s.Message(ctx, m.ID); !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("Message of the deleted room: %v, want not found", err)
	}
	if _, _, err := s.AddReaction(ctx, m.ID, "🎉", "b"); !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("AddReaction in the deleted room: %v, want not found", err)
	}
	if rooms, err := s.RoomsOf(ctx, "b"); err != nil || len(rooms) != 0 {
		t.Errorf("RoomsOf(b) = %v, %v; want none", rooms, err)
	}

	createRoom(t, s, "r1", "c")
	if ms, err := s.Members(ctx, "r1"); err != nil || !slices.Equal(ms, []string{"c"}) {
		t.Errorf("Members of the new r1 = %v, %v; want [c]", ms, err)
	}
	if r, err := s.Room(ctx, "r1"); err != nil || r.MemberCount != 1 {
		t.Errorf("MemberCount of the new r1 = %d, %v; want 1", r.MemberCount, err)
	}
	if until, err := s.MutedUntil(ctx, "r1", "b"); err != nil || !until.IsZero() {
		t.Errorf("MutedUntil in the new r1 = %v, %v; want zero", until, err)
	}
	wantLastSeq(t, s, "r1", 0)
	if ms, err := s.ListMessages(ctx, store.MessageQuery{RoomID: "r1", Viewer: "a"}); err != nil || len(ms) != 0 {
		t.Errorf("ListMessages of the new r1 = %d messages, %v; want none", len(ms), err)
	}
	if rooms, err := s.ListRooms(ctx, store.RoomQuery{Viewer: "b", MemberOnly: true}); err != nil || len(rooms) != 0 {
		t.Errorf("ListRooms(b, member only) = %v, %v; want none", rooms, err)
	}
	if got := send(t, s, newMessage("r1", "c")); got.Seq != 1 {
		t.Errorf("first message of the new r1: seq %d, want 1", got.Seq)
	}
}

// TestEditDeleteRace: an edit, a reaction, a pin or a lock racing with the deletion of the message (through
// another Store) never brings it back. On FerretDB v1 the later write of a whole document
// wins, so without the deletion mark an edit could restore the content (or the event).
func TestEditDeleteRace(t *testing.T) {
	ctx := t.Context()
	srv := testmongo.Shared(t)
	a := openTest(t, srv, Options{})
	b, err := Open(ctx, srv.URI(), a.db.Name(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	createRoom(t, a, "r1", "a")
	for round := range 30 {
		m := newMessage("r1", "a")
		m.Event = &mesh.FeedEvent{Kind: "k", Title: "t", Data: json.RawMessage(`{"a": 1}`)}
		m = send(t, a, m)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				_, err := a.EditMessage(ctx, m.ID, fmt.Sprint("edit ", i), time.Now())
				if err != nil && !mesh.IsCode(err, mesh.CodeNotFound) {
					t.Errorf("EditMessage: %v", err)
				}
				_, _, err = a.AddReaction(ctx, m.ID, "👍", fmt.Sprint("p", i))
				if err != nil && !mesh.IsCode(err, mesh.CodeNotFound) {
					t.Errorf("AddReaction: %v", err)
				}
				_, err = a.SetPinned(ctx, m.ID, true)
				if err != nil && !mesh.IsCode(err, mesh.CodeNotFound) {
					t.Errorf("SetPinned: %v", err)
				}
				if _, err = a.SetLocked(ctx, m.ID, i%2 == 0); err != nil {
					t.Errorf("SetLocked: %v", err)
				}
			})
		}
		wg.Go(func() {
			if _, err := b.DeleteMessage(ctx, m.ID); err != nil {
				t.Errorf("DeleteMessage: %v", err)
			}
		})
		wg.Wait()
		got, err := b.Message(ctx, m.ID)
		if err != nil || !got.Deleted || got.Content != "" || len(got.Reactions) != 0 || got.Pinned || got.Event != nil {
			t.Fatalf("round %d: message after the race = %+v, %v; want deleted, empty, unpinned, no reactions, no event",
				round, got, err)
		}
		if n, err := a.messages.CountDocuments(ctx, bson.D{{Key: "_id", Value: m.ID},
			{Key: "event", Value: bson.D{{Key: "$exists", Value: true}}}}); err != nil || n != 0 {
			t.Errorf("round %d: event stored after the race (%d), %v", round, n, err)
		}
		if n, err := a.messages.CountDocuments(ctx, bson.D{{Key: "_id", Value: m.ID}, {Key: "pinned", Value: true}}); err != nil || n != 0 {
			t.Errorf("round %d: stored pinned after the race (%d), %v", round, n, err)
		}
		if ms, err := b.ListPinned(ctx, "r1", "a"); err != nil || len(ms) != 0 {
			t.Errorf("round %d: pinned after the race = %d, %v; want none", round, len(ms), err)
		}
		if n, err := a.reactions.CountDocuments(ctx, bson.D{{Key: "m", Value: m.ID}}); err != nil || n != 0 {
			t.Errorf("round %d: %d reactions stored, %v; want none", round, n, err)
		}
	}
}

// TestConcurrentOpen opens one new database from several Stores at once (as several
// processes would), and has them all send to one room.
func TestConcurrentOpen(t *testing.T) {
	ctx := t.Context()
	srv := testmongo.Shared(t)
	db := srv.DB(t)
	const n = 4
	stores := make([]*Store, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := Open(ctx, srv.URI(), db, Options{})
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
	createRoom(t, stores[0], "r1", "a")
	for _, s := range stores {
		wg.Go(func() {
			for range 10 {
				if _, _, err := s.CreateMessage(ctx, newMessage("r1", "a")); err != nil {
					t.Errorf("CreateMessage: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := allSeqs(t, stores[1], "r1"); !slices.Equal(got, seqRange(1, 10*n)) {
		t.Errorf("seqs = %v, want 1..%d", got, 10*n)
	}
}

// TestServerRestart stops the server under a Store: calls fail while it is down (within their
// deadline), and once it is back the Store goes on where it was, with the data and the seqs.
func TestServerRestart(t *testing.T) {
	ctx := t.Context()
	srv := testmongo.Start(t)
	s := openTest(t, srv, Options{})
	createRoom(t, s, "r1", "a")
	for range 3 {
		send(t, s, newMessage("r1", "a"))
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	down, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, _, err := s.CreateMessage(down, newMessage("r1", "a")); err == nil {
		t.Error("CreateMessage with the server down succeeded")
	}
	if err := s.Ping(down); err == nil {
		t.Error("Ping with the server down succeeded")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	m := send(t, s, newMessage("r1", "a"))
	if m.Seq != 4 {
		t.Errorf("first message after the restart: seq %d, want 4", m.Seq)
	}
	if got := allSeqs(t, s, "r1"); !slices.Equal(got, seqRange(1, 4)) {
		t.Errorf("seqs = %v, want 1..4", got)
	}
}

func TestPurgeExpiredTokens(t *testing.T) {
	ctx := t.Context()
	clock := newFakeClock()
	srv := testmongo.Shared(t)
	s := openTest(t, srv, Options{Now: clock.Now, PurgeInterval: time.Minute})
	revoke := func(id string, exp time.Time) {
		t.Helper()
		if err := s.RevokeToken(ctx, id, "p1", exp); err != nil {
			t.Fatal(err)
		}
	}
	revoked := func(s *Store, id string, want bool) {
		t.Helper()
		if ok, err := s.IsRevoked(ctx, id); err != nil || ok != want {
			t.Errorf("IsRevoked(%s) = %v, %v; want %v", id, ok, err, want)
		}
	}
	revoke("short", clock.Now().Add(30*time.Second))
	revoke("long", clock.Now().Add(time.Hour))
	revoke("forever", time.Time{})
	revoked(s, "short", true)

	clock.Advance(40 * time.Second) // "short" expired, but a purge ran less than a minute ago
	revoke("other", clock.Now().Add(time.Hour))
	revoked(s, "short", true)

	clock.Advance(40 * time.Second) // now past the purge interval
	revoke("other2", clock.Now().Add(time.Hour))
	revoked(s, "short", false)
	revoked(s, "long", true)
	revoked(s, "forever", true)
	revoked(s, "other", true)

	// Revoking again keeps the later expiry; revoking for ever wins.
	revoke("long", clock.Now().Add(time.Minute))
	revoke("other", time.Time{})
	clock.Advance(2 * time.Hour)
	revoke("trigger", clock.Now().Add(time.Hour))
	revoked(s, "long", false)
	revoked(s, "forever", true)
	revoked(s, "other", true)
	revoked(s, "trigger", true)

	// Open purges too.
	clock.Advance(2 * time.Hour)
	again, err := Open(ctx, srv.URI(), s.db.Name(), Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	revoked(again, "trigger", false)
	revoked(again, "forever", true)
}

func TestMuteEnds(t *testing.T) {
	ctx := t.Context()
	clock := newFakeClock()
	s := openTest(t, testmongo.Shared(t), Options{Now: clock.Now})
	createRoom(t, s, "r1", "a")
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
	srv := testmongo.Shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	for _, tc := range []struct{ uri, db string }{
		{srv.URI(), ""},
		{"http://example.com", "db"},
		{"mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", "db"},
	} {
		if s, err := Open(ctx, tc.uri, tc.db, Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q, %q) succeeded, want an error", tc.uri, tc.db)
		}
	}
}

func TestClosedStore(t *testing.T) {
	srv := testmongo.Shared(t)
	s, err := Open(t.Context(), srv.URI(), srv.DB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	createRoom(t, s, "r1", "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("Ping of a closed store succeeded")
	}
	if _, err := s.Room(context.Background(), "r1"); err == nil || mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("Room on a closed store: %v; want an internal error", err)
	}
	if _, _, err := s.CreateMessage(context.Background(), newMessage("r1", "a")); err == nil {
		t.Error("CreateMessage on a closed store succeeded")
	}
}

// TestCreateRoomTaken: creating a room under an id that is taken is CodeConflict, and leaves
// the room as it was (its creator's membership, inserted first, is taken back).
func TestCreateRoomTaken(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t), Options{})
	createRoom(t, s, "r1", "a")
	_, err := s.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "again", CreatedBy: "b", CreatedAt: mesh.Now()})
	if !mesh.IsCode(err, mesh.CodeConflict) {
		t.Errorf("CreateRoom(r1) again: %v, want conflict", err)
	}
	r, err := s.Room(ctx, "r1")
	if err != nil || r.Name != "room r1" || r.MemberCount != 1 {
		t.Errorf("Room(r1) = %+v, %v; want the first, with 1 member", r, err)
	}
	if n, err := s.memberships.CountDocuments(ctx, bson.D{{Key: "p", Value: "b"}}); err != nil || n != 0 {
		t.Errorf("memberships of b: %d, %v; want none left", n, err)
	}
}

// TestFileLeftovers: a claim whose file record was not written (a failure between the two
// writes of AttachFiles) keeps the file for its message, which completes the attachment when
// it tries again; and file records that a room's deletion left behind (a purge cut short) are
// not listed in a room created again under the same id.
func TestFileLeftovers(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t), Options{})
	createRoom(t, s, "r1", "a")
	newFile := func(id string) mesh.File {
		return mesh.File{ID: id, RoomID: "r1", UploaderID: "a", Name: id, ContentType: "text/plain",
			Size: 1, SHA256: "00", CreatedAt: mesh.Now()}
	}
	f, _, err := s.CreateFile(ctx, newFile("f1"))
	if err != nil {
		t.Fatal(err)
	}
	first, second := send(t, s, newMessage("r1", "a")), send(t, s, newMessage("r1", "a"))
	old, _, err := s.roomByID(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.fileClaims.InsertOne(ctx, fileClaimDoc{ID: f.ID, M: first.ID, Room: old.Key}); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachFiles(ctx, second, []string{f.ID}); !mesh.IsCode(err, mesh.CodeConflict) {
		t.Errorf("AttachFiles(another message, claimed file): %v, want CodeConflict", err)
	}
	if err := s.AttachFiles(ctx, first, []string{f.ID}); err != nil {
		t.Errorf("AttachFiles(the claim's message): %v", err)
	}
	if got, err := s.File(ctx, f.ID); err != nil || got.MessageID == nil || *got.MessageID != first.ID {
		t.Errorf("File after the retry = %+v, %v; want attached to %s", got, err, first.ID)
	}

	// Keep a copy of the room's file records and claims, delete the room, put them back.
	if _, _, err := s.CreateFile(ctx, newFile("f2")); err != nil {
		t.Fatal(err)
	}
	byKey := bson.D{{Key: "room", Value: old.Key}}
	saved := map[*mongodb.Collection][]bson.Raw{}
	for _, c := range []*mongodb.Collection{s.files, s.fileClaims} {
		docs, err := findAll[bson.Raw](ctx, c, byKey)
		if err != nil || len(docs) == 0 {
			t.Fatalf("%s: %d documents, %v", c.Name(), len(docs), err)
		}
		saved[c] = docs
	}
	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	for c, docs := range saved {
		for _, d := range docs {
			if _, err := c.InsertOne(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	createRoom(t, s, "r1", "a")
	for _, viewer := range []string{"a", ""} {
		if fs, err := s.ListFiles(ctx, store.FileQuery{RoomID: "r1", Viewer: viewer}); err != nil || len(fs) != 0 {
			t.Errorf("ListFiles(new r1, viewer %q) = %d files, %v; want none", viewer, len(fs), err)
		}
	}
	// A file created for the new room is listed.
	if _, _, err := s.CreateFile(ctx, newFile("f3")); err != nil {
		t.Fatal(err)
	}
	if fs, err := s.ListFiles(ctx, store.FileQuery{RoomID: "r1"}); err != nil || len(fs) != 1 || fs[0].ID != "f3" {
		t.Errorf("ListFiles(new r1) = %+v, %v; want f3", fs, err)
	}
}

// TestOldParticipantTokenGen: a participant document written before tokenGen existed (it has
// none) reads back with token generation 0, and all else as it was; the generation can then be
// set and read back.
func TestOldParticipantTokenGen(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t), Options{})
	if _, err := s.participants.InsertOne(ctx, bson.D{
		{Key: "_id", Value: "p1"}, {Key: "emailKey", Value: "e:ada@example.com"}, {Key: "firstKey", Value: "first"},
		{Key: "email", Value: "ada@example.com"}, {Key: "displayName", Value: "Ada"}, {Key: "role", Value: "member"},
		{Key: "isAgent", Value: false}, {Key: "ownerId", Value: nil}, {Key: "did", Value: nil},
		{Key: "status", Value: "offline"}, {Key: "passwordHash", Value: []byte("hash")}, {Key: "banned", Value: false},
		{Key: "deactivated", Value: false}, {Key: "createdAt", Value: bson.DateTime(1000)},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ParticipantByID(ctx, "p1")
	if err != nil || got.TokenGen != 0 || got.Email != "ada@example.com" || got.DisplayName != "Ada" ||
		string(got.PasswordHash) != "hash" || got.CreatedAt.UnixMilli() != 1000 {
		t.Fatalf("old participant = %+v, %v; want token gen 0, ada@example.com, Ada, hash, created at 1000", got, err)
	}
	gen := 3
	if got, err = s.UpdateParticipant(ctx, "p1", store.ParticipantUpdate{TokenGen: &gen}); err != nil ||
		got.TokenGen != 3 || string(got.PasswordHash) != "hash" {
		t.Fatalf("UpdateParticipant(token gen 3) of the old participant = %+v, %v", got, err)
	}
	if got, err = s.ParticipantByEmail(ctx, "ada@example.com"); err != nil || got.TokenGen != 3 {
		t.Fatalf("ParticipantByEmail after the update = %+v, %v; want token gen 3", got, err)
	}
}

// TestReadMarkLeftovers: a mark moved forward many times leaves one document (the lower ones
// are pruned); and marks that a room's deletion left behind (a purge cut short, or a
// SetReadMark racing with the deletion) are not read in a room created again under the same
// id, nor do they hold its marks back.
func TestReadMarkLeftovers(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t), Options{})
	createRoom(t, s, "r1", "a")
	for seq := int64(1); seq <= 20; seq++ {
		if got, err := s.SetReadMark(ctx, "r1", "a", seq); err != nil || got != seq {
			t.Fatalf("SetReadMark(%d) = %d, %v", seq, got, err)
		}
	}
	if _, err := s.SetReadMark(ctx, "r1", "b", 30); err != nil {
		t.Fatal(err)
	}
	old, _, err := s.roomByID(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := findAll[readMarkDoc](ctx, s.readMarks, bson.D{{Key: "room", Value: old.Key}})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Errorf("read mark documents of r1 = %+v, want one for a (20) and one for b (30)", docs)
	}

	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := s.readMarks.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if marks, err := s.ReadMarks(ctx, "a", []string{"r1"}); err != nil || len(marks) != 0 {
		t.Errorf("ReadMarks(a) of the deleted room = %v, %v; want none", marks, err)
	}
	createRoom(t, s, "r1", "a")
	for _, p := range []string{"a", "b"} {
		if marks, err := s.ReadMarks(ctx, p, []string{"r1"}); err != nil || len(marks) != 0 {
			t.Errorf("ReadMarks(%s) of the new r1 = %v, %v; want none", p, marks, err)
		}
	}
	if got, err := s.SetReadMark(ctx, "r1", "a", 2); err != nil || got != 2 {
		t.Errorf("SetReadMark(new r1, 2) = %d, %v; want 2", got, err)
	}
}
