package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var fileTests = []test{
	{name: "CreateAndRead", fn: fileCreateAndRead},
	{name: "CreateAgain", fn: fileCreateAgain},
	{name: "NotFound", fn: fileNotFound},
	{name: "ByIDs", fn: fileByIDs},
	{name: "Attach", fn: fileAttach},
	{name: "AttachConflict", fn: fileAttachConflict},
	{name: "ConcurrentAttach", fn: fileConcurrentAttach},
	{name: "ListVisibility", fn: fileListVisibility},
	{name: "ListBefore", fn: fileListBefore},
	{name: "ListLimit", fn: fileListLimit},
	{name: "ListUnknownRoom", fn: fileListUnknownRoom},
	{name: "Delete", fn: fileDelete},
	{name: "DeleteRoom", fn: fileDeleteRoom},
	{name: "MessageAttachments", fn: fileMessageAttachments},
	{name: "DeleteMessageAttachments", fn: fileDeleteMessageAttachments},
}

// fileBase is the creation time of the fixture files: finer than a millisecond and in a zone
// other than UTC, so that it must read back at millisecond precision, in UTC.
var fileBase = time.Date(2026, 7, 8, 9, 10, 11, 123456789, time.FixedZone("UTC+5", 5*60*60))

// newFile is a complete file record ready for CreateFile (every field set but MessageID). IDs
// grow with each call, as ULIDs do.
func newFile(roomID, uploader string) mesh.File {
	id := newID("f")
	return mesh.File{
		ID: id, RoomID: roomID, UploaderID: uploader, Name: "photo " + id + ".png",
		ContentType: "image/png", Size: int64(len(id)) * 1021, SHA256: strings.Repeat("ab", 28) + id[len(id)-8:],
		CreatedAt: mesh.Time{Time: fileBase.Add(time.Duration(ids.Load()) * time.Second)},
	}
}

// storedFile is f as the store gives it back: its time at millisecond precision, in UTC.
func storedFile(f mesh.File) mesh.File {
	f.CreatedAt = mesh.TimeOf(f.CreatedAt.Time)
	return f
}

// attachedTo is f as stored once attached to m.
func attachedTo(f mesh.File, m mesh.Message) mesh.File {
	f = storedFile(f)
	f.MessageID = &m.ID
	return f
}

func createFile(t *testing.T, s store.Store, f mesh.File) mesh.File {
	t.Helper()
	got, created, err := s.CreateFile(t.Context(), f)
	if err != nil || !created {
		t.Fatalf("CreateFile(%s) = created %v, %v; want created", f.ID, created, err)
	}
	return got
}

// createFiles creates n files of the uploader in the room, oldest (lowest ID) first.
func createFiles(t *testing.T, s store.Store, roomID, uploader string, n int) []mesh.File {
	t.Helper()
	out := make([]mesh.File, n)
	for i := range out {
		out[i] = createFile(t, s, newFile(roomID, uploader))
	}
	return out
}

func attach(t *testing.T, s store.Store, m mesh.Message, fs ...mesh.File) {
	t.Helper()
	if err := s.AttachFiles(t.Context(), m, fileIDs(fs)); err != nil {
		t.Fatalf("AttachFiles(%s, %v): %v", m.ID, fileIDs(fs), err)
	}
}

func listFiles(t *testing.T, s store.Store, q store.FileQuery) []mesh.File {
	t.Helper()
	got, err := s.ListFiles(t.Context(), q)
	if err != nil {
		t.Fatalf("ListFiles(%+v): %v", q, err)
	}
	return got
}

func fileIDs(fs []mesh.File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

// newestFirst is the IDs of fs in reverse order (fs oldest first).
func newestFirst(fs ...mesh.File) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[len(fs)-1-i] = f.ID
	}
	return out
}

// checkFile compares every field; the time must be the same instant, in UTC.
func checkFile(t *testing.T, what string, got, want mesh.File) {
	t.Helper()
	if !sameTime(got.CreatedAt.Time, want.CreatedAt.Time) {
		t.Errorf("%s: CreatedAt = %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
	if !got.CreatedAt.IsZero() && got.CreatedAt.Location() != time.UTC {
		t.Errorf("%s: CreatedAt = %v, want it in UTC", what, got.CreatedAt)
	}
	if strPtr(got.MessageID) != strPtr(want.MessageID) {
		t.Errorf("%s: MessageID = %s, want %s", what, strPtr(got.MessageID), strPtr(want.MessageID))
	}
	got.CreatedAt, want.CreatedAt = mesh.Time{}, mesh.Time{}
	got.MessageID, want.MessageID = nil, nil
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// checkFiles compares two lists of files, in order; nil and empty are the same.
func checkFiles(t *testing.T, what string, got, want []mesh.File) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, fileIDs(got), fileIDs(want))
		return
	}
	for i := range got {
		checkFile(t, fmt.Sprint(what, "[", i, "]"), got[i], want[i])
	}
}

// checkFileSet compares two lists of files in any order.
func checkFileSet(t *testing.T, what string, got, want []mesh.File) {
	t.Helper()
	wantSet(t, what+" IDs", fileIDs(got), fileIDs(want))
	byID := map[string]mesh.File{}
	for _, f := range want {
		byID[f.ID] = f
	}
	for _, f := range got {
		if w, ok := byID[f.ID]; ok {
			checkFile(t, what+" "+f.ID, f, w)
		}
	}
}

// wantFile reads a file's record and compares it with want.
func wantFile(t *testing.T, s store.Store, what string, want mesh.File) {
	t.Helper()
	got, err := s.File(t.Context(), want.ID)
	if err != nil {
		t.Errorf("%s: File(%s): %v", what, want.ID, err)
		return
	}
	checkFile(t, what, got, want)
}

// wantNoAttachmentsJSON fails if m's JSON has an attachments field.
func wantNoAttachmentsJSON(t *testing.T, what string, m mesh.Message) {
	t.Helper()
	wantNoJSONField(t, what, m, "attachments")
}

// wantNoJSONField fails if m's JSON has the field.
func wantNoJSONField(t *testing.T, what string, m mesh.Message, field string) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if v, ok := fields[field]; ok {
		t.Errorf("%s: JSON has %s %s, want the field absent", what, field, v)
	}
}

func fileCreateAndRead(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	for _, f := range []mesh.File{newFile("r1", "a"), newFile("r1", "b")} {
		in := f
		in.MessageID = ptr("m-ignored") // a new file starts unattached, whatever the caller says
		got, created, err := s.CreateFile(ctx, in)
		if err != nil || !created {
			t.Fatalf("CreateFile(%s) = created %v, %v; want created", f.ID, created, err)
		}
		checkFile(t, "CreateFile("+f.ID+")", got, storedFile(f))
		wantFile(t, s, "File("+f.ID+")", storedFile(f))
	}
	// An empty file, of a type the sniffer did not know, is a file like any other.
	empty := newFile("r1", "a")
	empty.Size, empty.ContentType, empty.Name = 0, "application/octet-stream", "empty"
	checkFile(t, "CreateFile(empty)", createFile(t, s, empty), storedFile(empty))
	wantFile(t, s, "File(empty)", storedFile(empty))
}

func fileCreateAgain(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	first := newFile("r1", "a")
	createFile(t, s, first)

	// The same ID again (a redelivered command): the stored record, nothing changed, even if
	// the rest differs (the room is not checked).
	again := newFile("r2", "b")
	again.ID = first.ID
	got, created, err := s.CreateFile(ctx, again)
	if err != nil || created {
		t.Fatalf("CreateFile(same ID) = created %v, %v; want not created", created, err)
	}
	checkFile(t, "CreateFile(same ID)", got, storedFile(first))
	wantFile(t, s, "File after CreateFile(same ID)", storedFile(first))
	if fs := listFiles(t, s, store.FileQuery{RoomID: "r2"}); len(fs) != 0 {
		t.Errorf("ListFiles(r2) = %v, want none", fileIDs(fs))
	}

	// Once attached, the record comes back attached.
	m := send(t, s, "r1", "a", "with a file")
	attach(t, s, m, first)
	got, created, err = s.CreateFile(ctx, first)
	if err != nil || created {
		t.Fatalf("CreateFile(attached ID) = created %v, %v; want not created", created, err)
	}
	checkFile(t, "CreateFile(attached ID)", got, attachedTo(first, m))
}

func fileNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	f := createFile(t, s, newFile("r1", "a"))
	const missing = "f-missing"
	_, err := s.File(ctx, missing)
	wantCode(t, "File(unknown)", err, mesh.CodeNotFound)
	_, err = s.File(ctx, "")
	wantCode(t, "File(empty)", err, mesh.CodeNotFound)
	if fs, err := s.FilesByIDs(ctx, []string{missing}); err != nil || len(fs) != 0 {
		t.Errorf("FilesByIDs(unknown) = %v, %v; want none", fileIDs(fs), err)
	}
	if err := s.DeleteFiles(ctx, []string{missing}); err != nil {
		t.Errorf("DeleteFiles(unknown): %v, want nil (skipped)", err)
	}
	// The misses changed nothing.
	wantFile(t, s, "File after the misses", f)
}

func fileByIDs(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "b", false)
	f1 := createFile(t, s, newFile("r1", "a"))
	f2 := createFile(t, s, newFile("r2", "b"))
	f3 := createFile(t, s, newFile("r1", "c"))
	m := send(t, s, "r1", "c", "f3")
	attach(t, s, m, f3)

	got, err := s.FilesByIDs(ctx, []string{f3.ID, "f-missing", f1.ID, f2.ID})
	if err != nil {
		t.Fatalf("FilesByIDs: %v", err)
	}
	checkFileSet(t, "FilesByIDs", got, []mesh.File{f1, f2, attachedTo(f3, m)})
	got, err = s.FilesByIDs(ctx, []string{f2.ID})
	if err != nil {
		t.Fatalf("FilesByIDs(one): %v", err)
	}
	checkFileSet(t, "FilesByIDs(one)", got, []mesh.File{f2})
	for _, none := range [][]string{nil, {}} {
		if got, err := s.FilesByIDs(ctx, none); err != nil || len(got) != 0 {
			t.Errorf("FilesByIDs(%v) = %v, %v; want none", none, fileIDs(got), err)
		}
	}
}

func fileAttach(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	addMember(t, s, "r1", "b")
	fs := createFiles(t, s, "r1", "a", 3)
	m := send(t, s, "r1", "a", "two files")
	whisper := send(t, s, "r1", "a", "one for b", to("b"))

	attach(t, s, m, fs[0], fs[1])
	wantFile(t, s, "File(0) attached", attachedTo(fs[0], m))
	wantFile(t, s, "File(1) attached", attachedTo(fs[1], m))
	wantFile(t, s, "File(2) not attached", fs[2])

	// Again (a redelivered command), alone or with others: they stay attached, no error.
	attach(t, s, m, fs[1])
	attach(t, s, m, fs[0], fs[1])
	wantFile(t, s, "File(0) attached again", attachedTo(fs[0], m))
	wantFile(t, s, "File(1) attached again", attachedTo(fs[1], m))

	// The same ID twice in one call is one file.
	attach(t, s, whisper, fs[2], fs[2])
	wantFile(t, s, "File(2) attached to the whisper", attachedTo(fs[2], whisper))

	// No files: nothing to do.
	for _, none := range [][]string{nil, {}} {
		if err := s.AttachFiles(ctx, m, none); err != nil {
			t.Errorf("AttachFiles(%v): %v", none, err)
		}
	}
}

func fileAttachConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	fs := createFiles(t, s, "r1", "a", 4)
	first := send(t, s, "r1", "a", "first")
	second := send(t, s, "r1", "a", "second")
	attach(t, s, first, fs[0])

	// A file of another message: CodeConflict, and it stays with the first.
	err := s.AttachFiles(ctx, second, []string{fs[0].ID})
	wantCode(t, "AttachFiles(another message's file)", err, mesh.CodeConflict)
	wantFile(t, s, "File(0) after the conflict", attachedTo(fs[0], first))

	// An unknown file: CodeConflict.
	err = s.AttachFiles(ctx, second, []string{"f-missing"})
	wantCode(t, "AttachFiles(unknown file)", err, mesh.CodeConflict)

	// Mixed: CodeConflict, and the others are attached all the same, wherever they are in
	// the list.
	err = s.AttachFiles(ctx, second, []string{fs[1].ID, fs[0].ID, "f-missing", fs[2].ID})
	wantCode(t, "AttachFiles(mixed)", err, mesh.CodeConflict)
	wantFile(t, s, "File(0) after the mixed call", attachedTo(fs[0], first))
	wantFile(t, s, "File(1) after the mixed call", attachedTo(fs[1], second))
	wantFile(t, s, "File(2) after the mixed call", attachedTo(fs[2], second))
	wantFile(t, s, "File(3) untouched", fs[3])
	if _, err := s.File(ctx, "f-missing"); !mesh.IsCode(err, mesh.CodeNotFound) {
		t.Errorf("File(f-missing) after AttachFiles: %v, want CodeNotFound (nothing created)", err)
	}

	// Now the second's: the first cannot take it back.
	err = s.AttachFiles(ctx, first, []string{fs[1].ID})
	wantCode(t, "AttachFiles(the second's file to the first)", err, mesh.CodeConflict)
	wantFile(t, s, "File(1) after the conflict", attachedTo(fs[1], second))
}

// fileConcurrentAttach has Workers messages attach one file at once, several rounds (a new
// file each): exactly one succeeds, the others are CodeConflict, and the file is the
// winner's.
func fileConcurrentAttach(t *testing.T, s store.Store) {
	const rounds = 5
	createRoom(t, s, "r1", "a", false)
	warmUp(t, s)
	for r := range rounds {
		f := createFile(t, s, newFile("r1", "a"))
		ms := make([]mesh.Message, Workers)
		for i := range ms {
			ms[i] = send(t, s, "r1", "a", fmt.Sprint("round ", r, " message ", i))
		}
		var (
			mu      sync.Mutex
			winners []mesh.Message
		)
		concurrently(Workers, func(i int) {
			err := s.AttachFiles(t.Context(), ms[i], []string{f.ID})
			if err != nil {
				if !mesh.IsCode(err, mesh.CodeConflict) {
					t.Errorf("round %d: AttachFiles(%s): %v, want nil or CodeConflict", r, ms[i].ID, err)
				}
				return
			}
			mu.Lock()
			winners = append(winners, ms[i])
			mu.Unlock()
		})
		if len(winners) != 1 {
			t.Fatalf("round %d: %d attachments succeeded, want exactly 1", r, len(winners))
		}
		wantFile(t, s, fmt.Sprint("round ", r, ": File after the race"), attachedTo(f, winners[0]))
	}
}

func fileListVisibility(t *testing.T, s store.Store) {
	// a whispers to b, c whispers to a; d is a member who is neither.
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	for _, p := range []string{"b", "c", "d"} {
		addMember(t, s, "r1", p)
	}
	public := send(t, s, "r1", "a", "for all")
	aToB := send(t, s, "r1", "a", "for b", to("b"))
	cToA := send(t, s, "r1", "c", "for a", to("a"))
	fPublic := createFile(t, s, newFile("r1", "a"))
	fAToB := createFile(t, s, newFile("r1", "a"))
	fAOwn := createFile(t, s, newFile("r1", "a"))
	fBOwn := createFile(t, s, newFile("r1", "b"))
	fCToA := createFile(t, s, newFile("r1", "c"))
	fCPublic := createFile(t, s, newFile("r1", "c"))
	createFile(t, s, newFile("r2", "a")) // another room's: never listed in r1
	attach(t, s, public, fPublic)
	attach(t, s, aToB, fAToB)
	attach(t, s, cToA, fCToA)
	cPublic := send(t, s, "r1", "c", "c's, for all")
	attach(t, s, cPublic, fCPublic)

	all := []mesh.File{attachedTo(fPublic, public), attachedTo(fAToB, aToB), fAOwn, fBOwn,
		attachedTo(fCToA, cToA), attachedTo(fCPublic, cPublic)}
	byID := map[string]mesh.File{}
	for _, f := range all {
		byID[f.ID] = f
	}
	for _, c := range []struct {
		viewer string
		want   []mesh.File // oldest first
	}{
		// The author of a whisper (its uploader) sees its files, its own unattached ones, and
		// the files of what it may see.
		{"a", []mesh.File{fPublic, fAToB, fAOwn, fCToA, fCPublic}},
		// The addressee sees the whisper's files; not a's unattached file.
		{"b", []mesh.File{fPublic, fAToB, fBOwn, fCPublic}},
		{"c", []mesh.File{fPublic, fCToA, fCPublic}},
		{"d", []mesh.File{fPublic, fCPublic}},
		// No viewer: every file of the room.
		{"", []mesh.File{fPublic, fAToB, fAOwn, fBOwn, fCToA, fCPublic}},
	} {
		got := listFiles(t, s, store.FileQuery{RoomID: "r1", Viewer: c.viewer})
		wantEqual(t, fmt.Sprintf("ListFiles(viewer %q) IDs", c.viewer), fileIDs(got), newestFirst(c.want...))
		for _, f := range got {
			checkFile(t, fmt.Sprintf("ListFiles(viewer %q) %s", c.viewer, f.ID), f, byID[f.ID])
		}
	}
}

func fileListBefore(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	fs := createFiles(t, s, "r1", "a", 7)
	other := createFiles(t, s, "r1", "b", 1) // not a's: skipped by a's pages, not counted
	var pages [][]string
	before := ""
	for range 5 {
		got := listFiles(t, s, store.FileQuery{RoomID: "r1", Viewer: "a", Before: before, Limit: 3})
		if len(got) == 0 {
			break
		}
		pages = append(pages, fileIDs(got))
		before = got[len(got)-1].ID
	}
	wantEqual(t, "ListFiles pages", pages, [][]string{
		newestFirst(fs[4:7]...), newestFirst(fs[1:4]...), newestFirst(fs[0]),
	})
	// Before is a position: an ID that names no file works too, and the viewerless list
	// pages the same way.
	got := listFiles(t, s, store.FileQuery{RoomID: "r1", Before: fs[3].ID + "~", Limit: 2})
	wantEqual(t, "ListFiles(Before between IDs)", fileIDs(got), newestFirst(fs[2:4]...))
	got = listFiles(t, s, store.FileQuery{RoomID: "r1", Before: other[0].ID + "~"})
	wantEqual(t, "ListFiles(Before above every ID)", fileIDs(got), newestFirst(append(fs, other...)...))
	if got := listFiles(t, s, store.FileQuery{RoomID: "r1", Before: fs[0].ID}); len(got) != 0 {
		t.Errorf("ListFiles(Before the oldest) = %v, want none", fileIDs(got))
	}
}

func fileListLimit(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	n := mesh.MaxListLimit + 5
	fs := createFiles(t, s, "r1", "a", n)
	newest := func(k int) []string { return newestFirst(fs[n-k:]...) }
	for _, c := range []struct {
		name  string
		limit int
		want  int
	}{
		{"0 (the default)", 0, mesh.DefaultListLimit},
		{"3", 3, 3},
		{"the maximum", mesh.MaxListLimit, mesh.MaxListLimit},
		{"one more than the maximum (a page and a look ahead)", mesh.MaxListLimit + 1, mesh.MaxListLimit + 1},
		{"above that", mesh.MaxListLimit + 4, mesh.MaxListLimit + 1},
	} {
		for _, viewer := range []string{"a", ""} {
			got := listFiles(t, s, store.FileQuery{RoomID: "r1", Viewer: viewer, Limit: c.limit})
			wantEqual(t, fmt.Sprintf("ListFiles(viewer %q, Limit %s) IDs", viewer, c.name), fileIDs(got), newest(c.want))
		}
	}
}

func fileListUnknownRoom(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createFile(t, s, newFile("r1", "a"))
	// The room is not checked: a file of a room that does not exist is stored...
	f := createFile(t, s, newFile("r-missing", "a"))
	wantFile(t, s, "File of an unknown room", f)
	// ... but an unknown room has no files.
	for _, viewer := range []string{"a", ""} {
		got, err := s.ListFiles(ctx, store.FileQuery{RoomID: "r-missing", Viewer: viewer})
		if err != nil || len(got) != 0 {
			t.Errorf("ListFiles(unknown room, viewer %q) = %v, %v; want none", viewer, fileIDs(got), err)
		}
	}
}

func fileDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	fs := createFiles(t, s, "r1", "a", 3)
	m := send(t, s, "r1", "a", "with a file")
	attach(t, s, m, fs[1])

	if err := s.DeleteFiles(ctx, []string{fs[0].ID, "f-missing", fs[1].ID}); err != nil {
		t.Fatalf("DeleteFiles: %v", err)
	}
	for _, f := range fs[:2] {
		_, err := s.File(ctx, f.ID)
		wantCode(t, "File("+f.ID+") after DeleteFiles", err, mesh.CodeNotFound)
	}
	wantFile(t, s, "File of the kept file", fs[2])
	got, err := s.FilesByIDs(ctx, fileIDs(fs))
	if err != nil {
		t.Fatal(err)
	}
	checkFileSet(t, "FilesByIDs after DeleteFiles", got, fs[2:])
	for _, viewer := range []string{"a", ""} {
		got := listFiles(t, s, store.FileQuery{RoomID: "r1", Viewer: viewer})
		wantEqual(t, fmt.Sprintf("ListFiles(viewer %q) after DeleteFiles", viewer), fileIDs(got), []string{fs[2].ID})
	}
	// Again, or nothing: not an error.
	for _, ids := range [][]string{fileIDs(fs[:2]), nil, {}} {
		if err := s.DeleteFiles(ctx, ids); err != nil {
			t.Errorf("DeleteFiles(%v): %v", ids, err)
		}
	}
	// A deleted file is unknown: it cannot be attached.
	err = s.AttachFiles(ctx, m, []string{fs[0].ID})
	wantCode(t, "AttachFiles(deleted file)", err, mesh.CodeConflict)
	// Its ID is free again (a file never reuses one, but the record is really gone).
	again := newFile("r1", "b")
	again.ID = fs[1].ID
	checkFile(t, "CreateFile(deleted ID)", createFile(t, s, again), storedFile(again))
	attach(t, s, send(t, s, "r1", "b", "the new one"), again)
}

func fileDeleteRoom(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	gone := createFiles(t, s, "r1", "a", 2)
	m := send(t, s, "r1", "a", "with a file")
	attach(t, s, m, gone[0])
	kept := createFile(t, s, newFile("r2", "a"))

	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	for _, f := range gone {
		_, err := s.File(ctx, f.ID)
		wantCode(t, "File("+f.ID+") of the deleted room", err, mesh.CodeNotFound)
	}
	got, err := s.FilesByIDs(ctx, append(fileIDs(gone), kept.ID))
	if err != nil {
		t.Fatal(err)
	}
	checkFileSet(t, "FilesByIDs after DeleteRoom", got, []mesh.File{kept})
	if got := listFiles(t, s, store.FileQuery{RoomID: "r1"}); len(got) != 0 {
		t.Errorf("ListFiles(deleted room) = %v, want none", fileIDs(got))
	}
	wantEqual(t, "ListFiles(r2)", fileIDs(listFiles(t, s, store.FileQuery{RoomID: "r2"})), []string{kept.ID})

	// A room created again under the same id starts without files.
	createRoom(t, s, "r1", "a", false)
	for _, viewer := range []string{"a", ""} {
		if got := listFiles(t, s, store.FileQuery{RoomID: "r1", Viewer: viewer}); len(got) != 0 {
			t.Errorf("ListFiles(recreated room, viewer %q) = %v, want none", viewer, fileIDs(got))
		}
	}
	err = s.AttachFiles(ctx, send(t, s, "r1", "a", "new"), []string{gone[1].ID})
	wantCode(t, "AttachFiles(a file of the deleted room)", err, mesh.CodeConflict)
}

// fileMessageAttachments: CreateMessage stores the attachments with the message, and every
// method that returns the message returns them, at millisecond precision; a message without
// attachments has none, and its JSON no attachments field.
func fileMessageAttachments(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	addMember(t, s, "r1", "b")
	in := []mesh.File{newFile("r1", "a"), newFile("r1", "a")}
	for _, f := range in {
		createFile(t, s, f)
	}
	m := newMessage("r1", "a", "here are the files", clientMsgID("c-files"))
	in[1].MessageID = &m.ID // the attachments are stored as given
	m.Attachments = in
	want := m
	want.Seq, want.Reactions = 1, map[string][]string{}
	want.Attachments = []mesh.File{storedFile(in[0]), storedFile(in[1])}

	got, created, err := s.CreateMessage(ctx, m)
	if err != nil || !created {
		t.Fatalf("CreateMessage = created %v, %v; want created", created, err)
	}
	checkMessage(t, "CreateMessage", got, want)
	attach(t, s, got, in...)

	plain := send(t, s, "r1", "a", "no files")
	if len(plain.Attachments) != 0 {
		t.Errorf("CreateMessage without attachments: %v, want none", fileIDs(plain.Attachments))
	}
	wantNoAttachmentsJSON(t, "CreateMessage without attachments", plain)
	whisper := newMessage("r1", "a", "a file for b", to("b"))
	whisper.Attachments = []mesh.File{newFile("r1", "a")}
	whisper, _, err = s.CreateMessage(ctx, whisper)
	if err != nil {
		t.Fatal(err)
	}

	// Reads.
	stored, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "Message", stored, want)
	if stored, err = s.Message(ctx, plain.ID); err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "Message(no attachments)", stored, plain)
	wantNoAttachmentsJSON(t, "Message(no attachments)", stored)
	for _, viewer := range []string{"a", "b"} {
		ms := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: viewer})
		if len(ms) != 3 {
			t.Fatalf("ListMessages(%s): %d messages, want 3", viewer, len(ms))
		}
		checkMessage(t, "ListMessages("+viewer+") with attachments", ms[0], want)
		checkMessage(t, "ListMessages("+viewer+") without", ms[1], plain)
		checkMessage(t, "ListMessages("+viewer+") whisper", ms[2], whisper)
	}
	found, err := s.SearchMessages(ctx, store.SearchQuery{Text: "the files", Rooms: []string{"r1"}, Viewer: "b"})
	if err != nil || len(found) != 1 {
		t.Fatalf("SearchMessages = %d messages, %v; want 1", len(found), err)
	}
	checkMessage(t, "SearchMessages", found[0], want)

	// Repeats: the stored message, with its attachments.
	for name, again := range map[string]mesh.Message{
		"same id":          {ID: m.ID, RoomID: "r1", AuthorID: "a", Content: "again", CreatedAt: mesh.Now()},
		"same clientMsgId": newMessage("r1", "a", "again", clientMsgID("c-files")),
	} {
		got, created, err := s.CreateMessage(ctx, again)
		if err != nil || created {
			t.Fatalf("CreateMessage(%s) = created %v, %v; want not created", name, created, err)
		}
		checkMessage(t, "CreateMessage("+name+")", got, want)
	}

	// Writes return it with its attachments.
	at := time.Now()
	got, err = s.EditMessage(ctx, m.ID, "edited", at)
	if err != nil {
		t.Fatal(err)
	}
	want.Content, want.EditedAt = "edited", ptr(mesh.TimeOf(at))
	checkMessage(t, "EditMessage", got, want)
	if got, _, err = s.AddReaction(ctx, m.ID, "👍", "b"); err != nil {
		t.Fatal(err)
	}
	want.Reactions = map[string][]string{"👍": {"b"}}
	checkMessage(t, "AddReaction", got, want)
	if got, _, err = s.RemoveReaction(ctx, m.ID, "👍", "b"); err != nil {
		t.Fatal(err)
	}
	want.Reactions = map[string][]string{}
	checkMessage(t, "RemoveReaction", got, want)
	if got, err = s.SetPinned(ctx, m.ID, true); err != nil {
		t.Fatal(err)
	}
	want.Pinned = true
	checkMessage(t, "SetPinned", got, want)
	pinned, err := s.ListPinned(ctx, "r1", "a")
	if err != nil || len(pinned) != 1 {
		t.Fatalf("ListPinned = %d messages, %v; want 1", len(pinned), err)
	}
	checkMessage(t, "ListPinned", pinned[0], want)
	if got, err = s.SetLocked(ctx, m.ID, true); err != nil {
		t.Fatal(err)
	}
	want.Locked = true
	checkMessage(t, "SetLocked", got, want)
}

// fileDeleteMessageAttachments: DeleteMessage empties the attachments, but the file records
// stay (attached to the deleted message: the caller deletes them).
func fileDeleteMessageAttachments(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	fs := createFiles(t, s, "r1", "a", 2)
	m := newMessage("r1", "a", "files, soon deleted")
	m.Attachments = fs
	m, _, err := s.CreateMessage(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	attach(t, s, m, fs...)
	kept := newMessage("r1", "a", "files that stay")
	kept.Attachments = fs[:1]
	if kept, _, err = s.CreateMessage(ctx, kept); err != nil {
		t.Fatal(err)
	}

	got, err := s.DeleteMessage(ctx, m.ID)
	if err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	want := m
	want.Content, want.Deleted, want.Attachments = "", true, nil
	checkMessage(t, "DeleteMessage", got, want)
	wantNoAttachmentsJSON(t, "DeleteMessage", got)
	stored, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "Message after DeleteMessage", stored, want)
	wantNoAttachmentsJSON(t, "Message after DeleteMessage", stored)
	ms := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})
	if len(ms) != 2 {
		t.Fatalf("ListMessages: %d messages, want 2", len(ms))
	}
	checkMessage(t, "ListMessages: the deleted message", ms[0], want)
	checkMessage(t, "ListMessages: the other message", ms[1], kept)
	if got, err = s.DeleteMessage(ctx, m.ID); err != nil {
		t.Fatalf("DeleteMessage again: %v", err)
	}
	checkMessage(t, "DeleteMessage again", got, want)

	// The records stay as they were, attached to the deleted message.
	for _, f := range fs {
		wantFile(t, s, "File after DeleteMessage", attachedTo(f, m))
	}
	wantEqual(t, "ListFiles after DeleteMessage", fileIDs(listFiles(t, s, store.FileQuery{RoomID: "r1"})), newestFirst(fs...))
}
