package mongo

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodb "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// inviteDoc is an invite code in invites; its _id is the code, so codes are unique by
// construction. Key is random and new each time the code is created: its uses are stored
// under it.
type inviteDoc struct {
	Code      string        `bson:"_id"`
	Key       string        `bson:"key"`
	CreatedBy string        `bson:"createdBy"`
	CreatedAt bson.DateTime `bson:"createdAt"`
	ExpiresAt bson.DateTime `bson:"expiresAt"` // 0: never
	MaxUses   int           `bson:"maxUses"`
}

// inviteUseDoc is one use of an invite, in inviteUses. Its _id is the invite's key, "/" and
// the use's number (1, 2, ...), so a number is taken once (see UseInvite).
type inviteUseDoc struct {
	ID   string        `bson:"_id"`
	Key  string        `bson:"key"`
	Code string        `bson:"code"`
	N    int           `bson:"n"`
	At   bson.DateTime `bson:"at"`
}

func inviteUseID(key string, n int) string { return key + "/" + strconv.Itoa(n) }

func (d *inviteDoc) invite(uses int) store.Invite {
	return store.Invite{
		Code: d.Code, CreatedBy: d.CreatedBy, CreatedAt: meshTime(d.CreatedAt).Time,
		ExpiresAt: meshTime(d.ExpiresAt).Time, MaxUses: d.MaxUses, Uses: uses,
	}
}

// expired reports whether the invite has an expiry and now (at millisecond precision) is at or
// after it.
func (d *inviteDoc) expired(now time.Time) bool {
	return d.ExpiresAt != 0 && now.UnixMilli() >= int64(d.ExpiresAt)
}

// countUses counts the uses stored under an invite's key.
func (s *Store) countUses(ctx context.Context, key string) (int, error) {
	n, err := s.inviteUses.CountDocuments(ctx, bson.D{{Key: "key", Value: key}})
	return int(n), err
}

// CreateInvite stores inv, unused: an insert under the unique _id; a duplicate is
// CodeConflict.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) (store.Invite, error) {
	d := inviteDoc{
		Code: inv.Code, Key: newRoomKey(), CreatedBy: inv.CreatedBy, CreatedAt: date(inv.CreatedAt),
		ExpiresAt: date(inv.ExpiresAt), MaxUses: inv.MaxUses,
	}
	if _, err := s.invites.InsertOne(ctx, d); err != nil {
		if isDup(err) {
			return store.Invite{}, mesh.Errorf(mesh.CodeConflict, "invite %q already exists", inv.Code)
		}
		return store.Invite{}, wrap("create invite", err)
	}
	return d.invite(0), nil
}

// ListInvites lists the codes newest first (then by code), each with its uses counted.
func (s *Store) ListInvites(ctx context.Context) ([]store.Invite, error) {
	docs, err := findAll[inviteDoc](ctx, s.invites, bson.D{},
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, wrap("list invites", err)
	}
	out := make([]store.Invite, len(docs))
	for i := range docs {
		uses, err := s.countUses(ctx, docs[i].Key)
		if err != nil {
			return nil, wrap("list invites", err)
		}
		out[i] = docs[i].invite(uses)
	}
	return out, nil
}

// DeleteInvite removes the code, or answers CodeNotFound, then purges its uses. Deleting the
// invite document is the one step that deletes it; uses left behind (a purge cut short, a use
// racing with the deletion) are under the dead key, and never count for the code created
// again.
func (s *Store) DeleteInvite(ctx context.Context, code string) error {
	var d inviteDoc
	err := s.invites.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: code}}).Decode(&d)
	if errors.Is(err, mongodb.ErrNoDocuments) {
		return notFound("invite", code)
	}
	if err != nil {
		return wrap("delete invite", err)
	}
	_, err = s.inviteUses.DeleteMany(ctx, bson.D{{Key: "key", Value: d.Key}})
	return wrap("delete invite uses", err)
}

// UseInvite records one use of the code at now. An unknown, expired (now at or after its
// expiry) or used-up code is CodeNotFound.
//
// The use is an insert of number count+1 under the unique _id key/n, so each number is taken
// once. A duplicate means another use took that number: the uses are counted again, and the
// insert retried at the higher of the next number and the new count plus one. Numbers are
// never skipped (a use is only tried above a number known taken), so the number of a use is
// the count of uses with it, and no number above MaxUses is ever tried: of concurrent uses
// (from any number of processes) exactly the uses left succeed, each in at most MaxUses
// attempts.
func (s *Store) UseInvite(ctx context.Context, code string, now time.Time) (store.Invite, error) {
	var d inviteDoc
	found, err := findOne(ctx, s.invites, bson.D{{Key: "_id", Value: code}}, &d)
	if err != nil {
		return store.Invite{}, wrap("use invite", err)
	}
	if !found || d.expired(now) {
		return store.Invite{}, notFound("invite", code)
	}
	count, err := s.countUses(ctx, d.Key)
	if err != nil {
		return store.Invite{}, wrap("use invite", err)
	}
	n := count + 1
	for n <= d.MaxUses {
		_, err := s.inviteUses.InsertOne(ctx, inviteUseDoc{
			ID: inviteUseID(d.Key, n), Key: d.Key, Code: d.Code, N: n, At: bson.DateTime(now.UnixMilli()),
		})
		if err == nil {
			return d.invite(n), nil
		}
		if !isDup(err) {
			return store.Invite{}, wrap("use invite", err)
		}
		if count, err = s.countUses(ctx, d.Key); err != nil {
			return store.Invite{}, wrap("use invite", err)
		}
		n = max(n+1, count+1)
	}
	return store.Invite{}, notFound("invite", code)
}
