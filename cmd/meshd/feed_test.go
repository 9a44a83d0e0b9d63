package main

import (
	"strings"
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// testFeed: agents post feed events into a room's timeline; members may not.
func testFeed(t *testing.T, c *mt.Client, m *mesh, owner mt.User) {
	agent, member := c.Register(t, "FeedAgent"), c.Register(t, "FeedMember")
	c.Must(t, 200, "PUT", "/api/participants/"+agent.ID+"/role", owner.Token, M{"role": "agent"})
	room := newRoom(t, c, member, agent)
	wm, _ := mt.Connect(t, m.gw(), member.Token)

	r := c.Do(t, "POST", "/api/rooms/"+room+"/events", agent.Token,
		[]byte(`{"kind":"ci.build","title":"Build 42 passed","body":"all 311 tests","url":"https://ci.example.com/42","data":{"z":1,"a":[2,3]}}`))
	if r.Status != 201 {
		t.Fatalf("agent posts an event: %d %s", r.Status, r.Body)
	}
	msg := r.JSON()
	ev, _ := msg["event"].(M)
	if ev["kind"] != "ci.build" || ev["title"] != "Build 42 passed" || ev["url"] != "https://ci.example.com/42" ||
		msg["content"] != "Build 42 passed\n\nall 311 tests" || msg["authorId"] != agent.ID {
		t.Fatalf("event message = %v", msg)
	}
	if !strings.Contains(string(r.Body), `"data":{"z":1,"a":[2,3]}`) {
		t.Fatalf("data not kept as sent: %s", r.Body)
	}
	frame := wm.ExpectWhere(t, "message", func(f M) bool { return f["message"].(M)["id"] == msg["id"] })
	if frame["message"].(M)["event"].(M)["kind"] != "ci.build" {
		t.Fatalf("member's frame = %v", frame)
	}
	// In the history and found by search, like any message.
	hist := c.Do(t, "GET", "/api/rooms/"+room+"/messages", member.Token, nil)
	if !strings.Contains(string(hist.Body), `"kind":"ci.build"`) {
		t.Fatalf("history lacks the event: %s", hist.Body)
	}
	found := c.Must(t, 200, "GET", "/api/search?q=build+42&roomId="+room, member.Token, nil)["items"].([]any)
	if len(found) != 1 || found[0].(M)["id"] != msg["id"] {
		t.Fatalf("search = %v", found)
	}
	// A member's role does not hold post_feed_events.
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/events", member.Token, M{"kind": "x", "title": "x"}); r.Status != 403 || r.ErrorCode() != "forbidden" {
		t.Fatalf("member posts an event: %d %s", r.Status, r.Body)
	}
	// An event is not edited: another is posted.
	if r := c.Do(t, "PATCH", "/api/messages/"+msg["id"].(string), agent.Token, M{"content": "changed"}); r.Status != 400 {
		t.Fatalf("edit an event: %d %s", r.Status, r.Body)
	}
	for name, body := range map[string]M{
		"bad kind":   {"kind": "Build Done", "title": "x"},
		"no title":   {"kind": "x"},
		"bad url":    {"kind": "x", "title": "x", "url": "javascript:alert(1)"},
		"data array": {"kind": "x", "title": "x", "data": []int{1}},
	} {
		if r := c.Do(t, "POST", "/api/rooms/"+room+"/events", agent.Token, body); r.Status != 400 {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	if r := c.Do(t, "POST", "/api/rooms/"+room+"/events", agent.Token, M{"kind": "x", "title": "x", "data": M{"blob": strings.Repeat("a", 9000)}}); r.Status != 413 {
		t.Fatalf("data over 8 KiB: %d %s", r.Status, r.Body)
	}
}
