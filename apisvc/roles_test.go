package apisvc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/themesh/mesh/pkg/mesh"
)

func TestCustomRoles(t *testing.T) {
	s := newService(t, Config{})
	ctx := context.Background()
	owner := register(t, s, "o@example.com")
	member := register(t, s, "m@example.com")
	admin := register(t, s, "a@example.com")
	code := func(rep mesh.Reply) mesh.Code {
		if rep.Error == nil {
			return ""
		}
		return rep.Error.Code
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, owner, map[string]string{"participantId": admin.ID}, `{"role":"admin"}`))); c != "" {
		t.Fatalf("owner makes an admin: %s", c)
	}

	// The owner makes a reviewer role with four permissions at priority 500, and gives it to
	// a member.
	rep := s.Handle(ctx, cmd(mesh.OpRolesCreate, owner, nil,
		`{"name":"reviewer","priority":500,"permissions":["view_rooms","join_rooms","send_messages","pin_messages"]}`))
	if rep.Error != nil || rep.Status != 201 {
		t.Fatalf("create reviewer: %+v", rep)
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, owner, map[string]string{"participantId": member.ID}, `{"role":"reviewer"}`))); c != "" {
		t.Fatalf("assign reviewer: %s", c)
	}
	list := s.Handle(ctx, cmd(mesh.OpRolesList, member, nil, ""))
	var roles struct {
		Items []struct {
			Name     string `json:"name"`
			Priority int    `json:"priority"`
			BuiltIn  bool   `json:"builtIn"`
		} `json:"items"`
	}
	_ = json.Unmarshal(list.Result, &roles)
	if len(roles.Items) != 8 || roles.Items[4].Name != "reviewer" || roles.Items[4].BuiltIn {
		t.Fatalf("roles = %+v", roles.Items)
	}
	// The reviewer may now send (reviewer holds send_messages) but not create rooms (member
	// could; reviewer cannot).
	if c := code(s.Handle(ctx, cmd(mesh.OpRoomsCreate, member, nil, `{"name":"x"}`))); c != mesh.CodeForbidden {
		t.Fatalf("reviewer creates a room: %q", c)
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoomsList, member, nil, ""))); c != "" {
		t.Fatalf("reviewer lists rooms: %q", c)
	}

	tests := []struct {
		name  string
		actor *mesh.Actor
		op    string
		param map[string]string
		body  string
		want  mesh.Code
	}{
		{"priority at the creator's", admin, mesh.OpRolesCreate, nil, `{"name":"big","priority":900}`, mesh.CodeForbidden},
		{"granting what one lacks", admin, mesh.OpRolesCreate, nil, `{"name":"meshy","priority":10,"permissions":["manage_mesh"]}`, mesh.CodeForbidden},
		{"unknown permission", owner, mesh.OpRolesCreate, nil, `{"name":"odd","priority":10,"permissions":["fly"]}`, mesh.CodeBadRequest},
		{"built-in name", owner, mesh.OpRolesCreate, nil, `{"name":"admin","priority":10}`, mesh.CodeConflict},
		{"taken name", owner, mesh.OpRolesCreate, nil, `{"name":"reviewer","priority":10}`, mesh.CodeConflict},
		{"bad name", owner, mesh.OpRolesCreate, nil, `{"name":"Not OK","priority":10}`, mesh.CodeBadRequest},
		{"delete a built-in", owner, mesh.OpRolesDelete, map[string]string{"name": "moderator"}, "", mesh.CodeForbidden},
		{"delete a role in use", owner, mesh.OpRolesDelete, map[string]string{"name": "reviewer"}, "", mesh.CodeConflict},
		{"no role to give", owner, mesh.OpRoleAssign, map[string]string{"participantId": member.ID}, `{"role":"nope"}`, mesh.CodeBadRequest},
		{"admin makes an owner", admin, mesh.OpRoleAssign, map[string]string{"participantId": member.ID}, `{"role":"owner"}`, mesh.CodeForbidden},
		{"admin demotes the owner", admin, mesh.OpRoleAssign, map[string]string{"participantId": owner.ID}, `{"role":"member"}`, mesh.CodeForbidden},
		{"the last owner steps down", owner, mesh.OpRoleAssign, map[string]string{"participantId": owner.ID}, `{"role":"admin"}`, mesh.CodeConflict},
		{"member raises itself", member, mesh.OpRoleAssign, map[string]string{"participantId": member.ID}, `{"role":"admin"}`, mesh.CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c := code(s.Handle(ctx, cmd(tt.op, tt.actor, tt.param, tt.body))); c != tt.want {
				t.Fatalf("got %q, want %q", c, tt.want)
			}
		})
	}
	// Editing a role takes effect on the next command of those who hold it.
	if c := code(s.Handle(ctx, cmd(mesh.OpRolesUpdate, owner, map[string]string{"name": "reviewer"}, `{"permissions":["join_rooms"]}`))); c != "" {
		t.Fatalf("edit reviewer: %q", c)
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoomsList, member, nil, ""))); c != mesh.CodeForbidden {
		t.Fatalf("reviewer without view_rooms lists rooms: %q", c)
	}
	// A second owner lets the first step down; then the role can go once nobody holds it.
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, owner, map[string]string{"participantId": admin.ID}, `{"role":"owner"}`))); c != "" {
		t.Fatalf("owner makes a second owner: %q", c)
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, owner, map[string]string{"participantId": owner.ID}, `{"role":"admin"}`))); c != "" {
		t.Fatalf("owner steps down with another owner: %q", c)
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, admin, map[string]string{"participantId": member.ID}, `{"role":"member"}`))); c != "" {
		t.Fatalf("new owner takes reviewer away: %q", c)
	}
	if rep := s.Handle(ctx, cmd(mesh.OpRolesDelete, admin, map[string]string{"name": "reviewer"}, "")); rep.Error != nil || rep.Status != 204 {
		t.Fatalf("delete an unused role: %+v", rep)
	}
	// manage_mesh is what makes owners: a custom role that holds it may, below the owner.
	if c := code(s.Handle(ctx, cmd(mesh.OpRolesCreate, admin, nil, `{"name":"steward","priority":950,"permissions":["assign_roles","manage_mesh"]}`))); c != "" {
		t.Fatalf("create steward: %q", c)
	}
	steward := register(t, s, "s@example.com")
	heir := register(t, s, "h@example.com")
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, admin, map[string]string{"participantId": steward.ID}, `{"role":"steward"}`))); c != "" {
		t.Fatalf("give steward: %q", c)
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, owner, map[string]string{"participantId": heir.ID}, `{"role":"owner"}`))); c != mesh.CodeForbidden {
		t.Fatalf("an admin (once owner) makes an owner: %q", c)
	}
	if c := code(s.Handle(ctx, cmd(mesh.OpRoleAssign, steward, map[string]string{"participantId": heir.ID}, `{"role":"owner"}`))); c != "" {
		t.Fatalf("a steward makes an owner: %q", c)
	}
	if me := s.Handle(ctx, cmd(mesh.OpAuthMe, heir, nil, "")); !json.Valid(me.Result) || !strings.Contains(string(me.Result), `"role":"owner"`) {
		t.Fatalf("heir = %s", me.Result)
	}
}

// The last owner cannot delete its account; once there is another owner, it can.
func TestDeleteLastOwner(t *testing.T) {
	s := newService(t, Config{})
	ctx := context.Background()
	owner := register(t, s, "o@example.com")
	second := register(t, s, "s@example.com")
	del := func(a *mesh.Actor) *mesh.Error {
		return s.Handle(ctx, cmd(mesh.OpAuthDelete, a, nil, `{"password":"password-1"}`)).Error
	}
	if err := del(owner); err == nil || err.Code != mesh.CodeConflict {
		t.Fatalf("the last owner deletes itself: %v", err)
	}
	if rep := s.Handle(ctx, cmd(mesh.OpRoleAssign, owner, map[string]string{"participantId": second.ID}, `{"role":"owner"}`)); rep.Error != nil {
		t.Fatal(rep.Error)
	}
	if err := del(owner); err != nil {
		t.Fatalf("an owner among two deletes itself: %v", err)
	}
	if rep := s.Handle(ctx, cmd(mesh.OpAuthMe, owner, nil, "")); rep.Error == nil || rep.Error.Code != mesh.CodeUnauthorized {
		t.Fatalf("the deleted account still acts: %+v", rep)
	}
}
