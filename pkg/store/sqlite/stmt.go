package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// pool is a connection pool with a cache of prepared statements by query text. SQLite spends
// much of a short query's time parsing it (60% of ListMessages' CPU before this cache), so
// every query of the store runs prepared once it has run once.
type pool struct {
	db *sql.DB

	mu     sync.RWMutex
	stmts  map[string]*sql.Stmt
	closed bool
}

func newPool(db *sql.DB) *pool { return &pool{db: db, stmts: map[string]*sql.Stmt{}} }

// cached returns the statement prepared for query, or nil.
func (p *pool) cached(query string) *sql.Stmt {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stmts[query]
}

// prepare returns the statement for query, preparing it on first use. Preparing takes a
// connection of the pool: never call it on the write pool inside a write transaction, whose
// connection is the pool's only one (see wtx).
func (p *pool) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := p.cached(query); st != nil {
		return st, nil
	}
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.stmts[query]; ok { // another goroutine prepared it meanwhile
		_ = st.Close()
		return prev, nil
	}
	if p.closed {
		_ = st.Close()
		return nil, errors.New("store closed")
	}
	p.stmts[query] = st
	return st, nil
}

// QueryContext runs a query, prepared.
func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs a query that returns at most one row, prepared.
func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.prepare(ctx, query)
	if err != nil {
		// A *sql.Row cannot be made with an error: run it unprepared, to report the error.
		return p.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// close closes the statements and the pool.
func (p *pool) close() error {
	p.mu.Lock()
	var errs []error
	for _, st := range p.stmts {
		errs = append(errs, st.Close())
	}
	p.stmts, p.closed = map[string]*sql.Stmt{}, true
	p.mu.Unlock()
	return errors.Join(append(errs, p.db.Close())...)
}

// wtx is a write transaction. It runs the write pool's prepared statements on its connection
// (database/sql reuses a statement already prepared on that connection). A query without a
// prepared statement runs unprepared and is noted in missed: Store.write prepares those once
// the transaction is over and the connection free.
type wtx struct {
	tx     *sql.Tx
	p      *pool
	missed []string
}

func (t *wtx) stmt(ctx context.Context, query string) *sql.Stmt {
	st := t.p.cached(query)
	if st == nil {
		t.missed = append(t.missed, query)
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

// ExecContext runs a statement in the transaction.
func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

// QueryContext runs a query in the transaction.
func (t *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query that returns at most one row in the transaction.
func (t *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}
