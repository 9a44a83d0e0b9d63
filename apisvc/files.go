package apisvc

import (
	"context"
	"encoding/hex"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/themesh/mesh/pkg/blob"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// Files: the gateway streams an upload's bytes into the blob store, between two commands.
// files.authorize, before it reads them, decides whether the actor may upload to the room
// and how large the file may be (and gives the file its ID); files.upload, once they are
// stored, records the file. Reading one (files.get) answers with its record, if the actor may
// see it; the gateway then streams the bytes.

// uploadRoom checks that the actor may put a file in the room: the rules of posting there.
func (s *Service) uploadRoom(ctx context.Context, c *call, room string) error {
	if room == "" {
		return mesh.Errorf(mesh.CodeBadRequest, "roomId is required")
	}
	if len(room) > 128 {
		return mesh.Errorf(mesh.CodeBadRequest, "roomId is too long")
	}
	return s.postable(ctx, c, room)
}

func (s *Service) filesAuthorize(ctx context.Context, c *call) (any, error) {
	var in struct {
		RoomID string `json:"roomId"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	c.target = in.RoomID
	if err := s.uploadRoom(ctx, c, in.RoomID); err != nil {
		return nil, err
	}
	if ok, retry := s.take(ctx, limitUploads, c.actor.ID, s.cfg.UploadsPerMinute, c.now); !ok {
		return nil, rateLimited(retry, "uploads")
	}
	lim, err := s.meshLimits(ctx)
	if err != nil {
		return nil, err
	}
	return mesh.FileGrant{FileID: c.entityID(), MaxBytes: lim.MaxFileBytes}, nil
}

func (s *Service) filesUpload(ctx context.Context, c *call) (any, error) {
	var in mesh.FileUpload
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	c.target = in.FileID
	if _, err := ulid.ParseStrict(in.FileID); err != nil {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "fileId is not a file id")
	}
	if sum, err := hex.DecodeString(in.SHA256); err != nil || len(sum) != 32 {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "sha256 must be 64 hex digits")
	}
	if in.Size < 0 || in.ContentType == "" || len(in.ContentType) > 128 {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "size and contentType are required")
	}
	if err := s.uploadRoom(ctx, c, in.RoomID); err != nil {
		return nil, err
	}
	lim, err := s.meshLimits(ctx)
	if err != nil {
		return nil, err
	}
	if in.Size > lim.MaxFileBytes {
		return nil, mesh.Errorf(mesh.CodePayloadTooLarge, "the file is larger than %d bytes", lim.MaxFileBytes).
			WithDetails(map[string]any{"maxBytes": lim.MaxFileBytes})
	}
	f, _, err := s.store.CreateFile(ctx, mesh.File{
		ID: in.FileID, RoomID: in.RoomID, UploaderID: c.actor.ID, Name: FileName(in.Name),
		ContentType: in.ContentType, Size: in.Size, SHA256: strings.ToLower(in.SHA256), CreatedAt: mesh.TimeOf(c.now),
	})
	if err != nil {
		return nil, err
	}
	if f.UploaderID != c.actor.ID {
		return nil, mesh.Errorf(mesh.CodeConflict, "that file id is taken")
	}
	return f, nil
}

// FileName cleans a client's name for a file: its last path element (either slash), without
// control or format characters, at most mesh.MaxFileNameBytes bytes; "file" if nothing is
// left. The name is only ever shown: it never becomes a path.
func FileName(name string) string {
	name = strings.ToValidUTF8(name, "")
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > mesh.MaxFileNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == ".." || name == "/" {
		return "file"
	}
	return name
}

// visibleFile loads a file the actor may see: in a room it may see, and either its own and
// not yet attached, or attached to a message it may see. Anything else is not found.
func (s *Service) visibleFile(ctx context.Context, c *call) (mesh.File, error) {
	id, err := param(c, "fileId")
	if err != nil {
		return mesh.File{}, err
	}
	notFound := mesh.Errorf(mesh.CodeNotFound, "no such file")
	f, err := s.store.File(ctx, id)
	if err != nil {
		if mesh.IsCode(err, mesh.CodeNotFound) {
			return mesh.File{}, notFound
		}
		return mesh.File{}, err
	}
	if _, _, err := s.visibleRoom(ctx, c, f.RoomID); err != nil {
		if mesh.IsCode(err, mesh.CodeNotFound) {
			return mesh.File{}, notFound
		}
		return mesh.File{}, err
	}
	if f.MessageID == nil {
		if f.UploaderID != c.actor.ID {
			return mesh.File{}, notFound
		}
		return f, nil
	}
	m, err := s.store.Message(ctx, *f.MessageID)
	if err != nil {
		if mesh.IsCode(err, mesh.CodeNotFound) {
			return mesh.File{}, notFound
		}
		return mesh.File{}, err
	}
	if m.Deleted || !m.VisibleTo(c.actor.ID) {
		return mesh.File{}, notFound
	}
	return f, nil
}

func (s *Service) filesGet(ctx context.Context, c *call) (any, error) {
	return s.visibleFile(ctx, c)
}

// filesDelete deletes a file that is not attached yet, which only its uploader sees (see
// visibleFile). An attached file goes with its message (whose deletion others may do with
// manage_messages).
func (s *Service) filesDelete(ctx context.Context, c *call) (any, error) {
	f, err := s.visibleFile(ctx, c)
	if err != nil {
		return nil, err
	}
	if f.MessageID != nil {
		return nil, mesh.Errorf(mesh.CodeConflict, "the file is attached to a message: delete the message")
	}
	return nil, s.deleteFiles(ctx, []mesh.File{f})
}

func (s *Service) filesList(ctx context.Context, c *call) (any, error) {
	room, limit, err := s.roomPage(ctx, c)
	if err != nil {
		return nil, err
	}
	files, err := s.store.ListFiles(ctx, store.FileQuery{RoomID: room, Viewer: c.actor.ID, Before: c.req.Query["cursor"], Limit: limit + 1})
	if err != nil {
		return nil, err
	}
	out := list[mesh.File]{Items: files}
	if out.Items == nil {
		out.Items = []mesh.File{}
	}
	if len(files) > limit {
		out.Items = files[:limit]
		out.NextCursor = strp(files[limit-1].ID)
	}
	return out, nil
}

// attachments checks the files a new message (id msgID) carries: at most
// mesh.MaxAttachments, each named once, each uploaded by the sender for this room and not
// attached to another message. It returns their records, in the order given, as the message
// carries them.
func (s *Service) attachments(ctx context.Context, c *call, msgID, room string, ids []string) ([]mesh.File, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" || len(id) > 64 || seen[id] {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "attachments must be distinct file ids")
		}
		seen[id] = true
	}
	found, err := s.store.FilesByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]mesh.File, len(found))
	for _, f := range found {
		byID[f.ID] = f
	}
	out := make([]mesh.File, len(ids))
	for i, id := range ids {
		f, ok := byID[id]
		switch {
		case !ok || f.UploaderID != c.actor.ID:
			return nil, mesh.Errorf(mesh.CodeBadRequest, "attachment %s is not a file you uploaded", id)
		case f.RoomID != room:
			return nil, mesh.Errorf(mesh.CodeBadRequest, "attachment %s was uploaded for another room", id)
		case f.MessageID != nil && *f.MessageID != msgID:
			return nil, mesh.Errorf(mesh.CodeConflict, "attachment %s is attached to another message", id)
		}
		f.MessageID = &msgID
		out[i] = f
	}
	return out, nil
}

// roomFiles lists every file of a room (to delete their bytes with the room).
func (s *Service) roomFiles(ctx context.Context, room string) ([]mesh.File, error) {
	var all []mesh.File
	before := ""
	for {
		page, err := s.store.ListFiles(ctx, store.FileQuery{RoomID: room, Before: before, Limit: mesh.MaxListLimit})
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < mesh.MaxListLimit {
			return all, nil
		}
		before = page[len(page)-1].ID
	}
}

// deleteFiles removes files' records, then their bytes.
func (s *Service) deleteFiles(ctx context.Context, files []mesh.File) error {
	if len(files) == 0 {
		return nil
	}
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.ID
	}
	if err := s.store.DeleteFiles(ctx, ids); err != nil {
		return err
	}
	s.deleteBlobs(ctx, files)
	return nil
}

// deleteBlobs removes files' bytes. A failure leaves bytes no record points to (logged): they
// are never served, as serving starts from the record.
func (s *Service) deleteBlobs(ctx context.Context, files []mesh.File) {
	if s.blobs == nil {
		return
	}
	for _, f := range files {
		if err := s.blobs.Delete(ctx, f.ID); err != nil {
			s.log.Warn("file bytes not deleted", "file", f.ID, "err", err)
		}
	}
}

// limitOrphanSweep is the counter that elects, per interval, the one worker that sweeps.
const limitOrphanSweep = "orphan-sweep"

// sweepOrphansEvery runs sweepOrphans every interval, on one worker of the mesh per interval
// (the first to count itself in the interval's window of Deps.Limits), until ctx is done.
func (s *Service) sweepOrphansEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n, _, err := s.counter.Add(ctx, limitOrphanSweep, 1, interval, now)
			if err != nil || n != 1 {
				continue // another worker has this interval (or the counter is away: next time)
			}
			deleted, err := s.sweepOrphans(ctx, now)
			if err != nil {
				s.log.Warn("orphaned file bytes not swept", "err", err)
				continue
			}
			if deleted > 0 {
				s.log.Info("orphaned file bytes deleted", "count", deleted)
			}
		}
	}
}

// sweepOrphans deletes the bytes that no file record points to and that were stored more
// than OrphanGrace before now: an upload whose record was never made (its API worker was
// away at that moment), or a deletion of bytes that failed. Bytes younger than that may be
// an upload between its two steps, and stay.
func (s *Service) sweepOrphans(ctx context.Context, now time.Time) (int, error) {
	if s.blobs == nil {
		return 0, nil
	}
	deleted := 0
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		found, err := s.store.FilesByIDs(ctx, batch)
		if err != nil {
			return err
		}
		known := make(map[string]bool, len(found))
		for _, f := range found {
			known[f.ID] = true
		}
		for _, id := range batch {
			if known[id] {
				continue
			}
			if err := s.blobs.Delete(ctx, id); err != nil {
				return err
			}
			deleted++
		}
		batch = batch[:0]
		return nil
	}
	cutoff := now.Add(-s.cfg.OrphanGrace)
	err := s.blobs.Each(ctx, func(i blob.Info) error {
		if !i.Stored.Before(cutoff) {
			return nil
		}
		batch = append(batch, i.ID)
		if len(batch) == mesh.MaxListLimit {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return deleted, err
}
