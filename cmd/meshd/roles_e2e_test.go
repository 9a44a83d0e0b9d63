package main

import (
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// testNewOwner is issue 4 tried as a new user would: a custom role does exactly what it
// holds; a moderator cannot kick an admin; a spectator sees public rooms and cannot post.
func testNewOwner(t *testing.T, c *mt.Client, m *mesh, owner mt.User) {
	rev, mod, adm, spec := c.Register(t, "Reviewer"), c.Register(t, "Mod"), c.Register(t, "Adm"), c.Register(t, "Spec")
	c.Must(t, 201, "POST", "/api/roles", owner.Token, M{"name": "reviewer", "priority": 500,
		"permissions": []string{"view_rooms", "join_rooms", "send_messages", "pin_messages"}})
	for u, role := range map[mt.User]string{rev: "reviewer", mod: "moderator", adm: "admin", spec: "spectator"} {
		c.Must(t, 200, "PUT", "/api/participants/"+u.ID+"/role", owner.Token, M{"role": role})
	}
	room := newRoom(t, c, owner)

	// The reviewer: its four permissions work...
	if r := c.Do(t, "GET", "/api/rooms", rev.Token, nil); r.Status != 200 {
		t.Fatalf("reviewer lists rooms: %d", r.Status)
	}
	c.Must(t, 200, "POST", "/api/rooms/"+room+"/join", rev.Token, nil)
	msg := c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", rev.Token, M{"content": "looks good"})
	c.Must(t, 200, "POST", "/api/messages/"+msg["id"].(string)+"/pin", rev.Token, nil)
	// ...and nothing a member could do beyond them.
	for _, req := range []struct{ method, path string }{
		{"POST", "/api/rooms"},
		{"POST", "/api/messages/" + msg["id"].(string) + "/reactions"},
		{"GET", "/api/participants"},
		{"POST", "/api/invites"},
		{"POST", "/api/rooms/" + room + "/invites"},
		{"POST", "/api/rooms/" + room + "/kick"},
	} {
		if r := c.Do(t, req.method, req.path, rev.Token, M{"name": "x", "emoji": "👍", "participantId": spec.ID}); r.Status != 403 || r.ErrorCode() != "forbidden" {
			t.Errorf("reviewer %s %s: %d %s", req.method, req.path, r.Status, r.Body)
		}
	}
	if r := c.Upload(t, rev.Token, room, "a.txt", "text/plain", []byte("a")); r.Status != 403 {
		t.Errorf("reviewer uploads: %d %s", r.Status, r.Body)
	}

	// A moderator cannot kick an admin (nor mute one); it can kick a spectator.
	c.Must(t, 200, "POST", "/api/rooms/"+room+"/join", adm.Token, nil)
	c.Must(t, 200, "POST", "/api/rooms/"+room+"/join", spec.Token, nil)
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/kick", mod.Token, M{"participantId": adm.ID}); r.Status != 403 {
		t.Fatalf("moderator kicks an admin: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/mute", mod.Token, M{"participantId": adm.ID, "durationSeconds": 60}); r.Status != 403 {
		t.Fatalf("moderator mutes an admin: %d %s", r.Status, r.Body)
	}

	// A spectator sees the public room and its history, and cannot post there, by REST or
	// over its socket.
	if r := c.Do(t, "GET", "/api/rooms/"+room+"/messages", spec.Token, nil); r.Status != 200 {
		t.Fatalf("spectator reads history: %d", r.Status)
	}
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/messages", spec.Token, M{"content": "hi"}); r.Status != 403 {
		t.Fatalf("spectator posts: %d %s", r.Status, r.Body)
	}
	ws, _ := mt.Connect(t, m.gw(), spec.Token)
	if e := ws.Request(t, M{"type": "send_message", "roomId": room, "content": "hi"}); e["type"] != "error" || e["code"] != "forbidden" {
		t.Fatalf("spectator sends over its socket: %v", e)
	}
	c.Must(t, 204, "POST", "/api/rooms/"+room+"/kick", mod.Token, M{"participantId": spec.ID})
}
