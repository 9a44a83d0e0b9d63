package mongo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodb "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// messageDoc is a message in messages. Room is the room's key (RoomID its id); (Room, Seq) is
// unique, and so is (Room, Author, ClientKey). Pinned and Locked are absent (false) on most
// messages: a new message is stored without them; so are Attachments and Event when there are
// none.
type messageDoc struct {
	ID      string  `bson:"_id"`
	Room    string  `bson:"room"`
	RoomID  string  `bson:"roomId"`
	Seq     int64   `bson:"seq"`
	Author  string  `bson:"author"`
	Content string  `bson:"content"`
	Thread  *string `bson:"thread"`
	To      *string `bson:"to"`
	// ClientKey is "c:" and the clientMsgId, or "m:" and the message id when there is none
	// (no partial indexes: a message without a clientMsgId must not collide with another).
	ClientKey string         `bson:"clientKey"`
	CreatedAt bson.DateTime  `bson:"createdAt"`
	EditedAt  *bson.DateTime `bson:"editedAt"`
	Deleted   bool           `bson:"deleted"`
	Pinned    bool           `bson:"pinned,omitempty"`
	Locked    bool           `bson:"locked,omitempty"`
	// Attachments are the message's files, as CreateMessage was given them; a deletion
	// removes the field.
	Attachments []attachmentDoc `bson:"attachments,omitempty"`
	// Event is the message's feed event as a JSON string (see eventJSON), which keeps its Data
	// byte for byte; a deletion removes the field.
	Event string `bson:"event,omitempty"`
}

func clientKey(m *mesh.Message) string {
	if m.ClientMsgID == nil {
		return "m:" + m.ID
	}
	return "c:" + *m.ClientMsgID
}

// message is d without its reactions (an empty map).
func (d *messageDoc) message() (mesh.Message, error) {
	m := mesh.Message{
		ID: d.ID, RoomID: d.RoomID, Seq: d.Seq, AuthorID: d.Author, Content: d.Content,
		ThreadID: d.Thread, To: d.To, CreatedAt: meshTime(d.CreatedAt), Deleted: d.Deleted,
		Reactions: map[string][]string{}, Pinned: d.Pinned && !d.Deleted, Locked: d.Locked,
	}
	if d.Deleted {
		m.Content = "" // as it is stored, once a racing edit has been undone (see EditMessage)
	} else {
		m.Attachments = attachments(d.Attachments)
		var err error
		if m.Event, err = decodeEvent(d.Event); err != nil {
			return mesh.Message{}, fmt.Errorf("message %s: event: %w", d.ID, err)
		}
	}
	if c, ok := strings.CutPrefix(d.ClientKey, "c:"); ok {
		m.ClientMsgID = &c
	}
	if d.EditedAt != nil {
		t := meshTime(*d.EditedAt)
		m.EditedAt = &t
	}
	return m, nil
}

// deletionDoc marks a message deleted, in deletions: an insert, which no concurrent update can
// undo (see EditMessage).
type deletionDoc struct {
	ID   string `bson:"_id"`
	Room string `bson:"room"`
}

// reactionDoc is one reaction, in reactions; its _id is idKey(message, emoji, participant),
// so a participant holds an emoji on a message once. Ord orders reactors by reacting.
type reactionDoc struct {
	ID   string `bson:"_id"`
	M    string `bson:"m"`
	E    string `bson:"e"`
	P    string `bson:"p"`
	Room string `bson:"room"`
	Ord  int64  `bson:"ord"`
}

// Seq claims. Each room has at most one committer goroutine per Store, which inserts the
// messages queued for the room in batches (group commit), and remembers the room's last seq
// (lastSeqs); so writers of one Store never collide with each other, only with the writers of
// other Stores, which costs a duplicate key error and a read of the room's highest seq.
// lastSeqs is dropped whole past maxLastSeqs rooms.
const (
	maxGroup     = 128 // messages inserted in one InsertMany
	maxLastSeqs  = 10_000
	maxSeqClaims = 1000 // seq collisions before a batch gives up (other writers keep winning)
	// maxMessageBytes is the largest message document a server takes (MongoDB's and
	// FerretDB's maxBsonObjectSize); a larger one is refused before it is queued.
	maxMessageBytes = 16 << 20
)

func (s *Store) cachedSeq(key string) (int64, bool) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	seq, ok := s.lastSeqs[key]
	return seq, ok
}

func (s *Store) rememberSeq(key string, seq int64) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	if len(s.lastSeqs) >= maxLastSeqs {
		clear(s.lastSeqs)
	}
	s.lastSeqs[key] = max(s.lastSeqs[key], seq)
}

func (s *Store) forgetSeq(key string) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	delete(s.lastSeqs, key)
}

// maxSeq is the highest seq of the room with this key (0 for none).
func (s *Store) maxSeq(ctx context.Context, key string) (int64, error) {
	var d struct {
		Seq int64 `bson:"seq"`
	}
	_, err := findOne(ctx, s.messages, bson.D{{Key: "room", Value: key}}, &d,
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}}).SetProjection(bson.D{{Key: "seq", Value: 1}}))
	return d.Seq, err
}

// createReq is one CreateMessage waiting for its room's committer.
type createReq struct {
	ctx context.Context
	d   messageDoc
	res chan createRes // buffered: the committer never waits for the caller
}

type createRes struct {
	m       mesh.Message
	created bool
	err     error
}

func (r *createReq) done(m mesh.Message, created bool, err error) {
	r.res <- createRes{m, created, wrap("create message", err)}
}

// roomQueue is what waits for a room's committer; it is in Store.queues while the committer
// runs.
type roomQueue struct {
	pending []*createReq
}

// CreateMessage gives m the room's next seq and stores it; see store.Messages and the package
// documentation. CodeNotFound if there is no such room.
//
// The message is inserted with seq = last + 1, where last is a seq known to exist in the room,
// and the insert is the only write: if it fails for any reason but a duplicate key, nothing
// is stored. On a duplicate key, the message is either a repeat (its clientMsgId, or its id,
// is stored already: that message is returned, created false) or its seq was taken by another
// writer: then last becomes that seq (or, after two collisions in a row, the room's highest),
// and the insert is tried again. As last only ever names a seq that exists, and the index
// refuses a seq that exists, seqs come out 1, 2, 3, ... with no gap and no repeat, whatever
// the number of writers and processes.
//
// Concurrent calls for one room are inserted together by the room's committer (group
// commit): one ordered InsertMany, with consecutive seqs. An ordered insert stops at the first
// document it refuses, so what it stored is a prefix of the batch, and the seqs stay gap-free;
// the refused one is settled as above and the rest go again.
//
// An error may leave the message stored (as with any write whose answer is lost: a timeout, a
// server gone away): sending it again with the same id or clientMsgId returns it, created
// false.
func (s *Store) CreateMessage(ctx context.Context, m mesh.Message) (mesh.Message, bool, error) {
	room, err := s.liveRoom(ctx, m.RoomID)
	if err != nil {
		return mesh.Message{}, false, wrap("create message", err)
	}
	event, err := encodeEvent(m.Event)
	if err != nil {
		return mesh.Message{}, false, wrap("create message", err)
	}
	d := messageDoc{
		ID: m.ID, Room: room.Key, RoomID: room.ID, Author: m.AuthorID, Content: m.Content,
		Thread: m.ThreadID, To: m.To, ClientKey: clientKey(&m), CreatedAt: date(m.CreatedAt.Time),
		Attachments: attachmentDocs(m.Attachments), Event: event,
	}
	if len(m.Content)+len(event) > maxMessageBytes/2 {
		// Refused here, not by the server: it would fail the batch it is in.
		if b, err := bson.Marshal(d); err != nil {
			return mesh.Message{}, false, wrap("create message", err)
		} else if len(b) > maxMessageBytes {
			return mesh.Message{}, false, fmt.Errorf("mongo: create message: %d bytes, more than the %d a document may have",
				len(b), maxMessageBytes)
		}
	}
	req := &createReq{ctx: ctx, d: d, res: make(chan createRes, 1)}
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return mesh.Message{}, false, errors.New("mongo: create message: store closed")
	}
	q, running := s.queues[room.Key]
	if !running {
		q = &roomQueue{}
		s.queues[room.Key] = q
		s.committers.Add(1)
		go s.commit(room.Key, q)
	}
	q.pending = append(q.pending, req)
	s.qmu.Unlock()
	select {
	case r := <-req.res:
		return r.m, r.created, r.err
	case <-ctx.Done():
		// The message may be stored yet, if its batch has begun.
		return mesh.Message{}, false, wrap("create message", ctx.Err())
	}
}

// commit inserts what is queued for the room with this key, a batch at a time, until the
// queue is empty.
func (s *Store) commit(key string, q *roomQueue) {
	defer s.committers.Done()
	for {
		s.qmu.Lock()
		n := min(len(q.pending), maxGroup)
		if n == 0 {
			delete(s.queues, key)
			s.qmu.Unlock()
			return
		}
		batch := q.pending[:n:n]
		q.pending = q.pending[n:]
		s.qmu.Unlock()
		s.commitBatch(key, batch)
	}
}

// commitBatch stores batch (messages of the room with this key, in the order they came), and
// answers each request.
func (s *Store) commitBatch(key string, batch []*createReq) {
	live := make([]*createReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done(mesh.Message{}, false, err) // gone before anything was written
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, release := batchContext(live)
	defer release()
	fail := func(err error) {
		s.forgetSeq(key)
		for _, r := range live {
			r.done(mesh.Message{}, false, err)
		}
	}
	last, ok := s.cachedSeq(key)
	if !ok {
		var err error
		if last, err = s.maxSeq(ctx, key); err != nil {
			fail(err)
			return
		}
	}
	collided := false // the last insert collided, and the next is a guess
	for collisions := 0; len(live) > 0; {
		docs := make([]any, len(live))
		for i, r := range live {
			r.d.Seq = last + 1 + int64(i)
			docs[i] = r.d
		}
		n, refused, err := s.insert(ctx, docs)
		for _, r := range live[:n] {
			m, err := r.d.message()
			r.done(m, true, err)
		}
		if n > 0 {
			last = live[n-1].d.Seq
			s.rememberSeq(key, last)
			collided = false
		}
		live = live[n:]
		if err != nil {
			fail(err) // the outcome is unknown: some may be stored
			return
		}
		if len(live) == 0 {
			return
		}
		r := live[0]
		if !isDupCode(refused.Code) {
			r.done(mesh.Message{}, false, refused)
			live = live[1:]
			continue
		}
		prev, found, err := s.repeat(ctx, &r.d)
		if err != nil || found {
			r.done(prev, false, err)
			live = live[1:]
			continue
		}
		// The seq is taken, so it exists: try the next one, and if that is taken too, the one
		// after the room's highest. (Another writer has usually taken one or a few seqs; reading
		// the highest costs an index lookup on MongoDB but a scan of the collection on FerretDB.)
		if collisions++; collisions > maxSeqClaims {
			fail(fmt.Errorf("no free seq after %d attempts", maxSeqClaims))
			return
		}
		last = r.d.Seq
		if collided {
			highest, err := s.maxSeq(ctx, key)
			if err != nil {
				fail(err)
				return
			}
			last = max(highest, last)
		}
		collided = !collided
		s.rememberSeq(key, last)
	}
}

// insertOrdered inserts docs in order, stopping at the first the server refuses. n is how
// many were stored, refused is the write error of docs[n] if one was refused. An err means
// the outcome is unknown (the connection failed, the write concern was not met, ...).
func (s *Store) insertOrdered(ctx context.Context, docs []any) (n int, refused *mongodb.WriteError, err error) {
	_, err = s.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
	if err == nil {
		return len(docs), nil, nil
	}
	var bwe mongodb.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return 0, nil, err
	}
	first := bwe.WriteErrors[0].WriteError
	for _, we := range bwe.WriteErrors[1:] {
		if we.Index < first.Index {
			first = we.WriteError
		}
	}
	if first.Index < 0 || first.Index >= len(docs) {
		return 0, nil, err
	}
	return first.Index, &first, nil
}

// isDupCode reports whether a write error's code is a duplicate key error.
func isDupCode(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// batchContext is the context of a batch's writes: it ends when every caller waiting for the
// batch has given up (so one impatient caller does not fail the others). release frees it.
func batchContext(reqs []*createReq) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var waiting atomic.Int32
	waiting.Store(int32(len(reqs)))
	stops := make([]func() bool, len(reqs))
	for i, r := range reqs {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// repeat looks for what made the insert of d a duplicate other than its seq: the message of
// the same author and clientMsgId in the room, or a message with d's id (the same message,
// sent again after an error that hid its success). found is false if there is neither.
func (s *Store) repeat(ctx context.Context, d *messageDoc) (mesh.Message, bool, error) {
	var prev messageDoc
	if strings.HasPrefix(d.ClientKey, "c:") {
		found, err := findOne(ctx, s.messages,
			bson.D{{Key: "room", Value: d.Room}, {Key: "author", Value: d.Author}, {Key: "clientKey", Value: d.ClientKey}}, &prev)
		if err != nil {
			return mesh.Message{}, false, err
		}
		if found {
			m, err := s.withReactions(ctx, prev)
			return m, true, err
		}
	}
	found, err := findOne(ctx, s.messages, bson.D{{Key: "_id", Value: d.ID}}, &prev)
	if err != nil || !found {
		return mesh.Message{}, false, err
	}
	if prev.Room != d.Room || prev.Author != d.Author {
		return mesh.Message{}, false, fmt.Errorf("message id %q is taken by another message", d.ID)
	}
	m, err := s.withReactions(ctx, prev)
	return m, true, err
}

// liveMessage reads a message whose room exists (a message left behind by a room's deletion
// is not found); CodeNotFound if there is none.
func (s *Store) liveMessage(ctx context.Context, id string) (messageDoc, error) {
	var d messageDoc
	found, err := findOne(ctx, s.messages, bson.D{{Key: "_id", Value: id}}, &d)
	if err != nil {
		return messageDoc{}, err
	}
	if found {
		room, ok, err := s.roomByID(ctx, d.RoomID)
		if err != nil {
			return messageDoc{}, err
		}
		if ok && room.Key == d.Room {
			return d, nil
		}
	}
	return messageDoc{}, notFound("message", id)
}

// message reads a message with its reactions; CodeNotFound if there is none.
func (s *Store) message(ctx context.Context, id string) (mesh.Message, error) {
	d, err := s.liveMessage(ctx, id)
	if err != nil {
		return mesh.Message{}, err
	}
	return s.withReactions(ctx, d)
}

// withReactions is d with its reactions.
func (s *Store) withReactions(ctx context.Context, d messageDoc) (mesh.Message, error) {
	ms, err := s.withAllReactions(ctx, []messageDoc{d})
	if err != nil {
		return mesh.Message{}, err
	}
	return ms[0], nil
}

// withAllReactions turns docs into messages with their reactions, read in one query, in the
// order of reacting. A deleted message has none (whatever a racing AddReaction left).
func (s *Store) withAllReactions(ctx context.Context, docs []messageDoc) ([]mesh.Message, error) {
	out := make([]mesh.Message, len(docs))
	byID := make(map[string]*mesh.Message, len(docs))
	ids := make([]string, 0, len(docs))
	for i := range docs {
		var err error
		if out[i], err = docs[i].message(); err != nil {
			return nil, err
		}
		if !docs[i].Deleted {
			byID[docs[i].ID] = &out[i]
			ids = append(ids, docs[i].ID)
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	filter := bson.D{{Key: "m", Value: ids[0]}}
	if len(ids) > 1 {
		filter = bson.D{{Key: "m", Value: bson.D{{Key: "$in", Value: ids}}}}
	}
	rs, err := findAll[reactionDoc](ctx, s.reactions, filter,
		options.Find().SetSort(bson.D{{Key: "ord", Value: 1}}))
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if m := byID[r.M]; m != nil {
			m.Reactions[r.E] = append(m.Reactions[r.E], r.P)
		}
	}
	return out, nil
}

// Message returns the message with its reactions, or CodeNotFound.
func (s *Store) Message(ctx context.Context, id string) (mesh.Message, error) {
	m, err := s.message(ctx, id)
	return m, wrap("message", err)
}

// ListMessages returns a room's messages in ascending seq order; see store.MessageQuery. One
// query reads the messages (the first Limit after After, or the last Limit before Before, of
// those the viewer may see), and one their reactions.
func (s *Store) ListMessages(ctx context.Context, q store.MessageQuery) ([]mesh.Message, error) {
	room, found, err := s.roomByID(ctx, q.RoomID)
	if err != nil {
		return nil, wrap("list messages", err)
	}
	if !found {
		return []mesh.Message{}, nil
	}
	filter := bson.D{{Key: "room", Value: room.Key}}
	seq := bson.D{}
	if q.After > 0 {
		seq = append(seq, bson.E{Key: "$gt", Value: q.After})
	}
	if q.Before > 0 {
		seq = append(seq, bson.E{Key: "$lt", Value: q.Before})
	}
	if len(seq) > 0 {
		filter = append(filter, bson.E{Key: "seq", Value: seq})
	}
	var and bson.A
	if q.Viewer == "" {
		filter = append(filter, bson.E{Key: "to", Value: nil})
	} else {
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "to", Value: nil}},
			bson.D{{Key: "to", Value: q.Viewer}},
			bson.D{{Key: "author", Value: q.Viewer}},
		}}})
	}
	if q.ThreadID != "" {
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "_id", Value: q.ThreadID}},
			bson.D{{Key: "thread", Value: q.ThreadID}},
		}}})
	}
	if len(and) > 0 {
		filter = append(filter, bson.E{Key: "$and", Value: and})
	}
	forward := q.After > 0 || q.Forward
	dir := -1
	if forward {
		dir = 1
	}
	docs, err := findAll[messageDoc](ctx, s.messages, filter,
		options.Find().SetSort(bson.D{{Key: "seq", Value: dir}}).SetLimit(int64(listLimit(q.Limit))))
	if err != nil {
		return nil, wrap("list messages", err)
	}
	if !forward {
		slices.Reverse(docs)
	}
	ms, err := s.withAllReactions(ctx, docs)
	return ms, wrap("list messages", err)
}

// SearchMessages finds the messages of the given rooms whose content contains q.Text, newest
// first; see store.Messages. The text is matched literally and case-insensitively (see
// containsFold). Before is a position in that order, (createdAt, _id) of the message
// Before: a cursor that names no message has nothing before it.
//
// A message is deleted when it has a deletion mark, even if a racing update has written its
// document back undeleted for a while (see EditMessage): so the marks of what is found are
// read too, and marked messages are dropped; the search goes on past them to fill the page.
func (s *Store) SearchMessages(ctx context.Context, q store.SearchQuery) ([]mesh.Message, error) {
	ms, err := s.searchMessages(ctx, q)
	return ms, wrap("search messages", err)
}

func (s *Store) searchMessages(ctx context.Context, q store.SearchQuery) ([]mesh.Message, error) {
	if len(q.Rooms) == 0 {
		return []mesh.Message{}, nil
	}
	rooms, err := findAll[roomDoc](ctx, s.rooms, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: q.Rooms}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "key", Value: 1}}))
	if err != nil {
		return nil, err
	}
	if len(rooms) == 0 {
		return []mesh.Message{}, nil
	}
	keys := make([]string, len(rooms))
	for i, r := range rooms {
		keys[i] = r.Key
	}
	filter := bson.D{
		{Key: "room", Value: bson.D{{Key: "$in", Value: keys}}},
		{Key: "deleted", Value: false},
		{Key: "content", Value: containsFold(q.Text)},
	}
	var and bson.A
	if q.Viewer == "" {
		filter = append(filter, bson.E{Key: "to", Value: nil})
	} else {
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "to", Value: nil}},
			bson.D{{Key: "to", Value: q.Viewer}},
			bson.D{{Key: "author", Value: q.Viewer}},
		}}})
	}
	var cursor *messageDoc
	if q.Before != "" {
		var c messageDoc
		found, err := findOne(ctx, s.messages, bson.D{{Key: "_id", Value: q.Before}}, &c,
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "createdAt", Value: 1}}))
		if err != nil {
			return nil, err
		}
		if !found {
			return []mesh.Message{}, nil
		}
		cursor = &c
	}
	limit := listLimit(q.Limit)
	out := make([]messageDoc, 0, limit)
	for {
		page := slices.Clone(filter)
		pageAnd := slices.Clone(and)
		if cursor != nil {
			pageAnd = append(pageAnd, bson.D{{Key: "$or", Value: bson.A{
				bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: cursor.CreatedAt}}}},
				bson.D{{Key: "createdAt", Value: cursor.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: cursor.ID}}}},
			}}})
		}
		if len(pageAnd) > 0 {
			page = append(page, bson.E{Key: "$and", Value: pageAnd})
		}
		want := limit - len(out)
		docs, err := findAll[messageDoc](ctx, s.messages, page, options.Find().
			SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(want)))
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 {
			break
		}
		ids := make([]string, len(docs))
		for i := range docs {
			ids[i] = docs[i].ID
		}
		marks, err := findAll[deletionDoc](ctx, s.deletions, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return nil, err
		}
		marked := make(map[string]bool, len(marks))
		for _, m := range marks {
			marked[m.ID] = true
		}
		for _, d := range docs {
			if !marked[d.ID] {
				out = append(out, d)
			}
		}
		if len(docs) < want || len(out) == limit {
			break
		}
		cursor = &docs[len(docs)-1]
	}
	return s.withAllReactions(ctx, out)
}

// EditMessage replaces the content and sets EditedAt. A deleted message cannot be edited:
// it is CodeNotFound, like a missing one.
//
// An update can race with DeleteMessage, and on FerretDB v1 the later write of the whole
// document wins, so an edit could bring back the content of a message being deleted. The
// deletion mark is an insert, and the edit looks for it after writing: if it is there, the
// edit deletes the content again, and the message is not found. (Whichever writes last, the
// message ends deleted.)
func (s *Store) EditMessage(ctx context.Context, id, content string, at time.Time) (mesh.Message, error) {
	d, err := s.liveMessage(ctx, id)
	if err != nil {
		return mesh.Message{}, wrap("edit message", err)
	}
	if d.Deleted {
		return mesh.Message{}, notFound("message", id)
	}
	byID := bson.D{{Key: "_id", Value: id}}
	if _, err := s.messages.UpdateOne(ctx, byID, bson.D{{Key: "$set", Value: bson.D{
		{Key: "content", Value: content}, {Key: "editedAt", Value: date(at)},
	}}}); err != nil {
		return mesh.Message{}, wrap("edit message", err)
	}
	deleted, err := s.isDeleted(ctx, id)
	if err != nil {
		return mesh.Message{}, wrap("edit message", err)
	}
	if deleted {
		if err := s.markDeleted(ctx, id); err != nil {
			return mesh.Message{}, wrap("edit message", err)
		}
		return mesh.Message{}, notFound("message", id)
	}
	m, err := s.message(ctx, id)
	return m, wrap("edit message", err)
}

// isDeleted reports whether the message has a deletion mark.
func (s *Store) isDeleted(ctx context.Context, id string) (bool, error) {
	var d bson.Raw
	return findOne(ctx, s.deletions, bson.D{{Key: "_id", Value: id}}, &d)
}

// markDeleted empties the message (content, attachments and event), unpins it and flags it
// deleted, and removes its reactions.
func (s *Store) markDeleted(ctx context.Context, id string) error {
	if _, err := s.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "content", Value: ""}, {Key: "deleted", Value: true}, {Key: "pinned", Value: false}}},
		{Key: "$unset", Value: bson.D{{Key: "attachments", Value: ""}, {Key: "event", Value: ""}}},
	}); err != nil {
		return err
	}
	_, err := s.reactions.DeleteMany(ctx, bson.D{{Key: "m", Value: id}})
	return err
}

// DeleteMessage keeps the message's id and seq, marks it deleted, empties its content,
// attachments and event (the file records stay), unpins it and removes its reactions (a locked thread
// stays locked). Deleting a deleted message is not an error. The deletion mark is
// inserted first: from then on the message is deleted for every writer (see EditMessage and
// AddReaction), and the steps that follow may be repeated by anyone.
func (s *Store) DeleteMessage(ctx context.Context, id string) (mesh.Message, error) {
	d, err := s.liveMessage(ctx, id)
	if err != nil {
		return mesh.Message{}, wrap("delete message", err)
	}
	if _, err := s.deletions.InsertOne(ctx, deletionDoc{ID: id, Room: d.Room}); err != nil && !isDup(err) {
		return mesh.Message{}, wrap("delete message", err)
	}
	if err := s.markDeleted(ctx, id); err != nil {
		return mesh.Message{}, wrap("delete message", err)
	}
	m, err := s.message(ctx, id)
	return m, wrap("delete message", err)
}

// AddReaction reports whether the reaction is new, and returns the message as stored. A
// deleted message takes no reactions: CodeNotFound, like a missing one. The reaction is one
// insert under a unique _id; if the message turns out to have been deleted meanwhile, the
// reaction is taken back.
func (s *Store) AddReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	d, err := s.liveMessage(ctx, messageID)
	if err != nil {
		return mesh.Message{}, false, wrap("add reaction", err)
	}
	if d.Deleted {
		return mesh.Message{}, false, notFound("message", messageID)
	}
	r := reactionDoc{ID: idKey(messageID, emoji, participantID), M: messageID, E: emoji, P: participantID,
		Room: d.Room, Ord: s.nextOrd()}
	added := true
	if _, err := s.reactions.InsertOne(ctx, r); err != nil {
		if !isDup(err) {
			return mesh.Message{}, false, wrap("add reaction", err)
		}
		added = false
	}
	deleted, err := s.isDeleted(ctx, messageID)
	if err != nil {
		return mesh.Message{}, false, wrap("add reaction", err)
	}
	if deleted {
		if added {
			_, _ = s.reactions.DeleteOne(ctx, bson.D{{Key: "_id", Value: r.ID}})
		}
		return mesh.Message{}, false, notFound("message", messageID)
	}
	m, err := s.message(ctx, messageID)
	return m, added, wrap("add reaction", err)
}

// RemoveReaction reports whether the reaction was there, and returns the message as stored;
// CodeNotFound if there is no such message. A deleted message has no reactions to remove.
func (s *Store) RemoveReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	d, err := s.liveMessage(ctx, messageID)
	if err != nil {
		return mesh.Message{}, false, wrap("remove reaction", err)
	}
	removed := false
	if !d.Deleted {
		res, err := s.reactions.DeleteOne(ctx, bson.D{{Key: "_id", Value: idKey(messageID, emoji, participantID)}})
		if err != nil {
			return mesh.Message{}, false, wrap("remove reaction", err)
		}
		removed = res.DeletedCount == 1
	}
	m, err := s.message(ctx, messageID)
	return m, removed, wrap("remove reaction", err)
}

// SetPinned pins or unpins a message and returns it. A deleted message cannot be pinned (nor
// unpinned: it never is pinned): CodeNotFound, like a missing one.
//
// The update can race with DeleteMessage and, on FerretDB v1, bring back the content of the
// message being deleted; so, as EditMessage does, it looks for the deletion mark after writing,
// deletes the message again if it is there, and answers CodeNotFound.
func (s *Store) SetPinned(ctx context.Context, id string, pinned bool) (mesh.Message, error) {
	d, err := s.liveMessage(ctx, id)
	if err != nil {
		return mesh.Message{}, wrap("set pinned", err)
	}
	if d.Deleted {
		return mesh.Message{}, notFound("message", id)
	}
	deleted, err := s.setFlag(ctx, id, "pinned", pinned)
	if err != nil {
		return mesh.Message{}, wrap("set pinned", err)
	}
	if deleted {
		return mesh.Message{}, notFound("message", id)
	}
	m, err := s.message(ctx, id)
	return m, wrap("set pinned", err)
}

// SetLocked locks or unlocks the thread whose root is the message id, and returns the root;
// CodeNotFound if there is no such message. A deleted root can be locked (its thread lives
// on). A racing deletion is settled as in SetPinned, but the lock stays.
func (s *Store) SetLocked(ctx context.Context, id string, locked bool) (mesh.Message, error) {
	if _, err := s.liveMessage(ctx, id); err != nil {
		return mesh.Message{}, wrap("set locked", err)
	}
	if _, err := s.setFlag(ctx, id, "locked", locked); err != nil {
		return mesh.Message{}, wrap("set locked", err)
	}
	m, err := s.message(ctx, id)
	return m, wrap("set locked", err)
}

// setFlag sets one boolean field of the message, then looks for its deletion mark: if the
// message is deleted, it deletes it again (the update may have undone a racing deletion's
// writes) and reports deleted.
func (s *Store) setFlag(ctx context.Context, id, field string, on bool) (deleted bool, err error) {
	if _, err := s.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: on}}}}); err != nil {
		return false, err
	}
	if deleted, err = s.isDeleted(ctx, id); err != nil || !deleted {
		return false, err
	}
	return true, s.markDeleted(ctx, id)
}

// ListPinned lists the room's pinned messages that viewer may see (whispers only to their
// author and addressee, none to an empty viewer), in seq order, at most mesh.MaxListLimit
// (the first ones). An unknown room has none.
func (s *Store) ListPinned(ctx context.Context, roomID, viewer string) ([]mesh.Message, error) {
	room, found, err := s.roomByID(ctx, roomID)
	if err != nil {
		return nil, wrap("list pinned", err)
	}
	if !found {
		return []mesh.Message{}, nil
	}
	filter := bson.D{{Key: "room", Value: room.Key}, {Key: "pinned", Value: true}, {Key: "deleted", Value: false}}
	if viewer == "" {
		filter = append(filter, bson.E{Key: "to", Value: nil})
	} else {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "to", Value: nil}},
			bson.D{{Key: "to", Value: viewer}},
			bson.D{{Key: "author", Value: viewer}},
		}})
	}
	docs, err := findAll[messageDoc](ctx, s.messages, filter,
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(mesh.MaxListLimit))
	if err != nil {
		return nil, wrap("list pinned", err)
	}
	ms, err := s.withAllReactions(ctx, docs)
	return ms, wrap("list pinned", err)
}

// LastSeq is the room's highest seq: 0 if it has no message or there is no such room.
func (s *Store) LastSeq(ctx context.Context, roomID string) (int64, error) {
	room, found, err := s.roomByID(ctx, roomID)
	if err != nil || !found {
		return 0, wrap("last seq", err)
	}
	seq, err := s.maxSeq(ctx, room.Key)
	return seq, wrap("last seq", err)
}

// eventJSON is a feed event as stored in a message's event field (a JSON object, in a string):
// the store's own format, apart from the API's. Data is a string holding the event's Data byte
// for byte: as a json.RawMessage, encoding/json would compact it (and escape <, > and &), and
// the event must come back as it was sent. (Byte for byte provided it is UTF-8, as JSON is:
// like every string, an invalid byte would be encoded as U+FFFD.)
type eventJSON struct {
	Kind  string `json:"kind"`
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
	URL   string `json:"url,omitempty"`
	Data  string `json:"data,omitempty"`
}

// encodeEvent is the event field of e: "" (no field) for none.
func encodeEvent(e *mesh.FeedEvent) (string, error) {
	if e == nil {
		return "", nil
	}
	b, err := json.Marshal(eventJSON{Kind: e.Kind, Title: e.Title, Body: e.Body, URL: e.URL, Data: string(e.Data)})
	return string(b), err
}

// decodeEvent is the inverse of encodeEvent: nil for none, and Data nil when empty.
func decodeEvent(s string) (*mesh.FeedEvent, error) {
	if s == "" {
		return nil, nil
	}
	var ej eventJSON
	if err := json.Unmarshal([]byte(s), &ej); err != nil {
		return nil, err
	}
	e := &mesh.FeedEvent{Kind: ej.Kind, Title: ej.Title, Body: ej.Body, URL: ej.URL}
	if ej.Data != "" {
		e.Data = json.RawMessage(ej.Data)
	}
	return e, nil
}
