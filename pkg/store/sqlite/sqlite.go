// Package sqlite is the single-node store: every aggregate of store.Store in one SQLite file,
// through the pure-Go driver modernc.org/sqlite.
//
// The file is in WAL mode. Writes go through a pool of exactly one connection, in immediate
// transactions: SQLite has one writer at a time anyway, and queueing writers in the pool is
// cheaper than having them collide on the file lock and back off in the busy handler. Reads
// go through a separate pool of read-only connections, which WAL lets run beside the writer.
// (Measured on two cores with 8 writers and 8 readers: about half the median latency of one
// shared pool, and 10-20% more throughput.) Every statement is prepared once and reused (see
// pool). Several Stores (or processes) may open the same file; they then share the file
// lock, and busy_timeout makes a writer wait for another's transaction rather than fail.
//
// The schema is made and migrated on Open (see migrations). All SQL of the store lives in
// this package. Times are stored as unix milliseconds.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var _ store.Store = (*Store)(nil)

// The connection parameters. busy_timeout makes a connection wait for the file lock (the
// driver applies it before every other pragma); _txlock=immediate takes the write lock at
// BEGIN, so a transaction never fails half-way when it upgrades from reading to writing.
const (
	writeParams = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
	readParams = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=query_only(1)"
)

// Defaults of Options.
const (
	DefaultReadConns     = 4
	DefaultPurgeInterval = 10 * time.Minute
)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	// ReadConns is the size of the read pool (DefaultReadConns if zero or less).
	ReadConns int
	// Now is the store's clock (time.Now if nil). It decides when mutes end and which revoked
	// tokens have expired; tests set it to drive time.
	Now func() time.Time
	// PurgeInterval is how often, at most, RevokeToken also deletes the revoked tokens that
	// have expired (DefaultPurgeInterval if zero or less). Open purges once too.
	PurgeInterval time.Duration
}

// Store is the SQLite implementation of store.Store. It is safe for concurrent use.
type Store struct {
	w *pool // exactly one connection: every write
	r *pool // read-only connections: every read

	now           func() time.Time
	purgeInterval time.Duration
	lastPurge     atomic.Int64 // unix ms of the last purge of expired tokens

	creates       chan *createReq // CreateMessage calls waiting for the committer
	closing       chan struct{}
	closeOnce     sync.Once
	cmu           sync.RWMutex // held (read) while queueing a create; Close takes it to refuse more
	closed        bool
	committerDone chan struct{}
}

// Open opens (creating it if needed) the database file at path and brings its schema up to
// date. path is a file system path, not a URI; ":memory:" is refused because the two pools
// would see two different databases. Open fails if the file's schema is newer than this
// build knows.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	return open(ctx, path, opts, migrations)
}

func open(ctx context.Context, path string, opts Options, migs []migration) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: %q is not a file path", path)
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = DefaultReadConns
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PurgeInterval <= 0 {
		opts.PurgeInterval = DefaultPurgeInterval
	}
	name := "file:" + escapePath(path)

	w, err := sql.Open("sqlite", name+"?"+writeParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := retryBusy(ctx, func() error { return migrate(ctx, w, migs, opts.Now()) }); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	r, err := sql.Open("sqlite", name+"?"+readParams)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(opts.ReadConns)
	r.SetMaxIdleConns(opts.ReadConns)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := retryBusy(ctx, func() error { return r.PingContext(ctx) }); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	s := &Store{w: newPool(w), r: newPool(r), now: opts.Now, purgeInterval: opts.PurgeInterval,
		creates: make(chan *createReq, 4*maxGroup), closing: make(chan struct{}), committerDone: make(chan struct{})}
	go s.committer()
	if err := s.write(ctx, "purge tokens", func(tx *wtx) error {
		return s.purgeTokens(ctx, tx)
	}); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// openRetry bounds how long Open retries its first statements on SQLITE_BUSY.
const openRetry = 10 * time.Second

// retryBusy runs fn until it does not fail with SQLITE_BUSY, for up to openRetry. Open needs
// it: while connections of several Stores turn a new file to WAL mode at once, SQLite can
// answer SQLITE_BUSY at once instead of waiting (busy_timeout does not apply where waiting
// could deadlock). After Open, every write begins with BEGIN IMMEDIATE, which does wait.
func retryBusy(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(openRetry)
	delay := 2 * time.Millisecond
	for {
		err := fn()
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// isBusy reports whether err is SQLITE_BUSY (with any extended code).
func isBusy(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// escapePath makes path safe inside a SQLite URI: the driver cuts the DSN at the first '?',
// and SQLite decodes %HH and ends the path at '#'.
func escapePath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// Ping answers whether the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes both pools. The Store must not be used afterwards.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cmu.Lock()
		s.closed = true
		s.cmu.Unlock()
		close(s.closing)
		<-s.committerDone
	})
	return errors.Join(s.r.close(), s.w.close())
}

// write runs fn in an immediate transaction on the write connection, and commits it if fn
// returns nil. Errors that are not user-facing are wrapped with op.
func (s *Store) write(ctx context.Context, op string, fn func(tx *wtx) error) error {
	tx, err := s.w.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	t := &wtx{tx: tx, p: s.w}
	defer func() {
		// The connection is free again: prepare what ran unprepared, for next time. A failure
		// only means it runs unprepared again.
		for _, q := range t.missed {
			_, _ = s.w.prepare(context.WithoutCancel(ctx), q)
		}
	}()
	if err := fn(t); err != nil {
		_ = tx.Rollback()
		return wrap(op, err)
	}
	if err := tx.Commit(); err != nil {
		return wrap(op, err)
	}
	return nil
}

// querier is what both the read pool and a write transaction offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

func notFound(what, id string) error {
	return mesh.Errorf(mesh.CodeNotFound, "%s %q not found", what, id)
}

// isConstraint reports whether err is the SQLite constraint violation code (an extended code
// such as SQLITE_CONSTRAINT_UNIQUE), on the table and column named in detail if it is set
// (for example "participants.email").
func isConstraint(err error, code int, detail string) bool {
	var se *msqlite.Error
	if !errors.As(err, &se) || se.Code() != code {
		return false
	}
	return detail == "" || strings.Contains(se.Error(), detail)
}

const (
	codeUnique     = sqlite3.SQLITE_CONSTRAINT_UNIQUE
	codeForeignKey = sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
)

// millis is t as unix milliseconds (0 for the zero time).
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// nullString maps a nil pointer to NULL.
func nullString(p *string) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *p, Valid: true}
}

// stringPtr maps NULL to nil.
func stringPtr(n sql.NullString) *string {
	if !n.Valid {
		return nil
	}
	s := n.String
	return &s
}

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
