package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var readMarkTests = []test{
	{name: "SetAndRead", fn: readMarkSetAndRead},
	{name: "OnlyForward", fn: readMarkOnlyForward},
	{name: "Apart", fn: readMarkApart},
	{name: "Absent", fn: readMarkAbsent},
	{name: "ManyRooms", fn: readMarkManyRooms},
	{name: "Concurrent", fn: readMarkConcurrent},
	{name: "DeleteRoom", fn: readMarkDeleteRoom},
	{name: "UnknownRoom", fn: readMarkUnknownRoom},
}

// setReadMark sets a mark and checks that the store answers want.
func setReadMark(t *testing.T, s store.Store, roomID, participantID string, seq, want int64) {
	t.Helper()
	got, err := s.SetReadMark(t.Context(), roomID, participantID, seq)
	if err != nil {
		t.Fatalf("SetReadMark(%s, %s, %d): %v", roomID, participantID, seq, err)
	}
	if got != want {
		t.Errorf("SetReadMark(%s, %s, %d) = %d, want %d", roomID, participantID, seq, got, want)
	}
}

// wantReadMarks reads the participant's marks in rooms and compares them with want; the map
// must never be nil.
func wantReadMarks(t *testing.T, s store.Store, participantID string, rooms []string, want map[string]int64) {
	t.Helper()
	got, err := s.ReadMarks(t.Context(), participantID, rooms)
	if err != nil {
		t.Fatalf("ReadMarks(%s, %v): %v", participantID, rooms, err)
	}
	what := fmt.Sprintf("ReadMarks(%s, %d rooms)", participantID, len(rooms))
	if got == nil {
		t.Errorf("%s = nil, want a map", what)
	}
	if len(want) <= 10 {
		wantEqual(t, what, got, want)
		return
	}
	// Many rooms: name only the differences.
	var diff []string
	for room, seq := range want {
		if g, ok := got[room]; !ok || g != seq {
			diff = append(diff, fmt.Sprintf("%s: %d (found %v), want %d", room, g, ok, seq))
		}
	}
	for room, seq := range got {
		if _, ok := want[room]; !ok {
			diff = append(diff, fmt.Sprintf("%s: %d, want none", room, seq))
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		t.Errorf("%s: %d of %d marks differ: %s", what, len(diff), len(want), strings.Join(diff, "; "))
	}
}

// readMarkSetAndRead: a mark reads back as set, and a higher one replaces it.
func readMarkSetAndRead(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	setReadMark(t, s, "r1", "a", 5, 5)
	wantReadMarks(t, s, "a", []string{"r1"}, map[string]int64{"r1": 5})
	setReadMark(t, s, "r1", "a", 9, 9)
	wantReadMarks(t, s, "a", []string{"r1"}, map[string]int64{"r1": 9})
}

// readMarkOnlyForward: a lower or equal seq leaves the mark as it is, without error, and the
// call answers the stored mark; a higher one moves it.
func readMarkOnlyForward(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	setReadMark(t, s, "r1", "a", 10, 10)
	setReadMark(t, s, "r1", "a", 3, 10)
	setReadMark(t, s, "r1", "a", 1, 10)
	setReadMark(t, s, "r1", "a", 10, 10)
	wantReadMarks(t, s, "a", []string{"r1"}, map[string]int64{"r1": 10})
	setReadMark(t, s, "r1", "a", 11, 11)
	setReadMark(t, s, "r1", "a", 7, 11)
	wantReadMarks(t, s, "a", []string{"r1"}, map[string]int64{"r1": 11})
}

// readMarkApart: marks are per room and per participant; moving one moves no other.
func readMarkApart(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	setReadMark(t, s, "r1", "a", 5, 5)
	setReadMark(t, s, "r1", "b", 7, 7)
	setReadMark(t, s, "r2", "a", 3, 3)
	// b's mark is above a's: a's still starts from its own.
	setReadMark(t, s, "r1", "a", 6, 6)
	setReadMark(t, s, "r2", "b", 2, 2)
	setReadMark(t, s, "r2", "a", 1, 3)
	rooms := []string{"r1", "r2"}
	wantReadMarks(t, s, "a", rooms, map[string]int64{"r1": 6, "r2": 3})
	wantReadMarks(t, s, "b", rooms, map[string]int64{"r1": 7, "r2": 2})
	wantReadMarks(t, s, "a", []string{"r2"}, map[string]int64{"r2": 3})
	wantReadMarks(t, s, "c", rooms, map[string]int64{})
}

// readMarkAbsent: rooms without a mark of the participant (none at all, only others' marks,
// or no such room) are absent from the answer, which is an empty map (not nil) when there are
// none, and for no rooms.
func readMarkAbsent(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	createRoom(t, s, "r3", "a", false)
	wantReadMarks(t, s, "a", []string{"r1", "r2"}, map[string]int64{})
	wantReadMarks(t, s, "a", nil, map[string]int64{})
	wantReadMarks(t, s, "a", []string{}, map[string]int64{})
	setReadMark(t, s, "r2", "b", 4, 4)
	setReadMark(t, s, "r3", "a", 8, 8)
	wantReadMarks(t, s, "a", []string{"no-such-room"}, map[string]int64{})
	wantReadMarks(t, s, "a", []string{"r1", "r2", "no-such-room"}, map[string]int64{})
	wantReadMarks(t, s, "a", []string{"r1", "r2", "r3", "no-such-room"}, map[string]int64{"r3": 8})
	wantReadMarks(t, s, "b", []string{"r1", "r3"}, map[string]int64{})
}

// manyRooms is how many rooms ReadMarks is asked about at once: past the 999 bound variables
// older SQLite builds allow a statement. One in everyRoom of them exists (so that the test is
// quick on servers that scan a collection for each query), spread over the whole list.
const (
	manyRooms = 1100
	everyRoom = 8
)

// readMarkManyRooms: one call reads the marks of many rooms (most of which do not exist), the
// participant's only, wherever the rooms are in the list.
func readMarkManyRooms(t *testing.T, s store.Store) {
	rooms := make([]string, manyRooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("r%05d", i)
	}
	want := map[string]int64{}
	var mu sync.Mutex
	concurrently(Workers, func(w int) {
		for i := w * everyRoom; i < len(rooms); i += Workers * everyRoom {
			id := rooms[i]
			if _, err := s.CreateRoom(t.Context(), mesh.Room{ID: id, Name: "Room " + id, CreatedBy: "a",
				CreatedAt: mesh.Now()}); err != nil {
				t.Errorf("CreateRoom(%s): %v", id, err)
				return
			}
			if i%3 == 0 { // no mark
				continue
			}
			seq := int64(i + 1)
			if got, err := s.SetReadMark(t.Context(), id, "a", seq); err != nil || got != seq {
				t.Errorf("SetReadMark(%s, a, %d) = %d, %v", id, seq, got, err)
				return
			}
			if i%3 == 1 { // another participant's mark, which is not a's
				if _, err := s.SetReadMark(t.Context(), id, "b", seq+1000); err != nil {
					t.Errorf("SetReadMark(%s, b): %v", id, err)
					return
				}
			}
			mu.Lock()
			want[id] = seq
			mu.Unlock()
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	if len(want) < manyRooms/everyRoom/2 {
		t.Fatalf("only %d rooms with a mark", len(want))
	}
	wantReadMarks(t, s, "a", rooms, want)
}

// readMarkConcurrent: Workers goroutines set one participant's mark in one room to the seqs
// 1..n, in a random order: the mark ends at n, each call answers at least its own seq, and no
// goroutine sees the mark go back from one call to its next. Several rounds, a room each.
func readMarkConcurrent(t *testing.T, s store.Store) {
	const (
		n      = Workers * PerWorker
		rounds = 3
	)
	warmUp(t, s)
	for r := range rounds {
		room := fmt.Sprint("race", r)
		createRoom(t, s, room, "a", false)
		order := rand.Perm(n)
		concurrently(Workers, func(w int) {
			var last int64
			for _, i := range order[w*PerWorker : (w+1)*PerWorker] {
				seq := int64(i + 1)
				got, err := s.SetReadMark(t.Context(), room, "a", seq)
				if err != nil {
					t.Errorf("SetReadMark(%s, a, %d): %v", room, seq, err)
					return
				}
				if got < seq || got < last {
					t.Errorf("SetReadMark(%s, a, %d) = %d; want at least its seq, and at least %d (this goroutine's previous answer)",
						room, seq, got, last)
				}
				last = got
			}
		})
		wantReadMarks(t, s, "a", []string{room}, map[string]int64{room: n})
		setReadMark(t, s, room, "a", 1, n)
	}
}

// readMarkDeleteRoom: deleting a room deletes its marks (and only its own); a room created
// again under the same id starts without marks, and a first mark there, lower than the old
// one, is stored as given.
func readMarkDeleteRoom(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	createRoom(t, s, "r2", "a", false)
	setReadMark(t, s, "r1", "a", 50, 50)
	setReadMark(t, s, "r1", "b", 40, 40)
	setReadMark(t, s, "r2", "a", 7, 7)
	if err := s.DeleteRoom(ctx, "r1"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	rooms := []string{"r1", "r2"}
	wantReadMarks(t, s, "a", rooms, map[string]int64{"r2": 7})
	wantReadMarks(t, s, "b", rooms, map[string]int64{})

	createRoom(t, s, "r1", "a", false)
	wantReadMarks(t, s, "a", rooms, map[string]int64{"r2": 7})
	wantReadMarks(t, s, "b", rooms, map[string]int64{})
	setReadMark(t, s, "r1", "a", 2, 2)
	setReadMark(t, s, "r1", "b", 1, 1)
	wantReadMarks(t, s, "a", rooms, map[string]int64{"r1": 2, "r2": 7})
	wantReadMarks(t, s, "b", rooms, map[string]int64{"r1": 1})
}

// readMarkUnknownRoom: setting a mark in a room that does not exist is not an error (the room
// is not checked), and a room created later under that id starts without marks.
func readMarkUnknownRoom(t *testing.T, s store.Store) {
	if _, err := s.SetReadMark(t.Context(), "r1", "a", 30); err != nil {
		t.Fatalf("SetReadMark(unknown room): %v", err)
	}
	createRoom(t, s, "r1", "a", false)
	wantReadMarks(t, s, "a", []string{"r1"}, map[string]int64{})
	setReadMark(t, s, "r1", "a", 3, 3)
}
