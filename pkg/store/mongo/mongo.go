// Package mongo is the clustered store: every aggregate of store.Store in one MongoDB
// database, through go.mongodb.org/mongo-driver/v2. Several processes may share the database.
//
// It relies only on what both a MongoDB replica set and FerretDB v1 (the server the tests run
// against) guarantee: a single-document insert is atomic, and a unique index refuses a second
// document with the same key (E11000). There are no transactions, no change streams, no TTL or
// partial indexes and no $lookup; updates are never used for anything two writers race on,
// because FerretDB v1 applies an update as read, modify, write back the whole document, and
// so loses concurrent updates of one document silently.
//
// So every rule the contract makes atomic is an insert under a unique index:
//
//   - A message's seq: the message is inserted with the room's highest seq plus one, under a
//     unique (room, seq) index; a duplicate means another writer took that seq, and the insert
//     is retried higher. Nothing is written before that insert, so a failure leaves no gap,
//     and a seq is never given twice. Within one Store, a room's messages are inserted by one
//     committer, in batches (see CreateMessage), so only writers of other processes collide.
//   - A clientMsgId: a unique (room, author, clientKey) index, where clientKey is "c:" and the
//     clientMsgId, or "m:" and the message id for a message without one (there are no partial
//     indexes, so "none" must be unique too). It is the same insert as the seq's.
//   - The first participant: a unique firstKey, "first" on the first participant ever and "n:"
//     and its id on every other; a unique emailKey, "e:" and the lower-cased email, or "n:" and
//     the id for none. Changing the email is the one update under a unique index here: the
//     email and its emailKey are set in one update of the document, which the index refuses
//     whole when the email is taken (see UpdateParticipant).
//   - Memberships, reactions, mutes, settings, idempotent results: one document each, under a
//     unique _id built from what identifies it (see idKey).
//   - A custom role's name: the role's _id.
//   - An audit entry: its id (a ULID, so _id order is time order) is its _id. Entries are only
//     inserted, never updated.
//   - An invite code: the invite's _id. Its uses are numbered 1, 2, ...: a use is inserted
//     with the next number under a unique _id (see UseInvite), so of concurrent uses exactly
//     the uses left succeed, and a retry after a duplicate goes higher, up to the maximum.
//     Like a room, an invite has a key, new each time the code is created, and its uses are
//     stored under that key, so uses left over by a deletion (or racing with it) never count
//     for a code created again.
//   - A file's attachment to a message: a claim inserted under the file's ID (see AttachFiles),
//     so of two messages racing for a file exactly one gets it. Only the claim's holder then
//     writes the file record's message.
//   - A read mark that only moves forward: each higher seq is a document of its own, inserted
//     under a unique _id and never updated; the mark is the highest, and only a caller that has
//     seen a higher one deletes the lower (see SetReadMark).
//
// Deletion without transactions: a room has a key, random and new each time a room is
// created, and everything in the room (memberships, mutes, messages, reactions, file records
// and their claims, read marks) is stored under that key. Deleting the room document is the one step that deletes the room; what is
// under its key is then unreachable, and is purged next. A purge cut short (a crash), or a
// write racing with the deletion, leaves garbage that no read returns, never a leftover in a
// room created again under the same id. A deleted message gets a document in deletions (an
// insert, so no concurrent edit can undo it), and the writers that could race with it (an
// edit, a reaction, a pin, a lock) check for it after writing and undo what they did.
//
// Indexes are made on Open (idempotently). Times are stored as BSON dates (milliseconds).
package mongo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodb "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var _ store.Store = (*Store)(nil)

// Defaults of Options.
const (
	DefaultPurgeInterval = 10 * time.Minute
)

// Options tune a Store. The zero value is ready to use.
// DefaultServerSelectionTimeout bounds how long an operation waits for a reachable server
// unless the URI says otherwise (serverSelectionTimeoutMS).
const DefaultServerSelectionTimeout = 2 * time.Second

type Options struct {
	// Now is the store's clock (time.Now if nil). It decides when mutes end and which revoked
	// tokens have expired, and orders members and reactions; tests set it to drive time.
	Now func() time.Time
	// PurgeInterval is how often, at most, RevokeToken also deletes the revoked tokens that
	// have expired (DefaultPurgeInterval if zero or less). Open purges once too.
	PurgeInterval time.Duration
}

// Store is the MongoDB implementation of store.Store. It is safe for concurrent use, and
// several Stores (in several processes) may use one database at once.
type Store struct {
	client *mongodb.Client
	db     *mongodb.Database

	participants, rooms, memberships, mutes, messages, deletions, reactions,
	tokens, settings, idempotency, roles, audit, invites, inviteUses, files, fileClaims, readMarks *mongodb.Collection

	now           func() time.Time
	purgeInterval time.Duration
	lastPurge     atomic.Int64 // unix ms of the last purge of expired tokens
	ord           atomic.Int64 // the last order number given (see nextOrd)

	qmu        sync.Mutex
	queues     map[string]*roomQueue // room key -> messages waiting for the room's committer
	closed     bool
	committers sync.WaitGroup

	seqMu    sync.Mutex
	lastSeqs map[string]int64 // room key -> a seq known to exist (the highest this Store saw)

	// insert is insertOrdered; tests wrap it to make the server refuse or fail.
	insert func(ctx context.Context, docs []any) (n int, refused *mongodb.WriteError, err error)
}

// Collection names.
const (
	collParticipants = "participants"
	collRooms        = "rooms"
	collMemberships  = "memberships"
	collMutes        = "mutes"
	collMessages     = "messages"
	collDeletions    = "deletions"
	collReactions    = "reactions"
	collTokens       = "revokedTokens"
	collSettings     = "settings"
	collIdempotency  = "idempotency"
	collRoles        = "roles"
	collAudit        = "audit"
	collInvites      = "invites"
	collInviteUses   = "inviteUses"
	collFiles        = "files"
	collFileClaims   = "fileClaims"
	collReadMarks    = "readMarks"
)

// Open connects to the MongoDB deployment at uri (a "mongodb://" or "mongodb+srv://"
// connection string; its options, such as replicaSet or timeouts, apply), checks that it
// answers, and makes the indexes of database dbName. Writes are acknowledged by a majority
// of the replica set unless the URI asks otherwise (w=...): the seq rule needs acknowledged
// inserts to survive a failover.
func Open(ctx context.Context, uri, dbName string, opts Options) (*Store, error) {
	if dbName == "" {
		return nil, errors.New("mongo: open: empty database name")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PurgeInterval <= 0 {
		opts.PurgeInterval = DefaultPurgeInterval
	}
	copts := options.Client().ApplyURI(uri)
	if copts.WriteConcern == nil {
		copts.SetWriteConcern(writeconcern.Majority())
	}
	// When the database is unreachable, fail fast (callers answer unavailable) rather than
	// wait the driver's default 30 s for a server.
	if copts.ServerSelectionTimeout == nil {
		copts.SetServerSelectionTimeout(DefaultServerSelectionTimeout)
	}
	client, err := mongodb.Connect(copts)
	if err != nil {
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("mongo: open: ping: %w", err)
	}
	db := client.Database(dbName)
	s := &Store{
		client: client, db: db,
		participants: db.Collection(collParticipants),
		rooms:        db.Collection(collRooms),
		memberships:  db.Collection(collMemberships),
		mutes:        db.Collection(collMutes),
		messages:     db.Collection(collMessages),
		deletions:    db.Collection(collDeletions),
		reactions:    db.Collection(collReactions),
		tokens:       db.Collection(collTokens),
		settings:     db.Collection(collSettings),
		idempotency:  db.Collection(collIdempotency),
		roles:        db.Collection(collRoles),
		audit:        db.Collection(collAudit),
		invites:      db.Collection(collInvites),
		inviteUses:   db.Collection(collInviteUses),
		files:        db.Collection(collFiles),
		fileClaims:   db.Collection(collFileClaims),
		readMarks:    db.Collection(collReadMarks),

		now:           opts.Now,
		purgeInterval: opts.PurgeInterval,
		queues:        make(map[string]*roomQueue),
		lastSeqs:      make(map[string]int64),
	}
	s.insert = s.insertOrdered
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	if err := s.purgeTokens(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	return s, nil
}

// index is one index of a collection.
type index struct {
	coll   string
	keys   bson.D
	unique bool
}

// indexes are the store's indexes besides _id. The unique ones carry the contract's rules (see
// the package documentation); the others serve the queries. None is partial or TTL.
var indexes = []index{
	{collParticipants, bson.D{{Key: "emailKey", Value: 1}}, true},
	{collParticipants, bson.D{{Key: "firstKey", Value: 1}}, true},
	{collRooms, bson.D{{Key: "key", Value: 1}}, true},
	{collRooms, bson.D{{Key: "private", Value: 1}, {Key: "_id", Value: 1}}, false},
	{collMemberships, bson.D{{Key: "room", Value: 1}, {Key: "ord", Value: 1}}, false},
	{collMemberships, bson.D{{Key: "p", Value: 1}, {Key: "roomId", Value: 1}}, false},
	{collMutes, bson.D{{Key: "room", Value: 1}}, false},
	{collMessages, bson.D{{Key: "room", Value: 1}, {Key: "seq", Value: 1}}, true},
	{collMessages, bson.D{{Key: "room", Value: 1}, {Key: "author", Value: 1}, {Key: "clientKey", Value: 1}}, true},
	{collMessages, bson.D{{Key: "thread", Value: 1}, {Key: "seq", Value: 1}}, false},
	{collMessages, bson.D{{Key: "room", Value: 1}, {Key: "thread", Value: 1}}, false}, // ListThreads: a room's replies
	{collDeletions, bson.D{{Key: "room", Value: 1}}, false},
	{collReactions, bson.D{{Key: "m", Value: 1}, {Key: "ord", Value: 1}}, false},
	{collReactions, bson.D{{Key: "room", Value: 1}}, false},
	{collTokens, bson.D{{Key: "expires", Value: 1}}, false},
	{collAudit, bson.D{{Key: "actorId", Value: 1}, {Key: "_id", Value: 1}}, false},
	{collAudit, bson.D{{Key: "action", Value: 1}, {Key: "_id", Value: 1}}, false},
	{collAudit, bson.D{{Key: "target", Value: 1}, {Key: "_id", Value: 1}}, false},
	{collInviteUses, bson.D{{Key: "key", Value: 1}}, false},
	{collFiles, bson.D{{Key: "room", Value: 1}, {Key: "_id", Value: 1}}, false},
	{collFileClaims, bson.D{{Key: "room", Value: 1}}, false},
	{collReadMarks, bson.D{{Key: "room", Value: 1}, {Key: "p", Value: 1}, {Key: "seq", Value: 1}}, false},
}

// ensureIndexes makes the indexes that are missing; making an existing one again is a no-op,
// so concurrent Opens are safe. Each index is made by a command of its own: FerretDB v1.24
// panics (and drops the connection) on a createIndexes command that names more than one index
// that exists already.
func (s *Store) ensureIndexes(ctx context.Context) error {
	for _, ix := range indexes {
		if _, err := s.db.Collection(ix.coll).Indexes().CreateOne(ctx, mongodb.IndexModel{
			Keys:    ix.keys,
			Options: options.Index().SetName(indexName(ix.keys)).SetUnique(ix.unique),
		}); err != nil {
			return fmt.Errorf("create index %s of %s: %w", indexName(ix.keys), ix.coll, err)
		}
	}
	return nil
}

// indexName is MongoDB's default name for keys, such as "room_1_seq_1".
func indexName(keys bson.D) string {
	parts := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		parts = append(parts, k.Key, fmt.Sprint(k.Value))
	}
	return strings.Join(parts, "_")
}

// Ping answers whether the deployment's primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}

// Close waits for the messages queued by CreateMessage to be stored (or refused), and
// disconnects, waiting up to 10 s for other operations in flight. The Store must not be used
// afterwards.
func (s *Store) Close() error {
	s.qmu.Lock()
	s.closed = true
	s.qmu.Unlock()
	s.committers.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil && !errors.Is(err, mongodb.ErrClientDisconnected) {
		return fmt.Errorf("mongo: close: %w", err)
	}
	return nil
}

// wrap adds context to internal errors; user-facing errors (*mesh.Error) pass unchanged.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var me *mesh.Error
	if errors.As(err, &me) {
		return err
	}
	if unreachable(err) {
		return mesh.Errorf(mesh.CodeUnavailable, "the mesh's database is unavailable; try again")
	}
	return fmt.Errorf("mongo: %s: %w", op, err)
}

// unreachable reports whether err means the database could not be reached (rather than that
// it refused the operation): callers answer unavailable, and the client retries.
func unreachable(err error) bool {
	return mongodb.IsNetworkError(err) || mongodb.IsTimeout(err) ||
		strings.Contains(err.Error(), "server selection error")
}

func notFound(what, id string) error {
	return mesh.Errorf(mesh.CodeNotFound, "%s %q not found", what, id)
}

// isDup reports whether err is a duplicate key error (E11000) of any unique index.
func isDup(err error) bool { return mongodb.IsDuplicateKeyError(err) }

// idKey joins parts into one _id that no other parts make: each part is prefixed by its
// length ("3:abc5:hello" for abc, hello).
func idKey(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// newRoomKey is a fresh random room key.
func newRoomKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b[:])
}

// nextOrd is an order number: the store clock in nanoseconds, and always greater than the
// last one this Store gave. It orders members by joining and reactors by reacting; across
// processes, by their clocks.
func (s *Store) nextOrd() int64 {
	for {
		last := s.ord.Load()
		next := max(s.now().UnixNano(), last+1)
		if s.ord.CompareAndSwap(last, next) {
			return next
		}
	}
}

// date is t as a BSON date; the zero time is 0 (as in the SQLite store), read back as zero.
func date(t time.Time) bson.DateTime {
	if t.IsZero() {
		return 0
	}
	return bson.DateTime(t.UnixMilli())
}

// meshTime is the inverse of date.
func meshTime(d bson.DateTime) mesh.Time { return mesh.TimeFromMilli(int64(d)) }

// listLimit applies the contract's default and maximum to a requested list size.
func listLimit(n int) int {
	switch {
	case n <= 0:
		return mesh.DefaultListLimit
	case n > mesh.MaxListLimit:
		return mesh.MaxListLimit
	default:
		return n
	}
}

// containsFold is the filter on a string field that holds text, literally (quoted as a
// regular expression: no pattern characters) and case-insensitively. SearchMessages and
// FindParticipants both match with it, so that the two searches behave alike. FerretDB v1
// runs it as a Go regexp with (?i): Unicode simple case folding, one character to one (é
// finds É, ß finds ẞ, but ß never finds SS), as the sqlite store's containsFold compares.
// The empty text matches every string.
func containsFold(text string) bson.D {
	return bson.D{{Key: "$regex", Value: regexp.QuoteMeta(text)}, {Key: "$options", Value: "i"}}
}

// findOne decodes the document of coll matching filter into v; found is false if none does.
func findOne(ctx context.Context, coll *mongodb.Collection, filter any, v any,
	opts ...options.Lister[options.FindOneOptions]) (found bool, err error) {
	err = coll.FindOne(ctx, filter, opts...).Decode(v)
	if errors.Is(err, mongodb.ErrNoDocuments) {
		return false, nil
	}
	return err == nil, err
}

// findAll decodes every document of coll matching filter into a new slice.
func findAll[T any](ctx context.Context, coll *mongodb.Collection, filter any,
	opts ...options.Lister[options.FindOptions]) ([]T, error) {
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		return nil, err
	}
	out := []T{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// upsertRetries bounds the retries of an upsert that raced with another upsert of the same
// new document: the loser gets a duplicate key error, and the retry finds the document.
const upsertRetries = 3

// upsert runs fn (an update or replace with upsert) until it does not fail with a duplicate
// key error.
func upsert(fn func() error) error {
	var err error
	for range upsertRetries {
		if err = fn(); !isDup(err) {
			return err
		}
	}
	return err
}

// errRaced is the internal error of an insert refused as a duplicate whose duplicate is gone
// when read back.
var errRaced = errors.New("refused as a duplicate, but the stored document is gone")
