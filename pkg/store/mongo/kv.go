package mongo

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A revoked token is a document of revokedTokens: {_id: token id, p: participant id,
// expires: date, revokedAt: date}. Expires is the token's own expiry; a token that never
// expires has neverExpires, so that $max keeps the later of two expiries.

// neverExpires is the expiry stored for a token revoked for ever: the last millisecond of the
// year 9999, the largest date every MongoDB tool prints.
var neverExpires = bson.DateTime(time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli())

// RevokeToken records the token as revoked. A zero expires keeps the record for ever;
// otherwise it may be purged once expired (the token is refused by its expiry then anyway).
// Revoking a token again keeps the later expiry. At most once per PurgeInterval, it also
// deletes the records that have expired (there is no TTL index: FerretDB v1 has none).
func (s *Store) RevokeToken(ctx context.Context, tokenID, participantID string, expires time.Time) error {
	now := s.now()
	exp := neverExpires
	if !expires.IsZero() {
		exp = date(expires)
	}
	if err := upsert(func() error {
		_, err := s.tokens.UpdateOne(ctx, bson.D{{Key: "_id", Value: tokenID}}, bson.D{
			{Key: "$max", Value: bson.D{{Key: "expires", Value: exp}}},
			{Key: "$setOnInsert", Value: bson.D{{Key: "p", Value: participantID}, {Key: "revokedAt", Value: date(now)}}},
		}, options.UpdateOne().SetUpsert(true))
		return err
	}); err != nil {
		return wrap("revoke token", err)
	}
	last := s.lastPurge.Load()
	if now.UnixMilli()-last >= s.purgeInterval.Milliseconds() && s.lastPurge.CompareAndSwap(last, now.UnixMilli()) {
		return s.purgeTokens(ctx)
	}
	return nil
}

// purgeTokens deletes the revoked tokens that have expired by the store's clock.
func (s *Store) purgeTokens(ctx context.Context) error {
	now := s.now()
	s.lastPurge.Store(now.UnixMilli())
	_, err := s.tokens.DeleteMany(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: date(now)}}}})
	return wrap("purge tokens", err)
}

// IsRevoked reports whether the token is recorded as revoked.
func (s *Store) IsRevoked(ctx context.Context, tokenID string) (bool, error) {
	var d bson.Raw
	found, err := findOne(ctx, s.tokens, bson.D{{Key: "_id", Value: tokenID}}, &d,
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	return found, wrap("is revoked", err)
}

// settingDoc is one setting, in settings.
type settingDoc struct {
	Key   string `bson:"_id"`
	Value string `bson:"value"`
}

// Setting reports the value and whether it is set.
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	var d settingDoc
	found, err := findOne(ctx, s.settings, bson.D{{Key: "_id", Value: key}}, &d)
	if err != nil {
		return "", false, wrap("setting", err)
	}
	return d.Value, found, nil
}

// SetSetting stores value under key, replacing any value.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	return wrap("set setting", upsert(func() error {
		_, err := s.settings.ReplaceOne(ctx, bson.D{{Key: "_id", Value: key}}, settingDoc{Key: key, Value: value},
			options.Replace().SetUpsert(true))
		return err
	}))
}

// SetSettingIfAbsent stores value unless key is set, and returns what is stored: an insert
// under the unique _id, and on a duplicate the value already there.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	_, err := s.settings.InsertOne(ctx, settingDoc{Key: key, Value: value})
	if err == nil {
		return value, nil
	}
	if !isDup(err) {
		return "", wrap("set setting if absent", err)
	}
	stored, found, err := s.Setting(ctx, key)
	if err != nil {
		return "", wrap("set setting if absent", err)
	}
	if !found {
		// Set and then deleted in between; there is no deletion of settings, so this does not
		// happen: say so rather than answer a value nobody stored.
		return "", wrap("set setting if absent", errRaced)
	}
	return stored, nil
}

// resultDoc is one idempotent result, in idempotency; its _id is idKey(scope, key).
type resultDoc struct {
	ID        string        `bson:"_id"`
	Scope     string        `bson:"scope"`
	Key       string        `bson:"key"`
	Result    []byte        `bson:"result"`
	CreatedAt bson.DateTime `bson:"createdAt"`
}

// SaveResult stores result under (scope, key) unless something is stored there, and returns
// what is stored: an insert under the unique _id, and on a duplicate the result already there.
// A nil result is stored as an empty one.
func (s *Store) SaveResult(ctx context.Context, scope, key string, result []byte) ([]byte, error) {
	if result == nil {
		result = []byte{}
	}
	d := resultDoc{ID: idKey(scope, key), Scope: scope, Key: key, Result: result, CreatedAt: date(s.now())}
	_, err := s.idempotency.InsertOne(ctx, d)
	if err == nil {
		return result, nil
	}
	if !isDup(err) {
		return nil, wrap("save result", err)
	}
	stored, found, err := s.Result(ctx, scope, key)
	if err != nil {
		return nil, wrap("save result", err)
	}
	if !found {
		return nil, wrap("save result", errRaced)
	}
	return stored, nil
}

// Result returns the result stored under (scope, key), and whether there is one.
func (s *Store) Result(ctx context.Context, scope, key string) ([]byte, bool, error) {
	var d resultDoc
	found, err := findOne(ctx, s.idempotency, bson.D{{Key: "_id", Value: idKey(scope, key)}}, &d)
	if err != nil || !found {
		return nil, false, wrap("result", err)
	}
	if d.Result == nil {
		d.Result = []byte{}
	}
	return d.Result, true, nil
}
