package mongo

import (
	"context"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// fileDoc is a file's record, in files. Room is the key of the room RoomID had when the file
// was created ("" if there was no such room): ListFiles reads a room's files by its key, so
// the records a deletion leaves behind, or a file created for a room being deleted, are never
// listed in a room created again under the same id. MessageID and To are null until the file
// is attached; they are written only by the holder of the file's claim (see AttachFiles).
type fileDoc struct {
	ID          string        `bson:"_id"`
	Room        string        `bson:"room"`
	RoomID      string        `bson:"roomId"`
	Uploader    string        `bson:"uploader"`
	Name        string        `bson:"name"`
	ContentType string        `bson:"contentType"`
	Size        int64         `bson:"size"`
	SHA256      string        `bson:"sha256"`
	CreatedAt   bson.DateTime `bson:"createdAt"`
	MessageID   *string       `bson:"messageId"`
	To          *string       `bson:"to"`
}

func (d *fileDoc) file() mesh.File {
	return mesh.File{
		ID: d.ID, RoomID: d.RoomID, UploaderID: d.Uploader, Name: d.Name, ContentType: d.ContentType,
		Size: d.Size, SHA256: d.SHA256, CreatedAt: meshTime(d.CreatedAt), MessageID: d.MessageID,
	}
}

// fileClaimDoc says which message a file went with, in fileClaims; its _id is the file's ID,
// so a file is claimed once, by an insert (an update conditional on the file being unattached
// would not do: FerretDB v1 checks the condition and writes in two steps, so two racing
// attachments could both pass). Room is the file's room key, for DeleteRoom's purge.
type fileClaimDoc struct {
	ID   string `bson:"_id"`
	M    string `bson:"m"`
	Room string `bson:"room"`
}

// attachmentDoc is one of a message's files, in the message's attachments array.
type attachmentDoc struct {
	ID          string        `bson:"id"`
	RoomID      string        `bson:"roomId"`
	Uploader    string        `bson:"uploader"`
	Name        string        `bson:"name"`
	ContentType string        `bson:"contentType"`
	Size        int64         `bson:"size"`
	SHA256      string        `bson:"sha256"`
	CreatedAt   bson.DateTime `bson:"createdAt"`
	MessageID   *string       `bson:"messageId,omitempty"`
}

// attachmentDocs is fs as stored with a message: nil (no field) for none.
func attachmentDocs(fs []mesh.File) []attachmentDoc {
	if len(fs) == 0 {
		return nil
	}
	out := make([]attachmentDoc, len(fs))
	for i, f := range fs {
		out[i] = attachmentDoc{
			ID: f.ID, RoomID: f.RoomID, Uploader: f.UploaderID, Name: f.Name, ContentType: f.ContentType,
			Size: f.Size, SHA256: f.SHA256, CreatedAt: date(f.CreatedAt.Time), MessageID: f.MessageID,
		}
	}
	return out
}

// attachments is the inverse of attachmentDocs: nil for none.
func attachments(ds []attachmentDoc) []mesh.File {
	if len(ds) == 0 {
		return nil
	}
	out := make([]mesh.File, len(ds))
	for i, d := range ds {
		out[i] = mesh.File{
			ID: d.ID, RoomID: d.RoomID, UploaderID: d.Uploader, Name: d.Name, ContentType: d.ContentType,
			Size: d.Size, SHA256: d.SHA256, CreatedAt: meshTime(d.CreatedAt), MessageID: d.MessageID,
		}
	}
	return out
}

// CreateFile stores f, unattached (f.MessageID is ignored), under its room's key if the room
// exists (the room is not checked: a file of an unknown room is stored, and never listed). A
// known ID returns the stored record with created false. One insert under the unique _id.
func (s *Store) CreateFile(ctx context.Context, f mesh.File) (mesh.File, bool, error) {
	room, _, err := s.roomByID(ctx, f.RoomID)
	if err != nil {
		return mesh.File{}, false, wrap("create file", err)
	}
	d := fileDoc{
		ID: f.ID, Room: room.Key, RoomID: f.RoomID, Uploader: f.UploaderID, Name: f.Name,
		ContentType: f.ContentType, Size: f.Size, SHA256: f.SHA256, CreatedAt: date(f.CreatedAt.Time),
	}
	if _, err := s.files.InsertOne(ctx, d); err != nil {
		if !isDup(err) {
			return mesh.File{}, false, wrap("create file", err)
		}
		var prev fileDoc
		found, err := findOne(ctx, s.files, bson.D{{Key: "_id", Value: f.ID}}, &prev)
		if err != nil {
			return mesh.File{}, false, wrap("create file", err)
		}
		if !found {
			return mesh.File{}, false, wrap("create file", errRaced)
		}
		return prev.file(), false, nil
	}
	return d.file(), true, nil
}

// File returns a file's record, or CodeNotFound.
func (s *Store) File(ctx context.Context, id string) (mesh.File, error) {
	var d fileDoc
	found, err := findOne(ctx, s.files, bson.D{{Key: "_id", Value: id}}, &d)
	if err != nil {
		return mesh.File{}, wrap("file", err)
	}
	if !found {
		return mesh.File{}, notFound("file", id)
	}
	return d.file(), nil
}

// FilesByIDs returns the records that exist among ids, in no particular order.
func (s *Store) FilesByIDs(ctx context.Context, ids []string) ([]mesh.File, error) {
	if len(ids) == 0 {
		return []mesh.File{}, nil
	}
	docs, err := findAll[fileDoc](ctx, s.files, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, wrap("files by ids", err)
	}
	return files(docs), nil
}

func files(docs []fileDoc) []mesh.File {
	out := make([]mesh.File, len(docs))
	for i := range docs {
		out[i] = docs[i].file()
	}
	return out
}

// AttachFiles records that the files went with m; see store.Files. Each file is claimed with
// one insert into fileClaims under the file's ID: of concurrent attachments of a file to two
// messages, exactly one inserts the claim, and only the claim's holder writes the file's
// messageId and to. A claim already held by m is m's (a redelivered command, or a retry after
// a failure between the claim and the write), and the write is done again. The files that are
// unknown or claimed by another message are CodeConflict; the others are attached all the
// same.
func (s *Store) AttachFiles(ctx context.Context, m mesh.Message, ids []string) error {
	var refused []string
	for _, id := range ids {
		ok, err := s.attachFile(ctx, m, id)
		if err != nil {
			return wrap("attach files", err)
		}
		if !ok {
			refused = append(refused, id)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	return mesh.Errorf(mesh.CodeConflict, "files %s are unknown or attached to another message",
		strings.Join(refused, ", "))
}

// attachFile attaches one file to m, and reports whether it is m's (false if it is unknown or
// another message's).
func (s *Store) attachFile(ctx context.Context, m mesh.Message, id string) (bool, error) {
	var d fileDoc
	found, err := findOne(ctx, s.files, bson.D{{Key: "_id", Value: id}}, &d)
	if err != nil || !found {
		return false, err
	}
	if d.MessageID != nil {
		return *d.MessageID == m.ID, nil
	}
	if _, err := s.fileClaims.InsertOne(ctx, fileClaimDoc{ID: id, M: m.ID, Room: d.Room}); err != nil {
		if !isDup(err) {
			return false, err
		}
		var c fileClaimDoc
		found, err := findOne(ctx, s.fileClaims, bson.D{{Key: "_id", Value: id}}, &c)
		if err != nil {
			return false, err
		}
		if !found || c.M != m.ID { // claimed by another message (or deleted with its file since)
			return false, nil
		}
	}
	res, err := s.files.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "messageId", Value: m.ID}, {Key: "to", Value: m.To},
	}}})
	if err != nil {
		return false, err
	}
	if res.MatchedCount == 0 { // deleted meanwhile: take the claim back
		_, err := s.fileClaims.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "m", Value: m.ID}})
		return false, err
	}
	return true, nil
}

// DeleteFiles removes the records, then their claims (a file is never left attachable to
// another message by a failure in between: its record says which message it went with);
// unknown IDs are skipped.
func (s *Store) DeleteFiles(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	byIDs := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
	if _, err := s.files.DeleteMany(ctx, byIDs); err != nil {
		return wrap("delete files", err)
	}
	_, err := s.fileClaims.DeleteMany(ctx, byIDs)
	return wrap("delete files", err)
}

// ListFiles lists a room's files newest first (by _id); see store.FileQuery. A viewer sees its
// own files (attached or not: a whisper's files are its author's, who uploaded them) and the
// attached files of the messages that are not whispers or are whispers to it.
func (s *Store) ListFiles(ctx context.Context, q store.FileQuery) ([]mesh.File, error) {
	room, found, err := s.roomByID(ctx, q.RoomID)
	if err != nil {
		return nil, wrap("list files", err)
	}
	if !found {
		return []mesh.File{}, nil
	}
	filter := bson.D{{Key: "room", Value: room.Key}}
	if q.Before != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: q.Before}}})
	}
	if q.Viewer != "" {
		attached := bson.E{Key: "messageId", Value: bson.D{{Key: "$ne", Value: nil}}}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "uploader", Value: q.Viewer}},
			bson.D{attached, {Key: "to", Value: nil}},
			bson.D{attached, {Key: "to", Value: q.Viewer}},
		}})
	}
	docs, err := findAll[fileDoc](ctx, s.files, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: -1}}).
		SetLimit(int64(lookAheadLimit(q.Limit))))
	if err != nil {
		return nil, wrap("list files", err)
	}
	return files(docs), nil
}

// lookAheadLimit is the Limit of FileQuery and ThreadQuery with its default and its maximum,
// which is one more than mesh.MaxListLimit (a page and a look ahead).
func lookAheadLimit(n int) int {
	switch {
	case n <= 0:
		return mesh.DefaultListLimit
	case n > mesh.MaxListLimit+1:
		return mesh.MaxListLimit + 1
	default:
		return n
	}
}
