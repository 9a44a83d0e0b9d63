package sqlite

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
	"github.com/themesh/mesh/pkg/store/storetest"
)

// TestStoreTwoHandles runs the conformance suite on two Stores open on one file, as two
// processes sharing it would: writes alternate between them, reads go to the first. So every
// rule, the concurrent ones included, must hold across connections that only SQLite's file
// lock orders, and each Store must see what the other wrote.
func TestStoreTwoHandles(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		path := filepath.Join(t.TempDir(), "mesh.db")
		return &twoHandles{Store: openTest(t, path, Options{}), other: openTest(t, path, Options{})}
	})
}

type twoHandles struct {
	*Store
	other *Store
	n     atomic.Uint64
}

func (h *twoHandles) w() *Store {
	if h.n.Add(1)%2 == 0 {
		return h.Store
	}
	return h.other
}

// Close does nothing: openTest's cleanups close both Stores.
func (h *twoHandles) Close() error { return nil }

func (h *twoHandles) CreateParticipant(ctx context.Context, a store.Account, mode store.FirstMode) (store.Account, error) {
	return h.w().CreateParticipant(ctx, a, mode)
}

func (h *twoHandles) UpdateParticipant(ctx context.Context, id string, u store.ParticipantUpdate) (store.Account, error) {
	return h.w().UpdateParticipant(ctx, id, u)
}

func (h *twoHandles) CreateRoom(ctx context.Context, r mesh.Room) (mesh.Room, error) {
	return h.w().CreateRoom(ctx, r)
}

func (h *twoHandles) UpdateRoom(ctx context.Context, id string, u store.RoomUpdate) (mesh.Room, error) {
	return h.w().UpdateRoom(ctx, id, u)
}

func (h *twoHandles) DeleteRoom(ctx context.Context, id string) error {
	return h.w().DeleteRoom(ctx, id)
}

func (h *twoHandles) AddMember(ctx context.Context, roomID, participantID string) (bool, error) {
	return h.w().AddMember(ctx, roomID, participantID)
}

func (h *twoHandles) RemoveMember(ctx context.Context, roomID, participantID string) (bool, error) {
	return h.w().RemoveMember(ctx, roomID, participantID)
}

func (h *twoHandles) SetMute(ctx context.Context, roomID, participantID string, until time.Time) error {
	return h.w().SetMute(ctx, roomID, participantID, until)
}

func (h *twoHandles) CreateMessage(ctx context.Context, m mesh.Message) (mesh.Message, bool, error) {
	return h.w().CreateMessage(ctx, m)
}

func (h *twoHandles) EditMessage(ctx context.Context, id, content string, at time.Time) (mesh.Message, error) {
	return h.w().EditMessage(ctx, id, content, at)
}

func (h *twoHandles) DeleteMessage(ctx context.Context, id string) (mesh.Message, error) {
	return h.w().DeleteMessage(ctx, id)
}

func (h *twoHandles) AddReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	return h.w().AddReaction(ctx, messageID, emoji, participantID)
}

func (h *twoHandles) RemoveReaction(ctx context.Context, messageID, emoji, participantID string) (mesh.Message, bool, error) {
	return h.w().RemoveReaction(ctx, messageID, emoji, participantID)
}

func (h *twoHandles) SetPinned(ctx context.Context, id string, pinned bool) (mesh.Message, error) {
	return h.w().SetPinned(ctx, id, pinned)
}

func (h *twoHandles) SetLocked(ctx context.Context, id string, locked bool) (mesh.Message, error) {
	return h.w().SetLocked(ctx, id, locked)
}

func (h *twoHandles) RevokeToken(ctx context.Context, tokenID, participantID string, expires time.Time) error {
	return h.w().RevokeToken(ctx, tokenID, participantID, expires)
}

func (h *twoHandles) SetSetting(ctx context.Context, key, value string) error {
	return h.w().SetSetting(ctx, key, value)
}

func (h *twoHandles) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	return h.w().SetSettingIfAbsent(ctx, key, value)
}

func (h *twoHandles) SaveResult(ctx context.Context, scope, key string, result []byte) ([]byte, error) {
	return h.w().SaveResult(ctx, scope, key, result)
}

func (h *twoHandles) AppendAudit(ctx context.Context, entries []store.AuditEntry) error {
	return h.w().AppendAudit(ctx, entries)
}

func (h *twoHandles) CreateInvite(ctx context.Context, inv store.Invite) (store.Invite, error) {
	return h.w().CreateInvite(ctx, inv)
}

func (h *twoHandles) DeleteInvite(ctx context.Context, code string) error {
	return h.w().DeleteInvite(ctx, code)
}

func (h *twoHandles) UseInvite(ctx context.Context, code string, now time.Time) (store.Invite, error) {
	return h.w().UseInvite(ctx, code, now)
}

func (h *twoHandles) CreateFile(ctx context.Context, f mesh.File) (mesh.File, bool, error) {
	return h.w().CreateFile(ctx, f)
}

func (h *twoHandles) AttachFiles(ctx context.Context, m mesh.Message, ids []string) error {
	return h.w().AttachFiles(ctx, m, ids)
}

func (h *twoHandles) DeleteFiles(ctx context.Context, ids []string) error {
	return h.w().DeleteFiles(ctx, ids)
}

func (h *twoHandles) SetReadMark(ctx context.Context, roomID, participantID string, seq int64) (int64, error) {
	return h.w().SetReadMark(ctx, roomID, participantID, seq)
}
