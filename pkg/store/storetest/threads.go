package storetest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var threadTests = []test{
	{name: "Order", fn: threadOrder},
	{name: "Root", fn: threadRoot},
	{name: "LastReplyAt", fn: threadLastReplyAt},
	{name: "Deleted", fn: threadDeleted},
	{name: "Whispers", fn: threadWhispers},
	{name: "Before", fn: threadBefore},
	{name: "Paging", fn: threadPaging},
	{name: "Limit", fn: threadLimit},
	{name: "UnknownRoom", fn: threadUnknownRoom},
	{name: "OtherRooms", fn: threadOtherRooms},
}

// threads calls ListThreads; the answer must never be nil (none is an empty slice).
func threads(t *testing.T, s store.Store, q store.ThreadQuery) []store.ThreadSummary {
	t.Helper()
	ts, err := s.ListThreads(t.Context(), q)
	if err != nil {
		t.Fatalf("ListThreads(%+v): %v", q, err)
	}
	if ts == nil {
		t.Errorf("ListThreads(%+v) = nil, want a slice", q)
	}
	return ts
}

// summary is a thread as the tests compare it: its root's id, its replies, its last reply's
// seq.
type summary struct {
	Root    string
	Replies int
	Last    int64
}

func (s summary) String() string { return fmt.Sprintf("%s:%d@%d", s.Root, s.Replies, s.Last) }

func summaries(ts []store.ThreadSummary) []summary {
	out := make([]summary, len(ts))
	for i, th := range ts {
		out[i] = summary{th.Root.ID, th.Replies, th.LastReplySeq}
	}
	return out
}

// wantThreads lists the room's threads for viewer and compares them with want.
func wantThreads(t *testing.T, s store.Store, roomID, viewer string, want ...summary) {
	t.Helper()
	got := summaries(threads(t, s, store.ThreadQuery{RoomID: roomID, Viewer: viewer}))
	wantEqual(t, fmt.Sprintf("threads of %s for %q", roomID, viewer), got, append([]summary{}, want...))
}

// threadOrder: threads come most recently replied to first, with their counts; a message
// without replies (or a reply) heads no thread; a new reply moves its thread to the top.
func threadOrder(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	a := send(t, s, "r1", "a", "1 root a")
	b := send(t, s, "r1", "b", "2 root b")
	send(t, s, "r1", "a", "3 no replies")
	send(t, s, "r1", "c", "4 reply", inThread(a.ID))
	send(t, s, "r1", "c", "5 reply", inThread(b.ID))
	send(t, s, "r1", "b", "6 reply", inThread(a.ID))
	d := send(t, s, "r1", "d", "7 root d")
	send(t, s, "r1", "a", "8 reply", inThread(d.ID))
	send(t, s, "r1", "a", "9 reply", inThread(b.ID))
	send(t, s, "r1", "a", "10 unthreaded")
	for _, viewer := range []string{"a", "z", ""} {
		wantThreads(t, s, "r1", viewer, summary{b.ID, 2, 9}, summary{d.ID, 1, 8}, summary{a.ID, 2, 6})
	}
	send(t, s, "r1", "b", "11 reply", inThread(a.ID))
	wantThreads(t, s, "r1", "a", summary{a.ID, 3, 11}, summary{b.ID, 2, 9}, summary{d.ID, 1, 8})
}

// threadRoot: the root comes back as every read returns a message: content, client id, event,
// attachments, reactions in order, edited, pinned and locked; a whisper root, to those who may
// see it.
func threadRoot(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	f := createFile(t, s, newFile("r1", "a"))
	root := newMessage("r1", "a", "root", clientMsgID("c-root"), withEvent(newEvent("ci.root")))
	root.Attachments = []mesh.File{f}
	root, _, err := s.CreateMessage(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	whisper := send(t, s, "r1", "a", "whisper root", to("b"))
	send(t, s, "r1", "b", "reply", inThread(root.ID))
	send(t, s, "r1", "b", "reply to the whisper", inThread(whisper.ID))
	for _, r := range []struct{ emoji, p string }{{"👍", "c"}, {"🎉", "b"}, {"👍", "a"}} {
		if _, _, err := s.AddReaction(ctx, root.ID, r.emoji, r.p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.EditMessage(ctx, root.ID, "root, edited", time.Now()); err != nil {
		t.Fatal(err)
	}
	setPinned(t, s, root.ID, true)
	if _, err := s.SetLocked(ctx, root.ID, true); err != nil {
		t.Fatal(err)
	}
	want, err := s.Message(ctx, root.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "reactions of the root", want.Reactions, map[string][]string{"👍": {"c", "a"}, "🎉": {"b"}})
	if !want.Pinned || !want.Locked || want.EditedAt == nil || want.Event == nil || len(want.Attachments) != 1 {
		t.Fatalf("root as read = %+v; want pinned, locked, edited, with an event and an attachment", want)
	}
	wantWhisper, err := s.Message(ctx, whisper.ID)
	if err != nil {
		t.Fatal(err)
	}

	got := threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: "b"})
	if len(got) != 2 {
		t.Fatalf("threads for b = %v, want 2", summaries(got))
	}
	checkMessage(t, "listed whisper root", got[0].Root, wantWhisper)
	checkMessage(t, "listed root", got[1].Root, want)
	wantThreads(t, s, "r1", "c", summary{root.ID, 1, 3})
}

// threadLastReplyAt: LastReplyAt is the creation time of the latest reply by seq (not the
// latest time), at millisecond precision.
func threadLastReplyAt(t *testing.T, s store.Store) {
	base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	at := func(d time.Duration) func(*mesh.Message) {
		return func(m *mesh.Message) { m.CreatedAt = mesh.Time{Time: base.Add(d)} }
	}
	createRoom(t, s, "r1", "a", false)
	root := send(t, s, "r1", "a", "root")
	send(t, s, "r1", "b", "reply at +5s", inThread(root.ID), at(5*time.Second))
	send(t, s, "r1", "b", "later reply at +1.891234567s", inThread(root.ID), at(1891234567*time.Nanosecond))
	got := threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: "a"})
	wantEqual(t, "threads", summaries(got), []summary{{root.ID, 2, 3}})
	if len(got) != 1 {
		return
	}
	if want := base.Add(1891 * time.Millisecond); !got[0].LastReplyAt.Equal(want) {
		t.Errorf("LastReplyAt = %v, want %v (the latest reply's, at millisecond precision)", got[0].LastReplyAt, want)
	}
}

// threadDeleted: deleted replies are not counted (nor are they the last reply); a thread
// whose replies are all deleted is absent; a deleted root still heads its thread, deleted and
// empty.
func threadDeleted(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	a := send(t, s, "r1", "a", "1 root a")
	b := send(t, s, "r1", "a", "2 root b")
	c := send(t, s, "r1", "a", "3 root c")
	send(t, s, "r1", "b", "4 reply", inThread(a.ID))
	send(t, s, "r1", "b", "5 reply", inThread(b.ID))
	send(t, s, "r1", "b", "6 reply", inThread(a.ID))
	rc := send(t, s, "r1", "b", "7 reply", inThread(c.ID))
	rb := send(t, s, "r1", "b", "8 reply", inThread(b.ID))
	wantThreads(t, s, "r1", "a", summary{b.ID, 2, 8}, summary{c.ID, 1, 7}, summary{a.ID, 2, 6})

	for _, id := range []string{rb.ID, rc.ID, a.ID} {
		if _, err := s.DeleteMessage(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	got := threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: "a"})
	wantEqual(t, "threads after deleting", summaries(got), []summary{{a.ID, 2, 6}, {b.ID, 1, 5}})
	if len(got) > 0 {
		want := a
		want.Content, want.Deleted = "", true
		checkMessage(t, "deleted root", got[0].Root, want)
	}
}

// threadWhispers: a whisper reply counts (and is the last reply) only for its author and
// addressee, and an empty viewer sees none; the thread of a whisper root is seen only by them.
func threadWhispers(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	p := send(t, s, "r1", "a", "1 public root")
	send(t, s, "r1", "c", "2 public reply", inThread(p.ID))
	send(t, s, "r1", "a", "3 a to b", inThread(p.ID), to("b"))
	w := send(t, s, "r1", "a", "4 whisper root, a to b", to("b"))
	send(t, s, "r1", "c", "5 public reply", inThread(w.ID))
	send(t, s, "r1", "b", "6 b to a", inThread(w.ID), to("a"))
	q := send(t, s, "r1", "c", "7 public root")
	send(t, s, "r1", "a", "8 a to b", inThread(q.ID), to("b"))
	send(t, s, "r1", "c", "9 c to c", inThread(q.ID), to("c"))

	wantThreads(t, s, "r1", "a", summary{q.ID, 1, 8}, summary{w.ID, 2, 6}, summary{p.ID, 2, 3})
	wantThreads(t, s, "r1", "b", summary{q.ID, 1, 8}, summary{w.ID, 2, 6}, summary{p.ID, 2, 3})
	wantThreads(t, s, "r1", "c", summary{q.ID, 1, 9}, summary{p.ID, 1, 2})
	wantThreads(t, s, "r1", "d", summary{p.ID, 1, 2})
	wantThreads(t, s, "r1", "", summary{p.ID, 1, 2})
}

// threadBefore: Before keeps the threads whose last reply (for the viewer) is below it; a
// thread with older replies below it but its last one not is not listed.
func threadBefore(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	x := send(t, s, "r1", "a", "1 root x")
	y := send(t, s, "r1", "a", "2 root y")
	send(t, s, "r1", "b", "3 reply", inThread(x.ID))
	send(t, s, "r1", "b", "4 reply", inThread(y.ID))
	send(t, s, "r1", "b", "5 reply", inThread(x.ID))
	send(t, s, "r1", "b", "6 b to b", inThread(y.ID), to("b"))
	for _, tc := range []struct {
		viewer string
		before int64
		want   []summary
	}{
		{"a", 0, []summary{{x.ID, 2, 5}, {y.ID, 1, 4}}},
		{"a", 100, []summary{{x.ID, 2, 5}, {y.ID, 1, 4}}},
		{"a", 6, []summary{{x.ID, 2, 5}, {y.ID, 1, 4}}},
		{"a", 5, []summary{{y.ID, 1, 4}}},
		{"a", 4, []summary{}},
		{"a", 1, []summary{}},
		{"b", 0, []summary{{y.ID, 2, 6}, {x.ID, 2, 5}}},
		{"b", 6, []summary{{x.ID, 2, 5}}},
	} {
		got := threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: tc.viewer, Before: tc.before})
		wantEqual(t, fmt.Sprintf("threads for %q before %d", tc.viewer, tc.before), summaries(got), tc.want)
	}
}

// threadPaging: paging with the last LastReplySeq as the cursor lists every thread the viewer
// may see once, in the order of a single list, in full pages; the counts are checked against a
// model of what was sent (whispers, deleted replies and hidden roots mixed in).
func threadPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	type sent struct {
		m       mesh.Message
		deleted bool
	}
	people := []string{"a", "b", "c"}
	rnd := rand.New(rand.NewPCG(1, 2))
	var roots []mesh.Message
	for i := range 24 {
		var opts []func(*mesh.Message)
		if i%6 == 5 {
			opts = append(opts, to(people[i%3]))
		}
		roots = append(roots, send(t, s, "r1", people[(i+1)%3], fmt.Sprint("root ", i), opts...))
	}
	var replies []sent
	for i := range 80 {
		opts := []func(*mesh.Message){inThread(roots[rnd.IntN(len(roots))].ID)}
		if rnd.IntN(5) == 0 {
			opts = append(opts, to(people[rnd.IntN(3)]))
		}
		r := sent{m: send(t, s, "r1", people[rnd.IntN(3)], fmt.Sprint("reply ", i), opts...)}
		if rnd.IntN(6) == 0 {
			if _, err := s.DeleteMessage(ctx, r.m.ID); err != nil {
				t.Fatal(err)
			}
			r.deleted = true
		}
		replies = append(replies, r)
	}
	sees := func(viewer string, m mesh.Message) bool {
		return m.To == nil || viewer != "" && (*m.To == viewer || m.AuthorID == viewer)
	}
	for _, viewer := range []string{"a", "b", "c", ""} {
		// The model: for each root the viewer may see, its visible, undeleted replies.
		var want []summary
		for _, root := range roots {
			if !sees(viewer, root) {
				continue
			}
			th := summary{Root: root.ID}
			for _, r := range replies {
				if *r.m.ThreadID == root.ID && !r.deleted && sees(viewer, r.m) {
					th.Replies++
					th.Last = r.m.Seq
				}
			}
			if th.Replies > 0 {
				want = append(want, th)
			}
		}
		slices.SortFunc(want, func(a, b summary) int { return cmp.Compare(b.Last, a.Last) })
		if len(want) < 8 {
			t.Fatalf("the model has %d threads for %q: too few to page", len(want), viewer)
		}

		wantEqual(t, fmt.Sprintf("all threads for %q", viewer),
			summaries(threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: viewer, Limit: mesh.MaxListLimit})), want)
		// Every page is full but the last: Limit counts what the viewer may see (a short page
		// would tell the API that no page follows).
		var paged []summary
		before := int64(0)
		for range len(want) + 1 {
			page := threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: viewer, Before: before, Limit: 3})
			if len(page) > 3 || len(page) < 3 && len(paged)+len(page) < len(want) {
				t.Fatalf("page of %d threads for %q after %d, limit 3, %d threads in all",
					len(page), viewer, len(paged), len(want))
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, summaries(page)...)
			before = page[len(page)-1].LastReplySeq
		}
		wantEqual(t, fmt.Sprintf("paged threads for %q", viewer), paged, want)
	}
}

// threadLimit: 0 (or less) is mesh.DefaultListLimit, and Limit is capped at
// mesh.MaxListLimit+1 (a page and a look ahead); the latest threads come first.
func threadLimit(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	const n = mesh.MaxListLimit + 10
	roots := sendN(t, s, "r1", "a", n)
	var all []summary // latest first
	for _, root := range roots {
		r := send(t, s, "r1", "b", "reply", inThread(root.ID))
		all = append([]summary{{root.ID, 1, r.Seq}}, all...)
	}
	for _, tc := range []struct{ limit, want int }{
		{0, mesh.DefaultListLimit},
		{-5, mesh.DefaultListLimit},
		{1, 1},
		{mesh.MaxListLimit, mesh.MaxListLimit},
		{mesh.MaxListLimit + 1, mesh.MaxListLimit + 1},
		{mesh.MaxListLimit + 2, mesh.MaxListLimit + 1},
		{1000, mesh.MaxListLimit + 1},
	} {
		got := summaries(threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: "a", Limit: tc.limit}))
		wantEqual(t, fmt.Sprintf("threads, limit %d", tc.limit), got, all[:tc.want])
	}
	// The limit applies after the cursor.
	got := summaries(threads(t, s, store.ThreadQuery{RoomID: "r1", Viewer: "a", Before: all[9].Last, Limit: 2}))
	wantEqual(t, "threads before the tenth, limit 2", got, all[10:12])
}

// threadUnknownRoom: an unknown room, a room without replies, and a deleted room (or one made
// again under its id) have no threads: an empty slice, not nil.
func threadUnknownRoom(t *testing.T, s store.Store) {
	ctx := t.Context()
	wantThreads(t, s, "nope", "a")
	wantThreads(t, s, "nope", "")
	createRoom(t, s, "r1", "a", false)
	wantThreads(t, s, "r1", "a")
	root := send(t, s, "r1", "a", "root")
	wantThreads(t, s, "r1", "a")
	send(t, s, "r1", "b", "reply", inThread(root.ID))
	wantThreads(t, s, "r1", "a", summary{root.ID, 1, 2})
	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	wantThreads(t, s, "r1", "a")
	createRoom(t, s, "r1", "a", false)
	wantThreads(t, s, "r1", "a")
}

// threadOtherRooms: a room's threads are its own: another room's never appear, nor does a
// reply whose root is in another room (or is no message) make a thread in either room.
func threadOtherRooms(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	a := send(t, s, "r1", "a", "r1 root")
	b := send(t, s, "r2", "a", "r2 root")
	send(t, s, "r1", "b", "r1 reply", inThread(a.ID))
	send(t, s, "r2", "b", "r2 reply", inThread(b.ID))
	send(t, s, "r2", "b", "r2 reply", inThread(b.ID))
	// The store does not check a reply's thread (the API does): these make no thread.
	send(t, s, "r1", "b", "r1 reply to r2's root", inThread(b.ID))
	send(t, s, "r2", "b", "r2 reply to r1's root", inThread(a.ID))
	send(t, s, "r1", "b", "reply to no message", inThread("missing"))
	wantThreads(t, s, "r1", "a", summary{a.ID, 1, 2})
	wantThreads(t, s, "r2", "a", summary{b.ID, 2, 3})
}
