package mongo

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/internal/testmongo"
	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
	"github.com/themesh/mesh/pkg/store/storetest"
)

// TestStoreTwoStores runs the conformance suite on two Stores open on one database, as two
// processes sharing it would (each its own connections, seq memory and committers): writes
// alternate between them, reads go to the first. So every rule, the concurrent ones included,
// must hold when only the server orders the writers, and each Store must see what the other
// wrote.
func TestStoreTwoStores(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		srv := testmongo.Shared(t)
		first := openTest(t, srv, Options{})
		other, err := Open(t.Context(), srv.URI(), first.db.Name(), Options{})
		if err != nil {
			t.Fatalf("Open the second store: %v", err)
		}
		t.Cleanup(func() { other.Close() })
		return &twoStores{Store: first, other: other}
	})
}

// TestConcurrentSendTwoStores has two Stores (two processes) send into one room at once, from
// several goroutines each, some messages twice (the same clientMsgId, through either Store):
// every message is stored once, with seqs 1..n, no gap and no repeat.
func TestConcurrentSendTwoStores(t *testing.T) {
	ctx := t.Context()
	srv := testmongo.Shared(t)
	a := openTest(t, srv, Options{})
	b, err := Open(ctx, srv.URI(), a.db.Name(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if _, err := a.CreateRoom(ctx, mesh.Room{ID: "r1", Name: "r", CreatedBy: "p", CreatedAt: mesh.Now()}); err != nil {
		t.Fatal(err)
	}
	stores := []*Store{a, b}
	const workers, each = 4, 60 // per store
	var (
		mu      sync.Mutex
		seqOf   = map[string]int64{} // clientMsgId -> seq
		created atomic.Int32
		wg      sync.WaitGroup
		start   = make(chan struct{})
	)
	for si, s := range stores {
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range each {
					// Workers w of both stores send the same clientMsgIds: each is sent twice.
					cid := fmt.Sprintf("w%d-%d", w, i)
					m, ok, err := s.CreateMessage(ctx, mesh.Message{
						ID: fmt.Sprintf("m-%d-%d-%d", si, w, i), RoomID: "r1", AuthorID: "p",
						Content: cid, ClientMsgID: &cid, CreatedAt: mesh.Now(),
					})
					if err != nil {
						t.Errorf("store %d: CreateMessage(%s): %v", si, cid, err)
						return
					}
					if ok {
						created.Add(1)
					}
					mu.Lock()
					if prev, seen := seqOf[cid]; seen && prev != m.Seq {
						t.Errorf("%s: seq %d and %d", cid, prev, m.Seq)
					}
					seqOf[cid] = m.Seq
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()
	const n = workers * each
	if created.Load() != n {
		t.Errorf("%d messages created, want %d (each clientMsgId once)", created.Load(), n)
	}
	got := make([]int64, 0, len(seqOf))
	for _, seq := range seqOf {
		got = append(got, seq)
	}
	slices.Sort(got)
	if want := seqRange(1, n); !slices.Equal(got, want) {
		t.Errorf("seqs = %v, want 1..%d", got, n)
	}
	for i, s := range stores {
		if seq, err := s.LastSeq(ctx, "r1"); err != nil || seq != n {
			t.Errorf("store %d: LastSeq = %d, %v; want %d", i, seq, err, n)
		}
	}
	var stored []int64
	for after := int64(0); ; {
		page, err := b.ListMessages(ctx, store.MessageQuery{RoomID: "r1", Viewer: "p", After: after, Forward: true,
			Limit: mesh.MaxListLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			if seqOf[*m.ClientMsgID] != m.Seq {
				t.Errorf("stored %s at seq %d, returned %d", *m.ClientMsgID, m.Seq, seqOf[*m.ClientMsgID])
			}
			stored = append(stored, m.Seq)
		}
		after = page[len(page)-1].Seq
	}
	if want := seqRange(1, n); !slices.Equal(stored, want) {
		t.Errorf("stored seqs = %v, want 1..%d", stored, n)
	}
}

func seqRange(from, to int64) []int64 {
	out := []int64{}
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// twoStores is a store.Store whose writes alternate between two Stores.
type twoStores struct {
	*Store
	other *Store
	n     atomic.Uint64
}

func (h *twoStores) w() *Store {
	if h.n.Add(1)%2 == 0 {
		return h.Store
	}
	return h.other
}

// Close does nothing: the test's cleanups close both Stores.
func (h *twoStores) Close() error { return nil }

func (h *twoStores) CreateParticipant(ctx context.Context, a store.Account, mode store.FirstMode) (store.Account, error) {
	return h.w().CreateParticipant(ctx, a, mode)
}

func (h *twoStores) UpdateParticipant(ctx context.Context, id string, u store.ParticipantUpdate) (store.Account, error) {
	return h.w().UpdateParticipant(ctx, id, u)
}

func (h *twoStores) CreateRoom(ctx context.Context, r mesh.Room) (mesh.Room, error) {
	return h.w().CreateRoom(ctx, r)
}

func (h *twoStores) UpdateRoom(ctx context.Context, id string, u store.RoomUpdate) (mesh.Room, error) {
	return h.w().UpdateRoom(ctx, id, u)
}

func (h *twoStores) DeleteRoom(ctx context.Context, id string) error {
	return h.w().DeleteRoom(ctx, id)
}

func (h *twoStores) AddMember(ctx context.Context, roomID, participantID string) (bool, error) {
	return h.w().AddMember(ctx, roomID, participantID)
}

func (h *twoStores) RemoveMember(ctx context.Context, roomID, participantID string) (bool, error) {
	return h.w().RemoveMember(ctx, roomID, participantID)
}

func (h *twoStores) SetMute(ctx context.Context, roomID, participantID string, until time.Time) error {
	return h.w().SetMute(ctx, roomID, participantID, until)
}

func (h *twoStores) CreateMessage(ctx context.Context, m mesh.Message) (mesh.Message, bool, error) {
	return h.w().CreateMessage(ctx, m)
}

func (h *twoStores) EditMessage(ctx context.Context, id, content string, at time.Time) (mesh.Message, error) {
	return h.w().EditMessage(ctx, id, content, at)
}

func (h *twoStores) DeleteMessage(ctx context.Context, id string) (mesh.Message, error) {
	return h.w().DeleteMessage(ctx, id)
}

func (h *twoStores) AddReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	return h.w().AddReaction(ctx, messageID, emoji, participantID)
}

func (h *twoStores) RemoveReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	return h.w().RemoveReaction(ctx, messageID, emoji, participantID)
}

func (h *twoStores) SetPinned(ctx context.Context, id string, pinned bool) (mesh.Message, error) {
	return h.w().SetPinned(ctx, id, pinned)
}

func (h *twoStores) SetLocked(ctx context.Context, id string, locked bool) (mesh.Message, error) {
	return h.w().SetLocked(ctx, id, locked)
}

func (h *twoStores) RevokeToken(ctx context.Context, tokenID, participantID string, expires time.Time) error {
	return h.w().RevokeToken(ctx, tokenID, participantID, expires)
}

func (h *twoStores) SetSetting(ctx context.Context, key, value string) error {
	return h.w().SetSetting(ctx, key, value)
}

func (h *twoStores) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	return h.w().SetSettingIfAbsent(ctx, key, value)
}

func (h *twoStores) SaveResult(ctx context.Context, scope, key string, result []byte) ([]byte, error) {
	return h.w().SaveResult(ctx, scope, key, result)
}

func (h *twoStores) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	return h.w().AppendAudit(ctx, entries)
}

func (h *twoStores) CreateInvite(ctx context.Context, inv store.Invite) (store.Invite, error) {
	return h.w().CreateInvite(ctx, inv)
}

func (h *twoStores) DeleteInvite(ctx context.Context, code string) error {
	return h.w().DeleteInvite(ctx, code)
}

func (h *twoStores) UseInvite(ctx context.Context, code string, now time.Time) (store.Invite, error) {
	return h.w().UseInvite(ctx, code, now)
}

func (h *twoStores) CreateFile(ctx context.Context, f mesh.File) (mesh.File, bool, error) {
	return h.w().CreateFile(ctx, f)
}

func (h *twoStores) AttachFiles(ctx context.Context, m mesh.Message, ids []string) error {
	return h.w().AttachFiles(ctx, m, ids)
}

func (h *twoStores) DeleteFiles(ctx context.Context, ids []string) error {
	return h.w().DeleteFiles(ctx, ids)
}

func (h *twoStores) SetReadMark(ctx context.Context, roomID, participantID string, seq int64) (int64, error) {
	return h.w().SetReadMark(ctx, roomID, participantID, seq)
}
