package gridfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/internal/testmongo"
	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/blob/blobtest"
	"github.com/themesh/mesh/pkg/mesh"
)

func TestMain(m *testing.M) { testmongo.Main(m) }

// TestStore runs the conformance suite against the shared server, each test on a database of
// its own, named in the URI as MONGODB_URI would.
func TestStore(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store { return openTest(t, testmongo.Shared(t)) })
}

// openTest opens a Store through Open on a new database of srv, closed when the test ends
// (before the database is dropped).
func openTest(t testing.TB, srv *testmongo.Server) *Store {
	t.Helper()
	uri := withDatabase(t, srv.URI(), srv.DB(t))
	s, err := Open(t.Context(), uri)
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

// withDatabase is uri with db as its path.
func withDatabase(t testing.TB, uri, db string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// withClock makes s run on clock, with no sweep in the background (tests call Sweep).
func withClock(s *Store, c *fakeClock) {
	s.now = c.Now
	s.lastRun.Store(math.MaxInt64)
}

func count(t *testing.T, c *mongo.Collection, filter any) int64 {
	t.Helper()
	if filter == nil {
		filter = bson.D{}
	}
	n, err := c.CountDocuments(t.Context(), filter)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// expectCounts checks the numbers of documents in the store's four collections.
func expectCounts(t *testing.T, s *Store, files, chunks, ids, sweep int64) {
	t.Helper()
	got := [4]int64{count(t, s.files, nil), count(t, s.chunks, nil), count(t, s.ids, nil), count(t, s.sweep, nil)}
	if want := [4]int64{files, chunks, ids, sweep}; got != want {
		t.Errorf("files, chunks, ids, sweep entries: %v; want %v", got, want)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func put(t *testing.T, s *Store, id string, data []byte) {
	t.Helper()
	if n, err := s.Put(t.Context(), id, bytes.NewReader(data), int64(len(data))); err != nil || n != int64(len(data)) {
		t.Fatalf("Put(%s) = %d, %v", id, n, err)
	}
}

func expect(t *testing.T, s blob.Store, id string, want []byte) {
	t.Helper()
	r, n, err := s.Open(t.Context(), id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("Open(%s): %d bytes (said %d), %v; want the %d stored", id, len(got), n, err, len(want))
	}
}

func TestDatabaseName(t *testing.T) {
	for uri, want := range map[string]string{
		"mongodb://127.0.0.1:27017":                     "mesh",
		"mongodb://127.0.0.1:27017/":                    "mesh",
		"mongodb://h1,h2,h3/?replicaSet=rs0":            "mesh",
		"mongodb://h1,h2,h3/chat?replicaSet=rs0":        "chat",
		"mongodb+srv://user:pw@cluster.example.com/m2/": "m2",
	} {
		if got, err := database(uri); err != nil || got != want {
			t.Errorf("database(%q) = %q, %v; want %q", uri, got, err, want)
		}
	}
}

// TestFailedPutLeavesNothing: a Put that fails after writing chunks removes them, its files
// document and its sweep entries: nothing is left in the database.
func TestFailedPutLeavesNothing(t *testing.T) {
	s := openTest(t, testmongo.Shared(t))
	data := randomBytes(t, 9*int(ChunkSize)+5) // more than two inserts' worth of chunks
	boom := errors.New("boom")
	if _, err := s.Put(t.Context(), "a1", io.MultiReader(bytes.NewReader(data), errReader{boom}), 100<<20); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	expectCounts(t, s, 0, 0, 0, 0)
	if _, err := s.Put(t.Context(), "a1", bytes.NewReader(data), int64(len(data))-1); !mesh.IsCode(err, mesh.CodePayloadTooLarge) {
		t.Fatalf("Put: %v", err)
	}
	expectCounts(t, s, 0, 0, 0, 0)
	// Over an existing id: the old file stays, with its one entry.
	put(t, s, "a1", data[:10])
	if _, err := s.Put(t.Context(), "a1", bytes.NewReader(data), 100); !mesh.IsCode(err, mesh.CodePayloadTooLarge) {
		t.Fatalf("Put: %v", err)
	}
	expectCounts(t, s, 1, 1, 1, 1)
	expect(t, s, "a1", data[:10])
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestSweep: a replaced file stays for its readers until its entry is due, then the sweep
// removes it; a live file is never removed; a deleted one goes ReadGrace after the Delete.
func TestSweep(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t))
	clock := newFakeClock()
	withClock(s, clock)
	v1, v2 := randomBytes(t, 2*int(ChunkSize)+1), randomBytes(t, 10)
	put(t, s, "a1", v1)
	put(t, s, "a1", v2)
	expectCounts(t, s, 2, 4, 1, 3) // v1's own entry, v1 as the old of the second Put, v2's own
	clock.Advance(SweepDelay - time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep before due = %d, %v", n, err)
	}
	clock.Advance(2 * time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want v1 removed", n, err)
	}
	expectCounts(t, s, 1, 1, 1, 0)
	expect(t, s, "a1", v2)

	if err := s.Delete(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	expectCounts(t, s, 1, 1, 0, 1)
	clock.Advance(ReadGrace - time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep before the grace ends = %d, %v", n, err)
	}
	clock.Advance(2 * time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want the deleted file removed", n, err)
	}
	expectCounts(t, s, 0, 0, 0, 0)
}

// TestSweepCrash: a Put that died after writing its file, before pointing the id at it,
// leaves a file that no one sees, and that the sweep removes once due.
func TestSweepCrash(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t))
	clock := newFakeClock()
	withClock(s, clock)
	put(t, s, "live1", []byte("live"))
	// What Put does up to the switch, without the switch.
	file := bson.NewObjectID()
	if _, err := s.sweep.InsertOne(ctx, entry{ID: bson.NewObjectID(), File: file, Blob: "dead1", At: clock.Now().Add(SweepDelay)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.upload(ctx, file, "dead1", bytes.NewReader(randomBytes(t, 5*int(ChunkSize))), 10<<20); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(ctx, "dead1"); !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Fatalf("Open(dead1): %v; want not found", err)
	}
	clock.Advance(SweepDelay + time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	expectCounts(t, s, 1, 1, 1, 0)
	expect(t, s, "live1", []byte("live"))
}

// TestRacingPuts: Puts of one id at once, which FerretDB may tell the same previous file
// (it runs FindOneAndReplace as a read, then a write): the id ends with one of them whole, and
// once due the sweep leaves exactly that file.
func TestRacingPuts(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, testmongo.Shared(t))
	clock := newFakeClock()
	withClock(s, clock)
	const workers, each = 8, 5
	payloads := make([][]byte, workers)
	for w := range payloads {
		payloads[w] = randomBytes(t, int(ChunkSize)+w)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				if _, err := s.Put(ctx, "same", bytes.NewReader(payloads[w]), 1<<20); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if got := count(t, s.files, nil); got != workers*each {
		t.Errorf("files before the sweep: %d; want %d", got, workers*each)
	}
	clock.Advance(SweepDelay + time.Minute)
	if n, err := s.Sweep(ctx); err != nil || n != workers*each-1 {
		t.Errorf("Sweep = %d, %v; want %d", n, err, workers*each-1)
	}
	p, err := s.pointer(ctx, "same")
	if err != nil || p == nil {
		t.Fatalf("pointer: %v, %v", p, err)
	}
	expectCounts(t, s, 1, (p.Length+int64(ChunkSize)-1)/int64(ChunkSize), 1, 0)
	if count(t, s.files, bson.D{{Key: "_id", Value: p.File}}) != 1 {
		t.Error("the file left is not the one the id names")
	}
	r, _, err := s.Open(ctx, "same")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range payloads {
		found = found || bytes.Equal(got, p)
	}
	if !found {
		t.Error("the id holds none of the payloads whole")
	}
}

// TestTwoStores: two Stores on one database (as two processes) see each other's bytes.
func TestTwoStores(t *testing.T) {
	srv := testmongo.Shared(t)
	db := srv.DB(t)
	a, err := Open(t.Context(), withDatabase(t, srv.URI(), db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(t.Context()) })
	b := New(client.Database(db))
	t.Cleanup(func() { b.Close() })

	data := randomBytes(t, 3*int(ChunkSize))
	put(t, a, "x1", data)
	expect(t, b, "x1", data)
	put(t, b, "x1", data[:5])
	expect(t, a, "x1", data[:5])
	if err := b.Delete(t.Context(), "x1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Open(t.Context(), "x1"); !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("Open after the other's Delete: %v", err)
	}
}

// TestStandardLayout: the files are plain GridFS files: the driver's own bucket reads them by
// name, and they name the id.
func TestStandardLayout(t *testing.T) {
	s := openTest(t, testmongo.Shared(t))
	data := randomBytes(t, 2*int(ChunkSize)+3)
	put(t, s, "std1", data)
	var buf bytes.Buffer
	if _, err := s.bucket.DownloadToStreamByName(t.Context(), "std1", &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), data) {
		t.Error("the driver read other bytes")
	}
}

// TestServerDown: with the server down, Ping and Put fail (within their deadline, with an
// internal error, not a user's); once it is back, the Store goes on.
func TestServerDown(t *testing.T) {
	srv := testmongo.Start(t)
	s := openTest(t, srv)
	put(t, s, "a1", []byte("before"))
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with the server down succeeded")
	}
	if _, err := s.Put(ctx, "a2", strings.NewReader("x"), 10); err == nil || mesh.ErrorCode(err) != mesh.CodeInternal {
		t.Errorf("Put with the server down: %v; want an internal error", err)
	}
	if _, _, err := s.Open(ctx, "a1"); err == nil || mesh.ErrorCode(err) != mesh.CodeInternal {
		t.Errorf("Open with the server down: %v; want an internal error", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	expect(t, s, "a1", []byte("before"))
}

func TestOpenRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	for _, uri := range []string{
		"http://example.com/db",
		"mongodb://127.0.0.1:1/db?serverSelectionTimeoutMS=200",
		"::not a uri",
	} {
		if s, err := Open(ctx, uri); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", uri)
		}
	}
}

func TestClosedStore(t *testing.T) {
	srv := testmongo.Shared(t)
	s, err := Open(t.Context(), withDatabase(t, srv.URI(), srv.DB(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping of a closed store succeeded")
	}
}
