package apisvc

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// auditLog appends the record of every mutating action to the store's audit log. Entries are
// written in batches (one write per batch, at most auditEvery apart) by one goroutine while
// the service runs; a full buffer makes the caller write its entry itself, so nothing is
// dropped. When the service is not running (tests that call Handle directly), entries are
// written at once.
type auditLog struct {
	st      store.Store
	log     *slog.Logger
	ch      chan store.AuditEntry
	running atomic.Bool
	wg      sync.WaitGroup
}

const (
	auditBuffer = 8192
	auditBatch  = 512
	auditEvery  = 50 * time.Millisecond
)

func newAuditLog(st store.Store, log *slog.Logger) *auditLog {
	return &auditLog{st: st, log: log, ch: make(chan store.AuditEntry, auditBuffer)}
}

// record queues an entry (or writes it, see auditLog).
func (a *auditLog) record(e store.AuditEntry) {
	if a.running.Load() {
		select {
		case a.ch <- e:
			return
		default:
		}
	}
	a.write([]store.AuditEntry{e})
}

func (a *auditLog) write(batch []store.AuditEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.st.AppendAudit(ctx, batch)
	if err != nil { // once more: the database may have been away for a moment
		err = a.st.AppendAudit(ctx, batch)
	}
	if err != nil {
		a.log.Error("audit entries not written", "entries", len(batch), "err", err)
	}
}

// start runs the writer until stop.
func (a *auditLog) start() {
	a.running.Store(true)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(auditEvery)
		defer t.Stop()
		var batch []store.AuditEntry
		flush := func() {
			if len(batch) > 0 {
				a.write(batch)
				batch = nil
			}
		}
		for {
			select {
			case e, ok := <-a.ch:
				if !ok {
					flush()
					return
				}
				batch = append(batch, e)
				if len(batch) >= auditBatch {
					flush()
				}
			case <-t.C:
				flush()
			}
		}
	}()
}

// stop writes what is queued and stops the writer.
func (a *auditLog) stop() {
	if !a.running.Swap(false) {
		return
	}
	close(a.ch)
	a.wg.Wait()
}

// auditTarget is what an operation acts on: its first path parameter.
func auditTarget(c *call) string {
	if c.target != "" {
		return c.target
	}
	for _, k := range []string{"participantId", "messageId", "fileId", "roomId", "name"} {
		if v := c.req.Params[k]; v != "" {
			return v
		}
	}
	return ""
}

// audit records a mutating command's outcome.
func (s *Service) audit(c *call, r mesh.Reply) { s.auditAs(c, c.cmd.Op, r) }

// auditAs records a command's outcome as action.
func (s *Service) auditAs(c *call, action string, r mesh.Reply) {
	e := store.AuditEntry{
		ID: newID(), At: time.Now().UTC().Truncate(time.Millisecond), Action: action,
		Target: auditTarget(c), Result: "ok", Addr: c.req.Addr,
	}
	if c.cmd.Actor != nil {
		e.ActorID = c.cmd.Actor.ID
		e.OnBehalfOf = c.cmd.Actor.ID // bots will name their human owner here
	}
	if c.actor != nil && c.actor.OwnerID != nil && *c.actor.OwnerID != "" {
		e.OnBehalfOf = *c.actor.OwnerID
	}
	if r.Error != nil {
		e.Result = string(r.Error.Code)
	}
	s.auditLog.record(e)
}

type auditView struct {
	ID         string    `json:"id"`
	At         mesh.Time `json:"at"`
	ActorID    *string   `json:"actorId"`
	OnBehalfOf *string   `json:"onBehalfOf"`
	Action     string    `json:"action"`
	Target     *string   `json:"target"`
	Result     string    `json:"result"`
	Addr       string    `json:"addr,omitempty"`
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// auditList answers the audit log, newest first, filtered by actorId, action, target, result,
// since and until (RFC 3339), paged by cursor.
func (s *Service) auditList(ctx context.Context, c *call) (any, error) {
	limit, err := listLimit(c)
	if err != nil {
		return nil, err
	}
	q := store.AuditQuery{
		ActorID: c.req.Query["actorId"], Action: c.req.Query["action"], Target: c.req.Query["target"],
		Result: c.req.Query["result"], Before: c.req.Query["cursor"], Limit: limit,
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if v := c.req.Query[name]; v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, mesh.Errorf(mesh.CodeBadRequest, "%s must be an RFC 3339 time", name)
			}
			*dst = t.UTC()
		}
	}
	entries, err := s.store.ListAudit(ctx, q)
	if err != nil {
		return nil, err
	}
	out := list[auditView]{Items: []auditView{}}
	for _, e := range entries {
		out.Items = append(out.Items, auditView{
			ID: e.ID, At: mesh.TimeOf(e.At), ActorID: nullIfEmpty(e.ActorID), OnBehalfOf: nullIfEmpty(e.OnBehalfOf),
			Action: e.Action, Target: nullIfEmpty(e.Target), Result: e.Result, Addr: e.Addr,
		})
	}
	if len(entries) == limit {
		out.NextCursor = strp(entries[len(entries)-1].ID)
	}
	return out, nil
}
