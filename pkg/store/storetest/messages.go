package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var messageTests = []test{
	{name: "CreateAndRead", fn: messageCreateAndRead},
	{name: "NotFound", fn: messageNotFound},
	{name: "SeqPerRoom", fn: messageSeqPerRoom},
	{name: "ClientMsgID", fn: messageClientMsgID},
	{name: "Edit", fn: messageEdit},
	{name: "Delete", fn: messageDelete},
	{name: "ConcurrentSeq", fn: messageConcurrentSeq},
	{name: "ConcurrentClientMsgID", fn: messageConcurrentClientMsgID},
	{name: "Pins", fn: messagePins},
	{name: "ThreadLock", fn: messageThreadLock},
	{name: "Search", fn: messageSearch},
}

var listTests = []test{
	{name: "Latest", fn: listLatest},
	{name: "Limit", fn: listLimit},
	{name: "After", fn: listAfter},
	{name: "Before", fn: listBefore},
	{name: "Window", fn: listWindow},
	{name: "Whispers", fn: listWhispers},
	{name: "Thread", fn: listThread},
	{name: "Content", fn: listContent},
	{name: "Deleted", fn: listDeleted},
}

func messageCreateAndRead(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	addMember(t, s, "r1", "b")
	plain := newMessage("r1", "a", "hello")
	whisper := newMessage("r1", "a", "psst", to("b"), clientMsgID("c-1"), withEvent(newEvent("psst")))
	reply := newMessage("r1", "b", "hi back", inThread(plain.ID), clientMsgID("c-1"))
	// Fields the caller must not set are ignored.
	reply.Seq, reply.Deleted, reply.Pinned, reply.Locked = 99, true, true, true
	reply.EditedAt = ptr(mesh.Now())
	reply.Reactions = map[string][]string{"👍": {"a"}}

	for i, in := range []mesh.Message{plain, whisper, reply} {
		got, created, err := s.CreateMessage(ctx, in)
		if err != nil || !created {
			t.Fatalf("CreateMessage(%q) = created %v, %v; want created", in.Content, created, err)
		}
		want := in
		want.Seq = int64(i + 1)
		want.Deleted, want.EditedAt, want.Reactions = false, nil, map[string][]string{}
		want.Pinned, want.Locked = false, false
		checkMessage(t, "CreateMessage("+in.Content+")", got, want)
		stored, err := s.Message(ctx, in.ID)
		if err != nil {
			t.Fatalf("Message(%s): %v", in.ID, err)
		}
		checkMessage(t, "Message("+in.Content+")", stored, want)
	}
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 3 {
		t.Errorf("LastSeq = %d, %v; want 3", seq, err)
	}
}

func messageNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	send(t, s, "r1", "a", "exists")
	const missing = "missing"
	_, err := s.Message(ctx, missing)
	wantCode(t, "Message", err, mesh.CodeNotFound)
	_, err = s.EditMessage(ctx, missing, "x", time.Now())
	wantCode(t, "EditMessage", err, mesh.CodeNotFound)
	_, err = s.DeleteMessage(ctx, missing)
	wantCode(t, "DeleteMessage", err, mesh.CodeNotFound)
	_, _, err = s.AddReaction(ctx, missing, "👍", "a")
	wantCode(t, "AddReaction", err, mesh.CodeNotFound)
	_, _, err = s.RemoveReaction(ctx, missing, "👍", "a")
	wantCode(t, "RemoveReaction", err, mesh.CodeNotFound)
	_, _, err = s.CreateMessage(ctx, newMessage(missing, "a", "x"))
	wantCode(t, "CreateMessage in a missing room", err, mesh.CodeNotFound)
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 1 {
		t.Errorf("LastSeq = %d, %v; want 1 (failed calls change nothing)", seq, err)
	}
}

func messageSeqPerRoom(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	var got1, got2 []int64
	for range 5 {
		got1 = append(got1, send(t, s, "r1", "a", "one").Seq)
		got2 = append(got2, send(t, s, "r2", "a", "two").Seq)
		got2 = append(got2, send(t, s, "r2", "a", "two").Seq)
	}
	wantEqual(t, "seqs in r1", got1, seqRange(1, 5))
	wantEqual(t, "seqs in r2", got2, seqRange(1, 10))
	for room, want := range map[string]int64{"r1": 5, "r2": 10} {
		if seq, err := s.LastSeq(ctx, room); err != nil || seq != want {
			t.Errorf("LastSeq(%s) = %d, %v; want %d", room, seq, err, want)
		}
	}
}

func messageClientMsgID(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	first := send(t, s, "r1", "a", "first", clientMsgID("c-1"))

	// The same author, room and clientMsgId: the first message back, nothing stored.
	again := newMessage("r1", "a", "second try", clientMsgID("c-1"))
	got, created, err := s.CreateMessage(ctx, again)
	if err != nil || created {
		t.Fatalf("CreateMessage(repeat) = created %v, %v; want not created", created, err)
	}
	checkMessage(t, "CreateMessage(repeat)", got, first)
	_, err = s.Message(ctx, again.ID)
	wantCode(t, "Message(id of the repeat)", err, mesh.CodeNotFound)
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 1 {
		t.Errorf("LastSeq after a repeat = %d, %v; want 1", seq, err)
	}

	// The same message id again (a redelivered command): the stored message, nothing new.
	sameID := newMessage("r1", "a", "redelivered")
	sameID.ID = first.ID
	got, created, err = s.CreateMessage(ctx, sameID)
	if err != nil || created || got.Content != "first" || got.Seq != first.Seq {
		t.Fatalf("CreateMessage(same id) = %+v, created %v, %v; want the first, not created", got, created, err)
	}
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 1 {
		t.Errorf("LastSeq after the same id again = %d, %v; want 1", seq, err)
	}

	// The repeat returns the message as it is now (edited, with reactions).
	if _, err := s.EditMessage(ctx, first.ID, "edited", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddReaction(ctx, first.ID, "👍", "b"); err != nil {
		t.Fatal(err)
	}
	got, created, err = s.CreateMessage(ctx, newMessage("r1", "a", "third try", clientMsgID("c-1")))
	if err != nil || created || got.ID != first.ID || got.Content != "edited" ||
		!sameReactions(got.Reactions, map[string][]string{"👍": {"b"}}) {
		t.Errorf("CreateMessage(repeat after edit) = %+v, created %v, %v", got, created, err)
	}

	// Another author, another room, or no clientMsgId: new messages.
	if m := send(t, s, "r1", "b", "b's", clientMsgID("c-1")); m.Seq != 2 {
		t.Errorf("another author's c-1: seq %d, want 2", m.Seq)
	}
	if m := send(t, s, "r2", "a", "elsewhere", clientMsgID("c-1")); m.Seq != 1 {
		t.Errorf("c-1 in another room: seq %d, want 1", m.Seq)
	}
	if m := send(t, s, "r1", "a", "c-2", clientMsgID("c-2")); m.Seq != 3 {
		t.Errorf("another clientMsgId: seq %d, want 3", m.Seq)
	}
	for i := range 2 {
		if m := send(t, s, "r1", "a", "no client id"); m.Seq != int64(4+i) {
			t.Errorf("message without clientMsgId: seq %d, want %d", m.Seq, 4+i)
		}
	}
}

func messageEdit(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	m := send(t, s, "r1", "a", "before")
	other := send(t, s, "r1", "a", "other")
	if _, _, err := s.AddReaction(ctx, m.ID, "👍", "b"); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Second)
	got, err := s.EditMessage(ctx, m.ID, "after", at)
	if err != nil {
		t.Fatalf("EditMessage: %v", err)
	}
	want := m
	want.Content = "after"
	want.EditedAt = ptr(mesh.TimeOf(at))
	want.Reactions = map[string][]string{"👍": {"b"}} // edits keep reactions
	checkMessage(t, "EditMessage", got, want)
	stored, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "Message after edit", stored, want)

	at2 := at.Add(time.Minute)
	if got, err = s.EditMessage(ctx, m.ID, "again", at2); err != nil {
		t.Fatal(err)
	}
	want.Content, want.EditedAt = "again", ptr(mesh.TimeOf(at2))
	checkMessage(t, "second EditMessage", got, want)

	stored, err = s.Message(ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "the other message", stored, other)

	if _, err := s.DeleteMessage(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.EditMessage(ctx, m.ID, "resurrected", time.Now())
	wantCode(t, "EditMessage of a deleted message", err, mesh.CodeNotFound)
	if stored, err = s.Message(ctx, m.ID); err != nil || stored.Content != "" || !stored.Deleted {
		t.Errorf("deleted message after an edit attempt: %+v, %v", stored, err)
	}
}

func messageDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	first := send(t, s, "r1", "a", "secret", clientMsgID("c-1"))
	second := send(t, s, "r1", "a", "stays")
	for _, p := range []string{"a", "b"} {
		if _, _, err := s.AddReaction(ctx, first.ID, "👍", p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.AddReaction(ctx, second.ID, "👍", "a"); err != nil {
		t.Fatal(err)
	}

	got, err := s.DeleteMessage(ctx, first.ID)
	if err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	want := first
	want.Content, want.Deleted, want.Reactions = "", true, map[string][]string{}
	checkMessage(t, "DeleteMessage", got, want)
	stored, err := s.Message(ctx, first.ID)
	if err != nil {
		t.Fatalf("Message after delete: %v", err)
	}
	checkMessage(t, "Message after delete", stored, want)

	// Again: not an error, same result.
	got, err = s.DeleteMessage(ctx, first.ID)
	if err != nil {
		t.Fatalf("DeleteMessage again: %v", err)
	}
	checkMessage(t, "DeleteMessage again", got, want)

	// No reactions on a deleted message.
	_, _, err = s.AddReaction(ctx, first.ID, "❤️", "c")
	wantCode(t, "AddReaction on a deleted message", err, mesh.CodeNotFound)
	got, removed, err := s.RemoveReaction(ctx, first.ID, "👍", "a")
	if err != nil || removed {
		t.Errorf("RemoveReaction on a deleted message = %v, %v; want false, nil", removed, err)
	}
	checkMessage(t, "RemoveReaction on a deleted message", got, want)

	// The seq is kept: LastSeq does not move back, the next message continues.
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 2 {
		t.Errorf("LastSeq = %d, %v; want 2", seq, err)
	}
	if m := send(t, s, "r1", "a", "next"); m.Seq != 3 {
		t.Errorf("next message: seq %d, want 3", m.Seq)
	}
	// The clientMsgId stays taken: a retry of the deleted message does not bring it back.
	got, created, err := s.CreateMessage(ctx, newMessage("r1", "a", "secret", clientMsgID("c-1")))
	if err != nil || created || got.ID != first.ID || !got.Deleted {
		t.Errorf("retry of the deleted message = %+v, created %v, %v; want the deleted one", got, created, err)
	}
	// Other messages keep their reactions.
	stored, err = s.Message(ctx, second.ID)
	if err != nil || !sameReactions(stored.Reactions, map[string][]string{"👍": {"a"}}) {
		t.Errorf("the other message's reactions = %v, %v", stored.Reactions, err)
	}
}

func messageConcurrentSeq(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	var (
		mu   sync.Mutex
		got  []int64
		byID = map[string]int64{}
	)
	concurrently(Workers, func(w int) {
		for i := range PerWorker {
			m, created, err := s.CreateMessage(ctx, newMessage("r1", fmt.Sprintf("p%d", w), fmt.Sprint(i)))
			if err != nil || !created {
				t.Errorf("worker %d: CreateMessage = created %v, %v", w, created, err)
				return
			}
			mu.Lock()
			got = append(got, m.Seq)
			byID[m.ID] = m.Seq
			mu.Unlock()
		}
	})
	const n = Workers * PerWorker
	slices.Sort(got)
	wantEqual(t, "seqs returned (sorted)", got, seqRange(1, n))
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != n {
		t.Errorf("LastSeq = %d, %v; want %d", seq, err, n)
	}
	// What is stored agrees with what was returned, read in pages from the latest back.
	var stored []int64
	for before := int64(0); ; {
		page := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", Before: before, Limit: mesh.MaxListLimit})
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			if byID[m.ID] != m.Seq {
				t.Errorf("message %s: stored seq %d, returned %d", m.ID, m.Seq, byID[m.ID])
			}
		}
		stored = append(seqs(page), stored...)
		if before = page[0].Seq; before == 1 {
			break
		}
	}
	wantEqual(t, "seqs stored", stored, seqRange(1, n))
}

func messageConcurrentClientMsgID(t *testing.T, s store.Store) {
	warmUp(t, s)
	for round := range Rounds {
		messageConcurrentClientMsgIDOnce(t, s, fmt.Sprint("r", round))
	}
}

func messageConcurrentClientMsgIDOnce(t *testing.T, s store.Store, room string) {
	ctx := t.Context()
	createRoom(t, s, room, "a", false)
	var (
		created atomic.Int32
		mu      sync.Mutex
		ids     = map[string]bool{}
	)
	concurrently(Workers, func(w int) {
		m, ok, err := s.CreateMessage(ctx, newMessage(room, "a", fmt.Sprint("try ", w), clientMsgID("c-1")))
		if err != nil {
			t.Errorf("CreateMessage: %v", err)
			return
		}
		if ok {
			created.Add(1)
		}
		if m.Seq != 1 {
			t.Errorf("worker %d got seq %d, want 1", w, m.Seq)
		}
		mu.Lock()
		ids[m.ID] = true
		mu.Unlock()
	})
	if created.Load() != 1 || len(ids) != 1 {
		t.Errorf("%d created, %d distinct messages returned; want 1 and 1", created.Load(), len(ids))
	}
	if seq, err := s.LastSeq(ctx, room); err != nil || seq != 1 {
		t.Errorf("LastSeq = %d, %v; want 1", seq, err)
	}
	if ms := list(t, s, store.MessageQuery{RoomID: room, Viewer: "a"}); len(ms) != 1 {
		t.Errorf("%d messages stored, want 1", len(ms))
	}
}

func listLatest(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	sendN(t, s, "r1", "a", 120)
	wantEqual(t, "latest (default limit)", seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})),
		seqRange(71, 120))
	wantEqual(t, "latest 10", seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", Limit: 10})),
		seqRange(111, 120))
	createRoom(t, s, "r2", "a", false)
	if ms := list(t, s, store.MessageQuery{RoomID: "r2", Viewer: "a"}); len(ms) != 0 {
		t.Errorf("empty room: %d messages", len(ms))
	}
}

func listLimit(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	sendN(t, s, "r1", "a", mesh.MaxListLimit+20)
	const last = mesh.MaxListLimit + 20
	for _, tc := range []struct {
		limit int
		want  int64
	}{
		{0, mesh.DefaultListLimit},
		{-5, mesh.DefaultListLimit},
		{1, 1},
		{mesh.MaxListLimit, mesh.MaxListLimit},
		{mesh.MaxListLimit + 1, mesh.MaxListLimit},
		{1000, mesh.MaxListLimit},
	} {
		got := seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", Limit: tc.limit}))
		wantEqual(t, fmt.Sprintf("latest, limit %d", tc.limit), got, seqRange(last-tc.want+1, last))
		got = seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", After: 1, Limit: tc.limit}))
		wantEqual(t, fmt.Sprintf("after 1, limit %d", tc.limit), got, seqRange(2, tc.want+1))
	}
}

func listAfter(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	sendN(t, s, "r1", "a", 120)
	for _, tc := range []struct {
		after    int64
		limit    int
		from, to int64
	}{
		{5, 3, 6, 8},
		{5, 0, 6, 55}, // the first 50 after, not the last 50
		{118, 10, 119, 120},
		{119, 0, 120, 120},
		{120, 0, 1, 0},
		{500, 0, 1, 0},
	} {
		got := seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", After: tc.after, Limit: tc.limit}))
		wantEqual(t, fmt.Sprintf("after %d, limit %d", tc.after, tc.limit), got, seqRange(tc.from, tc.to))
	}
	// Forward from zero: a client that has seen nothing reads from the start.
	got := seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", Forward: true, Limit: 3}))
	wantEqual(t, "forward from 0, limit 3", got, seqRange(1, 3))
}

func listBefore(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	sendN(t, s, "r1", "a", 120)
	for _, tc := range []struct {
		before   int64
		limit    int
		from, to int64
	}{
		{10, 3, 7, 9},
		{100, 0, 50, 99}, // the last 50 before, in ascending order
		{3, 10, 1, 2},
		{2, 0, 1, 1},
		{1, 0, 1, 0},
		{500, 5, 116, 120},
	} {
		got := seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", Before: tc.before, Limit: tc.limit}))
		wantEqual(t, fmt.Sprintf("before %d, limit %d", tc.before, tc.limit), got, seqRange(tc.from, tc.to))
	}
}

func listWindow(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	sendN(t, s, "r1", "a", 120)
	for _, tc := range []struct {
		after, before int64
		limit         int
		from, to      int64
	}{
		{5, 9, 0, 6, 8},
		{5, 9, 2, 6, 7}, // the first Limit of the window
		{5, 100, 0, 6, 55},
		{5, 6, 0, 1, 0},
		{9, 5, 0, 1, 0},
	} {
		got := seqs(list(t, s, store.MessageQuery{
			RoomID: "r1", Viewer: "a", After: tc.after, Before: tc.before, Limit: tc.limit}))
		wantEqual(t, fmt.Sprintf("after %d before %d limit %d", tc.after, tc.before, tc.limit), got,
			seqRange(tc.from, tc.to))
	}
}

func listWhispers(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	addMember(t, s, "r1", "b")
	addMember(t, s, "r1", "c")
	root := send(t, s, "r1", "a", "1 public")
	send(t, s, "r1", "a", "2 a to b", to("b"))
	send(t, s, "r1", "b", "3 b to a", to("a"))
	send(t, s, "r1", "c", "4 public")
	send(t, s, "r1", "c", "5 c to c", to("c"))
	send(t, s, "r1", "a", "6 public")

	for _, tc := range []struct {
		viewer string
		want   []int64
	}{
		{"a", []int64{1, 2, 3, 4, 6}},
		{"b", []int64{1, 2, 3, 4, 6}},
		{"c", []int64{1, 4, 5, 6}},
		{"d", []int64{1, 4, 6}},
		{"", []int64{1, 4, 6}},
	} {
		got := seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: tc.viewer}))
		wantEqual(t, "visible to "+tc.viewer, got, tc.want)
	}
	// Limit counts what the viewer may see, in every direction.
	wantEqual(t, "latest 2 for d", seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "d", Limit: 2})),
		[]int64{4, 6})
	wantEqual(t, "first 2 after 1 for d",
		seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "d", After: 1, Limit: 2})), []int64{4, 6})
	wantEqual(t, "last 2 before 6 for d",
		seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "d", Before: 6, Limit: 2})), []int64{1, 4})
	// Whispers stay hidden in threads too.
	send(t, s, "r1", "a", "7 whisper in thread", to("b"), inThread(root.ID))
	wantEqual(t, "thread for d", seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "d", ThreadID: root.ID})),
		[]int64{1})
	wantEqual(t, "thread for b", seqs(list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "b", ThreadID: root.ID})),
		[]int64{1, 7})
}

func listThread(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	root := send(t, s, "r1", "a", "1 root")
	send(t, s, "r1", "b", "2 reply", inThread(root.ID))
	other := send(t, s, "r1", "a", "3 another root")
	send(t, s, "r1", "b", "4 reply", inThread(root.ID))
	send(t, s, "r1", "a", "5 other reply", inThread(other.ID))
	send(t, s, "r1", "a", "6 unthreaded")
	send(t, s, "r1", "b", "7 reply", inThread(root.ID))

	q := func(thread string, after, before int64, limit int) []int64 {
		return seqs(list(t, s, store.MessageQuery{
			RoomID: "r1", Viewer: "a", ThreadID: thread, After: after, Before: before, Limit: limit}))
	}
	wantEqual(t, "thread", q(root.ID, 0, 0, 0), []int64{1, 2, 4, 7})
	wantEqual(t, "other thread", q(other.ID, 0, 0, 0), []int64{3, 5})
	wantEqual(t, "thread after 1", q(root.ID, 1, 0, 0), []int64{2, 4, 7})
	wantEqual(t, "thread, latest 2", q(root.ID, 0, 0, 2), []int64{4, 7})
	wantEqual(t, "thread before 7, limit 2", q(root.ID, 0, 7, 2), []int64{2, 4})
	wantEqual(t, "thread after 2, limit 1", q(root.ID, 2, 0, 1), []int64{4})
	wantEqual(t, "unknown thread", q("missing", 0, 0, 0), []int64{})
	// The thread of a message in another room is not this room's.
	createRoom(t, s, "r2", "a", false)
	if ms := list(t, s, store.MessageQuery{RoomID: "r2", Viewer: "a", ThreadID: root.ID}); len(ms) != 0 {
		t.Errorf("thread %s listed in r2: %d messages", root.ID, len(ms))
	}
}

// listContent checks that listed messages carry every field, reactions included.
func listContent(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	want := []mesh.Message{
		send(t, s, "r1", "a", "plain"),
		send(t, s, "r1", "a", "whisper", to("b"), clientMsgID("c-9")),
	}
	want = append(want, send(t, s, "r1", "b", "reply", inThread(want[0].ID)))
	for _, r := range []struct {
		i        int
		emoji, p string
	}{
		{0, "👍", "b"}, {0, "👍", "a"}, {0, "🎉", "c"}, {2, "👍", "a"},
	} {
		m, _, err := s.AddReaction(ctx, want[r.i].ID, r.emoji, r.p)
		if err != nil {
			t.Fatal(err)
		}
		want[r.i] = m
	}
	edited, err := s.EditMessage(ctx, want[2].ID, "reply, edited", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want[2] = edited
	wantEqual(t, "reactions", want[0].Reactions, map[string][]string{"👍": {"b", "a"}, "🎉": {"c"}})

	got := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})
	if len(got) != len(want) {
		t.Fatalf("listed %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		checkMessage(t, fmt.Sprintf("listed message %d", i+1), got[i], want[i])
	}
}

func listDeleted(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	ms := sendN(t, s, "r1", "a", 5)
	if _, err := s.DeleteMessage(ctx, ms[2].ID); err != nil {
		t.Fatal(err)
	}
	got := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})
	wantEqual(t, "seqs with a deleted message", seqs(got), seqRange(1, 5))
	if len(got) == 5 && (!got[2].Deleted || got[2].Content != "" || got[2].ID != ms[2].ID) {
		t.Errorf("listed deleted message = %+v", got[2])
	}
}

// sameReactions compares reaction maps, the order of each emoji's reactors included.
func sameReactions(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func pinned(t *testing.T, s store.Store, roomID, viewer string) []mesh.Message {
	t.Helper()
	ms, err := s.ListPinned(t.Context(), roomID, viewer)
	if err != nil {
		t.Fatalf("ListPinned(%s, %q): %v", roomID, viewer, err)
	}
	if ms == nil {
		t.Errorf("ListPinned(%s, %q) = nil, want a slice", roomID, viewer)
	}
	return ms
}

func setPinned(t *testing.T, s store.Store, id string, on bool) mesh.Message {
	t.Helper()
	m, err := s.SetPinned(t.Context(), id, on)
	if err != nil {
		t.Fatalf("SetPinned(%s, %v): %v", id, on, err)
	}
	return m
}

func messagePins(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	m1 := send(t, s, "r1", "a", "1 public")
	m2 := send(t, s, "r1", "a", "2 a to b", to("b"))
	m3 := send(t, s, "r1", "b", "3 public")
	m4 := send(t, s, "r1", "c", "4 c to c", to("c"))
	m5 := send(t, s, "r1", "a", "5 public, not pinned")
	other := send(t, s, "r2", "a", "pinned in r2")
	if _, _, err := s.AddReaction(ctx, m3.ID, "👍", "a"); err != nil {
		t.Fatal(err)
	}
	m3.Reactions = map[string][]string{"👍": {"a"}}

	// Pinned out of seq order; listed in seq order.
	for _, m := range []*mesh.Message{&m3, &m1, &m4, &m2, &other} {
		got := setPinned(t, s, m.ID, true)
		m.Pinned = true
		checkMessage(t, "SetPinned("+m.Content+")", got, *m)
	}
	// Again: not an error, no change.
	checkMessage(t, "SetPinned again", setPinned(t, s, m1.ID, true), m1)
	stored, err := s.Message(ctx, m3.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "Message of a pinned message", stored, m3)
	listed := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})
	wantEqual(t, "listed seqs", seqs(listed), []int64{1, 2, 3, 5})
	for i, want := range []mesh.Message{m1, m2, m3, m5} {
		checkMessage(t, fmt.Sprint("ListMessages[", i, "]"), listed[i], want)
	}

	for _, tc := range []struct {
		viewer string
		want   []int64
	}{
		{"a", []int64{1, 2, 3}},
		{"b", []int64{1, 2, 3}},
		{"c", []int64{1, 3, 4}},
		{"d", []int64{1, 3}},
		{"", []int64{1, 3}},
	} {
		wantEqual(t, "pinned seqs visible to "+tc.viewer, seqs(pinned(t, s, "r1", tc.viewer)), tc.want)
	}
	got := pinned(t, s, "r1", "b")
	for i, want := range []mesh.Message{m1, m2, m3} {
		checkMessage(t, fmt.Sprint("ListPinned[", i, "]"), got[i], want)
	}
	wantEqual(t, "pinned in r2", seqs(pinned(t, s, "r2", "a")), []int64{1})
	wantEqual(t, "pinned in an unknown room", seqs(pinned(t, s, "missing", "a")), []int64{})

	// Unpinning.
	got1 := setPinned(t, s, m1.ID, false)
	m1.Pinned = false
	checkMessage(t, "SetPinned(false)", got1, m1)
	checkMessage(t, "SetPinned(false) again", setPinned(t, s, m1.ID, false), m1)
	if stored, err := s.Message(ctx, m1.ID); err != nil || stored.Pinned {
		t.Errorf("Message after unpinning: pinned %v, %v; want false", stored.Pinned, err)
	}
	wantEqual(t, "pinned after unpinning", seqs(pinned(t, s, "r1", "a")), []int64{2, 3})

	// A deleted message is unpinned, and cannot be pinned again.
	deleted, err := s.DeleteMessage(ctx, m3.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := m3
	want.Content, want.Deleted, want.Pinned, want.Reactions = "", true, false, map[string][]string{}
	checkMessage(t, "DeleteMessage of a pinned message", deleted, want)
	wantEqual(t, "pinned after a deletion", seqs(pinned(t, s, "r1", "a")), []int64{2})
	_, err = s.SetPinned(ctx, m3.ID, true)
	wantCode(t, "SetPinned of a deleted message", err, mesh.CodeNotFound)
	_, err = s.SetPinned(ctx, m3.ID, false)
	wantCode(t, "SetPinned(false) of a deleted message", err, mesh.CodeNotFound)
	if stored, err := s.Message(ctx, m3.ID); err != nil {
		t.Fatal(err)
	} else {
		checkMessage(t, "deleted message after a pin attempt", stored, want)
	}
	wantEqual(t, "pinned after a pin attempt", seqs(pinned(t, s, "r1", "a")), []int64{2})

	// Unknown messages.
	_, err = s.SetPinned(ctx, "missing", true)
	wantCode(t, "SetPinned of a missing message", err, mesh.CodeNotFound)
	_, err = s.SetPinned(ctx, "missing", false)
	wantCode(t, "SetPinned(false) of a missing message", err, mesh.CodeNotFound)

	// A deleted room's pins go with it.
	if err := s.DeleteRoom(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	createRoom(t, s, "r2", "a", false)
	wantEqual(t, "pinned in a room created again", seqs(pinned(t, s, "r2", "a")), []int64{})
	_, err = s.SetPinned(ctx, other.ID, true)
	wantCode(t, "SetPinned of a message of a deleted room", err, mesh.CodeNotFound)
}

func messageThreadLock(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	root := send(t, s, "r1", "a", "root")
	reply := send(t, s, "r1", "b", "reply", inThread(root.ID))
	other := send(t, s, "r1", "a", "other root")

	got, err := s.SetLocked(ctx, root.ID, true)
	if err != nil {
		t.Fatalf("SetLocked: %v", err)
	}
	root.Locked = true
	checkMessage(t, "SetLocked", got, root)
	if got, err = s.SetLocked(ctx, root.ID, true); err != nil {
		t.Fatalf("SetLocked again: %v", err)
	}
	checkMessage(t, "SetLocked again", got, root)
	for _, want := range []mesh.Message{root, reply, other} {
		stored, err := s.Message(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, "Message("+want.Content+")", stored, want)
	}
	listed := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", ThreadID: root.ID})
	wantEqual(t, "thread seqs", seqs(listed), []int64{1, 2})
	checkMessage(t, "listed root", listed[0], root)
	checkMessage(t, "listed reply", listed[1], reply)
	// Locking is not pinning, and an edit keeps the lock.
	wantEqual(t, "pinned", seqs(pinned(t, s, "r1", "a")), []int64{})
	at := mesh.Now()
	edited, err := s.EditMessage(ctx, root.ID, "root, edited", at.Time)
	if err != nil {
		t.Fatal(err)
	}
	root.Content, root.EditedAt = "root, edited", &at
	checkMessage(t, "EditMessage of a locked root", edited, root)

	if got, err = s.SetLocked(ctx, root.ID, false); err != nil {
		t.Fatalf("SetLocked(false): %v", err)
	}
	root.Locked = false
	checkMessage(t, "SetLocked(false)", got, root)
	if stored, err := s.Message(ctx, root.ID); err != nil {
		t.Fatal(err)
	} else {
		checkMessage(t, "Message after unlocking", stored, root)
	}

	// A deleted root stays locked, and can be locked and unlocked.
	if _, err := s.SetLocked(ctx, root.ID, true); err != nil {
		t.Fatal(err)
	}
	deleted, err := s.DeleteMessage(ctx, root.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := root
	want.Content, want.Deleted, want.Locked = "", true, true
	checkMessage(t, "DeleteMessage of a locked root", deleted, want)
	if got, err = s.SetLocked(ctx, root.ID, false); err != nil {
		t.Fatalf("SetLocked(false) of a deleted root: %v", err)
	}
	want.Locked = false
	checkMessage(t, "SetLocked(false) of a deleted root", got, want)

	_, err = s.SetLocked(ctx, "missing", true)
	wantCode(t, "SetLocked of a missing message", err, mesh.CodeNotFound)
	_, err = s.SetLocked(ctx, "missing", false)
	wantCode(t, "SetLocked(false) of a missing message", err, mesh.CodeNotFound)
}

func search(t *testing.T, s store.Store, q store.SearchQuery) []mesh.Message {
	t.Helper()
	ms, err := s.SearchMessages(t.Context(), q)
	if err != nil {
		t.Fatalf("SearchMessages(%+v): %v", q, err)
	}
	if ms == nil {
		t.Errorf("SearchMessages(%+v) = nil, want a slice", q)
	}
	return ms
}

func messageIDs(ms []mesh.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// messageSearch checks SearchMessages: case-insensitive literal text, the given rooms only,
// whispers as in ListMessages, no deleted messages, newest first by (creation time, id) (not
// by id alone), and Before as a cursor in that order.
func messageSearch(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := mesh.TimeOf(time.Now().Add(-time.Hour))
	at := func(sec int) func(*mesh.Message) {
		return func(m *mesh.Message) { m.CreatedAt = mesh.TimeOf(base.Add(time.Duration(sec) * time.Second)) }
	}
	for _, r := range []string{"r1", "r2", "r3"} {
		createRoom(t, s, r, "a", false)
	}
	m1 := send(t, s, "r1", "a", "Hello world", at(1))
	m2 := send(t, s, "r1", "b", "say HELLO", at(3))
	m3 := send(t, s, "r1", "a", "hello, b, a whisper", to("b"), at(4))
	send(t, s, "r1", "a", "nothing here", at(5))
	m5 := send(t, s, "r1", "c", "hellO: a later id, an earlier time", at(2))
	m6 := send(t, s, "r1", "c", "hello at the same time as m2", at(3))
	m7 := send(t, s, "r1", "a", "hello, soon deleted", at(6))
	m8 := send(t, s, "r2", "b", "hello from r2", at(7))
	send(t, s, "r3", "b", "hello from r3", at(8))
	if _, err := s.DeleteMessage(ctx, m7.ID); err != nil {
		t.Fatal(err)
	}
	m1, _, err := s.AddReaction(ctx, m1.ID, "👍", "b")
	if err != nil {
		t.Fatal(err)
	}
	if m1.Seq != 1 || m5.Seq != 5 {
		t.Fatalf("seqs %d, %d; want 1, 5", m1.Seq, m5.Seq)
	}

	rooms := []string{"r1", "r2"}
	public := []string{m8.ID, m6.ID, m2.ID, m5.ID, m1.ID}
	withWhisper := []string{m8.ID, m3.ID, m6.ID, m2.ID, m5.ID, m1.ID}
	for _, tc := range []struct {
		viewer, text string
		want         []string
	}{
		{"a", "hello", withWhisper},
		{"b", "HeLLo", withWhisper},
		{"c", "hello", public},
		{"", "HELLO", public},
		{"a", "from R2", []string{m8.ID}},
		{"a", "deleted", []string{}},
		{"a", "no such text", []string{}},
	} {
		got := search(t, s, store.SearchQuery{Text: tc.text, Rooms: rooms, Viewer: tc.viewer})
		wantEqual(t, fmt.Sprintf("search %q for %q", tc.text, tc.viewer), messageIDs(got), tc.want)
	}
	// Found messages carry every field, reactions included.
	got := search(t, s, store.SearchQuery{Text: "world", Rooms: rooms, Viewer: "a"})
	if len(got) != 1 {
		t.Fatalf("search world: %d messages, want 1", len(got))
	}
	checkMessage(t, "found message", got[0], m1)
	// Only the given rooms: unknown ones add nothing, and no rooms find nothing.
	wantEqual(t, "search in r3 and an unknown room",
		len(search(t, s, store.SearchQuery{Text: "hello", Rooms: []string{"r3", "nope"}, Viewer: "a"})), 1)
	wantEqual(t, "search in no rooms", len(search(t, s, store.SearchQuery{Text: "hello", Viewer: "a"})), 0)
	wantEqual(t, "search in an empty room list",
		len(search(t, s, store.SearchQuery{Text: "hello", Rooms: []string{}, Viewer: "a"})), 0)

	// Before pages through the same order, Limit at a time; a deleted message and a whisper
	// (hidden from this viewer) are positions too.
	for _, viewer := range []string{"b", "c"} {
		want := public
		if viewer == "b" {
			want = withWhisper
		}
		var all []string
		before := ""
		for range 10 {
			page := search(t, s, store.SearchQuery{Text: "hello", Rooms: rooms, Viewer: viewer, Before: before, Limit: 2})
			if len(page) > 2 {
				t.Fatalf("page of %d, limit 2", len(page))
			}
			if len(page) == 0 {
				break
			}
			all = append(all, messageIDs(page)...)
			before = page[len(page)-1].ID
		}
		wantEqual(t, "pages for "+viewer, all, want)
	}
	wantEqual(t, "before the deleted message",
		messageIDs(search(t, s, store.SearchQuery{Text: "hello", Rooms: rooms, Viewer: "c", Before: m7.ID})),
		[]string{m6.ID, m2.ID, m5.ID, m1.ID})
	wantEqual(t, "before a whisper the viewer cannot see",
		messageIDs(search(t, s, store.SearchQuery{Text: "hello", Rooms: rooms, Viewer: "c", Before: m3.ID})),
		[]string{m6.ID, m2.ID, m5.ID, m1.ID})
	wantEqual(t, "before the tie's later id",
		messageIDs(search(t, s, store.SearchQuery{Text: "hello", Rooms: rooms, Viewer: "c", Before: m6.ID, Limit: 1})),
		[]string{m2.ID})

	// The text is literal: no wildcards, no patterns; and case folds beyond ASCII, one
	// character to one (the rule FindParticipants shares).
	createRoom(t, s, "r4", "a", false)
	lit := map[string]mesh.Message{}
	for _, c := range searchTexts {
		lit[c] = send(t, s, "r4", "a", c)
	}
	for _, tc := range searchTextCases {
		want := []string{}
		for _, c := range slices.Backward(searchTexts) { // newest first
			if slices.Contains(tc.want, c) {
				want = append(want, lit[c].ID)
			}
		}
		got := search(t, s, store.SearchQuery{Text: tc.text, Rooms: []string{"r4"}, Viewer: "a"})
		wantEqual(t, fmt.Sprintf("search %q", tc.text), messageIDs(got), want)
	}
	// Limit counts what is found.
	wantEqual(t, "limit 0", len(search(t, s, store.SearchQuery{Text: "OFF", Rooms: []string{"r4"}, Viewer: "a"})), 2)
	wantEqual(t, "limit 1", len(search(t, s, store.SearchQuery{Text: "OFF", Rooms: []string{"r4"}, Viewer: "a", Limit: 1})), 1)
	// 0 is the default, and Limit is capped.
	createRoom(t, s, "r5", "a", false)
	sendN(t, s, "r5", "a", mesh.MaxListLimit+5)
	wantEqual(t, "default limit", len(search(t, s, store.SearchQuery{Text: "", Rooms: []string{"r5"}, Viewer: "a"})),
		mesh.DefaultListLimit)
	wantEqual(t, "capped limit",
		len(search(t, s, store.SearchQuery{Text: "", Rooms: []string{"r5"}, Viewer: "a", Limit: mesh.MaxListLimit + 1})),
		mesh.MaxListLimit)
}
