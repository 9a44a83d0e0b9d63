// Package gridfs is the clustered blob.Store: MongoDB's GridFS, through
// go.mongodb.org/mongo-driver/v2, reachable by every node of a cluster.
//
// The files are standard GridFS files (bucket "blobs"), so any GridFS tool reads them; they
// are written by the Store itself, a chunk buffer at a time, rather than by the driver's
// upload stream, which is not safe for concurrent use on one bucket and holds 16 MiB per
// upload. They are read with the driver's download stream.
//
// On FerretDB v1 (the tests' server) queries use no index but on _id, and even that one
// only to filter in SQLite: reading a file's chunks reads the whole chunks collection, about
// 25 ms per MiB stored, on each Open, failed Put and sweep. It is right there, but slow once
// much is stored; a MongoDB uses the {files_id, n} index.
package gridfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/mesh"
)

var _ blob.Store = (*Store)(nil)

// Bucket is the GridFS bucket: the collections blobs.files and blobs.chunks, beside which
// the store keeps blobs.ids and blobs.sweep.
const Bucket = "blobs"

// ChunkSize is the size of a GridFS chunk (the driver's default, 255 KiB).
const ChunkSize = mongo.DefaultGridFSChunkSize

// Times of the sweep (see Store).
const (
	// MaxPut is how long a Put may take: one that took longer fails without switching its id
	// to its bytes (so the sweep, which may remove them after SweepDelay, never races with it).
	MaxPut = time.Hour
	// ReadGrace is how long the bytes of a replaced or deleted id stay readable by the
	// readers that opened them before; a longer download fails (with an error, never with
	// other bytes).
	ReadGrace = time.Hour
	// SweepDelay is the age at which the sweep looks at a file written by a Put: MaxPut, then
	// ReadGrace, plus the clock skew between nodes this design tolerates (up to an hour).
	SweepDelay = MaxPut + ReadGrace + time.Hour
	// SweepInterval is how often, at most, Put and Delete start a sweep in the background.
	SweepInterval = time.Minute
)

// chunksPerInsert chunks are inserted at once: Put holds that many chunks in memory.
const chunksPerInsert = 4

// DefaultServerSelectionTimeout bounds how long an operation waits for a reachable server
// unless the URI says otherwise (serverSelectionTimeoutMS).
const DefaultServerSelectionTimeout = 2 * time.Second

// Store keeps bytes in GridFS. It is safe for concurrent use, and several Stores (in several
// processes) may share a database.
//
// GridFS files are immutable and an id's bytes must change in one step, with no
// transactions (FerretDB v1 has none). So a GridFS file is never named by the id: each Put
// writes a new file under a fresh ObjectID (its chunks, then its files document, in the
// standard GridFS layout), and only then points the id at it, in one document of blobs.ids,
// {_id: id, file, length}, replaced whole in one write. Open reads that pointer and then the
// file it names, so it sees the old bytes or the new, never a part. Delete removes the
// pointer. A Put that fails (too large, a reader error, the server) removes what it wrote
// and never touches the pointer, so what was stored before is kept.
//
// Files no pointer names any more are removed by a sweep, not by the Put or Delete that
// unlinked them, for two reasons. A reader that opened the old file is still reading it (the
// file goes ReadGrace later, so downloads do not break). And FerretDB v1 applies
// FindOneAndReplace as a read, then a write, so two concurrent Puts of one id may both be told
// the same previous file, while one of their own files is unlinked and neither knows. So
// every file is written down in blobs.sweep, {file, id, at}, before a single chunk is
// written, due at SweepDelay; Put and Delete also write down the file they unlink. When an
// entry is due, the sweep removes the file unless the id's pointer names it (then only the
// entry goes). A file can be named only by the Put that wrote it, before MaxPut, so a file
// the sweep finds unnamed stays unnamed. Crashes leave entries behind, never unlisted files.
//
// The sweep runs in the background from Put and Delete, at most every SweepInterval, and can
// be run by hand (Sweep). The clocks of the processes sharing a database must agree within
// an hour.
type Store struct {
	client                    *mongo.Client // set when the Store made it (Open), and so disconnects it
	db                        *mongo.Database
	bucket                    *mongo.GridFSBucket // only for reading: the driver's uploads are not safe for concurrent use
	files, chunks, ids, sweep *mongo.Collection

	now func() time.Time

	indexMu  sync.Mutex
	indexed  bool
	sweeping atomic.Bool
	lastRun  atomic.Int64 // unix nanoseconds of the last sweep started in the background

	mu       sync.Mutex
	closed   bool
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

// pointer is an id's document in blobs.ids.
type pointer struct {
	ID     string        `bson:"_id"`
	File   bson.ObjectID `bson:"file"`
	Length int64         `bson:"length"`
}

// entry is a file the sweep is to look at, once at has passed.
type entry struct {
	ID   bson.ObjectID `bson:"_id"`
	File bson.ObjectID `bson:"file"`
	Blob string        `bson:"id"`
	At   time.Time     `bson:"at"`
}

// Open connects to the MongoDB deployment at uri (a "mongodb://" or "mongodb+srv://"
// connection string; its options apply) and uses the database its path names ("mesh" if
// none). It checks that the server answers and makes the indexes. Writes are acknowledged by
// a majority unless the URI asks otherwise (w=...). Close disconnects.
func Open(ctx context.Context, uri string) (*Store, error) {
	s, err := Connect(uri)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("gridfs: open: %w", err)
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("gridfs: open: %w", err)
	}
	return s, nil
}

// Connect is Open without waiting for the server: nothing is checked until the first
// operation (Ping says when the server answers), and the indexes are made by the first Put.
// A process that only streams files (a gateway) can so start while MongoDB is away.
func Connect(uri string) (*Store, error) {
	dbName, err := database(uri)
	if err != nil {
		return nil, fmt.Errorf("gridfs: open: %w", err)
	}
	copts := options.Client().ApplyURI(uri)
	if copts.WriteConcern == nil {
		copts.SetWriteConcern(writeconcern.Majority())
	}
	if copts.ServerSelectionTimeout == nil {
		copts.SetServerSelectionTimeout(DefaultServerSelectionTimeout)
	}
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("gridfs: open: %w", err)
	}
	s := New(client.Database(dbName))
	s.client = client
	return s, nil
}

// database is the database named in a MongoDB URI's path ("mesh" when none), the rule of
// MONGODB_URI (as cmd/meshd has it).
func database(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		return db, nil
	}
	return "mesh", nil
}

// New is a Store in db, whose client the caller keeps (Close does not disconnect it). The
// indexes are made by the first Put.
func New(db *mongo.Database) *Store {
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{
		db:       db,
		bucket:   db.GridFSBucket(options.GridFSBucket().SetName(Bucket)),
		files:    db.Collection(Bucket + ".files"),
		chunks:   db.Collection(Bucket + ".chunks"),
		ids:      db.Collection(Bucket + ".ids"),
		sweep:    db.Collection(Bucket + ".sweep"),
		now:      time.Now,
		bgCtx:    ctx,
		bgCancel: cancel,
	}
}

// ensureIndexes makes the indexes once per Store: GridFS's unique {files_id, n} on chunks
// (the one every GridFS reader relies on), and the sweep's {at}. Creating an index that
// exists is a no-op.
func (s *Store) ensureIndexes(ctx context.Context) error {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	if s.indexed {
		return nil
	}
	if _, err := s.chunks.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "files_id", Value: int32(1)}, {Key: "n", Value: int32(1)}},
		Options: options.Index().SetUnique(true),
	}); err != nil {
		return fmt.Errorf("index %s.chunks: %w", Bucket, err)
	}
	if _, err := s.sweep.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "at", Value: int32(1)}},
	}); err != nil {
		return fmt.Errorf("index %s.sweep: %w", Bucket, err)
	}
	s.indexed = true
	return nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, id string, r io.Reader, limit int64) (int64, error) {
	if err := blob.CheckID(id); err != nil {
		return 0, err
	}
	if err := s.ensureIndexes(ctx); err != nil {
		return 0, fmt.Errorf("gridfs: put %s: %w", id, err)
	}
	start := s.now()
	old, err := s.pointer(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("gridfs: put %s: %w", id, err)
	}
	file := bson.NewObjectID()
	// The new file, and the one it will likely unlink, are written down before any chunk.
	entries := []any{entry{ID: bson.NewObjectID(), File: file, Blob: id, At: start.Add(SweepDelay)}}
	if old != nil {
		entries = append(entries, entry{ID: bson.NewObjectID(), File: old.File, Blob: id, At: start.Add(SweepDelay)})
	}
	if _, err := s.sweep.InsertMany(ctx, entries); err != nil {
		return 0, fmt.Errorf("gridfs: put %s: %w", id, err)
	}
	n, err := s.upload(ctx, file, id, r, limit)
	if err == nil && s.now().Sub(start) > MaxPut {
		err = fmt.Errorf("gridfs: put %s: took longer than %s", id, MaxPut)
	}
	if err != nil {
		// The pointer was not touched: the file goes now, and the entries with it (if the
		// server fails us, they stay, and the sweep does it).
		cleanup := context.WithoutCancel(ctx)
		if err := s.remove(cleanup, file); err == nil {
			for _, e := range entries {
				_, _ = s.sweep.DeleteOne(cleanup, bson.D{{Key: "_id", Value: e.(entry).ID}})
			}
		}
		return 0, err
	}
	var prev pointer
	for attempt := 0; ; attempt++ {
		err = s.ids.FindOneAndReplace(ctx, bson.D{{Key: "_id", Value: id}},
			pointer{ID: id, File: file, Length: n},
			options.FindOneAndReplace().SetUpsert(true).SetReturnDocument(options.Before),
		).Decode(&prev)
		// Concurrent upserts of a new id may clash on _id (on FerretDB, and on MongoDB before
		// 4.2): the document is there now, and the next attempt replaces it.
		if !mongo.IsDuplicateKeyError(err) || attempt == 3 {
			break
		}
	}
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
	case err != nil:
		// The pointer may or may not have been switched: the file is left to the sweep.
		return 0, fmt.Errorf("gridfs: put %s: %w", id, err)
	case prev.File != file && (old == nil || prev.File != old.File):
		// Another writer changed the pointer since we read it: its file is unlinked now.
		// Its own entry covers it; this one only gives its readers their grace.
		_, _ = s.sweep.InsertOne(ctx, entry{ID: bson.NewObjectID(), File: prev.File, Blob: id, At: s.now().Add(ReadGrace)})
	}
	s.maybeSweep()
	return n, nil
}

// upload writes r's bytes as the GridFS file named file: its chunks, chunksPerInsert at
// a time, then its files document. A reader error (or TooLarge) is returned as it is.
func (s *Store) upload(ctx context.Context, file bson.ObjectID, id string, r io.Reader, limit int64) (int64, error) {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	lr := blob.LimitReader(r, limit)
	var total int64
	var chunkN int32
	for eof := false; !eof; {
		filled := 0
		for filled < len(buf) && !eof {
			k, err := lr.Read(buf[filled:])
			filled += k
			if err == io.EOF { // the end is io.EOF itself, as io.Copy has it
				eof = true
			} else if err != nil {
				return 0, err
			}
		}
		if filled == 0 {
			break
		}
		docs := make([]any, 0, chunksPerInsert)
		for off := 0; off < filled; off += int(ChunkSize) {
			end := min(off+int(ChunkSize), filled)
			docs = append(docs, bson.D{
				{Key: "_id", Value: bson.NewObjectID()},
				{Key: "files_id", Value: file},
				{Key: "n", Value: chunkN},
				{Key: "data", Value: bson.Binary{Data: buf[off:end]}},
			})
			chunkN++
		}
		if _, err := s.chunks.InsertMany(ctx, docs); err != nil {
			return 0, fmt.Errorf("gridfs: put %s: chunks: %w", id, err)
		}
		total += int64(filled)
	}
	if _, err := s.files.InsertOne(ctx, bson.D{
		{Key: "_id", Value: file},
		{Key: "length", Value: total},
		{Key: "chunkSize", Value: ChunkSize},
		{Key: "uploadDate", Value: bson.NewDateTimeFromTime(s.now())},
		{Key: "filename", Value: id},
	}); err != nil {
		return 0, fmt.Errorf("gridfs: put %s: files: %w", id, err)
	}
	return total, nil
}

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, chunksPerInsert*int(ChunkSize))
	return &b
}}

// remove deletes the file of a failed Put: its files document (if it got that far), then
// its chunks.
func (s *Store) remove(ctx context.Context, file bson.ObjectID) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := s.files.DeleteOne(ctx, bson.D{{Key: "_id", Value: file}}); err != nil {
		return err
	}
	_, err := s.chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: file}})
	return err
}

// pointer is id's pointer, or nil if there is none.
func (s *Store) pointer(ctx context.Context, id string) (*pointer, error) {
	var p pointer
	err := s.ids.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// Open implements blob.Store. The reader streams the chunks with ctx: it fails once ctx is
// done, and ReadGrace after a Put replaced the bytes (or a Delete removed them).
func (s *Store) Open(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if err := blob.CheckID(id); err != nil {
		return nil, 0, err
	}
	p, err := s.pointer(ctx, id)
	if err != nil {
		return nil, 0, fmt.Errorf("gridfs: open %s: %w", id, err)
	}
	if p == nil {
		return nil, 0, mesh.Errorf(mesh.CodeNotFound, "no such file")
	}
	ds, err := s.bucket.OpenDownloadStream(ctx, p.File)
	if errors.Is(err, mongo.ErrFileNotFound) {
		// Swept: the pointer read was older than ReadGrace, or a Delete won since.
		return nil, 0, mesh.Errorf(mesh.CodeNotFound, "no such file")
	}
	if err != nil {
		return nil, 0, fmt.Errorf("gridfs: open %s: %w", id, err)
	}
	return ds, ds.GetFile().Length, nil
}

// Each implements blob.Store: the ids' pointers, with the time their file's ObjectID was made
// (when its Put began) as Stored.
func (s *Store) Each(ctx context.Context, fn func(blob.Info) error) error {
	cur, err := s.ids.Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("gridfs: each: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var p pointer
		if err := cur.Decode(&p); err != nil {
			return fmt.Errorf("gridfs: each: %w", err)
		}
		if err := fn(blob.Info{ID: p.ID, Size: p.Length, Stored: p.File.Timestamp()}); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("gridfs: each: %w", err)
	}
	return nil
}

// Delete implements blob.Store. The bytes stay ReadGrace for the readers that have them
// open, then the sweep removes them.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := blob.CheckID(id); err != nil {
		return err
	}
	p, err := s.pointer(ctx, id)
	if err != nil {
		return fmt.Errorf("gridfs: delete %s: %w", id, err)
	}
	if p == nil {
		return nil
	}
	if _, err := s.sweep.InsertOne(ctx, entry{ID: bson.NewObjectID(), File: p.File, Blob: id, At: s.now().Add(ReadGrace)}); err != nil {
		return fmt.Errorf("gridfs: delete %s: %w", id, err)
	}
	var prev pointer
	err = s.ids.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&prev)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
	case err != nil:
		return fmt.Errorf("gridfs: delete %s: %w", id, err)
	case prev.File != p.File:
		// A Put switched the pointer in between: the file it named has its Put's entry.
		_, _ = s.sweep.InsertOne(ctx, entry{ID: bson.NewObjectID(), File: prev.File, Blob: id, At: s.now().Add(ReadGrace)})
	}
	s.maybeSweep()
	return nil
}

// sweepBatch entries are read, and their files removed, at a time.
const sweepBatch = 100

// Sweep removes the files of the due entries of blobs.sweep that no pointer names, and the
// entries, and returns how many files it removed. Put and Delete run it in the background;
// it is safe to run at any time, from any number of processes.
//
// A batch of entries costs a handful of queries, whatever their number: a query per
// collection with $in (on FerretDB v1, every query on blobs.chunks reads the whole
// collection, as it uses no index).
func (s *Store) Sweep(ctx context.Context) (int, error) {
	removed := 0
	for {
		cur, err := s.sweep.Find(ctx, bson.D{{Key: "at", Value: bson.D{{Key: "$lte", Value: s.now()}}}},
			options.Find().SetLimit(sweepBatch))
		if err != nil {
			return removed, fmt.Errorf("gridfs: sweep: %w", err)
		}
		var due []entry
		if err := cur.All(ctx, &due); err != nil {
			return removed, fmt.Errorf("gridfs: sweep: %w", err)
		}
		if len(due) == 0 {
			return removed, nil
		}
		n, err := s.sweepBatch(ctx, due)
		removed += n
		if err != nil {
			return removed, fmt.Errorf("gridfs: sweep: %w", err)
		}
		if len(due) < sweepBatch {
			return removed, nil
		}
	}
}

// sweepBatch removes the files of due that no pointer names, then the entries.
func (s *Store) sweepBatch(ctx context.Context, due []entry) (int, error) {
	blobIDs := make([]string, 0, len(due))
	entryIDs := make([]bson.ObjectID, 0, len(due))
	for _, e := range due {
		blobIDs = append(blobIDs, e.Blob)
		entryIDs = append(entryIDs, e.ID)
	}
	cur, err := s.ids.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: blobIDs}}}})
	if err != nil {
		return 0, err
	}
	var pointers []pointer
	if err := cur.All(ctx, &pointers); err != nil {
		return 0, err
	}
	live := make(map[bson.ObjectID]bool, len(pointers))
	for _, p := range pointers {
		live[p.File] = true
	}
	var dead []bson.ObjectID
	seen := make(map[bson.ObjectID]bool, len(due))
	for _, e := range due {
		if !live[e.File] && !seen[e.File] {
			seen[e.File] = true
			dead = append(dead, e.File)
		}
	}
	removed := 0
	if len(dead) > 0 {
		// The files documents first: a file is never seen with chunks missing.
		res, err := s.files.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: dead}}}})
		if err != nil {
			return 0, err
		}
		removed = int(res.DeletedCount)
		if _, err := s.chunks.DeleteMany(ctx, bson.D{{Key: "files_id", Value: bson.D{{Key: "$in", Value: dead}}}}); err != nil {
			return removed, err
		}
	}
	_, err = s.sweep.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: entryIDs}}}})
	return removed, err
}

// maybeSweep starts a sweep in the background if none ran for SweepInterval and none is
// running. Close stops it.
func (s *Store) maybeSweep() {
	now := s.now().UnixNano()
	if now-s.lastRun.Load() < int64(SweepInterval) || !s.sweeping.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.sweeping.Store(false)
		return
	}
	s.lastRun.Store(now)
	s.bg.Go(func() {
		defer s.sweeping.Store(false)
		_, _ = s.Sweep(s.bgCtx) // what it leaves, the next one does
	})
}

// Ping implements blob.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return fmt.Errorf("gridfs: ping: %w", err)
	}
	return nil
}

// Close stops a sweep in progress and, for a Store made by Open, disconnects.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.bgCancel()
	s.bg.Wait()
	if s.client != nil {
		if err := s.client.Disconnect(context.Background()); err != nil {
			return fmt.Errorf("gridfs: close: %w", err)
		}
	}
	return nil
}
