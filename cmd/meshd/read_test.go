package main

import (
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// testReadMarks: how far one has read a room follows one across devices, only forward.
func testReadMarks(t *testing.T, c *mt.Client, m *mesh) {
	u, other := c.Register(t, "Reader"), c.Register(t, "NotIn")
	room := newRoom(t, c, u)
	for _, text := range []string{"one", "two", "three"} {
		c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", u.Token, M{"content": text})
	}
	phone, _ := mt.Connect(t, m.gw(), u.Token)
	if got := c.Must(t, 200, "PUT", "/api/rooms/"+room+"/read", u.Token, M{"seq": 2}); got["seq"] != 2.0 || got["roomId"] != room {
		t.Fatalf("mark read: %v", got)
	}
	if f := phone.Expect(t, "read"); f["roomId"] != room || f["seq"] != 2.0 {
		t.Fatalf("the other device heard %v", f)
	}
	// A device that read less does not pull the mark back; past the end is the end.
	if got := c.Must(t, 200, "PUT", "/api/rooms/"+room+"/read", u.Token, M{"seq": 1}); got["seq"] != 2.0 {
		t.Fatalf("mark moved back: %v", got)
	}
	if ack := phone.Ack(t, M{"type": "mark_read", "roomId": room, "seq": 99}); ack["type"] != "ack" {
		t.Fatalf("mark_read over the socket: %v", ack)
	}
	_, snap := mt.Connect(t, m.gw(), u.Token)
	found := false
	for _, r := range snap["rooms"].([]any) {
		if r.(M)["id"] == room {
			found = true
			if r.(M)["lastRead"] != 3.0 || r.(M)["lastSeq"] != 3.0 {
				t.Fatalf("snapshot room: %v", r)
			}
		}
	}
	if !found {
		t.Fatalf("the snapshot lacks the room: %v", snap["rooms"])
	}
	if r := c.Do(t, "PUT", "/api/rooms/"+room+"/read", other.Token, M{"seq": 1}); r.Status != 403 {
		t.Fatalf("a non-member's mark: %d %s", r.Status, r.Body)
	}
	if r := c.Do(t, "PUT", "/api/rooms/"+room+"/read", u.Token, M{"seq": 0}); r.Status != 400 {
		t.Fatalf("seq 0: %d %s", r.Status, r.Body)
	}
	priv := c.Must(t, 201, "POST", "/api/rooms", u.Token, M{"name": "read private", "private": true})["id"].(string)
	if r := c.Do(t, "PUT", "/api/rooms/"+priv+"/read", other.Token, M{"seq": 1}); r.Status != 404 {
		t.Fatalf("a private room's mark by a non-member: %d %s", r.Status, r.Body)
	}
}
