package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodb "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// participantDoc is an account in participants.
type participantDoc struct {
	ID string `bson:"_id"`
	// EmailKey is unique: "e:" and the lower-cased email, or "n:" and the id for no email.
	EmailKey string `bson:"emailKey"`
	// FirstKey is unique: "first" for the first participant ever, "n:" and the id otherwise.
	FirstKey     string        `bson:"firstKey"`
	Email        string        `bson:"email"`
	DisplayName  string        `bson:"displayName"`
	Role         string        `bson:"role"`
	IsAgent      bool          `bson:"isAgent"`
	OwnerID      *string       `bson:"ownerId"`
	DID          *string       `bson:"did"`
	Status       string        `bson:"status"`
	PasswordHash []byte        `bson:"passwordHash"`
	Banned       bool          `bson:"banned"`
	Deactivated  bool          `bson:"deactivated"`
	CreatedAt    bson.DateTime `bson:"createdAt"`
	// TokenGen is absent from the documents written before it: absent reads as 0.
	TokenGen int `bson:"tokenGen"`
}

const firstClaim = "first"

func emailKey(email, id string) string {
	if email == "" {
		return "n:" + id
	}
	return "e:" + email
}

func (d *participantDoc) account() store.Account {
	return store.Account{
		Participant: mesh.Participant{
			ID:          d.ID,
			DisplayName: d.DisplayName,
			Role:        d.Role,
			IsAgent:     d.IsAgent,
			OwnerID:     d.OwnerID,
			DID:         d.DID,
			Status:      d.Status,
			CreatedAt:   meshTime(d.CreatedAt),
			Email:       d.Email,
		},
		PasswordHash: d.PasswordHash,
		Banned:       d.Banned,
		Deactivated:  d.Deactivated,
		TokenGen:     d.TokenGen,
	}
}

// CreateParticipant stores a; see store.Participants. The email is lower-cased here too, and
// an empty one never conflicts.
//
// The first participant ever takes the unique firstKey "first", in the insert that stores it:
// of concurrent first registrations exactly one succeeds with it, and the others, refused with
// a duplicate key, are stored as ordinary participants (or refused, for OnlyFirst). Once
// someone exists, nobody tries for it.
func (s *Store) CreateParticipant(ctx context.Context, a store.Account, mode store.FirstMode) (store.Account, error) {
	switch mode {
	case store.AnyOrder, store.FirstBecomesOwner, store.OnlyFirst:
	default:
		return store.Account{}, fmt.Errorf("mongo: create participant: unknown first mode %d", mode)
	}
	a.Email = strings.ToLower(a.Email)
	a.CreatedAt = mesh.TimeFromMilli(a.CreatedAt.UnixMilli())
	d := participantDoc{
		ID: a.ID, EmailKey: emailKey(a.Email, a.ID), FirstKey: "n:" + a.ID, Email: a.Email,
		DisplayName: a.DisplayName, Role: a.Role, IsAgent: a.IsAgent, OwnerID: a.OwnerID, DID: a.DID,
		Status: a.Status, PasswordHash: a.PasswordHash, Banned: a.Banned, Deactivated: a.Deactivated,
		CreatedAt: date(a.CreatedAt.Time), TokenGen: a.TokenGen,
	}

	var probe bson.Raw
	exists, err := findOne(ctx, s.participants, bson.D{}, &probe,
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return store.Account{}, wrap("create participant", err)
	}
	if !exists {
		first := d
		first.FirstKey = firstClaim
		if mode != store.AnyOrder {
			first.Role = mesh.RoleOwner
		}
		_, err := s.participants.InsertOne(ctx, first)
		if err == nil {
			return first.account(), nil
		}
		if !isDup(err) {
			return store.Account{}, wrap("create participant", err)
		}
		if err := s.participantConflict(ctx, d); err != nil {
			return store.Account{}, err
		}
		// Someone else was first.
	}
	if mode == store.OnlyFirst {
		return store.Account{}, mesh.Errorf(mesh.CodeConflict, "the mesh already has participants")
	}
	if _, err := s.participants.InsertOne(ctx, d); err != nil {
		if isDup(err) {
			if err := s.participantConflict(ctx, d); err != nil {
				return store.Account{}, err
			}
		}
		return store.Account{}, wrap("create participant", err)
	}
	return d.account(), nil
}

// participantConflict explains a duplicate key error of inserting d: CodeConflict if the
// email is taken, an internal error if the id is, nil if neither is (the firstKey was).
func (s *Store) participantConflict(ctx context.Context, d participantDoc) error {
	var other participantDoc
	found, err := findOne(ctx, s.participants, bson.D{{Key: "emailKey", Value: d.EmailKey}}, &other)
	if err != nil {
		return wrap("create participant", err)
	}
	if found {
		return mesh.Errorf(mesh.CodeConflict, "the email is already registered")
	}
	found, err = findOne(ctx, s.participants, bson.D{{Key: "_id", Value: d.ID}}, &other)
	if err != nil {
		return wrap("create participant", err)
	}
	if found {
		return fmt.Errorf("mongo: create participant: id %q is taken", d.ID)
	}
	return nil
}

// ParticipantByID returns the account, or CodeNotFound.
func (s *Store) ParticipantByID(ctx context.Context, id string) (store.Account, error) {
	var d participantDoc
	found, err := findOne(ctx, s.participants, bson.D{{Key: "_id", Value: id}}, &d)
	if err != nil {
		return store.Account{}, wrap("participant by id", err)
	}
	if !found {
		return store.Account{}, notFound("participant", id)
	}
	return d.account(), nil
}

// ParticipantByEmail returns the account whose email matches case-insensitively, or
// CodeNotFound.
func (s *Store) ParticipantByEmail(ctx context.Context, email string) (store.Account, error) {
	email = strings.ToLower(email)
	if email == "" {
		return store.Account{}, mesh.Errorf(mesh.CodeNotFound, "participant not found")
	}
	var d participantDoc
	found, err := findOne(ctx, s.participants, bson.D{{Key: "emailKey", Value: emailKey(email, "")}}, &d)
	if err != nil {
		return store.Account{}, wrap("participant by email", err)
	}
	if !found {
		return store.Account{}, mesh.Errorf(mesh.CodeNotFound, "participant not found")
	}
	return d.account(), nil
}

// ParticipantsByIDs returns the accounts that exist among ids, in no particular order.
func (s *Store) ParticipantsByIDs(ctx context.Context, ids []string) ([]store.Account, error) {
	if len(ids) == 0 {
		return []store.Account{}, nil
	}
	docs, err := findAll[participantDoc](ctx, s.participants, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, wrap("participants by ids", err)
	}
	out := make([]store.Account, len(docs))
	for i := range docs {
		out[i] = docs[i].account()
	}
	return out, nil
}

// CountParticipants counts every account, banned and deactivated ones included.
func (s *Store) CountParticipants(ctx context.Context) (int, error) {
	n, err := s.participants.CountDocuments(ctx, bson.D{})
	return int(n), wrap("count participants", err)
}

// UpdateParticipant changes the fields of u that are set, in one update of the participant's
// document, and returns the account as stored. On FerretDB v1, two updates of one participant
// at the same moment may lose one of them (see the package documentation); MongoDB applies
// both.
//
// The email is lower-cased here too, and set with its emailKey in the same update: "e:" and
// the email, or "n:" and the id for "" (as CreateParticipant stores none), which frees the
// old address at once. There is no document of its own to claim or release, so there is no
// order of steps and nothing a crash can leave half done: a taken email fails the update on
// the unique emailKey index, nothing of u is applied, and it is CodeConflict (told by looking
// at who holds the email once the update failed; see emailHeldByOther). An update lost
// to a concurrent one on FerretDB loses the email and its key together; the index still
// refuses any document that would hold an email twice.
func (s *Store) UpdateParticipant(ctx context.Context, id string, u store.ParticipantUpdate) (store.Account, error) {
	set := bson.D{}
	var key string
	if u.Email != nil {
		email := strings.ToLower(*u.Email)
		key = emailKey(email, id)
		set = append(set, bson.E{Key: "email", Value: email}, bson.E{Key: "emailKey", Value: key})
	}
	if u.DisplayName != nil {
		set = append(set, bson.E{Key: "displayName", Value: *u.DisplayName})
	}
	if u.Role != nil {
		set = append(set, bson.E{Key: "role", Value: *u.Role})
	}
	if u.Banned != nil {
		set = append(set, bson.E{Key: "banned", Value: *u.Banned})
	}
	if u.Deactivated != nil {
		set = append(set, bson.E{Key: "deactivated", Value: *u.Deactivated})
	}
	if u.PasswordHash != nil {
		set = append(set, bson.E{Key: "passwordHash", Value: *u.PasswordHash})
	}
	if u.TokenGen != nil {
		set = append(set, bson.E{Key: "tokenGen", Value: *u.TokenGen})
	}
	if len(set) == 0 {
		return s.ParticipantByID(ctx, id)
	}
	var d participantDoc
	err := s.participants.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongodb.ErrNoDocuments) {
		return store.Account{}, notFound("participant", id)
	}
	if err != nil && u.Email != nil && s.emailHeldByOther(ctx, key, id) {
		return store.Account{}, mesh.Errorf(mesh.CodeConflict, "the email is already registered")
	}
	if err != nil {
		return store.Account{}, wrap("update participant", err)
	}
	return d.account(), nil
}

// emailHeldByOther reports whether a participant other than id holds the email key, which
// explains why an update setting it failed. It looks rather than trusting the error: MongoDB
// refuses such an update with E11000, but FerretDB v1 with an InternalError (code 1) that
// names the SQLite constraint (only its inserts get E11000). A failed look is false.
func (s *Store) emailHeldByOther(ctx context.Context, key, id string) bool {
	if !strings.HasPrefix(key, "e:") || ctx.Err() != nil {
		return false // "n:" and an id is nobody else's
	}
	var other bson.Raw
	found, err := findOne(ctx, s.participants, bson.D{
		{Key: "emailKey", Value: key}, {Key: "_id", Value: bson.D{{Key: "$ne", Value: id}}},
	}, &other, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	return err == nil && found
}

// ListParticipants lists accounts by id after the cursor (served by the _id index).
func (s *Store) ListParticipants(ctx context.Context, after string, limit int) ([]store.Account, error) {
	if limit <= 0 {
		limit = mesh.DefaultListLimit
	}
	docs, err := findAll[participantDoc](ctx, s.participants, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap("list participants", err)
	}
	out := make([]store.Account, len(docs))
	for i := range docs {
		out[i] = docs[i].account()
	}
	return out, nil
}

// FindParticipants lists the accounts whose display name contains text, by id after the
// cursor, as ListParticipants pages. The text is matched as SearchMessages matches content
// (containsFold). The _id index serves the order and the cursor; every document after the
// cursor is looked at, as no index serves a "contains".
func (s *Store) FindParticipants(ctx context.Context, text, after string, limit int) ([]store.Account, error) {
	if text == "" {
		return []store.Account{}, nil
	}
	if limit <= 0 {
		limit = mesh.DefaultListLimit
	}
	docs, err := findAll[participantDoc](ctx, s.participants, bson.D{
		{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}},
		{Key: "displayName", Value: containsFold(text)},
	}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap("find participants", err)
	}
	out := make([]store.Account, len(docs))
	for i := range docs {
		out[i] = docs[i].account()
	}
	return out, nil
}
