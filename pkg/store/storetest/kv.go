package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var reactionTests = []test{
	{name: "AddRemove", fn: reactionAddRemove},
	{name: "Order", fn: reactionOrder},
	{name: "ConcurrentAdd", fn: reactionConcurrentAdd},
}

var tokenTests = []test{
	{name: "Revoke", fn: tokenRevoke},
}

var settingTests = []test{
	{name: "SetAndGet", fn: settingSetAndGet},
	{name: "SetIfAbsent", fn: settingSetIfAbsent},
	{name: "ConcurrentSetIfAbsent", fn: settingConcurrentSetIfAbsent},
}

var idempotencyTests = []test{
	{name: "SaveAndGet", fn: idempotencySaveAndGet},
	{name: "ConcurrentSave", fn: idempotencyConcurrentSave},
}

func reactionAddRemove(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	m := send(t, s, "r1", "a", "react to me")
	other := send(t, s, "r1", "a", "not me")

	steps := []struct {
		add          bool
		emoji, p     string
		wantChanged  bool
		wantReaction map[string][]string
	}{
		{true, "👍", "a", true, map[string][]string{"👍": {"a"}}},
		{true, "👍", "a", false, map[string][]string{"👍": {"a"}}},
		{true, "👍", "b", true, map[string][]string{"👍": {"a", "b"}}},
		{true, "🎉", "b", true, map[string][]string{"👍": {"a", "b"}, "🎉": {"b"}}},
		{false, "👍", "a", true, map[string][]string{"👍": {"b"}, "🎉": {"b"}}},
		{false, "👍", "a", false, map[string][]string{"👍": {"b"}, "🎉": {"b"}}},
		{false, "🎉", "c", false, map[string][]string{"👍": {"b"}, "🎉": {"b"}}},
		{false, "🎉", "b", true, map[string][]string{"👍": {"b"}}}, // the last one takes the emoji away
		{false, "👍", "b", true, map[string][]string{}},
		{false, "👍", "b", false, map[string][]string{}},
	}
	for i, st := range steps {
		var (
			got     mesh.Message
			changed bool
			err     error
			op      = "RemoveReaction"
		)
		if st.add {
			op = "AddReaction"
			got, changed, err = s.AddReaction(ctx, m.ID, st.emoji, st.p)
		} else {
			got, changed, err = s.RemoveReaction(ctx, m.ID, st.emoji, st.p)
		}
		what := fmt.Sprintf("step %d: %s(%s, %s)", i+1, op, st.emoji, st.p)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if changed != st.wantChanged {
			t.Errorf("%s reported %v, want %v", what, changed, st.wantChanged)
		}
		want := m
		want.Reactions = st.wantReaction
		checkMessage(t, what, got, want)
		stored, err := s.Message(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkMessage(t, what+", stored", stored, want)
	}
	stored, err := s.Message(ctx, other.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, "the other message", stored, other)
}

func reactionOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRoom(t, s, "r1", "a", false)
	m := send(t, s, "r1", "a", "react to me")
	// Participant ids out of lexical order: the order is the order of reacting.
	for _, p := range []string{"z", "a", "m", "b"} {
		if _, _, err := s.AddReaction(ctx, m.ID, "👍", p); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.RemoveReaction(ctx, m.ID, "👍", "a"); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.AddReaction(ctx, m.ID, "👍", "a") // back, now last
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "reactors", got.Reactions["👍"], []string{"z", "m", "b", "a"})
	stored, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "stored reactors", stored.Reactions["👍"], []string{"z", "m", "b", "a"})
	listed := list(t, s, store.MessageQuery{RoomID: "r1", Viewer: "a"})
	if len(listed) != 1 {
		t.Fatalf("listed %d messages, want 1", len(listed))
	}
	wantEqual(t, "listed reactors", listed[0].Reactions["👍"], []string{"z", "m", "b", "a"})
}

func reactionConcurrentAdd(t *testing.T, s store.Store) {
	createRoom(t, s, "r1", "a", false)
	warmUp(t, s)
	for range Rounds {
		reactionConcurrentAddOnce(t, s, send(t, s, "r1", "a", "react to me"))
	}
}

func reactionConcurrentAddOnce(t *testing.T, s store.Store, m mesh.Message) {
	ctx := t.Context()
	var added atomic.Int32
	concurrently(Workers, func(w int) {
		// Everyone adds the same reaction, and one of their own.
		got, ok, err := s.AddReaction(ctx, m.ID, "👍", "same")
		if err != nil {
			t.Errorf("AddReaction: %v", err)
			return
		}
		if ok {
			added.Add(1)
		}
		if len(got.Reactions["👍"]) != 1 || got.Reactions["👍"][0] != "same" {
			t.Errorf("AddReaction returned %v", got.Reactions)
		}
		if _, ok, err := s.AddReaction(ctx, m.ID, "🎉", fmt.Sprint("p", w)); err != nil || !ok {
			t.Errorf("AddReaction(own) = %v, %v; want true", ok, err)
		}
	})
	if added.Load() != 1 {
		t.Errorf("%d concurrent identical AddReaction calls reported added, want exactly 1", added.Load())
	}
	got, err := s.Message(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Reactions["👍"]) != 1 || len(got.Reactions["🎉"]) != Workers {
		t.Errorf("reactions = %v; want one 👍 and %d 🎉", got.Reactions, Workers)
	}
}

func tokenRevoke(t *testing.T, s store.Store) {
	ctx := t.Context()
	revoked := func(id string, want bool) {
		t.Helper()
		if ok, err := s.IsRevoked(ctx, id); err != nil || ok != want {
			t.Errorf("IsRevoked(%s) = %v, %v; want %v", id, ok, err, want)
		}
	}
	revoked("t1", false)
	exp := time.Now().Add(time.Hour)
	if err := s.RevokeToken(ctx, "t1", "p1", exp); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	revoked("t1", true)
	revoked("t2", false)
	if err := s.RevokeToken(ctx, "t1", "p1", exp); err != nil {
		t.Errorf("RevokeToken again: %v", err)
	}
	revoked("t1", true)
	// A token without expiry stays revoked.
	if err := s.RevokeToken(ctx, "t3", "p1", time.Time{}); err != nil {
		t.Fatalf("RevokeToken(no expiry): %v", err)
	}
	revoked("t3", true)
	// Revoking more tokens (which may purge expired ones) keeps the unexpired records.
	for i := range 5 {
		if err := s.RevokeToken(ctx, fmt.Sprint("t-more-", i), "p2", exp); err != nil {
			t.Fatal(err)
		}
	}
	revoked("t1", true)
	revoked("t3", true)
	revoked("t-more-4", true)
}

func settingSetAndGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	setting := func(key, want string, wantOK bool) {
		t.Helper()
		v, ok, err := s.Setting(ctx, key)
		if err != nil || v != want || ok != wantOK {
			t.Errorf("Setting(%s) = %q, %v, %v; want %q, %v", key, v, ok, err, want, wantOK)
		}
	}
	setting("mesh.name", "", false)
	for _, v := range []string{"The Mesh", "Renamed", ""} {
		if err := s.SetSetting(ctx, "mesh.name", v); err != nil {
			t.Fatalf("SetSetting(%q): %v", v, err)
		}
		setting("mesh.name", v, true) // an empty value is still set
	}
	if err := s.SetSetting(ctx, "other", "x"); err != nil {
		t.Fatal(err)
	}
	setting("other", "x", true)
	setting("mesh.name", "", true)
}

func settingSetIfAbsent(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.SetSettingIfAbsent(ctx, "jwt.secret", "first")
	if err != nil || got != "first" {
		t.Fatalf("SetSettingIfAbsent(absent) = %q, %v; want first", got, err)
	}
	got, err = s.SetSettingIfAbsent(ctx, "jwt.secret", "second")
	if err != nil || got != "first" {
		t.Errorf("SetSettingIfAbsent(present) = %q, %v; want first", got, err)
	}
	if v, ok, err := s.Setting(ctx, "jwt.secret"); err != nil || !ok || v != "first" {
		t.Errorf("Setting = %q, %v, %v; want first", v, ok, err)
	}
	// A value set by SetSetting counts as present, even an empty one.
	if err := s.SetSetting(ctx, "empty", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SetSettingIfAbsent(ctx, "empty", "filled"); err != nil || got != "" {
		t.Errorf("SetSettingIfAbsent(set to empty) = %q, %v; want empty", got, err)
	}
	// SetSetting still overwrites.
	if err := s.SetSetting(ctx, "jwt.secret", "rotated"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SetSettingIfAbsent(ctx, "jwt.secret", "third"); err != nil || got != "rotated" {
		t.Errorf("SetSettingIfAbsent after SetSetting = %q, %v; want rotated", got, err)
	}
}

func settingConcurrentSetIfAbsent(t *testing.T, s store.Store) {
	ctx := t.Context()
	warmUp(t, s)
	for round := range Rounds {
		key := fmt.Sprint("jwt.secret.", round)
		var (
			mu  sync.Mutex
			got = map[string]int{}
		)
		concurrently(Workers, func(w int) {
			v, err := s.SetSettingIfAbsent(ctx, key, fmt.Sprint("secret-", w))
			if err != nil {
				t.Errorf("SetSettingIfAbsent: %v", err)
				return
			}
			mu.Lock()
			got[v]++
			mu.Unlock()
		})
		if len(got) != 1 {
			t.Fatalf("concurrent SetSettingIfAbsent(%s) returned %v, want one value for all", key, got)
		}
		for v := range got {
			if stored, ok, err := s.Setting(ctx, key); err != nil || !ok || stored != v {
				t.Errorf("Setting(%s) = %q, %v, %v; want %q", key, stored, ok, err, v)
			}
		}
	}
}

func idempotencySaveAndGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	result := func(scope, key string, want []byte, wantOK bool) {
		t.Helper()
		got, ok, err := s.Result(ctx, scope, key)
		if err != nil || ok != wantOK || string(got) != string(want) {
			t.Errorf("Result(%s, %s) = %q, %v, %v; want %q, %v", scope, key, got, ok, err, want, wantOK)
		}
	}
	result("p1", "k1", nil, false)
	first := []byte(`{"status":201,"id":"m1"}`)
	got, err := s.SaveResult(ctx, "p1", "k1", first)
	if err != nil || string(got) != string(first) {
		t.Fatalf("SaveResult(new) = %q, %v; want %q", got, err, first)
	}
	result("p1", "k1", first, true)
	got, err = s.SaveResult(ctx, "p1", "k1", []byte(`{"status":201,"id":"m2"}`))
	if err != nil || string(got) != string(first) {
		t.Errorf("SaveResult(taken) = %q, %v; want the first %q", got, err, first)
	}
	result("p1", "k1", first, true)
	// Scopes are separate: the same key of another participant is another result.
	other := []byte("other")
	if got, err := s.SaveResult(ctx, "p2", "k1", other); err != nil || string(got) != "other" {
		t.Errorf("SaveResult(other scope) = %q, %v; want other", got, err)
	}
	result("p2", "k1", other, true)
	result("p1", "k2", nil, false)
	// Binary results come back byte for byte; an empty one is a result.
	bin := []byte{0, 1, 2, 0xff, 0}
	if _, err := s.SaveResult(ctx, "p1", "bin", bin); err != nil {
		t.Fatal(err)
	}
	result("p1", "bin", bin, true)
	if _, err := s.SaveResult(ctx, "p1", "empty", []byte{}); err != nil {
		t.Fatal(err)
	}
	result("p1", "empty", []byte{}, true)
	if got, err := s.SaveResult(ctx, "p1", "empty", []byte("late")); err != nil || len(got) != 0 {
		t.Errorf("SaveResult over an empty result = %q, %v; want empty", got, err)
	}
}

func idempotencyConcurrentSave(t *testing.T, s store.Store) {
	ctx := t.Context()
	warmUp(t, s)
	for round := range Rounds {
		key := fmt.Sprint("k", round)
		var (
			mu  sync.Mutex
			got = map[string]int{}
		)
		concurrently(Workers, func(w int) {
			v, err := s.SaveResult(ctx, "p1", key, []byte(fmt.Sprint("result-", w)))
			if err != nil {
				t.Errorf("SaveResult: %v", err)
				return
			}
			mu.Lock()
			got[string(v)]++
			mu.Unlock()
		})
		if len(got) != 1 {
			t.Fatalf("concurrent SaveResult(%s) returned %v, want one result for all", key, got)
		}
		for v := range got {
			if stored, ok, err := s.Result(ctx, "p1", key); err != nil || !ok || string(stored) != v {
				t.Errorf("Result(%s) = %q, %v, %v; want %q", key, stored, ok, err, v)
			}
		}
	}
}
