package mongo

import (
	"context"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// readMarkDoc is one read mark, in readMarks: participant P has read the room (by its key) up
// to Seq. A participant's mark in a room is the highest Seq of its documents. The documents
// are only inserted and deleted, never updated, and the _id is idKey(room key, participant,
// seq): a document's content never changes, so FerretDB's read-then-write deletes cannot
// delete anything but what they matched.
type readMarkDoc struct {
	ID   string `bson:"_id"`
	Room string `bson:"room"`
	P    string `bson:"p"`
	Seq  int64  `bson:"seq"`
}

// SetReadMark records that the participant has read the room up to seq, and returns the mark
// as stored.
//
// A mark is not one document updated in place: on FerretDB v1 an update is a read and a write
// of the whole document, so a conditional update ({seq: {$lt: seq}}) of two callers could
// both pass the condition, and the lower write land last. Instead each higher seq is inserted
// as a document of its own, under a unique _id, and the mark is the highest document. A call
// reads the mark; if it is not below seq, that is the answer (nothing is written). Otherwise
// it inserts seq (a duplicate is another caller's same seq), reads the mark again (at least
// seq: see below), and deletes the documents below it. A document is deleted only by a caller
// that has seen a higher one stored, so the highest document ever inserted is never deleted:
// the mark never goes back, whatever the interleaving, across processes too. A purge that
// fails is not reported (what it leaves is lower than the mark, and never read as it).
//
// Like everything in a room, marks are stored under the room's key: a mark set for a room that
// does not exist is not stored (and seq is returned), and one racing with DeleteRoom is left
// under the dead key, so a room created again under the same id starts with no marks.
func (s *Store) SetReadMark(ctx context.Context, roomID, participantID string, seq int64) (int64, error) {
	room, found, err := s.roomByID(ctx, roomID)
	if err != nil {
		return 0, wrap("set read mark", err)
	}
	if !found {
		return seq, nil
	}
	mark, err := s.readMark(ctx, room.Key, participantID)
	if err != nil {
		return 0, wrap("set read mark", err)
	}
	if mark >= seq {
		return mark, nil
	}
	d := readMarkDoc{
		ID: idKey(room.Key, participantID, strconv.FormatInt(seq, 10)), Room: room.Key, P: participantID, Seq: seq,
	}
	if _, err := s.readMarks.InsertOne(ctx, d); err != nil && !isDup(err) {
		return 0, wrap("set read mark", err)
	}
	if mark, err = s.readMark(ctx, room.Key, participantID); err != nil {
		return 0, wrap("set read mark", err)
	}
	_, _ = s.readMarks.DeleteMany(ctx, bson.D{
		{Key: "room", Value: room.Key}, {Key: "p", Value: participantID},
		{Key: "seq", Value: bson.D{{Key: "$lt", Value: mark}}},
	})
	return mark, nil
}

// readMark is the participant's mark in the room (by its key): its highest document's seq, 0
// if it has none.
func (s *Store) readMark(ctx context.Context, roomKey, participantID string) (int64, error) {
	var d readMarkDoc
	found, err := findOne(ctx, s.readMarks, bson.D{{Key: "room", Value: roomKey}, {Key: "p", Value: participantID}}, &d,
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}}))
	if err != nil || !found {
		return 0, err
	}
	return d.Seq, nil
}

// ReadMarks returns the participant's marks in the given rooms, by room id; a room with no
// mark (or that does not exist) is absent. Two queries: the rooms' keys, then the marks under
// them (the highest document of each room is its mark).
func (s *Store) ReadMarks(ctx context.Context, participantID string, roomIDs []string) (map[string]int64, error) {
	out := map[string]int64{}
	if len(roomIDs) == 0 {
		return out, nil
	}
	rooms, err := findAll[roomDoc](ctx, s.rooms, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: roomIDs}}}},
		options.Find().SetProjection(bson.D{{Key: "key", Value: 1}}))
	if err != nil {
		return nil, wrap("read marks", err)
	}
	if len(rooms) == 0 {
		return out, nil
	}
	idOf := make(map[string]string, len(rooms)) // room key -> room id
	keys := make([]string, len(rooms))
	for i, r := range rooms {
		idOf[r.Key] = r.ID
		keys[i] = r.Key
	}
	marks, err := findAll[readMarkDoc](ctx, s.readMarks, bson.D{
		{Key: "room", Value: bson.D{{Key: "$in", Value: keys}}}, {Key: "p", Value: participantID},
	}, options.Find().SetProjection(bson.D{{Key: "room", Value: 1}, {Key: "seq", Value: 1}}))
	if err != nil {
		return nil, wrap("read marks", err)
	}
	for _, m := range marks {
		if id, ok := idOf[m.Room]; ok && m.Seq > out[id] {
			out[id] = m.Seq
		}
	}
	return out, nil
}
