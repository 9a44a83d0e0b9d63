package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var inviteTests = []test{
	{name: "CreateAndList", fn: inviteCreateAndList},
	{name: "UsesCounted", fn: inviteUsesCounted},
	{name: "Delete", fn: inviteDelete},
	{name: "NotFound", fn: inviteNotFound},
	{name: "CodeTaken", fn: inviteCodeTaken},
	{name: "Expiry", fn: inviteExpiry},
	{name: "MaxUses", fn: inviteMaxUses},
	{name: "ConcurrentUses", fn: inviteConcurrentUses},
}

// inviteBase is the creation time of the first fixture invite. Times are given in a zone
// other than UTC, at millisecond precision; they must read back in UTC.
var inviteBase = time.Date(2026, 5, 6, 7, 8, 9, 10e6, time.FixedZone("UTC-3", -3*60*60))

// newInvite is a complete invite created d after inviteBase, expiring a day later.
func newInvite(code string, d time.Duration, maxUses int) store.Invite {
	return store.Invite{
		Code: code, CreatedBy: "p-creator", CreatedAt: inviteBase.Add(d),
		ExpiresAt: inviteBase.Add(d + 24*time.Hour), MaxUses: maxUses,
	}
}

// inviteNow is a time at which every fixture invite is valid.
var inviteNow = inviteBase.Add(time.Hour)

func createInvite(t *testing.T, s store.Store, inv store.Invite) store.Invite {
	t.Helper()
	got, err := s.CreateInvite(t.Context(), inv)
	if err != nil {
		t.Fatalf("CreateInvite(%s): %v", inv.Code, err)
	}
	return got
}

func useInvite(t *testing.T, s store.Store, code string, now time.Time) store.Invite {
	t.Helper()
	got, err := s.UseInvite(t.Context(), code, now)
	if err != nil {
		t.Fatalf("UseInvite(%s): %v", code, err)
	}
	return got
}

func listInvites(t *testing.T, s store.Store) []store.Invite {
	t.Helper()
	got, err := s.ListInvites(t.Context())
	if err != nil {
		t.Fatalf("ListInvites: %v", err)
	}
	return got
}

// checkInvite compares every field; times must be equal instants, in UTC.
func checkInvite(t *testing.T, what string, got, want store.Invite) {
	t.Helper()
	for _, tm := range []struct {
		name      string
		got, want time.Time
	}{{"CreatedAt", got.CreatedAt, want.CreatedAt}, {"ExpiresAt", got.ExpiresAt, want.ExpiresAt}} {
		if !sameTime(tm.got, tm.want) {
			t.Errorf("%s: %s = %v, want %v", what, tm.name, tm.got, tm.want)
		}
		if !tm.got.IsZero() && tm.got.Location() != time.UTC {
			t.Errorf("%s: %s = %v, want it in UTC", what, tm.name, tm.got)
		}
	}
	got.CreatedAt, want.CreatedAt, got.ExpiresAt, want.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func inviteCodes(invs []store.Invite) []string {
	out := make([]string, len(invs))
	for i, inv := range invs {
		out[i] = inv.Code
	}
	return out
}

// withUses is inv with its Uses set.
func withUses(inv store.Invite, uses int) store.Invite {
	inv.Uses = uses
	return inv
}

func inviteCreateAndList(t *testing.T, s store.Store) {
	if got := listInvites(t, s); len(got) != 0 {
		t.Errorf("ListInvites (none) = %v, want none", inviteCodes(got))
	}
	invs := map[string]store.Invite{
		"old":   newInvite("old", 0, 3),
		"new":   newInvite("new", 2*time.Second, 1),
		"mid-b": newInvite("mid-b", time.Second, 5),
		"mid-a": newInvite("mid-a", time.Second, 2), // same time as mid-b: ordered by code
		// Never expires, and Uses is ignored on create.
		"forever": {Code: "forever", CreatedBy: "p2", CreatedAt: inviteBase.Add(-time.Second), MaxUses: 1, Uses: 7},
	}
	for _, code := range []string{"mid-b", "old", "forever", "new", "mid-a"} {
		want := withUses(invs[code], 0)
		checkInvite(t, "CreateInvite("+code+")", createInvite(t, s, invs[code]), want)
	}
	got := listInvites(t, s)
	wantEqual(t, "ListInvites codes", inviteCodes(got), []string{"new", "mid-a", "mid-b", "old", "forever"})
	for _, inv := range got {
		checkInvite(t, "ListInvites "+inv.Code, inv, withUses(invs[inv.Code], 0))
	}
}

func inviteUsesCounted(t *testing.T, s store.Store) {
	a := createInvite(t, s, newInvite("a", 0, 5))
	b := createInvite(t, s, newInvite("b", time.Second, 5))
	c := createInvite(t, s, newInvite("c", 2*time.Second, 5))
	for i := range 3 {
		checkInvite(t, fmt.Sprint("UseInvite(a) #", i+1), useInvite(t, s, "a", inviteNow), withUses(a, i+1))
	}
	checkInvite(t, "UseInvite(c)", useInvite(t, s, "c", inviteNow), withUses(c, 1))
	got := listInvites(t, s)
	wantEqual(t, "ListInvites codes", inviteCodes(got), []string{"c", "b", "a"})
	if len(got) == 3 {
		checkInvite(t, "ListInvites c", got[0], withUses(c, 1))
		checkInvite(t, "ListInvites b", got[1], withUses(b, 0))
		checkInvite(t, "ListInvites a", got[2], withUses(a, 3))
	}
}

func inviteDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createInvite(t, s, newInvite("gone", 0, 2))
	keep := createInvite(t, s, newInvite("keep", time.Second, 2))
	useInvite(t, s, "gone", inviteNow)
	useInvite(t, s, "gone", inviteNow)
	useInvite(t, s, "keep", inviteNow)
	if err := s.DeleteInvite(ctx, "gone"); err != nil {
		t.Fatalf("DeleteInvite: %v", err)
	}
	wantCode(t, "DeleteInvite again", s.DeleteInvite(ctx, "gone"), mesh.CodeNotFound)
	_, err := s.UseInvite(ctx, "gone", inviteNow)
	wantCode(t, "UseInvite after DeleteInvite", err, mesh.CodeNotFound)
	got := listInvites(t, s)
	wantEqual(t, "ListInvites codes after DeleteInvite", inviteCodes(got), []string{"keep"})
	if len(got) == 1 {
		checkInvite(t, "ListInvites keep", got[0], withUses(keep, 1))
	}
	// The code is free again, and its old uses went with it: the new one has all its uses.
	again := newInvite("gone", 2*time.Second, 2)
	checkInvite(t, "CreateInvite after DeleteInvite", createInvite(t, s, again), again)
	checkInvite(t, "UseInvite of the new code #1", useInvite(t, s, "gone", inviteNow), withUses(again, 1))
	checkInvite(t, "UseInvite of the new code #2", useInvite(t, s, "gone", inviteNow), withUses(again, 2))
	_, err = s.UseInvite(ctx, "gone", inviteNow)
	wantCode(t, "UseInvite of the new code #3", err, mesh.CodeNotFound)
}

func inviteNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createInvite(t, s, newInvite("real", 0, 1))
	_, err := s.UseInvite(ctx, "nope", inviteNow)
	wantCode(t, "UseInvite(unknown)", err, mesh.CodeNotFound)
	_, err = s.UseInvite(ctx, "", inviteNow)
	wantCode(t, "UseInvite(empty)", err, mesh.CodeNotFound)
	wantCode(t, "DeleteInvite(unknown)", s.DeleteInvite(ctx, "nope"), mesh.CodeNotFound)
	// The misses created nothing and used nothing.
	got := listInvites(t, s)
	wantEqual(t, "ListInvites codes", inviteCodes(got), []string{"real"})
	if len(got) == 1 && got[0].Uses != 0 {
		t.Errorf("ListInvites real: Uses = %d, want 0", got[0].Uses)
	}
}

func inviteCodeTaken(t *testing.T, s store.Store) {
	first := createInvite(t, s, newInvite("taken", 0, 2))
	useInvite(t, s, "taken", inviteNow)
	_, err := s.CreateInvite(t.Context(), newInvite("taken", time.Minute, 9))
	wantCode(t, "CreateInvite(taken code)", err, mesh.CodeConflict)
	got := listInvites(t, s)
	wantEqual(t, "ListInvites codes", inviteCodes(got), []string{"taken"})
	if len(got) == 1 {
		checkInvite(t, "ListInvites after the conflict", got[0], withUses(first, 1))
	}
}

func inviteExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	inv := newInvite("soon", 0, 10)
	inv.ExpiresAt = inviteBase.Add(time.Hour)
	inv = createInvite(t, s, inv)
	forever := store.Invite{Code: "forever", CreatedBy: "p1", CreatedAt: inviteBase, MaxUses: 10}
	forever = createInvite(t, s, forever)

	checkInvite(t, "UseInvite before expiry", useInvite(t, s, "soon", inviteBase.Add(time.Hour-time.Millisecond)), withUses(inv, 1))
	for _, at := range []time.Time{inviteBase.Add(time.Hour + time.Millisecond), inviteBase.Add(48 * time.Hour)} {
		_, err := s.UseInvite(ctx, "soon", at)
		wantCode(t, fmt.Sprint("UseInvite ", at.Sub(inv.ExpiresAt), " after expiry"), err, mesh.CodeNotFound)
	}
	// An expired code is still listed (with its uses) and can be deleted.
	got := listInvites(t, s)
	wantEqual(t, "ListInvites codes", inviteCodes(got), []string{"forever", "soon"})
	if len(got) == 2 {
		checkInvite(t, "ListInvites soon", got[1], withUses(inv, 1))
	}
	// A code without expiry never expires.
	checkInvite(t, "UseInvite(forever) far ahead", useInvite(t, s, "forever", inviteBase.AddDate(50, 0, 0)), withUses(forever, 1))
	if err := s.DeleteInvite(ctx, "soon"); err != nil {
		t.Errorf("DeleteInvite(expired): %v", err)
	}
}

func inviteMaxUses(t *testing.T, s store.Store) {
	ctx := t.Context()
	one := createInvite(t, s, newInvite("one", 0, 1))
	two := createInvite(t, s, newInvite("two", time.Second, 2))
	checkInvite(t, "UseInvite(one)", useInvite(t, s, "one", inviteNow), withUses(one, 1))
	checkInvite(t, "UseInvite(two) #1", useInvite(t, s, "two", inviteNow), withUses(two, 1))
	checkInvite(t, "UseInvite(two) #2", useInvite(t, s, "two", inviteNow), withUses(two, 2))
	for range 2 {
		_, err := s.UseInvite(ctx, "one", inviteNow)
		wantCode(t, "UseInvite(one) used up", err, mesh.CodeNotFound)
		_, err = s.UseInvite(ctx, "two", inviteNow)
		wantCode(t, "UseInvite(two) used up", err, mesh.CodeNotFound)
	}
	// The refused uses are not counted.
	got := listInvites(t, s)
	wantEqual(t, "ListInvites codes", inviteCodes(got), []string{"two", "one"})
	if len(got) == 2 {
		checkInvite(t, "ListInvites two", got[0], withUses(two, 2))
		checkInvite(t, "ListInvites one", got[1], withUses(one, 1))
	}
}

// inviteConcurrentUses has 20 goroutines use a code with 5 uses at once, several rounds (a new
// code each): exactly 5 succeed, numbered 1..5, the others are CodeNotFound, and the code
// lists 5 uses.
func inviteConcurrentUses(t *testing.T, s store.Store) {
	const (
		maxUses = 5
		users   = 20
		rounds  = 5
	)
	warmUp(t, s)
	for r := range rounds {
		code := fmt.Sprint("race", r)
		createInvite(t, s, newInvite(code, time.Duration(r)*time.Second, maxUses))
		var (
			mu   sync.Mutex
			uses []int
		)
		concurrently(users, func(int) {
			inv, err := s.UseInvite(t.Context(), code, inviteNow)
			if err != nil {
				if !mesh.IsCode(err, mesh.CodeNotFound) {
					t.Errorf("UseInvite(%s): %v, want success or CodeNotFound", code, err)
				}
				return
			}
			mu.Lock()
			uses = append(uses, inv.Uses)
			mu.Unlock()
		})
		slices.Sort(uses)
		wantEqual(t, code+": the Uses of the successful uses", uses, []int{1, 2, 3, 4, 5})
		got := listInvites(t, s)
		if len(got) == 0 || got[0].Code != code || got[0].Uses != maxUses {
			t.Errorf("%s: ListInvites = %+v, want %s first with Uses %d", code, got, code, maxUses)
		}
	}
}
