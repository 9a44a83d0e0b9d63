package main

import (
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// testThreads: a room's threads, most recently replied to first, counted for their viewer.
func testThreads(t *testing.T, c *mt.Client) {
	u, v, w := c.Register(t, "ThreadU"), c.Register(t, "ThreadV"), c.Register(t, "ThreadW")
	room := newRoom(t, c, u, v, w)
	send := func(who mt.User, body M) string {
		t.Helper()
		return c.Must(t, 201, "POST", "/api/rooms/"+room+"/messages", who.Token, body)["id"].(string)
	}
	a := send(u, M{"content": "thread a"})
	b := send(u, M{"content": "thread b"})
	send(v, M{"content": "a1", "threadId": a})
	send(u, M{"content": "b1", "threadId": b})
	send(u, M{"content": "b2 (to v)", "threadId": b, "to": v.ID})
	send(w, M{"content": "a2", "threadId": a})
	list := func(who mt.User, query string) (items []any, next any) {
		t.Helper()
		page := c.Must(t, 200, "GET", "/api/rooms/"+room+"/threads"+query, who.Token, nil)
		return page["items"].([]any), page["nextCursor"]
	}
	items, _ := list(v, "")
	if len(items) != 2 || items[0].(M)["root"].(M)["id"] != a || items[0].(M)["replies"] != 2.0 ||
		items[1].(M)["root"].(M)["id"] != b || items[1].(M)["replies"] != 2.0 {
		t.Fatalf("threads for v = %v", items)
	}
	// The whisper in thread b is not w's to count.
	items, _ = list(w, "")
	if len(items) != 2 || items[1].(M)["replies"] != 1.0 {
		t.Fatalf("threads for w = %v", items)
	}
	// Pages of one.
	first, next := list(v, "?limit=1")
	if len(first) != 1 || next == nil {
		t.Fatalf("first page = %v, next %v", first, next)
	}
	second, next := list(v, "?limit=1&cursor="+next.(string))
	if len(second) != 1 || second[0].(M)["root"].(M)["id"] != b || next != nil {
		t.Fatalf("second page = %v, next %v", second, next)
	}
	priv := c.Must(t, 201, "POST", "/api/rooms", u.Token, M{"name": "threads private", "private": true})["id"].(string)
	if r := c.Do(t, "GET", "/api/rooms/"+priv+"/threads", w.Token, nil); r.Status != 404 {
		t.Fatalf("a private room's threads for a non-member: %d", r.Status)
	}
}
