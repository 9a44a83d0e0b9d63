package apisvc

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/themesh/mesh/pkg/mesh"
)

// Every mutating action is in the audit log, refused ones too, with its actor and result;
// only view_audit_log holders read it, with filters and pages.
func TestAuditLog(t *testing.T) {
	s := newService(t, Config{})
	ctx := context.Background()
	owner := register(t, s, "o@example.com")
	member := register(t, s, "m@example.com")
	room := s.Handle(ctx, cmd(mesh.OpRoomsCreate, owner, nil, `{"name":"audited"}`))
	var r mesh.Room
	_ = json.Unmarshal(room.Result, &r)
	s.Handle(ctx, cmd(mesh.OpRoomsJoin, member, map[string]string{"roomId": r.ID}, ""))
	for range 3 {
		s.Handle(ctx, cmd(mesh.OpMessagesSend, member, map[string]string{"roomId": r.ID}, `{"content":"x"}`))
	}
	s.Handle(ctx, cmd(mesh.OpRoomsDelete, member, map[string]string{"roomId": r.ID}, "")) // refused
	s.Handle(ctx, cmd(mesh.OpRoomsList, member, nil, ""))                                 // a read: not audited

	type page struct {
		Items []struct {
			ActorID    *string `json:"actorId"`
			OnBehalfOf *string `json:"onBehalfOf"`
			Action     string  `json:"action"`
			Target     *string `json:"target"`
			Result     string  `json:"result"`
		} `json:"items"`
		NextCursor *string `json:"nextCursor"`
	}
	read := func(query map[string]string) page {
		t.Helper()
		c := cmd(mesh.OpAuditList, owner, nil, "")
		c.Args.Query = query
		rep := s.Handle(ctx, c)
		if rep.Error != nil {
			t.Fatalf("audit.list: %v", rep.Error)
		}
		var p page
		_ = json.Unmarshal(rep.Result, &p)
		return p
	}
	all := read(nil)
	// register ×2, rooms.create, rooms.join, 3 sends, the refused delete: 8, newest first.
	if len(all.Items) != 8 || all.Items[0].Action != mesh.OpRoomsDelete || all.Items[0].Result != "forbidden" ||
		*all.Items[0].ActorID != member.ID || *all.Items[0].Target != r.ID || *all.Items[0].OnBehalfOf != member.ID {
		t.Fatalf("audit = %+v", all.Items)
	}
	if sends := read(map[string]string{"action": mesh.OpMessagesSend}); len(sends.Items) != 3 || sends.Items[0].Result != "ok" {
		t.Fatalf("sends = %+v", sends.Items)
	}
	if refused := read(map[string]string{"result": "forbidden"}); len(refused.Items) != 1 {
		t.Fatalf("refused = %+v", refused.Items)
	}
	// Pages of 3 cover everything once.
	seen := 0
	cursor := ""
	for range 10 {
		p := read(map[string]string{"limit": "3", "cursor": cursor})
		seen += len(p.Items)
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if seen != 8 {
		t.Fatalf("paged %d entries, want 8", seen)
	}
	if rep := s.Handle(ctx, cmd(mesh.OpAuditList, member, nil, "")); rep.Error == nil || rep.Error.Code != mesh.CodeForbidden {
		t.Fatalf("a member reads the audit log: %+v", rep)
	}
}

// An upload is audited once: refused before its bytes are read (files.authorize), or
// recorded (files.upload), as files.upload either way.
func TestAuditUploads(t *testing.T) {
	s := newService(t, Config{})
	ctx := context.Background()
	owner := register(t, s, "o@example.com")
	member := register(t, s, "m@example.com")
	var r mesh.Room
	_ = json.Unmarshal(s.Handle(ctx, cmd(mesh.OpRoomsCreate, owner, nil, `{"name":"files"}`)).Result, &r)
	// The member is not in the room: refused before any byte.
	if rep := s.Handle(ctx, cmd(mesh.OpFilesAuthorize, member, nil, `{"roomId":"`+r.ID+`"}`)); rep.Error == nil || rep.Error.Code != mesh.CodeForbidden {
		t.Fatalf("authorize outside the room: %+v", rep)
	}
	var grant mesh.FileGrant
	_ = json.Unmarshal(s.Handle(ctx, cmd(mesh.OpFilesAuthorize, owner, nil, `{"roomId":"`+r.ID+`"}`)).Result, &grant)
	up, _ := json.Marshal(mesh.FileUpload{FileID: grant.FileID, RoomID: r.ID, Name: "a.txt", ContentType: "text/plain; charset=utf-8",
		Size: 1, SHA256: strings.Repeat("0f", 32)})
	if rep := s.Handle(ctx, cmd(mesh.OpFilesUpload, owner, nil, string(up))); rep.Error != nil {
		t.Fatalf("upload: %v", rep.Error)
	}
	c := cmd(mesh.OpAuditList, owner, nil, "")
	c.Args.Query = map[string]string{"action": mesh.OpFilesUpload}
	var p struct {
		Items []struct {
			ActorID string `json:"actorId"`
			Target  string `json:"target"`
			Result  string `json:"result"`
		} `json:"items"`
	}
	_ = json.Unmarshal(s.Handle(ctx, c).Result, &p)
	if len(p.Items) != 2 || p.Items[0].Result != "ok" || p.Items[0].Target != grant.FileID ||
		p.Items[1].Result != "forbidden" || p.Items[1].ActorID != member.ID || p.Items[1].Target != r.ID {
		t.Fatalf("upload audit = %+v", p.Items)
	}
}
