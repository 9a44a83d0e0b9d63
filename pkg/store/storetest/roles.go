package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var roleTests = []test{
	{name: "CreateAndRead", fn: roleCreateAndRead},
	{name: "ListByName", fn: roleListByName},
	{name: "UpdatePriority", fn: roleUpdatePriority},
	{name: "UpdatePermissions", fn: roleUpdatePermissions},
	{name: "Delete", fn: roleDelete},
	{name: "NotFound", fn: roleNotFound},
	{name: "NameTaken", fn: roleNameTaken},
	{name: "EmptyPermissions", fn: roleEmptyPermissions},
	{name: "CountByRole", fn: roleCountByRole},
}

// newRole is a complete role, every field set, so that round trips check them all.
func newRole(name string, priority int, perms ...string) store.Role {
	return store.Role{
		Name: name, Priority: priority, Permissions: perms, CreatedBy: "p-creator",
		CreatedAt: mesh.Now().Time,
	}
}

func createRole(t *testing.T, s store.Store, r store.Role) store.Role {
	t.Helper()
	got, err := s.CreateRole(t.Context(), r)
	if err != nil {
		t.Fatalf("CreateRole(%s): %v", r.Name, err)
	}
	return got
}

// checkRole compares every field; Permissions must be non-nil and in order.
func checkRole(t *testing.T, what string, got, want store.Role) {
	t.Helper()
	if !sameTime(got.CreatedAt, want.CreatedAt) {
		t.Errorf("%s: CreatedAt = %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
	if got.Permissions == nil {
		t.Errorf("%s: Permissions is nil, want a slice", what)
	}
	if want.Permissions == nil {
		want.Permissions = []string{}
	}
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func roleByName(t *testing.T, s store.Store, name string) store.Role {
	t.Helper()
	r, err := s.RoleByName(t.Context(), name)
	if err != nil {
		t.Fatalf("RoleByName(%s): %v", name, err)
	}
	return r
}

func roleNames(rs []store.Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

func roleCreateAndRead(t *testing.T, s store.Store) {
	// Permissions keep the order given, even when it is not sorted.
	want := newRole("helper", 25, "rooms.create", "messages.delete", "members.mute")
	checkRole(t, "CreateRole", createRole(t, s, want), want)
	checkRole(t, "RoleByName", roleByName(t, s, "helper"), want)
}

func roleListByName(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListRoles(ctx)
	if err != nil {
		t.Fatalf("ListRoles (none): %v", err)
	}
	if len(got) != 0 {
		t.Errorf("ListRoles (none) = %v, want none", roleNames(got))
	}
	roles := map[string]store.Role{}
	for i, name := range []string{"zeta", "alpha", "mid", "beta"} {
		roles[name] = createRole(t, s, newRole(name, 10*i, "p."+name, "q."+name))
	}
	got, err = s.ListRoles(ctx)
	if err != nil {
		t.Fatalf("ListRoles: %v", err)
	}
	wantEqual(t, "ListRoles names", roleNames(got), []string{"alpha", "beta", "mid", "zeta"})
	for _, r := range got {
		checkRole(t, "ListRoles "+r.Name, r, roles[r.Name])
	}
}

func roleUpdatePriority(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := createRole(t, s, newRole("helper", 25, "b", "a"))
	createRole(t, s, newRole("other", 5, "x"))
	got, err := s.UpdateRole(ctx, "helper", store.RoleUpdate{Priority: ptr(40)})
	if err != nil {
		t.Fatalf("UpdateRole(priority): %v", err)
	}
	want := r
	want.Priority = 40
	checkRole(t, "UpdateRole(priority)", got, want)
	checkRole(t, "RoleByName after UpdateRole(priority)", roleByName(t, s, "helper"), want)
	// Zero is a priority like any other, not "unset".
	got, err = s.UpdateRole(ctx, "helper", store.RoleUpdate{Priority: ptr(0)})
	if err != nil {
		t.Fatalf("UpdateRole(priority 0): %v", err)
	}
	want.Priority = 0
	checkRole(t, "UpdateRole(priority 0)", got, want)
	// An empty update changes nothing and returns the role.
	got, err = s.UpdateRole(ctx, "helper", store.RoleUpdate{})
	if err != nil {
		t.Fatalf("UpdateRole(nothing): %v", err)
	}
	checkRole(t, "UpdateRole(nothing)", got, want)
	if other := roleByName(t, s, "other"); other.Priority != 5 {
		t.Errorf("other role's priority = %d, want 5 (untouched)", other.Priority)
	}
}

func roleUpdatePermissions(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := createRole(t, s, newRole("helper", 25, "a", "b"))
	perms := []string{"z.last", "a.first", "m.middle"}
	got, err := s.UpdateRole(ctx, "helper", store.RoleUpdate{Permissions: &perms})
	if err != nil {
		t.Fatalf("UpdateRole(permissions): %v", err)
	}
	want := r
	want.Permissions = perms
	checkRole(t, "UpdateRole(permissions)", got, want)
	checkRole(t, "RoleByName after UpdateRole(permissions)", roleByName(t, s, "helper"), want)
	// Setting none (nil or empty) empties them; they read back as an empty slice.
	for _, none := range [][]string{nil, {}} {
		got, err = s.UpdateRole(ctx, "helper", store.RoleUpdate{Permissions: &none})
		if err != nil {
			t.Fatalf("UpdateRole(permissions %#v): %v", none, err)
		}
		want.Permissions = []string{}
		checkRole(t, "UpdateRole(no permissions)", got, want)
		checkRole(t, "RoleByName after UpdateRole(no permissions)", roleByName(t, s, "helper"), want)
	}
}

func roleDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, newRole("helper", 25, "a"))
	keep := createRole(t, s, newRole("keeper", 30, "b"))
	if err := s.DeleteRole(ctx, "helper"); err != nil {
		t.Fatalf("DeleteRole: %v", err)
	}
	_, err := s.RoleByName(ctx, "helper")
	wantCode(t, "RoleByName after DeleteRole", err, mesh.CodeNotFound)
	wantCode(t, "DeleteRole again", s.DeleteRole(ctx, "helper"), mesh.CodeNotFound)
	got, err := s.ListRoles(ctx)
	if err != nil {
		t.Fatalf("ListRoles: %v", err)
	}
	wantEqual(t, "ListRoles names after DeleteRole", roleNames(got), []string{"keeper"})
	checkRole(t, "RoleByName(keeper)", roleByName(t, s, "keeper"), keep)
	// The name is free again.
	again := newRole("helper", 1, "c")
	checkRole(t, "CreateRole after DeleteRole", createRole(t, s, again), again)
}

func roleNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createRole(t, s, newRole("helper", 25))
	_, err := s.RoleByName(ctx, "nobody")
	wantCode(t, "RoleByName(unknown)", err, mesh.CodeNotFound)
	_, err = s.UpdateRole(ctx, "nobody", store.RoleUpdate{Priority: ptr(1)})
	wantCode(t, "UpdateRole(unknown)", err, mesh.CodeNotFound)
	_, err = s.UpdateRole(ctx, "nobody", store.RoleUpdate{})
	wantCode(t, "UpdateRole(unknown, nothing)", err, mesh.CodeNotFound)
	wantCode(t, "DeleteRole(unknown)", s.DeleteRole(ctx, "nobody"), mesh.CodeNotFound)
	// The misses created nothing.
	got, err := s.ListRoles(ctx)
	if err != nil {
		t.Fatalf("ListRoles: %v", err)
	}
	wantEqual(t, "ListRoles names", roleNames(got), []string{"helper"})
}

func roleNameTaken(t *testing.T, s store.Store) {
	first := createRole(t, s, newRole("helper", 25, "a"))
	_, err := s.CreateRole(t.Context(), newRole("helper", 99, "other"))
	wantCode(t, "CreateRole(taken name)", err, mesh.CodeConflict)
	checkRole(t, "RoleByName after the conflict", roleByName(t, s, "helper"), first)
}

func roleEmptyPermissions(t *testing.T, s store.Store) {
	for _, r := range []store.Role{newRole("nil-perms", 1), {Name: "empty-perms", Permissions: []string{}}} {
		got := createRole(t, s, r)
		if got.Permissions == nil || len(got.Permissions) != 0 {
			t.Errorf("CreateRole(%s).Permissions = %#v, want an empty slice", r.Name, got.Permissions)
		}
		got = roleByName(t, s, r.Name)
		if got.Permissions == nil || len(got.Permissions) != 0 {
			t.Errorf("RoleByName(%s).Permissions = %#v, want an empty slice", r.Name, got.Permissions)
		}
		if r.CreatedAt.IsZero() && !got.CreatedAt.IsZero() {
			t.Errorf("RoleByName(%s).CreatedAt = %v, want zero", r.Name, got.CreatedAt)
		}
	}
	list, err := s.ListRoles(t.Context())
	if err != nil {
		t.Fatalf("ListRoles: %v", err)
	}
	for _, r := range list {
		if r.Permissions == nil {
			t.Errorf("ListRoles: %s.Permissions is nil, want an empty slice", r.Name)
		}
	}
}

func roleCountByRole(t *testing.T, s store.Store) {
	ctx := t.Context()
	count := func(what, role string, want int) {
		t.Helper()
		n, err := s.CountByRole(ctx, role)
		if err != nil {
			t.Fatalf("%s: CountByRole(%s): %v", what, role, err)
		}
		if n != want {
			t.Errorf("%s: CountByRole(%s) = %d, want %d", what, role, n, want)
		}
	}
	createRole(t, s, newRole("helper", 25, "a"))
	count("no participants", "helper", 0)
	for _, id := range []string{"p1", "p2", "p3", "p4"} {
		createParticipant(t, s, account(id, id+"@example.com"), store.AnyOrder)
	}
	count("all members", "helper", 0)
	count("all members", mesh.RoleMember, 4)
	for _, u := range []struct {
		id string
		u  store.ParticipantUpdate
	}{
		{"p1", store.ParticipantUpdate{Role: ptr("helper")}},
		{"p2", store.ParticipantUpdate{Role: ptr("helper"), Banned: ptr(true)}},
		{"p3", store.ParticipantUpdate{Role: ptr("helper"), Deactivated: ptr(true)}},
	} {
		if _, err := s.UpdateParticipant(ctx, u.id, u.u); err != nil {
			t.Fatalf("UpdateParticipant(%s): %v", u.id, err)
		}
	}
	count("three helpers (banned and deactivated included)", "helper", 3)
	count("three helpers", mesh.RoleMember, 1)
	if _, err := s.UpdateParticipant(ctx, "p1", store.ParticipantUpdate{Role: ptr(mesh.RoleModerator)}); err != nil {
		t.Fatalf("UpdateParticipant(p1): %v", err)
	}
	count("p1 moved on", "helper", 2)
	count("p1 moved on", mesh.RoleModerator, 1)
	count("unknown role", "nobody", 0)
	// Deleting the role leaves its holders as they are.
	if err := s.DeleteRole(ctx, "helper"); err != nil {
		t.Fatalf("DeleteRole: %v", err)
	}
	count("role deleted", "helper", 2)
}
