package main

import (
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// REST requests beyond MESH_REST_RATE (after MESH_REST_BURST) are rate_limited, per
// participant: another participant, and anonymous requests (per address), have their own.
func TestRESTRateLimit(t *testing.T) {
	m := startAllInOne(t, map[string]string{"MESH_REST_RATE": "0.5", "MESH_REST_BURST": "5"})
	c := mt.NewClient(m.base)
	a := c.Register(t, "Busy")
	b := c.Register(t, "Calm")
	codes := map[int]int{}
	var limited mt.Response
	for range 8 {
		r := c.Do(t, "GET", "/api/auth/me", a.Token, nil)
		codes[r.Status]++
		if r.Status == 429 {
			limited = r
		}
	}
	if codes[200] != 5 || codes[429] != 3 {
		t.Fatalf("8 requests with a burst of 5: %v", codes)
	}
	if limited.ErrorCode() != "rate_limited" || limited.Header.Get("Retry-After") == "" {
		t.Fatalf("the refusal: %s %v", limited.Body, limited.Header)
	}
	if r := c.Do(t, "GET", "/api/auth/me", b.Token, nil); r.Status != 200 {
		t.Fatalf("another participant: %d", r.Status)
	}
	// Anonymous requests count per address: not refused because a participant was, then
	// refused within a burst.
	statuses := []int{}
	for range 8 {
		statuses = append(statuses, c.Do(t, "GET", "/api/setup", "", nil).Status)
	}
	if statuses[0] != 200 || statuses[7] != 429 {
		t.Fatalf("anonymous requests: %v", statuses)
	}
}
