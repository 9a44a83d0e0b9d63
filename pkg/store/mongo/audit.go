package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/store"
)

// auditDoc is one audit entry, in audit; its _id is the entry's ID (a ULID: _id order is
// time order). Empty fields are stored as empty strings, so that they can be matched.
type auditDoc struct {
	ID         string        `bson:"_id"`
	At         bson.DateTime `bson:"at"`
	ActorID    string        `bson:"actorId"`
	OnBehalfOf string        `bson:"onBehalfOf"`
	Action     string        `bson:"action"`
	Target     string        `bson:"target"`
	Result     string        `bson:"result"`
	Addr       string        `bson:"addr"`
}

func (d *auditDoc) entry() store.AuditEntry {
	return store.AuditEntry{
		ID: d.ID, At: meshTime(d.At).Time, ActorID: d.ActorID, OnBehalfOf: d.OnBehalfOf,
		Action: d.Action, Target: d.Target, Result: d.Result, Addr: d.Addr,
	}
}

// AppendAudit inserts the entries with one ordered InsertMany. Without transactions it is not
// all or nothing: a failure part-way (a duplicate id, a lost connection) may leave the entries
// before it stored. No entries is a no-op.
func (s *Store) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	docs := make([]any, len(entries))
	for i, e := range entries {
		docs[i] = auditDoc{
			ID: e.ID, At: date(e.At), ActorID: e.ActorID, OnBehalfOf: e.OnBehalfOf,
			Action: e.Action, Target: e.Target, Result: e.Result, Addr: e.Addr,
		}
	}
	_, err := s.audit.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
	return wrap("append audit", err)
}

// ListAudit lists the entries matching q, newest first (by _id); see store.AuditQuery.
func (s *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	filter := bson.D{}
	eq := func(key, v string) {
		if v != "" {
			filter = append(filter, bson.E{Key: key, Value: v})
		}
	}
	eq("actorId", q.ActorID)
	eq("action", q.Action)
	eq("target", q.Target)
	eq("result", q.Result)
	at := bson.D{}
	if !q.Since.IsZero() {
		at = append(at, bson.E{Key: "$gte", Value: bson.DateTime(q.Since.UnixMilli())})
	}
	if !q.Until.IsZero() {
		at = append(at, bson.E{Key: "$lt", Value: bson.DateTime(q.Until.UnixMilli())})
	}
	if len(at) > 0 {
		filter = append(filter, bson.E{Key: "at", Value: at})
	}
	if q.Before != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: q.Before}}})
	}
	docs, err := findAll[auditDoc](ctx, s.audit, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: -1}}).
		SetLimit(int64(listLimit(q.Limit))))
	if err != nil {
		return nil, wrap("list audit", err)
	}
	out := make([]store.AuditEntry, len(docs))
	for i := range docs {
		out[i] = docs[i].entry()
	}
	return out, nil
}
