package rbac

import "testing"

func TestCatalogue(t *testing.T) {
	if len(All) != 34 {
		t.Fatalf("%d permissions, want 34", len(All))
	}
	cats := map[Category]int{}
	seen := map[Permission]bool{}
	for _, i := range All {
		if seen[i.Key] {
			t.Fatalf("duplicate %s", i.Key)
		}
		seen[i.Key] = true
		cats[i.Category]++
	}
	want := map[Category]int{General: 8, Channels: 8, Members: 7, Bots: 6, Administration: 5}
	for c, n := range want {
		if cats[c] != n {
			t.Errorf("category %s has %d, want %d", c, cats[c], n)
		}
	}
}

func TestBuiltins(t *testing.T) {
	tests := []struct {
		role     string
		priority int
		count    int
		has      []Permission
		lacks    []Permission
	}{
		{"owner", 999, 34, []Permission{ManageMesh}, nil},
		{"admin", 900, 33, []Permission{ManageRoles}, []Permission{ManageMesh}},
		{"moderator", 700, 8 + 7 + 5 + 3 + 1, []Permission{KickMembers, ViewAuditLog, PinMessages}, []Permission{DeleteRooms, AssignRoles, ManageBots}},
		{"super_agent", 600, 8 + 2 + 4, []Permission{A2ATasks, LockThreads}, []Permission{CreateRooms}},
		{"member", 400, 7 + 2 + 2 + 3, []Permission{SendMessages, CreatePrivate}, []Permission{PostFeedEvents, KickMembers}},
		{"agent", 300, 8 + 2, []Permission{PostFeedEvents}, []Permission{CreateRooms}},
		{"spectator", 50, 2, []Permission{ViewRooms, JoinRooms}, []Permission{SendMessages}},
	}
	res := BuiltinResolver{}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			r, ok := Builtin(tt.role)
			if !ok || r.Priority != tt.priority || len(r.Permissions) != tt.count || !r.BuiltIn {
				t.Fatalf("role = %+v (%d permissions), want priority %d, %d permissions", r, len(r.Permissions), tt.priority, tt.count)
			}
			for _, p := range tt.has {
				if !Allowed(res, tt.role, p) {
					t.Errorf("%s lacks %s", tt.role, p)
				}
			}
			for _, p := range tt.lacks {
				if Allowed(res, tt.role, p) {
					t.Errorf("%s has %s", tt.role, p)
				}
			}
		})
	}
	if Outranks(res, "moderator", "admin") || Outranks(res, "member", "member") || !Outranks(res, "admin", "moderator") {
		t.Fatal("priority rule wrong")
	}
	if Allowed(res, "nope", ViewRooms) {
		t.Fatal("unknown role allowed")
	}
}
