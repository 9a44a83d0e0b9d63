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
