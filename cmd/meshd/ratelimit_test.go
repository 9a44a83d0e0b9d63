package main

import (
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// Rate limits hold for the mesh, not per API worker: with two workers taking the commands,
// an account still gets exactly MESH_FAILED_LOGINS_PER_MINUTE (20) wrong passwords a minute.
func TestRateLimitsAcrossWorkers(t *testing.T) {
	cl := startCluster(t, 1, 2)
	c := mt.NewClient(cl.gateways[0])
	u := c.Register(t, "Target")
	codes := map[string]int{}
	for range 24 {
		r := c.Do(t, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "wrong-password"})
		codes[r.ErrorCode()]++
		if r.ErrorCode() == "rate_limited" && r.Header.Get("Retry-After") == "" {
			t.Fatalf("rate_limited without Retry-After: %v", r.Header)
		}
	}
	if codes["invalid_credentials"] != 20 || codes["rate_limited"] != 4 {
		t.Fatalf("24 wrong passwords through two workers: %v", codes)
	}
	// The right password is refused too while the window lasts: that is the limit's point.
	if r := c.Do(t, "POST", "/api/auth/login", "", M{"email": u.Email, "password": "password-123"}); r.ErrorCode() != "rate_limited" {
		t.Fatalf("right password while limited: %d %s", r.Status, r.Body)
	}
}
