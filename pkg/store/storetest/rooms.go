package storetest

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var roomTests = []test{
	{name: "CreateAndRead", fn: roomCreateAndRead},
	{name: "NoCreator", fn: roomNoCreator},
	{name: "NotFound", fn: roomNotFound},
	{name: "Update", fn: roomUpdate},
	{name: "ListVisibility", fn: roomListVisibility},
	{name: "ListMemberOnly", fn: roomListMemberOnly},
	{name: "ListCursor", fn: roomListCursor},
	{name: "ListLimit", fn: roomListLimit},
	{name: "ListText", fn: roomListText},
	{name: "ListTextVisibility", fn: roomListTextVisibility},
	{name: "ListTextPages", fn: roomListTextPages},
	{name: "DeleteCascades", fn: roomDeleteCascades},
}

var memberTests = []test{
	{name: "AddRemove", fn: memberAddRemove},
	{name: "JoinOrder", fn: memberJoinOrder},
	{name: "RoomsOf", fn: memberRoomsOf},
	{name: "ConcurrentAdd", fn: memberConcurrentAdd},
	{name: "Mute", fn: memberMute},
	{name: "MuteOutlivesMembership", fn: memberMuteOutlivesMembership},
	{name: "Access", fn: memberAccess},
}

// Access reads the room, the membership and the mute at once, without a member count.
func memberAccess(t *testing.T, s store.Store) {
	ctx := t.Context()
	room := createRoom(t, s, "r1", "a", true)
	if _, err := s.AddMember(ctx, "r1", "b"); err != nil {
		t.Fatalf("AddMember: %v", err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := s.SetMute(ctx, "r1", "b", until); err != nil {
		t.Fatalf("SetMute: %v", err)
	}
	for _, tc := range []struct {
		who    string
		member bool
		muted  bool
	}{{"a", true, false}, {"b", true, true}, {"c", false, false}} {
		a, err := s.Access(ctx, "r1", tc.who)
		if err != nil {
			t.Fatalf("Access(%s): %v", tc.who, err)
		}
		room.MemberCount = 0
		checkRoom(t, "Access", a.Room, room)
		if a.Member != tc.member || a.MutedUntil.IsZero() == tc.muted {
			t.Fatalf("Access(%s) = member %v, muted until %v; want member %v, muted %v", tc.who, a.Member, a.MutedUntil, tc.member, tc.muted)
		}
		if tc.muted && !a.MutedUntil.Equal(until) {
			t.Fatalf("Access(%s).MutedUntil = %v, want %v", tc.who, a.MutedUntil, until)
		}
	}
	_, err := s.Access(ctx, "nope", "a")
	wantCode(t, "Access of an unknown room", err, mesh.CodeNotFound)
}

func roomCreateAndRead(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := mesh.Room{
		ID: "r1", Name: "General", Topic: "Anything goes", Private: true, Archived: false,
		CreatedBy: "p1", CreatedAt: mesh.Now(),
	}
	got, err := s.CreateRoom(ctx, want)
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	want.MemberCount = 1
	checkRoom(t, "CreateRoom", got, want)
	got, err = s.Room(ctx, "r1")
	if err != nil {
		t.Fatalf("Room: %v", err)
	}
	checkRoom(t, "Room", got, want)

	if ok, err := s.IsMember(ctx, "r1", "p1"); err != nil || !ok {
		t.Errorf("IsMember(creator) = %v, %v; want true", ok, err)
	}
	members, err := s.Members(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Members", members, []string{"p1"})
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 0 {
		t.Errorf("LastSeq of a new room = %d, %v; want 0", seq, err)
	}
}

func roomNoCreator(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "System", CreatedAt: mesh.Now()})
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	if got.MemberCount != 0 {
		t.Errorf("CreateRoom without creator: MemberCount = %d, want 0", got.MemberCount)
	}
	members, err := s.Members(ctx, "r1")
	if err != nil || len(members) != 0 {
		t.Errorf("Members = %v, %v; want none", members, err)
	}
}

func roomNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "p1", false)
	const missing = "missing"
	_, err := s.Room(ctx, missing)
	wantCode(t, "Room", err, mesh.CodeNotFound)
	_, err = s.UpdateRoom(ctx, missing, store.RoomUpdate{Name: ptr("x")})
	wantCode(t, "UpdateRoom", err, mesh.CodeNotFound)
	_, err = s.UpdateRoom(ctx, missing, store.RoomUpdate{})
	wantCode(t, "UpdateRoom(nothing)", err, mesh.CodeNotFound)
	wantCode(t, "DeleteRoom", s.DeleteRoom(ctx, missing), mesh.CodeNotFound)
	_, err = s.AddMember(ctx, missing, "p1")
	wantCode(t, "AddMember", err, mesh.CodeNotFound)
	_, err = s.RemoveMember(ctx, missing, "p1")
	wantCode(t, "RemoveMember", err, mesh.CodeNotFound)
	wantCode(t, "SetMute", s.SetMute(ctx, missing, "p1", time.Now().Add(time.Hour)), mesh.CodeNotFound)
	_, _, err = s.CreateMessage(ctx, newMessage(missing, "p1", "hello"))
	wantCode(t, "CreateMessage", err, mesh.CodeNotFound)

	// Reads of what a room holds answer empty.
	if ok, err := s.IsMember(ctx, missing, "p1"); err != nil || ok {
		t.Errorf("IsMember = %v, %v; want false, nil", ok, err)
	}
	if ms, err := s.Members(ctx, missing); err != nil || len(ms) != 0 {
		t.Errorf("Members = %v, %v; want none", ms, err)
	}
	if until, err := s.MutedUntil(ctx, missing, "p1"); err != nil || !until.IsZero() {
		t.Errorf("MutedUntil = %v, %v; want zero", until, err)
	}
	if seq, err := s.LastSeq(ctx, missing); err != nil || seq != 0 {
		t.Errorf("LastSeq = %d, %v; want 0", seq, err)
	}
	if ms, err := s.ListMessages(ctx, store.MessageQuery{RoomID: missing, Viewer: "p1"}); err != nil || len(ms) != 0 {
		t.Errorf("ListMessages = %v, %v; want none", ms, err)
	}
	// The existing room is untouched.
	if ms, err := s.Members(ctx, "r1"); err != nil || !slices.Equal(ms, []string{"p1"}) {
		t.Errorf("Members(r1) = %v, %v; want [p1]", ms, err)
	}
}

func roomUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := createRoom(t, s, "r1", "p1", true)
	other := createRoom(t, s, "r2", "p1", false)
	addMember(t, s, "r1", "p2")
	want.MemberCount = 2

	steps := []struct {
		name   string
		u      store.RoomUpdate
		change func(r *mesh.Room)
	}{
		{"nothing", store.RoomUpdate{}, func(*mesh.Room) {}},
		{"name", store.RoomUpdate{Name: ptr("Renamed")}, func(r *mesh.Room) { r.Name = "Renamed" }},
		{"topic", store.RoomUpdate{Topic: ptr("")}, func(r *mesh.Room) { r.Topic = "" }},
		{"archived", store.RoomUpdate{Archived: ptr(true)}, func(r *mesh.Room) { r.Archived = true }},
		{"all", store.RoomUpdate{Name: ptr("N"), Topic: ptr("T"), Archived: ptr(false)},
			func(r *mesh.Room) { r.Name, r.Topic, r.Archived = "N", "T", false }},
	}
	for _, st := range steps {
		st.change(&want)
		got, err := s.UpdateRoom(ctx, "r1", st.u)
		if err != nil {
			t.Fatalf("UpdateRoom(%s): %v", st.name, err)
		}
		checkRoom(t, "UpdateRoom("+st.name+")", got, want)
		got, err = s.Room(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		checkRoom(t, "Room after "+st.name, got, want)
	}
	got, err := s.Room(ctx, "r2")
	if err != nil {
		t.Fatal(err)
	}
	checkRoom(t, "the other room", got, other)
}

// visibilityFixture: a and b are members of what they created; c of nothing yet.
//
//	r1 public  by a      r2 private by a (+ b)      r3 private by b      r4 public by b (archived)
func visibilityFixture(t *testing.T, s store.Store) {
	t.Helper()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", true)
	addMember(t, s, "r2", "b")
	createRoom(t, s, "r3", "b", true)
	createRoom(t, s, "r4", "b", false)
	if _, err := s.UpdateRoom(t.Context(), "r4", store.RoomUpdate{Archived: ptr(true)}); err != nil {
		t.Fatal(err)
	}
}

func listRooms(t *testing.T, s store.Store, q store.RoomQuery) []mesh.Room {
	t.Helper()
	rs, err := s.ListRooms(t.Context(), q)
	if err != nil {
		t.Fatalf("ListRooms(%+v): %v", q, err)
	}
	return rs
}

func roomListVisibility(t *testing.T, s store.Store) {
	visibilityFixture(t, s)
	for _, tc := range []struct {
		viewer string
		want   []string
	}{
		{"a", []string{"r1", "r2", "r4"}},
		{"b", []string{"r1", "r2", "r3", "r4"}},
		{"c", []string{"r1", "r4"}},
		{"", []string{"r1", "r4"}},
	} {
		got := listRooms(t, s, store.RoomQuery{Viewer: tc.viewer})
		wantEqual(t, "ListRooms(viewer "+tc.viewer+")", roomIDs(got), tc.want)
	}
	// MemberCount is filled on every room listed.
	counts := map[string]int{}
	for _, r := range listRooms(t, s, store.RoomQuery{Viewer: "b"}) {
		counts[r.ID] = r.MemberCount
		if r.Name != "Room "+r.ID || r.CreatedAt.IsZero() {
			t.Errorf("ListRooms: room %s came back as %+v", r.ID, r)
		}
	}
	wantEqual(t, "member counts", counts, map[string]int{"r1": 1, "r2": 2, "r3": 1, "r4": 1})

	// Joining a private room makes it visible; leaving hides it again.
	addMember(t, s, "r3", "c")
	wantEqual(t, "ListRooms(c) after joining r3", roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "c"})),
		[]string{"r1", "r3", "r4"})
	if _, err := s.RemoveMember(t.Context(), "r3", "c"); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "ListRooms(c) after leaving r3", roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "c"})),
		[]string{"r1", "r4"})
}

func roomListMemberOnly(t *testing.T, s store.Store) {
	visibilityFixture(t, s)
	for _, tc := range []struct {
		viewer string
		want   []string
	}{
		{"a", []string{"r1", "r2"}},
		{"b", []string{"r2", "r3", "r4"}},
		{"c", []string{}},
		{"", []string{}},
	} {
		got := listRooms(t, s, store.RoomQuery{Viewer: tc.viewer, MemberOnly: true})
		wantEqual(t, "ListRooms(viewer "+tc.viewer+", member only)", roomIDs(got), tc.want)
	}
	got := listRooms(t, s, store.RoomQuery{Viewer: "b", MemberOnly: true, After: "r2", Limit: 1})
	wantEqual(t, "ListRooms(b, member only, after r2, limit 1)", roomIDs(got), []string{"r3"})
}

func roomListCursor(t *testing.T, s store.Store) {
	// Created out of order: the list is ordered by id, not by creation.
	for _, id := range []string{"r3", "r1", "r5", "r2", "r4"} {
		createRoom(t, s, id, "a", false)
	}
	createRoom(t, s, "r6", "b", true) // hidden from a: never counted in a's pages
	var pages [][]string
	after := ""
	for range 10 {
		page := roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "a", After: after, Limit: 2}))
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		after = page[len(page)-1]
	}
	wantEqual(t, "pages of 2", pages, [][]string{{"r1", "r2"}, {"r3", "r4"}, {"r5"}})
	wantEqual(t, "after r2", roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "a", After: "r2"})),
		[]string{"r3", "r4", "r5"})
	wantEqual(t, "after a non-existent id", roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "a", After: "r25"})),
		[]string{"r3", "r4", "r5"})
}

func roomListLimit(t *testing.T, s store.Store) {
	n := mesh.MaxListLimit + 10
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("r%04d", i)
		createRoom(t, s, want[i], "a", false)
	}
	// No maximum: a caller may ask for a page and one more, to learn whether more follow.
	for _, tc := range []struct {
		limit, want int
	}{
		{0, mesh.DefaultListLimit},
		{-1, mesh.DefaultListLimit},
		{7, 7},
		{mesh.MaxListLimit, mesh.MaxListLimit},
		{mesh.MaxListLimit + 1, mesh.MaxListLimit + 1},
		{10 * mesh.MaxListLimit, n},
	} {
		got := roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "b", Limit: tc.limit}))
		wantEqual(t, fmt.Sprintf("ListRooms(limit %d)", tc.limit), got, want[:tc.want])
	}
}

// Text matches room names and topics as FindParticipants matches display names: literally,
// and case-insensitively beyond ASCII (searchTextCases). Each text of searchTexts is the name
// of one room (n..) and the topic of another (t..); the other field matches no case.
func roomListText(t *testing.T, s store.Store) {
	for i, text := range searchTexts {
		for _, r := range []mesh.Room{
			{ID: fmt.Sprintf("n%02d", i), Name: text, Topic: "-"},
			{ID: fmt.Sprintf("t%02d", i), Name: "-", Topic: text},
		} {
			r.CreatedBy, r.CreatedAt = "a", mesh.Now()
			if _, err := s.CreateRoom(t.Context(), r); err != nil {
				t.Fatalf("CreateRoom(%s): %v", r.ID, err)
			}
		}
	}
	all := roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "a", Limit: 100}))
	if len(all) != 2*len(searchTexts) {
		t.Fatalf("ListRooms(no text) = %v, want all %d rooms", all, 2*len(searchTexts))
	}
	for _, tc := range searchTextCases {
		want := []string{}
		for _, prefix := range []string{"n", "t"} {
			for i, text := range searchTexts {
				if slices.Contains(tc.want, text) {
					want = append(want, fmt.Sprintf("%s%02d", prefix, i))
				}
			}
		}
		got := listRooms(t, s, store.RoomQuery{Viewer: "a", Text: tc.text, Limit: 100})
		wantEqual(t, fmt.Sprintf("ListRooms(text %q)", tc.text), roomIDs(got), want)
	}
	// A room is listed once when both its name and its topic match.
	r, err := s.UpdateRoom(t.Context(), "n05", store.RoomUpdate{Topic: ptr("x")})
	if err != nil {
		t.Fatal(err)
	}
	got := listRooms(t, s, store.RoomQuery{Viewer: "a", Text: "X", Limit: 100})
	wantEqual(t, `ListRooms(text "X")`, roomIDs(got),
		[]string{"n03", "n04", "n05", "n09", "n10", "t03", "t04", "t05", "t09", "t10"})
	if i := slices.Index(roomIDs(got), "n05"); i >= 0 {
		checkRoom(t, `ListRooms(text "X")`, got[i], r)
	}
}

// Text narrows what the viewer may see, never widens it: a private room that matches is
// found only by its members; MemberOnly still keeps only the viewer's rooms.
func roomListTextVisibility(t *testing.T, s store.Store) {
	visibilityFixture(t, s) // names "Room r1".., topics "topic of r1"..
	for _, tc := range []struct {
		viewer, text string
		memberOnly   bool
		want         []string
	}{
		{"a", "", false, []string{"r1", "r2", "r4"}},
		{"b", "ROOM", false, []string{"r1", "r2", "r3", "r4"}},
		{"c", "room", false, []string{"r1", "r4"}},
		{"a", "OF R3", false, []string{}},
		{"b", "OF R3", false, []string{"r3"}},
		{"c", "r2", false, []string{}},
		{"b", "r2", false, []string{"r2"}},
		{"", "R4", false, []string{"r4"}},
		{"a", "nothing", false, []string{}},
		{"b", "room", true, []string{"r2", "r3", "r4"}},
		{"a", "r4", true, []string{}},
		{"a", "r2", true, []string{"r2"}},
		{"c", "room", true, []string{}},
	} {
		got := listRooms(t, s, store.RoomQuery{Viewer: tc.viewer, Text: tc.text, MemberOnly: tc.memberOnly})
		wantEqual(t, fmt.Sprintf("ListRooms(viewer %q, text %q, member only %v)", tc.viewer, tc.text, tc.memberOnly),
			roomIDs(got), tc.want)
		for _, r := range got {
			if r.MemberCount == 0 {
				t.Errorf("ListRooms(viewer %q, text %q): room %s without its member count", tc.viewer, tc.text, r.ID)
			}
		}
	}
}

// Pages of a Text search count only the rooms that match and that the viewer may see.
func roomListTextPages(t *testing.T, s store.Store) {
	for i, name := range []string{"Go", "Rust", "go fast", "Zig", "GOPHERS", "ergo", "C"} {
		id := fmt.Sprintf("r%d", i+1)
		createRoom(t, s, id, "a", false)
		if _, err := s.UpdateRoom(t.Context(), id, store.RoomUpdate{Name: &name}); err != nil {
			t.Fatal(err)
		}
	}
	createRoom(t, s, "r35", "b", true) // matches, but a may not see it
	if _, err := s.UpdateRoom(t.Context(), "r35", store.RoomUpdate{Name: ptr("go private")}); err != nil {
		t.Fatal(err)
	}
	var pages [][]string
	after := ""
	for range 10 {
		page := roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "a", Text: "gO", After: after, Limit: 2}))
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		after = page[len(page)-1]
	}
	wantEqual(t, `pages of 2 (text "gO")`, pages, [][]string{{"r1", "r3"}, {"r5", "r6"}})
	wantEqual(t, `ListRooms(b, text "go", after r3)`,
		roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "b", Text: "go", After: "r3"})), []string{"r35", "r5", "r6"})
	wantEqual(t, `ListRooms(b, text "go", member only, after r1, limit 1)`,
		roomIDs(listRooms(t, s, store.RoomQuery{Viewer: "b", Text: "go", MemberOnly: true, After: "r1", Limit: 1})),
		[]string{"r35"})
}

func roomDeleteCascades(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	addMember(t, s, "r1", "b")
	addMember(t, s, "r2", "b")
	if err := s.SetMute(ctx, "r1", "b", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	gone := send(t, s, "r1", "a", "gone")
	if _, _, err := s.AddReaction(ctx, gone.ID, "👍", "b"); err != nil {
		t.Fatal(err)
	}
	kept := send(t, s, "r2", "a", "kept")
	if _, _, err := s.AddReaction(ctx, kept.ID, "👍", "b"); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	_, err := s.Room(ctx, "r1")
	wantCode(t, "Room after DeleteRoom", err, mesh.CodeNotFound)
	_, err = s.Message(ctx, gone.ID)
	wantCode(t, "Message of the deleted room", err, mesh.CodeNotFound)
	wantCode(t, "DeleteRoom again", s.DeleteRoom(ctx, "r1"), mesh.CodeNotFound)
	for _, p := range []string{"a", "b"} {
		rooms, err := s.RoomsOf(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "RoomsOf("+p+")", rooms, []string{"r2"})
	}

	// A new room under the same id starts empty: no members, mutes, messages or seqs left over.
	createRoom(t, s, "r1", "c", false)
	members, err := s.Members(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Members of the recreated room", members, []string{"c"})
	if until, err := s.MutedUntil(ctx, "r1", "b"); err != nil || !until.IsZero() {
		t.Errorf("MutedUntil in the recreated room = %v, %v; want zero", until, err)
	}
	if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != 0 {
		t.Errorf("LastSeq of the recreated room = %d, %v; want 0", seq, err)
	}
	if ms := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"}); len(ms) != 0 {
		t.Errorf("messages of the recreated room: %d, want none", len(ms))
	}
	if m := send(t, s, "r1", "c", "first"); m.Seq != 1 {
		t.Errorf("first message of the recreated room: seq %d, want 1", m.Seq)
	}

	// The other room kept everything.
	m, err := s.Message(ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "reactions in the other room", m.Reactions, map[string][]string{"👍": {"b"}})
	members, err = s.Members(ctx, "r2")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Members of the other room", members, []string{"a", "b"})
}

func memberAddRemove(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	isMember := func(p string, want bool) {
		t.Helper()
		if ok, err := s.IsMember(ctx, "r1", p); err != nil || ok != want {
			t.Errorf("IsMember(%s) = %v, %v; want %v", p, ok, err, want)
		}
	}
	isMember("b", false)
	if added, err := s.AddMember(ctx, "r1", "b"); err != nil || !added {
		t.Errorf("AddMember(b) = %v, %v; want true", added, err)
	}
	isMember("b", true)
	if added, err := s.AddMember(ctx, "r1", "b"); err != nil || added {
		t.Errorf("AddMember(b) again = %v, %v; want false", added, err)
	}
	if added, err := s.AddMember(ctx, "r1", "a"); err != nil || added {
		t.Errorf("AddMember(creator) = %v, %v; want false", added, err)
	}
	if r, err := s.Room(ctx, "r1"); err != nil || r.MemberCount != 2 {
		t.Errorf("MemberCount = %d, %v; want 2", r.MemberCount, err)
	}
	if removed, err := s.RemoveMember(ctx, "r1", "b"); err != nil || !removed {
		t.Errorf("RemoveMember(b) = %v, %v; want true", removed, err)
	}
	isMember("b", false)
	if removed, err := s.RemoveMember(ctx, "r1", "b"); err != nil || removed {
		t.Errorf("RemoveMember(b) again = %v, %v; want false", removed, err)
	}
	if removed, err := s.RemoveMember(ctx, "r1", "never"); err != nil || removed {
		t.Errorf("RemoveMember(never a member) = %v, %v; want false", removed, err)
	}
	if r, err := s.Room(ctx, "r1"); err != nil || r.MemberCount != 1 {
		t.Errorf("MemberCount = %d, %v; want 1", r.MemberCount, err)
	}
	// The creator may leave too; the room stays.
	if removed, err := s.RemoveMember(ctx, "r1", "a"); err != nil || !removed {
		t.Errorf("RemoveMember(creator) = %v, %v; want true", removed, err)
	}
	if r, err := s.Room(ctx, "r1"); err != nil || r.MemberCount != 0 {
		t.Errorf("MemberCount = %d, %v; want 0", r.MemberCount, err)
	}
}

func memberJoinOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "m", false)
	// Ids deliberately out of lexical order.
	for _, p := range []string{"z", "b", "y", "c"} {
		addMember(t, s, "r1", p)
	}
	members := func(want ...string) {
		t.Helper()
		got, err := s.Members(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "Members", got, want)
	}
	members("m", "z", "b", "y", "c")
	if _, err := s.RemoveMember(ctx, "r1", "b"); err != nil {
		t.Fatal(err)
	}
	members("m", "z", "y", "c")
	addMember(t, s, "r1", "b") // rejoining puts b last
	members("m", "z", "y", "c", "b")
	addMember(t, s, "r1", "z") // already a member: no move
	members("m", "z", "y", "c", "b")
}

func memberRoomsOf(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"r3", "r1", "r2", "r4"} {
		createRoom(t, s, id, "a", id == "r2")
	}
	for _, id := range []string{"r4", "r2", "r1"} {
		addMember(t, s, id, "b")
	}
	for _, tc := range []struct {
		p    string
		want []string
	}{
		{"a", []string{"r1", "r2", "r3", "r4"}},
		{"b", []string{"r1", "r2", "r4"}},
		{"c", []string{}},
	} {
		got, err := s.RoomsOf(ctx, tc.p)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "RoomsOf("+tc.p+")", got, tc.want)
	}
}

func memberConcurrentAdd(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	warmUp(t, s)
	want := []string{"a"}
	for round := range Rounds {
		p := fmt.Sprint("p", round)
		var added atomic.Int32
		concurrently(Workers, func(int) {
			ok, err := s.AddMember(ctx, "r1", p)
			if err != nil {
				t.Errorf("AddMember: %v", err)
			}
			if ok {
				added.Add(1)
			}
		})
		if added.Load() != 1 {
			t.Errorf("%d concurrent AddMember(%s) calls reported added, want exactly 1", added.Load(), p)
		}
		want = append(want, p)
	}
	members, err := s.Members(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Members", members, want)
}

func memberMute(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	addMember(t, s, "r1", "b")
	mutedUntil := func(room, p string, want time.Time) {
		t.Helper()
		got, err := s.MutedUntil(ctx, room, p)
		if err != nil {
			t.Fatalf("MutedUntil(%s, %s): %v", room, p, err)
		}
		if !got.Equal(want) {
			t.Errorf("MutedUntil(%s, %s) = %v, want %v", room, p, got, want)
		}
	}
	mutedUntil("r1", "b", time.Time{})

	until := time.Now().Add(time.Hour)
	if err := s.SetMute(ctx, "r1", "b", until); err != nil {
		t.Fatalf("SetMute: %v", err)
	}
	mutedUntil("r1", "b", until.Truncate(time.Millisecond))
	mutedUntil("r2", "b", time.Time{}) // per room
	mutedUntil("r1", "a", time.Time{}) // per participant

	longer := time.Now().Add(24 * time.Hour)
	if err := s.SetMute(ctx, "r1", "b", longer); err != nil {
		t.Fatal(err)
	}
	mutedUntil("r1", "b", longer.Truncate(time.Millisecond))
	shorter := time.Now().Add(time.Minute)
	if err := s.SetMute(ctx, "r1", "b", shorter); err != nil {
		t.Fatal(err)
	}
	mutedUntil("r1", "b", shorter.Truncate(time.Millisecond)) // the last SetMute wins

	if err := s.SetMute(ctx, "r1", "b", time.Now().Add(-time.Minute)); err != nil {
		t.Fatalf("SetMute(past): %v", err)
	}
	mutedUntil("r1", "b", time.Time{})

	if err := s.SetMute(ctx, "r1", "b", until); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMute(ctx, "r1", "b", time.Time{}); err != nil {
		t.Fatalf("SetMute(zero): %v", err)
	}
	mutedUntil("r1", "b", time.Time{})

	// Unmuting someone who is not muted is fine.
	if err := s.SetMute(ctx, "r2", "c", time.Time{}); err != nil {
		t.Errorf("SetMute(zero) of someone not muted: %v", err)
	}
}

func memberMuteOutlivesMembership(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	addMember(t, s, "r1", "b")
	until := time.Now().Add(time.Hour)
	if err := s.SetMute(ctx, "r1", "b", until); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveMember(ctx, "r1", "b"); err != nil {
		t.Fatal(err)
	}
	addMember(t, s, "r1", "b")
	got, err := s.MutedUntil(ctx, "r1", "b")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(until.Truncate(time.Millisecond)) {
		t.Errorf("MutedUntil after leaving and rejoining = %v, want %v", got, until.Truncate(time.Millisecond))
	}
}
