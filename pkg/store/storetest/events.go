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

// eventTests are the rules of messages' feed events (mesh.Message.Event).
var eventTests = []test{
	{name: "RoundTrip", fn: eventRoundTrip},
	{name: "DataVerbatim", fn: eventDataVerbatim},
	{name: "None", fn: eventNone},
	{name: "Repeat", fn: eventRepeat},
	{name: "Writes", fn: eventWrites},
	{name: "Delete", fn: eventDelete},
	{name: "Concurrent", fn: eventConcurrent},
}

// newEvent is a feed event with every field set. Its Data is spaced and ordered as
// encoding/json would not write it, and holds characters it would escape: a store that
// re-encodes Data does not give it back.
func newEvent(kind string) mesh.FeedEvent {
	return mesh.FeedEvent{
		Kind:  kind,
		Title: "Build of " + kind + " passed",
		Body:  "All 312 tests <passed> & more.\nSee the log.",
		URL:   "https://ci.example.com/builds/" + kind + "?a=1&b=2",
		Data:  json.RawMessage(`{"b":1, "a":[2], "html": "<&>"}`),
	}
}

// eventContent is a feed event's message content, as the API makes it: the title, then the
// body after a blank line.
func eventContent(e mesh.FeedEvent) string { return e.Title + "\n\n" + e.Body }

// withEvent sets the message's event (a copy of e).
func withEvent(e mesh.FeedEvent) func(*mesh.Message) { return func(m *mesh.Message) { m.Event = &e } }

// checkEvent compares every field of two events, Data byte for byte (nil and empty are the
// same: JSON omits both); nil must stay nil, and an event must stay an event.
func checkEvent(t *testing.T, what string, got, want *mesh.FeedEvent) {
	t.Helper()
	switch {
	case got == nil && want == nil:
		return
	case got == nil || want == nil:
		t.Errorf("%s = %s, want %s", what, eventString(got), eventString(want))
		return
	}
	if got.Kind != want.Kind || got.Title != want.Title || got.Body != want.Body || got.URL != want.URL {
		t.Errorf("%s: kind, title, body, url = %q, %q, %q, %q; want %q, %q, %q, %q", what,
			got.Kind, got.Title, got.Body, got.URL, want.Kind, want.Title, want.Body, want.URL)
	}
	if string(got.Data) != string(want.Data) {
		t.Errorf("%s: Data is not the bytes given: %s", what, bytesDiff(got.Data, want.Data))
	}
}

func eventString(e *mesh.FeedEvent) string {
	if e == nil {
		return "<nil>"
	}
	return fmt.Sprintf("&{Kind:%q Title:%q Body:%q URL:%q Data:%q}", e.Kind, e.Title, e.Body, e.URL, abbrev(e.Data))
}

// abbrev is b, or its start and length if it is long.
func abbrev(b []byte) string {
	const limit = 80
	if len(b) <= limit {
		return string(b)
	}
	return fmt.Sprintf("%s... (%d bytes)", b[:limit], len(b))
}

// bytesDiff says where got and want first differ.
func bytesDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-20)
	return fmt.Sprintf("%d bytes, want %d, first differing at byte %d; from byte %d got %q, want %q",
		len(got), len(want), i, from, abbrev(got[from:]), abbrev(want[from:]))
}

// eventRoundTrip: CreateMessage stores the event (every field), and Message, ListMessages
// (whole room, and a thread) and SearchMessages return it, whispers and replies included.
func eventRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	addMember(t, s, "r1", "b")
	build := newEvent("ci.build")
	task := mesh.FeedEvent{Kind: "task.state", Title: "Task for b: done", Body: "only b sees it",
		URL: "http://tasks.example.com/7", Data: json.RawMessage(`{ "state" : "done",  "n":7 }`)}
	alert := mesh.FeedEvent{Kind: "alert", Title: "Disk at 91%"} // no body, URL or data
	root := newMessage("r1", "a", eventContent(build), withEvent(build), clientMsgID("c-event"))
	in := []mesh.Message{
		root,
		newMessage("r1", "a", "a plain message"),
		newMessage("r1", "a", eventContent(task), withEvent(task), to("b")),
		newMessage("r1", "b", eventContent(alert), withEvent(alert), inThread(root.ID)),
	}
	want := make([]mesh.Message, len(in))
	for i, m := range in {
		got, created, err := s.CreateMessage(ctx, m)
		if err != nil || !created {
			t.Fatalf("CreateMessage(%q) = created %v, %v; want created", m.Content, created, err)
		}
		want[i] = m
		want[i].Seq, want[i].Reactions = int64(i+1), map[string][]string{}
		checkMessage(t, fmt.Sprintf("CreateMessage(%d)", i), got, want[i])
		stored, err := s.Message(ctx, m.ID)
		if err != nil {
			t.Fatalf("Message(%s): %v", m.ID, err)
		}
		checkMessage(t, fmt.Sprintf("Message(%d)", i), stored, want[i])
	}

	for _, viewer := range []string{"a", "b"} {
		ms := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: viewer})
		if len(ms) != len(want) {
			t.Fatalf("ListMessages(%s): %d messages, want %d", viewer, len(ms), len(want))
		}
		for i := range ms {
			checkMessage(t, fmt.Sprintf("ListMessages(%s)[%d]", viewer, i), ms[i], want[i])
		}
	}
	thread := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", ThreadID: root.ID})
	if len(thread) != 2 {
		t.Fatalf("ListMessages(thread): %d messages, want 2", len(thread))
	}
	checkMessage(t, "ListMessages(thread) root", thread[0], want[0])
	checkMessage(t, "ListMessages(thread) reply", thread[1], want[3])

	for i, text := range map[int]string{0: "of ci.build PASSED", 2: "only b sees", 3: "disk at 91"} {
		found := search(t, s, store.SearchQuery{Text: text, Rooms: []string{"r1"}, Viewer: "b"})
		if len(found) != 1 {
			t.Errorf("SearchMessages(%q) = %v, want [%s]", text, messageIDs(found), want[i].ID)
			continue
		}
		checkMessage(t, fmt.Sprintf("SearchMessages(%q)", text), found[0], want[i])
	}
}

// eventDataVerbatim: the event's Data comes back byte for byte as it was given (spacing, key
// order, escapes, number spellings, duplicate keys), from every read.
func eventDataVerbatim(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	var large strings.Builder
	large.WriteString("{\n")
	for i := range 2000 {
		fmt.Fprintf(&large, "  \"key %04d\" :  [ %d,\t\"<v>\" ],\n", 2000-i, i)
	}
	large.WriteString("  \"end\": true\n}")
	cases := []struct{ name, data string }{
		{"spacing and key order", `{"b":1, "a":[2]}`},
		{"indented", "{\n\t\"z\": {\"y\" : [ 1 ,2 ]},\n\t\"a\": null\n}\n"},
		{"escapes and HTML", `{"h":"<a href=\"x\">&amp;</a>", "u":"\u00e9\u2028\ud83d\ude00", "raw":"é😀` + "\u2028" + `", "s":"\/"}`},
		{"numbers as written", `{"n":1.50, "big":123456789012345678901234567890, "e":1E+2, "z":-0.0, "i":0}`},
		{"duplicate keys", `{"a":1,"a":2}`},
		{"empty object", `{}`},
		{"surrounding space", "  {\"a\":1}\r\n"},
		{"array", `[3, 2,1]`},
		{"null", `null`},
		{"large", large.String()},
	}
	want := make([]mesh.Message, len(cases))
	for i, c := range cases {
		e := mesh.FeedEvent{Kind: "data.case", Title: fmt.Sprintf("case %02d", i), Data: json.RawMessage(c.data)}
		m := newMessage("r1", "a", fmt.Sprintf("verbatim case %02d", i), withEvent(e))
		got, _, err := s.CreateMessage(ctx, m)
		if err != nil {
			t.Fatalf("CreateMessage(%s): %v", c.name, err)
		}
		want[i] = m
		want[i].Seq, want[i].Reactions = int64(i+1), map[string][]string{}
		checkEvent(t, "CreateMessage("+c.name+")", got.Event, m.Event)
	}
	for i, c := range cases {
		stored, err := s.Message(ctx, want[i].ID)
		if err != nil {
			t.Fatalf("Message(%s): %v", c.name, err)
		}
		checkMessage(t, "Message("+c.name+")", stored, want[i])
		found := search(t, s, store.SearchQuery{Text: fmt.Sprintf("verbatim case %02d", i), Rooms: []string{"r1"}, Viewer: "a"})
		if len(found) != 1 {
			t.Errorf("SearchMessages(%s) = %v, want [%s]", c.name, messageIDs(found), want[i].ID)
			continue
		}
		checkMessage(t, "SearchMessages("+c.name+")", found[0], want[i])
	}
	ms := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})
	if len(ms) != len(cases) {
		t.Fatalf("ListMessages: %d messages, want %d", len(ms), len(cases))
	}
	for i, c := range cases {
		checkMessage(t, "ListMessages("+c.name+")", ms[i], want[i])
	}
}

// eventNone: a message without an event has none (nil, and no event field in its JSON); an
// event without body, URL or data has none of them; an event, even an empty one, stays one.
func eventNone(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	plain := send(t, s, "r1", "a", "no event here")
	if plain.Event != nil {
		t.Errorf("CreateMessage without an event: Event = %s, want nil", eventString(plain.Event))
	}
	wantNoJSONField(t, "CreateMessage without an event", plain, "event")
	minimal := newMessage("r1", "a", "minimal event", withEvent(mesh.FeedEvent{Kind: "k", Title: "t"}))
	emptyData := newMessage("r1", "a", "empty data",
		withEvent(mesh.FeedEvent{Kind: "k", Title: "t", Data: json.RawMessage{}}))
	empty := newMessage("r1", "a", "empty event", withEvent(mesh.FeedEvent{}))
	want := []mesh.Message{plain}
	for _, m := range []mesh.Message{minimal, emptyData, empty} {
		got, _, err := s.CreateMessage(ctx, m)
		if err != nil {
			t.Fatalf("CreateMessage(%s): %v", m.Content, err)
		}
		m.Seq, m.Reactions = int64(len(want)+1), map[string][]string{}
		checkMessage(t, "CreateMessage("+m.Content+")", got, m)
		want = append(want, m)
	}

	for i, w := range want {
		stored, err := s.Message(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, "Message("+w.Content+")", stored, w)
		if i == 0 {
			wantNoJSONField(t, "Message without an event", stored, "event")
		}
	}
	ms := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})
	if len(ms) != len(want) {
		t.Fatalf("ListMessages: %d messages, want %d", len(ms), len(want))
	}
	for i := range ms {
		checkMessage(t, "ListMessages("+want[i].Content+")", ms[i], want[i])
	}
	wantNoJSONField(t, "ListMessages: the message without an event", ms[0], "event")
	found := search(t, s, store.SearchQuery{Text: "no event", Rooms: []string{"r1"}, Viewer: "a"})
	if len(found) != 1 {
		t.Fatalf("SearchMessages = %v, want [%s]", messageIDs(found), plain.ID)
	}
	checkMessage(t, "SearchMessages", found[0], plain)
	wantNoJSONField(t, "SearchMessages", found[0], "event")
}

// eventRepeat: a repeated CreateMessage (same clientMsgId, or same id) returns the stored
// message with its stored event, whatever event (or none) the repeat carries.
func eventRepeat(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	first := send(t, s, "r1", "a", "first", withEvent(newEvent("first")), clientMsgID("c-1"))
	plain := send(t, s, "r1", "a", "plain", clientMsgID("c-2"))
	other := newEvent("other")
	other.Data = json.RawMessage(`{"other": true}`)

	sameID := func(m mesh.Message, opts ...func(*mesh.Message)) mesh.Message {
		again := newMessage("r1", "a", "again", opts...)
		again.ID = m.ID
		return again
	}
	for _, c := range []struct {
		name  string
		again mesh.Message
		want  mesh.Message
	}{
		{"same clientMsgId, another event", newMessage("r1", "a", "again", withEvent(other), clientMsgID("c-1")), first},
		{"same clientMsgId, no event", newMessage("r1", "a", "again", clientMsgID("c-1")), first},
		{"same id, another event", sameID(first, withEvent(other)), first},
		{"same id, no event", sameID(first), first},
		{"no event stored, same clientMsgId", newMessage("r1", "a", "again", withEvent(other), clientMsgID("c-2")), plain},
		{"no event stored, same id", sameID(plain, withEvent(other)), plain},
	} {
		got, created, err := s.CreateMessage(ctx, c.again)
		if err != nil || created {
			t.Fatalf("CreateMessage(%s) = created %v, %v; want not created", c.name, created, err)
		}
		checkMessage(t, "CreateMessage("+c.name+")", got, c.want)
	}
	for _, m := range []mesh.Message{first, plain} {
		stored, err := s.Message(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, "Message after the repeats", stored, m)
	}
}

// eventWrites: the writes that return the message (EditMessage, AddReaction, RemoveReaction,
// SetPinned, SetLocked) and ListPinned return it with its event, unchanged.
func eventWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	e := newEvent("ci.deploy")
	m := send(t, s, "r1", "a", eventContent(e), withEvent(e))
	want := m
	at := time.Now()
	got, err := s.EditMessage(ctx, m.ID, "edited", at)
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
	stored, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "Message after the writes", stored, want)
}

// eventDelete: DeleteMessage empties the event (nil, no event field in the JSON) for good;
// other messages keep theirs.
func eventDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	m := send(t, s, "r1", "a", "soon deleted", withEvent(newEvent("gone")), clientMsgID("c-1"))
	kept := send(t, s, "r1", "a", "stays", withEvent(newEvent("kept")))

	got, err := s.DeleteMessage(ctx, m.ID)
	if err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	want := m
	want.Content, want.Deleted, want.Event = "", true, nil
	checkMessage(t, "DeleteMessage", got, want)
	wantNoJSONField(t, "DeleteMessage", got, "event")
	stored, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "Message after DeleteMessage", stored, want)
	wantNoJSONField(t, "Message after DeleteMessage", stored, "event")
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

	// Nothing brings it back: a retry of the message, a lock of the deleted root.
	got, created, err := s.CreateMessage(ctx, newMessage("r1", "a", "soon deleted",
		withEvent(newEvent("gone")), clientMsgID("c-1")))
	if err != nil || created {
		t.Fatalf("CreateMessage(retry of the deleted message) = created %v, %v; want not created", created, err)
	}
	checkMessage(t, "CreateMessage(retry of the deleted message)", got, want)
	if got, err = s.SetLocked(ctx, m.ID, true); err != nil {
		t.Fatal(err)
	}
	want.Locked = true
	checkMessage(t, "SetLocked(deleted root)", got, want)
	if stored, err = s.Message(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "the other message after DeleteMessage", stored, kept)
}

// eventConcurrent: messages sent together (committed in groups) each keep their own event.
func eventConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	var (
		mu   sync.Mutex
		sent = map[string]mesh.Message{}
	)
	concurrently(Workers, func(w int) {
		for i := range PerWorker {
			e := mesh.FeedEvent{Kind: "load", Title: fmt.Sprintf("w%d i%d", w, i),
				Data: json.RawMessage(fmt.Sprintf(`{"w": %d,  "i":%d}`, w, i))}
			m, created, err := s.CreateMessage(ctx, newMessage("r1", fmt.Sprintf("p%d", w), e.Title, withEvent(e)))
			if err != nil || !created {
				t.Errorf("worker %d: CreateMessage = created %v, %v", w, created, err)
				return
			}
			checkEvent(t, "CreateMessage("+e.Title+")", m.Event, &e)
			mu.Lock()
			sent[m.ID] = m
			mu.Unlock()
		}
	})
	var n int
	for before := int64(0); ; {
		page := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a", Before: before, Limit: mesh.MaxListLimit})
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			checkEvent(t, "ListMessages("+m.Content+")", m.Event, sent[m.ID].Event)
		}
		n += len(page)
		if before = page[0].Seq; before == 1 {
			break
		}
	}
	if n != len(sent) {
		t.Errorf("%d messages listed, want %d", n, len(sent))
	}
}
