package main

import (
	"net/url"
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// testFindParticipants: GET /api/participants?q= finds display names containing q, in any
// case, literally.
func testFindParticipants(t *testing.T, c *mt.Client) {
	a, b := c.Register(t, "ZoëQuillfeather"), c.Register(t, "zoË100%Real")
	find := func(q string) []string {
		t.Helper()
		items := c.Must(t, 200, "GET", "/api/participants?q="+url.QueryEscape(q), a.Token, nil)["items"].([]any)
		ids := []string{}
		for _, it := range items {
			ids = append(ids, it.(M)["id"].(string))
		}
		return ids
	}
	if got := find("ZOË"); len(got) != 2 || got[0] != a.ID && got[1] != a.ID {
		t.Fatalf("q=ZOË: %v", got)
	}
	if got := find("quill"); len(got) != 1 || got[0] != a.ID {
		t.Fatalf("q=quill: %v", got)
	}
	if got := find("100%"); len(got) != 1 || got[0] != b.ID {
		t.Fatalf("q=100%%: %v", got)
	}
	if got := find("_"); len(got) != 0 {
		t.Fatalf("q=_ (literal): %v", got)
	}
	if r := c.Do(t, "GET", "/api/participants?q=", a.Token, nil); r.Status != 400 {
		t.Fatalf("an empty q: %d", r.Status)
	}
}

// testRoomDirectory: GET /api/rooms?q= finds rooms by name or topic, never a private room
// one is not in; member=true keeps one's own.
func testRoomDirectory(t *testing.T, c *mt.Client) {
	a, b := c.Register(t, "DirA"), c.Register(t, "DirB")
	pub := c.Must(t, 201, "POST", "/api/rooms", a.Token, M{"name": "Ωmega Review", "topic": "figma 50% done"})["id"].(string)
	priv := c.Must(t, 201, "POST", "/api/rooms", a.Token, M{"name": "ωmega ops", "private": true})["id"].(string)
	find := func(u mt.User, query string) map[string]bool {
		t.Helper()
		found := map[string]bool{}
		for _, it := range c.Must(t, 200, "GET", "/api/rooms?"+query, u.Token, nil)["items"].([]any) {
			found[it.(M)["id"].(string)] = true
		}
		return found
	}
	if got := find(a, "q="+url.QueryEscape("ΩMEGA")); !got[pub] || !got[priv] || len(got) != 2 {
		t.Fatalf("a's ΩMEGA: %v", got)
	}
	if got := find(b, "q="+url.QueryEscape("ωmega")); !got[pub] || got[priv] {
		t.Fatalf("b's ωmega (the private room must stay hidden): %v", got)
	}
	if got := find(b, "q="+url.QueryEscape("50%")); !got[pub] || len(got) != 1 {
		t.Fatalf("b's 50%% (by topic): %v", got)
	}
	if got := find(b, "member=true"); got[pub] {
		t.Fatalf("member=true lists a room b is not in: %v", got)
	}
	c.Must(t, 200, "POST", "/api/rooms/"+pub+"/join", b.Token, nil)
	if got := find(b, "member=true&q=review"); !got[pub] || len(got) != 1 {
		t.Fatalf("b's own rooms matching review: %v", got)
	}
}
