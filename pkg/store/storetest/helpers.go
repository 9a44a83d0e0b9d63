package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

// ids makes ids unique within the test process, sortable in creation order.
var ids atomic.Int64

func newID(prefix string) string { return fmt.Sprintf("%s%08d", prefix, ids.Add(1)) }

func ptr[T any](v T) *T { return &v }

// account is a complete account, every field set, so that round trips check them all.
func account(id, email string) store.Account {
	return store.Account{
		Participant: mesh.Participant{
			ID:          id,
			DisplayName: "Name of " + id,
			Role:        mesh.RoleMember,
			Status:      mesh.StatusOffline,
			CreatedAt:   mesh.Now(),
			Email:       email,
		},
		PasswordHash: []byte("hash-of-" + id),
	}
}

func createParticipant(t *testing.T, s store.Store, a store.Account, mode store.FirstMode) store.Account {
	t.Helper()
	got, err := s.CreateParticipant(t.Context(), a, mode)
	if err != nil {
		t.Fatalf("CreateParticipant(%s, %s): %v", a.ID, a.Email, err)
	}
	return got
}

func createRoom(t *testing.T, s store.Store, id, creator string, private bool) mesh.Room {
	t.Helper()
	r, err := s.CreateRoom(t.Context(), mesh.Room{
		ID: id, Name: "Room " + id, Topic: "topic of " + id, Private: private,
		CreatedBy: creator, CreatedAt: mesh.Now(),
	})
	if err != nil {
		t.Fatalf("CreateRoom(%s): %v", id, err)
	}
	return r
}

func addMember(t *testing.T, s store.Store, roomID, participantID string) {
	t.Helper()
	if _, err := s.AddMember(t.Context(), roomID, participantID); err != nil {
		t.Fatalf("AddMember(%s, %s): %v", roomID, participantID, err)
	}
}

// newMessage is a message ready for CreateMessage; options set the optional fields.
func newMessage(roomID, author, content string, opts ...func(*mesh.Message)) mesh.Message {
	m := mesh.Message{
		ID: newID("m"), RoomID: roomID, AuthorID: author, Content: content, CreatedAt: mesh.Now(),
	}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func to(id string) func(*mesh.Message)          { return func(m *mesh.Message) { m.To = &id } }
func inThread(id string) func(*mesh.Message)    { return func(m *mesh.Message) { m.ThreadID = &id } }
func clientMsgID(id string) func(*mesh.Message) { return func(m *mesh.Message) { m.ClientMsgID = &id } }

// send stores a new message and checks that it was created.
func send(t *testing.T, s store.Store, roomID, author, content string, opts ...func(*mesh.Message)) mesh.Message {
	t.Helper()
	m, created, err := s.CreateMessage(t.Context(), newMessage(roomID, author, content, opts...))
	if err != nil {
		t.Fatalf("CreateMessage(%s, %q): %v", roomID, content, err)
	}
	if !created {
		t.Fatalf("CreateMessage(%s, %q): created = false for a new message", roomID, content)
	}
	return m
}

// sendN stores n messages from author, contents "1" to "n".
func sendN(t *testing.T, s store.Store, roomID, author string, n int) []mesh.Message {
	t.Helper()
	out := make([]mesh.Message, n)
	for i := range n {
		out[i] = send(t, s, roomID, author, fmt.Sprint(i+1))
	}
	return out
}

func list(t *testing.T, s store.Store, q store.MessageQuery) []mesh.Message {
	t.Helper()
	ms, err := s.ListMessages(t.Context(), q)
	if err != nil {
		t.Fatalf("ListMessages(%+v): %v", q, err)
	}
	return ms
}

func seqs(ms []mesh.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// seqRange is from, from+1, ..., to (empty if to < from).
func seqRange(from, to int64) []int64 {
	out := []int64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func roomIDs(rs []mesh.Room) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, what string, err error, code mesh.Code) {
	t.Helper()
	if !mesh.IsCode(err, code) {
		t.Errorf("%s: err = %v, want code %s", what, err, code)
	}
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// wantSet compares string lists as sets (order ignored, duplicates counted).
func wantSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s = %v, want (in any order) %v", what, got, want)
	}
}

func sameTime(a, b time.Time) bool { return a.Equal(b) }

func strPtr(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

// checkAccount compares every field; a nil and an empty PasswordHash are the same.
func checkAccount(t *testing.T, what string, got, want store.Account) {
	t.Helper()
	g, w := got, want
	if !sameTime(g.CreatedAt.Time, w.CreatedAt.Time) {
		t.Errorf("%s: CreatedAt = %v, want %v", what, g.CreatedAt, w.CreatedAt)
	}
	if strPtr(g.OwnerID) != strPtr(w.OwnerID) || strPtr(g.DID) != strPtr(w.DID) {
		t.Errorf("%s: OwnerID, DID = %s, %s, want %s, %s", what,
			strPtr(g.OwnerID), strPtr(g.DID), strPtr(w.OwnerID), strPtr(w.DID))
	}
	if string(g.PasswordHash) != string(w.PasswordHash) {
		t.Errorf("%s: PasswordHash = %q, want %q", what, g.PasswordHash, w.PasswordHash)
	}
	if g.TokenGen != w.TokenGen {
		t.Errorf("%s: TokenGen = %d, want %d", what, g.TokenGen, w.TokenGen)
	}
	g.CreatedAt, w.CreatedAt = mesh.Time{}, mesh.Time{}
	g.OwnerID, w.OwnerID, g.DID, w.DID = nil, nil, nil, nil
	g.PasswordHash, w.PasswordHash = nil, nil
	g.TokenGen, w.TokenGen = 0, 0
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func checkRoom(t *testing.T, what string, got, want mesh.Room) {
	t.Helper()
	if !sameTime(got.CreatedAt.Time, want.CreatedAt.Time) {
		t.Errorf("%s: CreatedAt = %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
	got.CreatedAt, want.CreatedAt = mesh.Time{}, mesh.Time{}
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// checkMessage compares every field; Reactions must be non-nil. No attachments may be nil or
// empty (JSON omits both). The event must be nil when want's is, and its Data the same bytes
// (nil and empty are the same: JSON omits both).
func checkMessage(t *testing.T, what string, got, want mesh.Message) {
	t.Helper()
	if got.ID != want.ID || got.RoomID != want.RoomID || got.Seq != want.Seq ||
		got.AuthorID != want.AuthorID || got.Content != want.Content || got.Deleted != want.Deleted {
		t.Errorf("%s: id, room, seq, author, content, deleted = %s, %s, %d, %s, %q, %v; want %s, %s, %d, %s, %q, %v",
			what, got.ID, got.RoomID, got.Seq, got.AuthorID, got.Content, got.Deleted,
			want.ID, want.RoomID, want.Seq, want.AuthorID, want.Content, want.Deleted)
	}
	if strPtr(got.ThreadID) != strPtr(want.ThreadID) || strPtr(got.To) != strPtr(want.To) ||
		strPtr(got.ClientMsgID) != strPtr(want.ClientMsgID) {
		t.Errorf("%s: threadId, to, clientMsgId = %s, %s, %s; want %s, %s, %s", what,
			strPtr(got.ThreadID), strPtr(got.To), strPtr(got.ClientMsgID),
			strPtr(want.ThreadID), strPtr(want.To), strPtr(want.ClientMsgID))
	}
	if got.Pinned != want.Pinned || got.Locked != want.Locked {
		t.Errorf("%s: pinned, locked = %v, %v; want %v, %v", what, got.Pinned, got.Locked, want.Pinned, want.Locked)
	}
	if !sameTime(got.CreatedAt.Time, want.CreatedAt.Time) {
		t.Errorf("%s: CreatedAt = %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
	switch {
	case got.EditedAt == nil && want.EditedAt == nil:
	case got.EditedAt == nil || want.EditedAt == nil || !sameTime(got.EditedAt.Time, want.EditedAt.Time):
		t.Errorf("%s: EditedAt = %v, want %v", what, got.EditedAt, want.EditedAt)
	}
	checkFiles(t, what+": Attachments", got.Attachments, want.Attachments)
	checkEvent(t, what+": Event", got.Event, want.Event)
	if got.Reactions == nil {
		t.Errorf("%s: Reactions is nil, want a map", what)
	}
	want.Reactions = nonNil(want.Reactions)
	if !reflect.DeepEqual(nonNil(got.Reactions), want.Reactions) {
		t.Errorf("%s: Reactions = %v, want %v", what, got.Reactions, want.Reactions)
	}
}

func nonNil(m map[string][]string) map[string][]string {
	if m == nil {
		return map[string][]string{}
	}
	return m
}

// Rounds is how many times the concurrency tests repeat a race that can be repeated.
const Rounds = 20

// FreshStores is how many new stores the races that happen once per store (the first
// registration) are run on.
const FreshStores = 10

// onFreshStores runs fn on FreshStores new stores, one after the other.
func onFreshStores(fn func(t *testing.T, s store.Store)) func(*testing.T, func(*testing.T) store.Store) {
	return func(t *testing.T, newStore func(*testing.T) store.Store) {
		for i := range FreshStores {
			t.Run(fmt.Sprint("store", i), func(t *testing.T) { fn(t, newStore(t)) })
		}
	}
}

// warmUp makes concurrent reads, so that the connection pools of the store are full and the
// writers that race next really overlap (rather than the first finishing while the others
// are still connecting).
func warmUp(t *testing.T, s store.Store) {
	t.Helper()
	for range 3 {
		concurrently(Workers, func(int) {
			if _, err := s.CountParticipants(t.Context()); err != nil {
				t.Errorf("warm up: %v", err)
			}
			if _, _, err := s.Setting(t.Context(), "warm-up"); err != nil {
				t.Errorf("warm up: %v", err)
			}
		})
	}
}

// concurrently runs fn(0) ... fn(n-1) in n goroutines released together, and waits for them.
// fn must report failures with t.Errorf, not t.Fatal.
func concurrently(n int, fn func(i int)) {
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// textCase is a text both searches (SearchMessages in contents, FindParticipants in display
// names) are given, and the strings of searchTexts it must find there.
type textCase struct {
	text string
	want []string
}

// searchTexts and searchTextCases are the rule the two searches share, so that they behave
// alike: the text is literal (no wildcard or pattern character of LIKE, GLOB or regular
// expressions means anything), and case folds beyond ASCII, one character to one (Unicode
// simple case folding: ß finds ẞ, but not SS). Each pattern case would find more strings (or
// fail) were its text taken as a pattern.
var (
	searchTexts = []string{"50% off", "500 off", "a_b", "axb", "(x)", "x", `back\slash`, "bs", ".*",
		"x[1]", "x1", "ÉTÉ à Paris", "élodie", "Straße", "STRAẞE", "Strasse"}
	searchTextCases = []textCase{
		{"50%", []string{"50% off"}},
		{"a_b", []string{"a_b"}},
		{"(x)", []string{"(x)"}},
		{`\`, []string{`back\slash`}},
		{".*", []string{".*"}},
		{"[1]", []string{"x[1]"}},
		{"[", []string{"x[1]"}},
		{"été", []string{"ÉTÉ à Paris"}},
		{"À PARIS", []string{"ÉTÉ à Paris"}},
		{"ÉLODIE", []string{"élodie"}},
		{"straße", []string{"Straße", "STRAẞE"}},
		{"STRASSE", []string{"Strasse"}},
	}
)
