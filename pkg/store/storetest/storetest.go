// Package storetest is the conformance suite of store.Store: every implementation (sqlite,
// mongo) runs it, so that they keep the same semantics. It is written only against the
// interfaces of package store, and assumes nothing stronger than what their doc comments
// promise: no transactions, no ordering beyond the documented one.
//
// Use it from an implementation's tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mesh.db"), sqlite.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package storetest

import (
	"testing"

	"github.com/themesh/mesh/pkg/store"
)

// Workers and PerWorker size the concurrency tests: Workers goroutines, each making
// PerWorker calls where the test makes several.
const (
	Workers   = 8
	PerWorker = 50
)

// Run runs the conformance suite: one subtest per aggregate, one subtest per rule inside.
// newStore must return a new, empty store each time it is called (once per leaf test) and
// close it in t.Cleanup. Leaf tests do not call t.Parallel.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []test
	}{
		{"Participants", participantTests},
		{"Rooms", roomTests},
		{"Members", memberTests},
		{"Messages", messageTests},
		{"ListMessages", listTests},
		{"Threads", threadTests},
		{"Reactions", reactionTests},
		{"Tokens", tokenTests},
		{"Settings", settingTests},
		{"Idempotency", idempotencyTests},
		{"Roles", roleTests},
		{"Audit", auditTests},
		{"Invites", inviteTests},
		{"Files", fileTests},
		{"ReadMarks", readMarkTests},
		{"FeedEvents", eventTests},
		{"Store", storeTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					if tc.fresh != nil {
						tc.fresh(t, newStore)
						return
					}
					tc.fn(t, newStore(t))
				})
			}
		})
	}
}

// test is one rule of the contract, checked on a fresh store (fn), or on as many fresh stores
// as it asks for (fresh: for races that happen once per store).
type test struct {
	name  string
	fn    func(t *testing.T, s store.Store)
	fresh func(t *testing.T, newStore func(t *testing.T) store.Store)
}

var storeTests = []test{
	{name: "Ping", fn: func(t *testing.T, s store.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
}
