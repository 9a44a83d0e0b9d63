package mongo

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodb "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// roomDoc is a room in rooms. Key is new each time a room is created: everything in the room
// is stored under it (see the package documentation).
type roomDoc struct {
	ID        string        `bson:"_id"`
	Key       string        `bson:"key"`
	Name      string        `bson:"name"`
	Topic     string        `bson:"topic"`
	Private   bool          `bson:"private"`
	Archived  bool          `bson:"archived"`
	CreatedBy string        `bson:"createdBy"`
	CreatedAt bson.DateTime `bson:"createdAt"`
}

func (d *roomDoc) room(members int) mesh.Room {
	return mesh.Room{
		ID: d.ID, Name: d.Name, Topic: d.Topic, Private: d.Private, Archived: d.Archived,
		CreatedBy: d.CreatedBy, CreatedAt: meshTime(d.CreatedAt), MemberCount: members,
	}
}

// membershipDoc is one member of a room, in memberships; its _id is idKey(room key,
// participant), so a participant is a member once. Ord orders members by joining.
type membershipDoc struct {
	ID     string `bson:"_id"`
	Room   string `bson:"room"`
	RoomID string `bson:"roomId"`
	P      string `bson:"p"`
	Ord    int64  `bson:"ord"`
}

// muteDoc is one mute, in mutes; its _id is idKey(room key, participant). It is kept when the
// participant leaves, and goes with the room.
type muteDoc struct {
	ID    string        `bson:"_id"`
	Room  string        `bson:"room"`
	Until bson.DateTime `bson:"until"`
}

// roomByID reads a room; found is false if there is none.
func (s *Store) roomByID(ctx context.Context, id string) (d roomDoc, found bool, err error) {
	found, err = findOne(ctx, s.rooms, bson.D{{Key: "_id", Value: id}}, &d)
	return d, found, err
}

// liveRoom reads a room; CodeNotFound if there is none.
func (s *Store) liveRoom(ctx context.Context, id string) (roomDoc, error) {
	d, found, err := s.roomByID(ctx, id)
	if err != nil {
		return roomDoc{}, err
	}
	if !found {
		return roomDoc{}, notFound("room", id)
	}
	return d, nil
}

func (s *Store) membership(d *roomDoc, participantID string) membershipDoc {
	return membershipDoc{ID: idKey(d.Key, participantID), Room: d.Key, RoomID: d.ID, P: participantID, Ord: s.nextOrd()}
}

// CreateRoom stores r and makes r.CreatedBy its first member (none if it is empty). The
// membership is inserted first, under the new room's key, which no reader can reach until the
// room itself is inserted: so the room appears with its creator, at once. A room id that is
// taken is CodeConflict.
func (s *Store) CreateRoom(ctx context.Context, r mesh.Room) (mesh.Room, error) {
	r.CreatedAt = mesh.TimeFromMilli(r.CreatedAt.UnixMilli())
	d := roomDoc{
		ID: r.ID, Key: newRoomKey(), Name: r.Name, Topic: r.Topic, Private: r.Private,
		Archived: r.Archived, CreatedBy: r.CreatedBy, CreatedAt: date(r.CreatedAt.Time),
	}
	members := 0
	var creator membershipDoc
	if r.CreatedBy != "" {
		creator = s.membership(&d, r.CreatedBy)
		if _, err := s.memberships.InsertOne(ctx, creator); err != nil {
			return mesh.Room{}, wrap("create room", err)
		}
		members = 1
	}
	if _, err := s.rooms.InsertOne(ctx, d); err != nil {
		if members > 0 {
			// Unreachable anyway (nothing has the key); only tidy up.
			_, _ = s.memberships.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: creator.ID}})
		}
		if isDup(err) {
			return mesh.Room{}, mesh.Errorf(mesh.CodeConflict, "room %q already exists", r.ID)
		}
		return mesh.Room{}, wrap("create room", err)
	}
	return d.room(members), nil
}

// Room returns the room with its MemberCount, or CodeNotFound.
func (s *Store) Room(ctx context.Context, id string) (mesh.Room, error) {
	d, err := s.liveRoom(ctx, id)
	if err != nil {
		return mesh.Room{}, wrap("room", err)
	}
	n, err := s.memberships.CountDocuments(ctx, bson.D{{Key: "room", Value: d.Key}})
	if err != nil {
		return mesh.Room{}, wrap("room", err)
	}
	return d.room(int(n)), nil
}

// Access reads a room, whether the participant is a member and its mute: three lookups by
// _id, which every MongoDB-wire server serves from its primary key.
func (s *Store) Access(ctx context.Context, roomID, participantID string) (store.RoomAccess, error) {
	d, err := s.liveRoom(ctx, roomID)
	if err != nil {
		return store.RoomAccess{}, wrap("room access", err)
	}
	a := store.RoomAccess{Room: d.room(0)}
	var m bson.Raw
	a.Member, err = findOne(ctx, s.memberships, bson.D{{Key: "_id", Value: idKey(d.Key, participantID)}}, &m,
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return store.RoomAccess{}, wrap("room access", err)
	}
	var mu muteDoc
	found, err := findOne(ctx, s.mutes, bson.D{{Key: "_id", Value: idKey(d.Key, participantID)}}, &mu)
	if err != nil {
		return store.RoomAccess{}, wrap("room access", err)
	}
	if found && int64(mu.Until) > s.now().UnixMilli() {
		a.MutedUntil = time.UnixMilli(int64(mu.Until)).UTC()
	}
	return a, nil
}

// ListRooms returns the rooms q.Viewer may see; see store.RoomQuery. It reads the viewer's
// memberships, then the page of rooms, then their member counts (one aggregation). Text is
// matched in name and topic as FindParticipants matches display names (containsFold).
func (s *Store) ListRooms(ctx context.Context, q store.RoomQuery) ([]mesh.Room, error) {
	ms, err := findAll[membershipDoc](ctx, s.memberships, bson.D{{Key: "p", Value: q.Viewer}},
		options.Find().SetProjection(bson.D{{Key: "room", Value: 1}}))
	if err != nil {
		return nil, wrap("list rooms", err)
	}
	keys := make([]string, len(ms))
	for i, m := range ms {
		keys[i] = m.Room
	}
	if q.MemberOnly && len(keys) == 0 {
		return []mesh.Room{}, nil
	}
	member := bson.D{{Key: "key", Value: bson.D{{Key: "$in", Value: keys}}}}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: q.After}}}}
	if q.MemberOnly {
		filter = append(filter, member...)
	} else {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{bson.D{{Key: "private", Value: false}}, member}})
	}
	if q.Text != "" {
		// A second $or, beside the visibility one: the two are joined with $and.
		filter = bson.D{{Key: "$and", Value: bson.A{filter, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "name", Value: containsFold(q.Text)}},
			bson.D{{Key: "topic", Value: containsFold(q.Text)}},
		}}}}}}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = mesh.DefaultListLimit
	}
	docs, err := findAll[roomDoc](ctx, s.rooms, filter,
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap("list rooms", err)
	}
	counts, err := s.memberCounts(ctx, docs)
	if err != nil {
		return nil, wrap("list rooms", err)
	}
	out := make([]mesh.Room, len(docs))
	for i := range docs {
		out[i] = docs[i].room(counts[docs[i].Key])
	}
	return out, nil
}

// memberCounts counts the members of rooms, by room key.
func (s *Store) memberCounts(ctx context.Context, rooms []roomDoc) (map[string]int, error) {
	counts := make(map[string]int, len(rooms))
	if len(rooms) == 0 {
		return counts, nil
	}
	keys := make([]string, len(rooms))
	for i := range rooms {
		keys[i] = rooms[i].Key
	}
	cur, err := s.memberships.Aggregate(ctx, bson.A{
		bson.D{{Key: "$match", Value: bson.D{{Key: "room", Value: bson.D{{Key: "$in", Value: keys}}}}}},
		bson.D{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: "$room"},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	})
	if err != nil {
		return nil, err
	}
	var groups []struct {
		Key string `bson:"_id"`
		N   int    `bson:"n"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return nil, err
	}
	for _, g := range groups {
		counts[g.Key] = g.N
	}
	return counts, nil
}

// UpdateRoom changes the fields of u that are set, and returns the room as stored. On
// FerretDB v1, two updates of one room at the same moment may lose one of them (see the
// package documentation); MongoDB applies both.
func (s *Store) UpdateRoom(ctx context.Context, id string, u store.RoomUpdate) (mesh.Room, error) {
	set := bson.D{}
	if u.Name != nil {
		set = append(set, bson.E{Key: "name", Value: *u.Name})
	}
	if u.Topic != nil {
		set = append(set, bson.E{Key: "topic", Value: *u.Topic})
	}
	if u.Archived != nil {
		set = append(set, bson.E{Key: "archived", Value: *u.Archived})
	}
	if len(set) == 0 {
		return s.Room(ctx, id)
	}
	var d roomDoc
	err := s.rooms.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongodb.ErrNoDocuments) {
		return mesh.Room{}, notFound("room", id)
	}
	if err != nil {
		return mesh.Room{}, wrap("update room", err)
	}
	n, err := s.memberships.CountDocuments(ctx, bson.D{{Key: "room", Value: d.Key}})
	if err != nil {
		return mesh.Room{}, wrap("update room", err)
	}
	return d.room(int(n)), nil
}

// DeleteRoom removes the room, then its reactions, deletion marks, messages, memberships,
// mutes, file records, file claims and read marks; CodeNotFound if there is no such room. Deleting the room document is what deletes the
// room: once it is gone, nothing under its key is returned by any read, and a new room under
// the same id starts empty, even if the purge that follows is cut short. So a purge that fails
// is not reported (what it leaves is unreachable garbage).
func (s *Store) DeleteRoom(ctx context.Context, id string) error {
	var d roomDoc
	err := s.rooms.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongodb.ErrNoDocuments) {
		return notFound("room", id)
	}
	if err != nil {
		return wrap("delete room", err)
	}
	s.forgetSeq(d.Key)
	byKey := bson.D{{Key: "room", Value: d.Key}}
	for _, c := range []*mongodb.Collection{s.reactions, s.deletions, s.messages, s.memberships, s.mutes,
		s.files, s.fileClaims, s.readMarks} {
		_, _ = c.DeleteMany(ctx, byKey)
	}
	return nil
}

// AddMember reports whether the participant was not a member before; CodeNotFound if there is
// no such room. The membership is one insert under a unique _id.
func (s *Store) AddMember(ctx context.Context, roomID, participantID string) (bool, error) {
	d, err := s.liveRoom(ctx, roomID)
	if err != nil {
		return false, wrap("add member", err)
	}
	if _, err := s.memberships.InsertOne(ctx, s.membership(&d, participantID)); err != nil {
		if isDup(err) {
			return false, nil
		}
		return false, wrap("add member", err)
	}
	return true, nil
}

// RemoveMember reports whether the participant was a member; CodeNotFound if there is no
// such room.
func (s *Store) RemoveMember(ctx context.Context, roomID, participantID string) (bool, error) {
	d, err := s.liveRoom(ctx, roomID)
	if err != nil {
		return false, wrap("remove member", err)
	}
	res, err := s.memberships.DeleteOne(ctx, bson.D{{Key: "_id", Value: idKey(d.Key, participantID)}})
	if err != nil {
		return false, wrap("remove member", err)
	}
	return res.DeletedCount == 1, nil
}

// IsMember reports whether the participant is a member of the room (false for an unknown
// room).
func (s *Store) IsMember(ctx context.Context, roomID, participantID string) (bool, error) {
	d, found, err := s.roomByID(ctx, roomID)
	if err != nil || !found {
		return false, wrap("is member", err)
	}
	var m bson.Raw
	found, err = findOne(ctx, s.memberships, bson.D{{Key: "_id", Value: idKey(d.Key, participantID)}}, &m,
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	return found, wrap("is member", err)
}

// Members lists the room's member ids in the order they joined (none for an unknown room).
func (s *Store) Members(ctx context.Context, roomID string) ([]string, error) {
	d, found, err := s.roomByID(ctx, roomID)
	if err != nil {
		return nil, wrap("members", err)
	}
	if !found {
		return []string{}, nil
	}
	ms, err := findAll[membershipDoc](ctx, s.memberships, bson.D{{Key: "room", Value: d.Key}},
		options.Find().SetSort(bson.D{{Key: "ord", Value: 1}}).SetProjection(bson.D{{Key: "p", Value: 1}}))
	if err != nil {
		return nil, wrap("members", err)
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.P
	}
	return out, nil
}

// RoomsOf lists the ids of the rooms the participant is a member of, ordered by id: its
// memberships, kept if their room key is a live room's.
func (s *Store) RoomsOf(ctx context.Context, participantID string) ([]string, error) {
	ms, err := findAll[membershipDoc](ctx, s.memberships, bson.D{{Key: "p", Value: participantID}},
		options.Find().SetProjection(bson.D{{Key: "room", Value: 1}}))
	if err != nil {
		return nil, wrap("rooms of", err)
	}
	if len(ms) == 0 {
		return []string{}, nil
	}
	keys := make([]string, len(ms))
	for i, m := range ms {
		keys[i] = m.Room
	}
	rooms, err := findAll[roomDoc](ctx, s.rooms, bson.D{{Key: "key", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, wrap("rooms of", err)
	}
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = r.ID
	}
	return out, nil
}

// SetMute mutes the participant in the room until the given time, at millisecond precision;
// a time not after the store's clock unmutes. CodeNotFound if there is no such room. The last
// SetMute wins.
func (s *Store) SetMute(ctx context.Context, roomID, participantID string, until time.Time) error {
	d, err := s.liveRoom(ctx, roomID)
	if err != nil {
		return wrap("set mute", err)
	}
	id := bson.D{{Key: "_id", Value: idKey(d.Key, participantID)}}
	if until.IsZero() || until.UnixMilli() <= s.now().UnixMilli() {
		_, err := s.mutes.DeleteOne(ctx, id)
		return wrap("set mute", err)
	}
	doc := muteDoc{ID: idKey(d.Key, participantID), Room: d.Key, Until: date(until)}
	return wrap("set mute", upsert(func() error {
		_, err := s.mutes.ReplaceOne(ctx, id, doc, options.Replace().SetUpsert(true))
		return err
	}))
}

// MutedUntil is the end of the participant's mute in the room: zero if there is none, if it
// has ended by the store's clock, or if there is no such room.
func (s *Store) MutedUntil(ctx context.Context, roomID, participantID string) (time.Time, error) {
	d, found, err := s.roomByID(ctx, roomID)
	if err != nil || !found {
		return time.Time{}, wrap("muted until", err)
	}
	var m muteDoc
	found, err = findOne(ctx, s.mutes, bson.D{{Key: "_id", Value: idKey(d.Key, participantID)}}, &m)
	if err != nil || !found {
		return time.Time{}, wrap("muted until", err)
	}
	if int64(m.Until) <= s.now().UnixMilli() {
		return time.Time{}, nil
	}
	return time.UnixMilli(int64(m.Until)).UTC(), nil
}
