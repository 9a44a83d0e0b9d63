package main

import (
	"testing"

	mt "github.com/themesh/mesh/internal/meshtest"
)

// Pages of the origins in MESH_CORS_ORIGINS may call the REST API from a browser; others may
// not; and without the setting, none but the gateway's own.
func TestCORS(t *testing.T) {
	m := startAllInOne(t, map[string]string{"MESH_CORS_ORIGINS": "https://app.example.com, http://localhost:3000"})
	c := mt.NewClient(m.base)
	preflight := func(c *mt.Client, origin string) mt.Response {
		return c.Do(t, "OPTIONS", "/api/rooms", "", nil, "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	}
	r := preflight(c, "http://localhost:3000")
	if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		r.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight from an allowed origin: %d %v", r.Status, r.Header)
	}
	if r := preflight(c, "https://evil.example.com"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", r.Header)
	}
	got := c.Do(t, "GET", "/api/setup", "", nil, "Origin", "https://app.example.com")
	if got.Status != 200 || got.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		got.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Fatalf("a request from an allowed origin: %d %v", got.Status, got.Header)
	}

	plain := startAllInOne(t, nil)
	if r := preflight(mt.NewClient(plain.base), "http://localhost:3000"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS without MESH_CORS_ORIGINS: %v", r.Header)
	}
}
